#!/usr/bin/env bash
# Copies the front-end libraries from node_modules into static/vendor (served by WhiteNoise; no CDN).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p static/vendor
cp node_modules/socket.io-client/dist/socket.io.min.js node_modules/socket.io-client/dist/socket.io.min.js.map static/vendor/
cp node_modules/chart.js/dist/chart.umd.min.js static/vendor/chart.umd.min.js
[ -f node_modules/chart.js/dist/chart.umd.min.js.map ] && cp node_modules/chart.js/dist/chart.umd.min.js.map static/vendor/ || true
