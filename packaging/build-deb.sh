#!/bin/sh
# Builds hookd's Debian package without touching the checkout: the tree is
# copied to a temporary directory, packaging/debian/ becomes its debian/,
# and `dpkg-buildpackage -us -uc -b` runs there. The .deb (and the
# .buildinfo and .changes) land in OUTDIR (default: build-deb/).
#
#   packaging/build-deb.sh [OUTDIR]
#
# Needs the Build-Depends of packaging/debian/control (scripts/deps.sh
# --test installs them) and dpkg-dev.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$top/meson.build" | head -n 1)
debversion=$(sed -n '1s/^hookd (\([^)]*\)).*/\1/p' "$top/packaging/debian/changelog")
if [ "$version" != "$debversion" ]; then
	echo "build-deb.sh: meson.build says $version but debian/changelog says $debversion" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
src="$tmp/hookd-$version"
mkdir "$src"

# The files git knows of (tracked, or new and not ignored), as they are in
# the work tree now; a plain copy without build directories elsewhere.
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf -) | tar -xf - -C "$src"
else
	(cd "$top" && tar --exclude='./build*' --exclude='./.git' --exclude='./tests/.tools' -cf - .) |
		tar -xf - -C "$src"
fi
rm -rf "$src/debian"
cp -R "$top/packaging/debian" "$src/debian"

(cd "$src" && dpkg-buildpackage -us -uc -b)

for f in "$tmp"/*.deb "$tmp"/*.buildinfo "$tmp"/*.changes; do
	[ -e "$f" ] && cp "$f" "$out/"
done
ls -1 "$out"/hookd_"$version"_*.deb
