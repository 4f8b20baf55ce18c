#!/bin/sh
# The whole test suite, from a clean checkout: installs the build and test
# dependencies (Debian packages), builds hookd twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), runs every test in both
# builds (the soak and the valgrind smoke run included), then the unit tests
# again under valgrind memcheck, then builds, installs and checks the Debian
# package. Prints one closing line: "N passed, N failed".
#
# One PostgreSQL (tests/blackbox/pgserver.py) serves the whole run: started
# before the suites, stopped and removed at exit, even when a suite fails.
# The tests find it through HOOKD_TEST_PG_DIR; each suite also gets a new
# scratch database for the C unit tests, HOOKD_TEST_PG (a libpq URL on the
# unix socket), with HOOKD_TEST_PG_TCP and HOOKD_TEST_PG_PASSWORD_FILE.
set -u
cd "$(dirname "$0")/.."
sh scripts/deps.sh --test || exit 1

pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/hookd-pg-run.XXXXXX") || exit 1
trap 'python3 tests/blackbox/pgserver.py stop "$pg_dir"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
python3 tests/blackbox/pgserver.py start "$pg_dir" || {
	echo "cannot start the tests' PostgreSQL (tests/blackbox/pgserver.py)"; exit 1; }
export HOOKD_TEST_PG_DIR="$pg_dir"

passed=0
failed=0
run_suite() {
	dir="$1"; shift
	if [ ! -d "$dir" ]; then
		meson setup "$dir" "$@" >/dev/null || { failed=$((failed + 1)); return; }
	fi
	if ! ninja -C "$dir"; then
		echo "build failed in $dir"
		failed=$((failed + 1))
		return
	fi
	pg_env=$(python3 tests/blackbox/pgserver.py env "$pg_dir") || {
		failed=$((failed + 1)); return; }
	eval "$pg_env"
	meson test -C "$dir" --print-errorlogs --num-processes 2 \
		${TEST_SETUP:+--setup "$TEST_SETUP"} ${MESON_TEST_ARGS:-}
	# Count per test from meson's JSON log.
	counts=$(python3 - "$dir/meson-logs/testlog${TEST_SETUP:+-$TEST_SETUP}.json" <<'PY'
import json, sys
ok = bad = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("result") in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r.get("result") != "SKIP":
        bad += 1
print(ok, bad)
PY
)
	set -- $counts
	passed=$((passed + $1))
	failed=$((failed + $2))
}

run_suite build
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false
# Memcheck: a definite leak or a memory error fails a test (exit 99).
TEST_SETUP=valgrind run_suite build

# The Debian package: built, linted, installed and tried (tests/package.sh;
# root only, since it installs a package; exit 77 means skipped).
sh tests/package.sh
case $? in
0) passed=$((passed + 1)) ;;
77) ;;
*) failed=$((failed + 1)) ;;
esac

# README's first quick-start command, on a copy of the tree
# (tests/quickstart_check.sh; exit 77 means skipped: port 9000 taken).
sh tests/quickstart_check.sh
case $? in
0) passed=$((passed + 1)) ;;
77) ;;
*) failed=$((failed + 1)) ;;
esac

# The benchmark once, short (tests/bench/bench.sh): it must run, no timing is asserted.
if sh tests/bench/bench.sh --short; then passed=$((passed + 1)); else echo "tests/bench/bench.sh --short failed (it installs wrk and webhook from Debian's mirror; see its message above)"; failed=$((failed + 1)); fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
