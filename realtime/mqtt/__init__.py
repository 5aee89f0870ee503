"""MQTT protocol concerns: topics (one module), payload schemas, client connection options."""
