#!/usr/bin/env bash
# For `make run`: start the simulated pumps once the bridge holds the broker (Daphne's /readyz says so),
# because the original firmware says "online" once, at QoS 0, which nobody would hear before that.
set -uo pipefail
cd "$(dirname "$0")/.."
url="http://127.0.0.1:${WEB_PORT:-8000}/readyz"
for _ in $(seq 1 120); do
  if "${VENV:-.venv}/bin/python" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('$url', timeout=2).status != 200)" 2>/dev/null; then
    exec "$@"
  fi
  sleep 0.5
done
echo "the bridge was not ready after 60 s; starting anyway: $*" >&2
exec "$@"
