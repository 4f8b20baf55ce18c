#!/bin/sh
# Installs what hookd needs to build and test, from Debian's packages.
# Safe to run again: apt-get skips what is already installed.
#
#   scripts/deps.sh          build and test dependencies
#   scripts/deps.sh --test   also the tools of the test suite's extra checks
#                            (tests/run.sh uses this): debhelper and lintian
#                            for the package build, mandoc for the man pages,
#                            systemd-analyze for the units, git for the deploy
#                            example, prometheus-alertmanager as a real sender
#                            (test_senders starts its own on a loopback port;
#                            the packaged service is not used), and promtool
#                            for the metrics, and chromium, chromium-driver and
#                            python3-selenium for the deliveries page's browser
#                            tests (test_web_browser), and postgresql for the
#                            PostgreSQL journal's tests (tests/blackbox/pgserver.py
#                            runs its own server from it in a temp dir; the
#                            cluster the package makes is not used).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
pkgs="build-essential meson ninja-build pkg-config libevent-dev libjson-c-dev
libinih-dev libssl-dev libsqlite3-dev python3 curl openssl clang valgrind"
test_pkgs="debhelper dpkg-dev lintian mandoc man-db systemd git prometheus-alertmanager
chromium chromium-driver python3-selenium postgresql"
with_test=no
[ "${1:-}" = --test ] && with_test=yes

missing() {
	m=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			m="$m $p"
	done
	echo "$m"
}

updated=no
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	if [ "$updated" = no ]; then
		apt-get update -qq
		updated=yes
	fi
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends "$@"
}

# shellcheck disable=SC2086
need=$(missing $pkgs)
if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps.sh: missing packages:$need (run as root, or: sudo apt-get install$need)" >&2
		exit 1
	fi
	# shellcheck disable=SC2086
	apt_install $need
fi
[ "$with_test" = yes ] || exit 0

# shellcheck disable=SC2086
need=$(missing $test_pkgs)
if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		# The checks that need them skip or fail by themselves.
		echo "deps.sh: for the full test suite, install:$need" >&2
	else
		# shellcheck disable=SC2086
		apt_install $need
	fi
fi

# promtool, the Prometheus project's own validator of the text format, is
# in Debian's prometheus package (19 MB). Installing that package would
# pull in the web UI's JavaScript libraries and start a Prometheus server,
# so only its promtool (a static binary) is unpacked, into tests/.tools/.
tools="$top/tests/.tools"
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$tools/promtool" ]; then
	mkdir -p "$tools"
	dl=$(mktemp -d)
	if ! (cd "$dl" && apt-get download prometheus >/dev/null 2>&1); then
		if [ "$(id -u)" = 0 ] && [ "$updated" = no ]; then
			apt-get update -qq
			updated=yes
		fi
		(cd "$dl" && apt-get download prometheus >/dev/null 2>&1) ||
			echo "deps.sh: cannot download Debian's prometheus package for promtool" >&2
	fi
	for deb in "$dl"/prometheus_*.deb; do
		[ -f "$deb" ] || continue
		dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/bin/promtool > "$tools/promtool.tmp" &&
			chmod 755 "$tools/promtool.tmp" && mv "$tools/promtool.tmp" "$tools/promtool"
	done
	rm -rf "$dl" "$tools/promtool.tmp"
	[ -x "$tools/promtool" ] && echo "deps.sh: promtool unpacked into tests/.tools/"
fi
exit 0
