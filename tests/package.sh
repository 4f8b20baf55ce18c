#!/bin/sh
# CI: builds the Debian package (packaging/build-deb.sh), lints it, installs
# it, and checks what got installed: `hookd --version` and `hookd check` on
# /etc/hookd/hookd.ini, the generated token, the units (where systemd.pc
# says, systemd-analyze verify), the dlopen'ed libraries (each loads, and
# comes from a package hookd depends on), the man pages (mandoc), and a
# delivery through the installed binary running as the hookd user, its
# hooks as hookd-hooks, with a probe hook that must find hookd's secrets
# out of reach. Prints
# one line "package: ok" or "package: FAILED: <why>"; exits 0, 1 on
# failure, 77 when skipped.
#
# It installs a package and creates the hookd user, so it runs as root
# only, and on a machine where hookd was already installed only in CI
# (CI=true). A package it installed itself is purged at the end.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)

fail() {
	echo "package: FAILED: $*"
	exit 1
}
skip() {
	echo "package: skipped: $*"
	exit 77
}

[ "$(id -u)" = 0 ] || skip "not root (dpkg -i needs root)"
for tool in dpkg-buildpackage dh lintian mandoc systemd-analyze curl setpriv pkg-config ldconfig; do
	command -v "$tool" >/dev/null || fail "$tool missing: run sh scripts/deps.sh --test"
done
preinstalled=no
if dpkg-query -W -f='${Status}' hookd 2>/dev/null | grep -q "install ok installed"; then
	preinstalled=yes
	[ "${CI:-}" = true ] || skip "hookd is installed on this machine; not replacing it outside CI"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hookd-pkg.XXXXXX")
daemon_pid=""
cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
	if [ "$preinstalled" = no ] && dpkg-query -W hookd >/dev/null 2>&1; then
		dpkg --purge hookd >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== building the package"
sh packaging/build-deb.sh "$work/out" > "$work/build.log" 2>&1 || {
	tail -n 40 "$work/build.log"
	fail "dpkg-buildpackage"
}
arch=$(dpkg --print-architecture)
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -n 1)
deb="$work/out/hookd_${version}_${arch}.deb"
[ -f "$deb" ] || fail "no $deb"

echo "== lintian (errors fail; warnings are listed)"
lintian --allow-root --fail-on error --display-info "$work/out/hookd_${version}_${arch}.changes" \
	> "$work/lintian.log" 2>&1
lrc=$?
cat "$work/lintian.log"
[ "$lrc" = 0 ] || fail "lintian reported errors"

echo "== installing"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -i "$deb" > "$work/install.log" 2>&1; then
	apt-get install -f -y -qq >> "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "apt-get install -f"; }
fi
dpkg-query -W -f='${Status}' hookd | grep -q "install ok installed" || { cat "$work/install.log"; fail "not installed"; }

echo "== the installed files"
out=$(/usr/sbin/hookd --version) || fail "hookd --version"
[ "$out" = "hookd $version" ] || fail "hookd --version said '$out'"
/usr/sbin/hookd -c /etc/hookd/hookd.ini check || fail "hookd check on the installed config"
# Without -c: $HOOKD_CONFIG, else /etc/hookd/hookd.ini (README "Command line").
(cd / && env -u HOOKD_CONFIG /usr/sbin/hookd check) >/dev/null ||
	fail "hookd check without -c did not read /etc/hookd/hookd.ini"
rc=0
err=$(cd / && HOOKD_CONFIG=/nonexistent/hookd.ini /usr/sbin/hookd check 2>&1) || rc=$?
[ "$rc" -eq 2 ] && echo "$err" | grep -q /nonexistent/hookd.ini ||
	fail "HOOKD_CONFIG was not the config: $err"
dpkg-query -W -f='${Conffiles}\n' hookd | grep -q ' /etc/hookd/hookd.ini ' || fail "hookd.ini is not a conffile"
getent passwd hookd >/dev/null || fail "no hookd user"
getent passwd hookd-hooks >/dev/null || fail "no hookd-hooks user"
id -nG hookd-hooks | tr ' ' '\n' | grep -qx hookd && fail "hookd-hooks is in group hookd"
grep -q '^hook_user = hookd-hooks$' /etc/hookd/hookd.ini || fail "the config sets no hook_user"
# The hooks' home and workdir: theirs, and apart from hookd's journal.
hh=/var/lib/hookd-hooks
[ "$(getent passwd hookd-hooks | cut -d: -f6)" = "$hh" ] ||
	fail "hookd-hooks' home is $(getent passwd hookd-hooks | cut -d: -f6), not $hh"
[ "$(stat -c '%a %U %G' "$hh")" = "750 hookd-hooks hookd-hooks" ] || fail "$hh: $(stat -c '%a %U %G' "$hh")"
grep -q "^workdir = $hh\$" /etc/hookd/hookd.ini || fail "the config sets no workdir"
tok=/etc/hookd/northflank.token
[ "$(stat -c '%a %U %G' "$tok")" = "640 root hookd" ] || fail "$tok: $(stat -c '%a %U %G' "$tok")"
grep -Eq '^[0-9a-f]{48}$' "$tok" || fail "$tok is not 48 hex digits"
# The units where systemd.pc says (meson reads it; nothing forces it),
# /lib/systemd/system on Debian 12, and picked up by dh_installsystemd.
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd) || fail "no systemd.pc"
for u in hookd.service hookd.socket; do
	dpkg -L hookd | grep -qx "$unitdir/$u" || fail "the package has no $unitdir/$u"
