#!/usr/bin/env bash
# Prints where PumpStream answers and how to sign in.
cat <<MSG

  PumpStream is starting.
    Open:        http://127.0.0.1:${WEB_PORT:-8000}/
    Sign in as:  clinician / pumpstream-demo      (admin / pumpstream-demo for /admin/)
    MQTT broker: 127.0.0.1:${MQTT_PORT:-1883}
  Stop with Ctrl-C.

MSG
