#!/usr/bin/env bash
# Starts the MQTT broker for `make run`: Mosquitto with the project's config where installed,
# otherwise the embedded Python broker (amqtt, MQTT 3.1.1), so the demo still runs.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${MQTT_PORT:-1883}
mosquitto_bin=$(command -v mosquitto || true)
[ -z "$mosquitto_bin" ] && [ -x /usr/sbin/mosquitto ] && mosquitto_bin=/usr/sbin/mosquitto
if [ -n "$mosquitto_bin" ]; then
  run_dir=$(realpath -m "${RUN_DIR:-.run}")  # where its config and persistence live (tests use their own)
  mkdir -p "$run_dir"
  sed "s/@PORT@/$port/; s|@DATA@|$run_dir|" deploy/mosquitto/dev.conf > "$run_dir/mosquitto.conf"
  exec "$mosquitto_bin" -c "$run_dir/mosquitto.conf"
fi
echo "mosquitto not found: starting the embedded amqtt broker (MQTT 3.1.1, demo only)" >&2
exec "${VENV:-.venv}/bin/python" -m realtime.demo_broker --port "$port"