done
grep -q 'hookd.service' /var/lib/dpkg/info/hookd.postinst ||
	fail "dh_installsystemd did not enable hookd.service (units not in its directory?)"
systemd-analyze verify "$unitdir/hookd.service" "$unitdir/hookd.socket" ||
	fail "systemd-analyze verify"

echo "== the dlopen'ed libraries"
# hookd opens these by soname only when configured (the journal, native TLS),
# so dpkg-shlibdeps cannot see them. The sonames are read from the source
# (every dynload("...") call); each must load, and the package that ships it
# must be one hookd's Depends names (debian/control lists them by hand).
sonames=$(grep -rhoE 'dynload(_resident)?\("[^"]+"' src | sed 's/^dynload[a-z_]*("//; s/"$//' | sort -u)
[ -n "$sonames" ] || fail "no dynload(\"...\") soname found in src/"
depends=$(dpkg-query -W -f='${Depends}' hookd | tr ',|' '\n\n' | sed 's/^ *//; s/[ :].*//')
for so in $sonames; do
	python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "$so" ||
		fail "$so does not load"
	path=$(ldconfig -p | awk -v so="$so" '$1 == so { print $NF; exit }')
	[ -n "$path" ] || fail "ldconfig does not know $so"
	# dpkg knows the file by its real path (/usr/lib/... on a merged /usr).
	owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | sed 's/:.*//')
	[ -n "$owner" ] || fail "no package ships $path ($so)"
	echo "$depends" | grep -qx "$owner" || fail "$so is in $owner, which hookd does not depend on"
	echo "  $so: $path ($owner)"
done
zcat /usr/share/man/man8/hookd.8.gz > "$work/hookd.8" || fail "no hookd(8)"
zcat /usr/share/man/man5/hookd.ini.5.gz > "$work/hookd.ini.5" || fail "no hookd.ini(5)"
mandoc -T lint -W warning "$work/hookd.8" "$work/hookd.ini.5" ||
	fail "mandoc lint of the installed man pages"
man -w hookd >/dev/null 2>&1 && man -w 5 hookd.ini >/dev/null 2>&1 || fail "man cannot find the pages"
[ -x /etc/hookd/hooks.d/build:start ] || fail "example hooks not executable"

echo "== a delivery through the installed binary, as the hookd user"
# The installed config with ephemeral ports and a state dir of its own,
# plus an endpoint whose one hook probes for hookd's secrets.
chmod 755 "$work"
install -d -o hookd -g hookd -m 0700 "$work/state"
install -d -m 0755 "$work/probe.d"
cat > "$work/probe.d/_default" <<PROBE
#!/usr/bin/python3
# Every way in that a hook of hookd's own uid had; each must be refused.
import ctypes, os, socket
def attempt(name, fn):
    try:
        fn()
        print("OPEN", name)
    except OSError as e:
        print("refused", name, e.strerror)
def ptrace():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, os.getppid(), None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
attempt("environ", lambda: open("/proc/%d/environ" % os.getppid(), "rb").read())
attempt("mem", lambda: open("/proc/%d/mem" % os.getppid(), "rb"))
attempt("token", lambda: open("$tok", "rb").read())
attempt("journal", lambda: open("$work/state/journal.db", "rb").read())
attempt("control", lambda: socket.socket(socket.AF_UNIX).connect("$work/state/control.sock"))
attempt("ptrace", ptrace)
print("probe ran as", os.getuid(), "event", os.environ.get("HOOK_EVENT"))
PROBE
chmod 755 "$work/probe.d/_default"
# A hook that needs what a service's environment gives: a writable workdir
# and HOME, and git's global config there (git: scripts/deps.sh --test).
install -d -m 0755 "$work/service.d"
cat > "$work/service.d/_default" <<'SERVICE'
#!/bin/sh
set -e
touch ./hookd-package-test && rm ./hookd-package-test
touch "$HOME/hookd-package-test" && rm "$HOME/hookd-package-test"
git config --global user.name hookd-package-test
name=$(git config --global user.name)
git config --global --unset user.name
echo "service user=$USER logname=$LOGNAME home=$HOME cwd=$(pwd) git=$name"
SERVICE
chmod 755 "$work/service.d/_default"
sed -e 's/^listen = 127\.0\.0\.1:9[01]00$/listen = 127.0.0.1:0/' \
    -e "s|^state_dir = .*|state_dir = $work/state|" \
    -e 's|^hooks_dir = hooks.d$|hooks_dir = /etc/hookd/hooks.d|' \
    /etc/hookd/hookd.ini > "$work/hookd.ini"
