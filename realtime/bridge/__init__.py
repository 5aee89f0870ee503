"""The MQTT bridge: receive, validate, persist and forward pump messages; publish commands; housekeeping."""
