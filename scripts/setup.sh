#!/usr/bin/env bash
# Installs everything PumpStream needs on a fresh machine: system packages (as root, where missing),
# the virtual environment, Python and npm dependencies, and the front-end files served as static.
# Usage: scripts/setup.sh [--test]   (--test also installs what the tests need: Debian's chromium, and with
# CI=true or WITH_POSTGRES=true Debian's postgresql for `make test-postgres`, with CI=true or WITH_REDIS=true
# Debian's redis-server for its scale-out tests, with CI=true or WITH_NGINX=true Debian's nginx for the tests of
# deploy/nginx/)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
want_test=${1:-}

apt_packages=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_packages+=(mosquitto)
if [ "$want_test" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
  # PostgreSQL for `make test-postgres` (CI runs it; elsewhere ask with WITH_POSTGRES=true). Only its programs
  # are used: the tests start a cluster of their own (tests/support/postgres.py), never Debian's.
  if [ "${CI:-}" = "true" ] || [ "${WITH_POSTGRES:-}" = "true" ]; then
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_packages+=(postgresql)
  fi
  # Redis for the scale-out tests under `make test-postgres` (tests/support/redis.py starts its own server).
  if [ "${CI:-}" = "true" ] || [ "${WITH_REDIS:-}" = "true" ]; then
    command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || apt_packages+=(redis-server)
  fi
  # nginx, for `nginx -t` of deploy/nginx/pumpstream.conf in the suite and the tests that run it in front of
  # Daphne on a free port (tests/support/nginx.py; CI runs them; elsewhere WITH_NGINX=true).
  if [ "${CI:-}" = "true" ] || [ "${WITH_NGINX:-}" = "true" ]; then
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_packages+=(nginx)
  fi
fi
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing system packages: ${apt_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  else
    echo "Missing system packages (${apt_packages[*]}); not root, so continuing without them." >&2
  fi
fi
# Debian starts a system-wide broker on 1883 when it installs mosquitto; PumpStream runs its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  systemctl stop mosquitto || true
fi
# Likewise Debian's nginx (on 80): the suite runs its own, on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx || true
fi
# Likewise Debian's PostgreSQL cluster (on 5432) where it started one: the tests never use it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postgresql 2>/dev/null; then
  systemctl stop postgresql || true
fi

# Likewise Debian's Redis (on 6379, without a password): the tests start their own, with one.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl stop redis-server || true
fi

requirements=requirements.txt
[ "$want_test" = "--test" ] && requirements=requirements-dev.txt
stamp="$VENV/.installed-$(sha256sum "$requirements" requirements.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --silent --no-audit --no-fund
fi
scripts/vendor_static.sh
# This install's development secrets, in the git-ignored .env (the repository ships none).
"$VENV/bin/python" -m pumpstream.devenv .env