printf '\n[endpoint probe]\npath = /probe\nscheme = northflank\nsecret_file = %s\nhooks_dir = %s\n' \
	"$tok" "$work/probe.d" >> "$work/hookd.ini"
printf '\n[endpoint service]\npath = /service\nscheme = northflank\nsecret_file = %s\nhooks_dir = %s\n' \
	"$tok" "$work/service.d" >> "$work/hookd.ini"
chmod 644 "$work/hookd.ini"
# As the unit starts it: user hookd, with the unit's AmbientCapabilities=.
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unitdir/hookd.service" | tr 'A-Z ' 'a-z,' |
	sed 's/cap_/+/g')
[ -n "$caps" ] || fail "the unit grants no capabilities for hook_user"
setpriv --reuid=hookd --regid=hookd --init-groups --inh-caps="$caps" --ambient-caps="$caps" \
	/usr/sbin/hookd -c "$work/hookd.ini" serve 2> "$work/daemon.log" &
daemon_pid=$!
port="" aport=""
i=0
while [ $i -lt 100 ] && [ -z "$aport" ]; do
	port=$(sed -n 's/.*msg=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/daemon.log")
	aport=$(sed -n 's/.*msg="admin listening" addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/daemon.log")
	i=$((i + 1))
	sleep 0.1
done
[ -n "$port" ] && [ -n "$aport" ] || { cat "$work/daemon.log"; fail "the installed daemon did not start"; }
code=$(curl -s -o "$work/answer.json" -w '%{http_code}' "http://127.0.0.1:$port/webhook" \
	-H 'Content-Type: application/json' \
	-H "X-Northflank-Notification-Integration-Token: $(cat "$tok")" \
	-H 'X-Northflank-Notification-Integration-Event-Id: package-smoke-1' \
	--data-binary @tests/data/northflank-build-start.json)
[ "$code" = 200 ] || { cat "$work/answer.json" "$work/daemon.log"; fail "delivery answered $code"; }
grep -q '"status":"ok"' "$work/answer.json" || fail "answer: $(cat "$work/answer.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/webhook" \
	-H 'Content-Type: application/json' -H 'X-Northflank-Notification-Integration-Token: wrong' \
	--data-binary @tests/data/northflank-build-start.json)
[ "$code" = 401 ] || fail "a wrong token got $code"
[ "$(curl -s "http://127.0.0.1:$aport/healthz")" = '{"status":"ok"}' ] || fail "/healthz"
curl -s "http://127.0.0.1:$aport/metrics" > "$work/metrics.txt"
grep -q '^hookd_deliveries_total{endpoint="northflank",event="build:start",outcome="ok"} 1$' \
	"$work/metrics.txt" ||
	fail "metrics: $(cat "$work/metrics.txt")"
/usr/sbin/hookd -c "$work/hookd.ini" events | grep -q package-smoke-1 || fail "hookd events"
code=$(curl -s -o "$work/probe.json" -w '%{http_code}' "http://127.0.0.1:$port/probe" \
	-H 'Content-Type: application/json' \
	-H "X-Northflank-Notification-Integration-Token: $(cat "$tok")" \
	--data-binary @tests/data/northflank-build-start.json)
[ "$code" = 200 ] || { cat "$work/probe.json" "$work/daemon.log"; fail "the probe answered $code"; }
command -v git >/dev/null || fail "git missing: run sh scripts/deps.sh --test"
code=$(curl -s -o "$work/service.json" -w '%{http_code}' "http://127.0.0.1:$port/service" \
	-H 'Content-Type: application/json' \
	-H "X-Northflank-Notification-Integration-Token: $(cat "$tok")" \
	--data-binary @tests/data/northflank-build-start.json)
[ "$code" = 200 ] || { cat "$work/service.json" "$work/daemon.log"; fail "the service hook answered $code"; }
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
daemon_pid=""
[ "$rc" = 0 ] || { cat "$work/daemon.log"; fail "the daemon exited $rc on SIGTERM"; }
grep -q 'build social-hour-1312 started' "$work/daemon.log" || fail "the hook's output is not in the log"
grep -q 'msg="hooks run as their own user" hook_user=hookd-hooks' "$work/daemon.log" ||
	fail "hooks do not run as hookd-hooks"
grep -q "line=\"probe ran as $(id -u hookd-hooks) event build:start\"" "$work/daemon.log" ||
	{ grep probe "$work/daemon.log"; fail "the probe hook did not run as hookd-hooks"; }
grep -q "line=\"service user=hookd-hooks logname=hookd-hooks home=$hh cwd=$hh git=hookd-package-test\"" \
	"$work/daemon.log" ||
	{ grep -E 'service|workdir' "$work/daemon.log"; fail "a hook cannot write its workdir or HOME, or use git"; }
if [ "$(grep -c 'line="refused ' "$work/daemon.log")" != 6 ] || grep -q 'line="OPEN ' "$work/daemon.log"; then
	grep -E 'line="(OPEN|refused) ' "$work/daemon.log"
	fail "a hook can reach hookd's secrets"
fi

echo "lintian findings (not errors):"
grep -E '^[WIP]: ' "$work/lintian.log" || echo "  none"
echo "package: ok"
