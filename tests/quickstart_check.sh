#!/bin/sh
# README's first quick-start command, checked as a new user runs it:
# scripts/quickstart.sh on a copy of this tree (its tracked files, nothing
# built), then the curl it prints, run as printed; the example build:start
# hook must answer it 200 and log the build, and Ctrl-C (SIGINT) must stop
# hookd with exit 0. The example config listens on 127.0.0.1:9000: exit 77
# (skipped) when that port is taken. Run by tests/run.sh.
set -u
cd "$(dirname "$0")/.."

if python3 -c 'import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", 9000)) != 0)'; then
	echo "quickstart check: 127.0.0.1:9000 is taken; skipped"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-quickstart.XXXXXX") || exit 1
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "quickstart check: $*"
	echo "--- its output:"
	cat "$tmp/out.log" 2>/dev/null
	exit 1
}

# A clone's files, without this checkout's builds or tokens.
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$tmp" || fail "cannot copy the tree"

# As README says: `sh scripts/quickstart.sh`, hookd in the foreground.
sh "$tmp/scripts/quickstart.sh" >"$tmp/out.log" 2>&1 &
pid=$!

# The build comes first: up to 10 minutes for it and the start.
up=no
i=0
while [ $i -lt 600 ]; do
	kill -0 "$pid" 2>/dev/null || fail "quickstart.sh ended before hookd served"
	if grep -q 'msg=listening\|msg="listening' "$tmp/out.log" 2>/dev/null &&
		curl -s -o /dev/null http://127.0.0.1:9000/ 2>/dev/null; then
		up=yes
		break
	fi
	sleep 1
	i=$((i + 1))
done
[ "$up" = yes ] || fail "hookd did not listen on 127.0.0.1:9000 within 600 s"

# The curl exactly as printed: from its first line to the one with --data.
sed -n '/^  curl /,/--data /p' "$tmp/out.log" >"$tmp/curl.sh"
grep -q -- '--data @' "$tmp/curl.sh" || fail "no curl command in quickstart.sh's message"
answer=$(cd / && sh "$tmp/curl.sh") || fail "the printed curl failed"
case "$answer" in
*'"status":"ok"'*) ;;
*) fail "the printed curl was answered: $answer" ;;
esac
i=0
until grep -q 'msg=delivery.*status=ok' "$tmp/out.log"; do
	[ $i -lt 50 ] || fail "no delivery line in hookd's log"
	sleep 0.1
	i=$((i + 1))
done
grep -q 'started for' "$tmp/out.log" || fail "the build:start hook logged nothing"

# Ctrl-C: SIGINT to hookd (quickstart.sh exec'ed it), a clean stop.
kill -INT "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
	[ $i -lt 100 ] || fail "hookd did not stop within 10 s of SIGINT"
	sleep 0.1
	i=$((i + 1))
done
wait "$pid"
rc=$?
pid=
[ $rc -eq 0 ] || fail "hookd exited $rc after SIGINT"
echo "quickstart check: built, served the printed curl (200, build:start ran), stopped on SIGINT"
