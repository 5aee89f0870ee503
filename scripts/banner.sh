#!/usr/bin/env bash
# Prints where PumpStream answers and how to sign in (the password `seed_demo` generated for this install).
cd "$(dirname "$0")/.."
password=$(cat "${DEMO_PASSWORD_FILE:-.run/demo-password}" 2>/dev/null || echo "(see manage.py seed_demo's output)")
cat <<MSG

  PumpStream is starting.
    Open:        http://127.0.0.1:${WEB_PORT:-8000}/
    Sign in as:  clinician / ${password}      (admin / ${password} for /admin/)
    MQTT broker: 127.0.0.1:${MQTT_PORT:-1883}
  Stop with Ctrl-C.

MSG
