#!/bin/sh
# hookd side by side with adnanh/webhook and with the machine's own limits
# (issue 8). One command, from a checkout:
#
#   sh tests/bench/bench.sh            # the full run: 8 s a cell, 16 connections
#   sh tests/bench/bench.sh --short    # CI: 1 s a cell, 4 connections, 1,000 waiting,
#                                      # a burst of 1,000, PostgreSQL's cases tiny
#
# It installs what it needs from Debian (the build dependencies, wrk, and
# the peer: `webhook`, adnanh/webhook 2.8; `postgresql`, whose binaries start
# a private server for the journal's cases), builds hookd with
# --buildtype=release and the two limit probes (-Dbench=true) in
# build-release/, and runs tests/bench/bench.py, which prints one markdown
# table. Further options go to bench.py (--rounds N, --duration S,
# --connections N, --scale N, --burst N, --takeovers N, --only abcdefg, --keep; see
# bench.py --help).
# Nothing here asserts a timing: the exit status is 0 when everything ran.
set -eu
cd "$(dirname "$0")/../.."

sh scripts/deps.sh || exit 1

# wrk and the peer, from Debian's mirror only (no other network).
missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v webhook >/dev/null 2>&1 || missing="$missing webhook"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench.sh: missing:$missing (run as root, or: sudo apt-get install -y$missing)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1 || true
		# shellcheck disable=SC2086
		if ! apt-get install -y -qq --no-install-recommends $missing; then
			echo "bench.sh: cannot install$missing with apt-get (the peer is Debian's" \
			     "'webhook' package, adnanh/webhook); the benchmark needs it" >&2
			exit 1
		fi
	fi
fi

# A release build of its own, with the probes; only the targets the
# benchmark runs (the tests have their own builds).
dir=build-release
if [ ! -d "$dir" ]; then
	meson setup "$dir" --buildtype=release -Dbench=true >/dev/null
else
	meson configure "$dir" --buildtype=release -Dbench=true >/dev/null
fi
ninja -C "$dir" -j2 hookd tests/bench/probe_reject tests/bench/probe_dispatch >/dev/null

exec python3 tests/bench/bench.py --build "$dir" "$@"
