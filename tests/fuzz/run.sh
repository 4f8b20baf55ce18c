#!/bin/sh
# Runs one libFuzzer target (README "Fuzzing").
#
#   tests/fuzz/run.sh TARGET SECONDS [LIBFUZZER-ARGS...]
#   tests/fuzz/run.sh --merge TARGET
#
# TARGET is payload, jsonscan, route, config, verify, netaddr or http. The clang build
# (build-fuzz, or $FUZZ_BUILD) is set up and built when missing. The fuzzer
# starts from the committed corpus (tests/fuzz/corpus/TARGET, only read)
# and writes what it finds to $FUZZ_BUILD/fuzz-work/TARGET; crashes, leaks
# and timeouts land in $FUZZ_BUILD/fuzz-artifacts/TARGET/. It runs at nice
# 19 (NICE=0 to change) so that it does not slow other work on the machine.
# --merge adds to the committed corpus the work corpus's inputs that reach
# coverage edges it does not have yet (libFuzzer -merge=1 -use_counters=0).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
targets="payload jsonscan route config verify netaddr http conn"

usage() {
	echo "usage: $0 TARGET SECONDS [LIBFUZZER-ARGS...] | $0 --merge TARGET" >&2
	echo "targets: $targets" >&2
	exit 2
}

merge=false
if [ "${1:-}" = "--merge" ]; then
	merge=true
	shift
fi
[ $# -ge 1 ] || usage
target=$1
shift
case " $targets " in *" $target "*) ;; *) usage ;; esac

if [ ! -d "$build" ]; then
	CC=clang meson setup "$build" -Dfuzzing=true -Db_sanitize=address,undefined \
		-Db_lundef=false >/dev/null
fi
ninja -C "$build" -j2 "tests/fuzz_$target" >/dev/null

bin=$build/tests/fuzz_$target
corpus=$here/corpus/$target
work=$build/fuzz-work/$target
artifacts=$build/fuzz-artifacts/$target
mkdir -p "$work" "$artifacts"

# Findings must stop the run: UBSan aborts instead of printing and going
# on, and a leak counts as a crash.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS UBSAN_OPTIONS

if $merge; then
	# Edges only (no hit counters): keeps the committed corpus small.
	exec nice -n "${NICE:-19}" "$bin" -merge=1 -use_counters=0 "$corpus" "$work"
fi

[ $# -ge 1 ] || usage
seconds=$1
shift
case $target in
payload|jsonscan) max_len=8192 ;;
*) max_len=4096 ;;
esac
dict=
[ -f "$here/$target.dict" ] && dict="-dict=$here/$target.dict"
log=$build/fuzz-artifacts/$target.log

status=0
nice -n "${NICE:-19}" "$bin" "$work" "$corpus" \
	-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
	-artifact_prefix="$artifacts/" -print_final_stats=1 $dict "$@" >"$log" 2>&1 || status=$?

# One summary line: executions, coverage and what was found.
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
found=$(ls "$artifacts" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
echo "$target: ${execs:-?} execs, ${last:-no coverage line}, log $log"
if [ "$status" -ne 0 ] || [ -n "$found" ]; then
	echo "$target: FINDINGS (exit $status):"
	for f in $found; do echo "  $artifacts/$f"; done
	grep -E 'ERROR: |runtime error|invariant failed' "$log" | head -n 5
	exit 1
fi
