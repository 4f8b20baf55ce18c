#!/bin/sh
# Installs what hookd needs to build and test, from Debian's packages.
# Safe to run again: apt-get skips what is already installed.
set -eu
pkgs="build-essential meson ninja-build pkg-config libevent-dev libjson-c-dev
libinih-dev libssl-dev libsqlite3-dev python3 curl openssl clang valgrind"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
