#!/bin/sh
# Quick start: install the build dependencies, build hookd, and run it in
# the foreground on the example config (hookd.ini) and hooks (hooks.d/).
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
[ -d build ] || meson setup build --buildtype=release
ninja -C build
if [ ! -s northflank.token ]; then
	# The example endpoint's secret: made once, kept out of git.
	umask 077
	openssl rand -hex 24 > northflank.token
fi
cat <<MSG
hookd is starting on 127.0.0.1:9000. Try, from another shell:

  curl -s http://127.0.0.1:9000/webhook \\
    -H 'Content-Type: application/json' \\
    -H "X-Northflank-Notification-Integration-Token: \$(cat $(pwd)/northflank.token)" \\
    -H 'X-Northflank-Notification-Integration-Event-Id: demo-1' \\
    --data @$(pwd)/tests/data/northflank-build-start.json

MSG
exec ./build/hookd -c hookd.ini serve
