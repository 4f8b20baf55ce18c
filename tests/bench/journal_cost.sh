#!/bin/sh
# What the journal costs a sync delivery (issue 3, item 6): hookd's
# throughput with state_dir set (journal on) and unset (journal off,
# idempotency in memory), one daemon at a time on 127.0.0.1, a hook that
# does nothing (a copy of /bin/true), driven by wrk with a new delivery id
# on every request (a repeated id would only measure the duplicate answer).
#
#   tests/bench/journal_cost.sh [HOOKD_BIN]
#   env: DURATION (5s), THREADS (2), CONNECTIONS (8), ROUNDS (3),
#        MAX_RUNNING (16)
#
# Each round runs off then on. Prints each round, the best requests/s of
# each (on a shared machine the best run is the least disturbed one), the
# median ratio of the rounds (each compares two runs close in time), and
# the CPU time a request costs: hookd's own, and everything's (hookd, its
# hooks, wrk). On a machine busy with other work the request rates are
# noisy; while hookd, its hooks and wrk keep the CPUs busy, the ratio of
# the CPU times a request is what the ratio of the rates would be on an
# idle machine. Needs wrk (apt-get install wrk); /usr/bin/time for wrk's
# share.
set -eu
cd "$(dirname "$0")/../.."
HOOKD=$(realpath "${1:-build/hookd}")
DURATION=${DURATION:-5s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-8}
ROUNDS=${ROUNDS:-3}
MAX_RUNNING=${MAX_RUNNING:-16}
PAYLOAD=$(realpath tests/data/northflank-build-start.json)
TOKEN=bench-token-not-a-secret

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
[ -x "$HOOKD" ] || { echo "$HOOKD: not built" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
# wrk's own CPU time, where /usr/bin/time exists (Debian: time).
timer=
[ -x /usr/bin/time ] && timer="/usr/bin/time -f %U:%S -o $tmp/wrk.time"

mkdir "$tmp/hooks.d"
cp /bin/true "$tmp/hooks.d/build:start"

# Lua for wrk: the sample payload, the token, and an id of thread.counter
# (each wrk thread has its own Lua state).
cat > "$tmp/post.lua" <<LUA
local f = assert(io.open("$PAYLOAD", "rb"))
local body = f:read("*a")
f:close()
local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("tid", threads)
end
local n = 0
local run = tostring(os.time())
function request()
	n = n + 1
	return wrk.format("POST", "/webhook", {
		["Content-Type"] = "application/json",
		["X-Northflank-Notification-Integration-Token"] = "$TOKEN",
		["X-Northflank-Notification-Integration-Event-Type"] = "build:start",
		["X-Northflank-Notification-Integration-Event-Id"] = run .. "-" .. tid .. "-" .. n,
	}, body)
end
LUA

# One daemon with the journal on ($1 = on) or off; prints requests/s,
# hookd's CPU time a request and all the CPU time a request (us).
measure() {
	mode=$1
	state=
	if [ "$mode" = on ]; then
		rm -rf "$tmp/state"
		state="state_dir = $tmp/state"
	fi
	cat > "$tmp/hookd.ini" <<INI
[server]
listen = 127.0.0.1:0
hooks_dir = $tmp/hooks.d
max_running = $MAX_RUNNING
max_queued = 1024
$state

[endpoint northflank]
path = /webhook
scheme = northflank
secret = $TOKEN
INI
	: > "$tmp/log"
	"$HOOKD" -c "$tmp/hookd.ini" serve 2>"$tmp/log" &
	pid=$!
	port=
	i=0
	while [ -z "$port" ] && [ $i -lt 100 ]; do
		port=$(sed -n 's/.*msg=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log")
		[ -n "$port" ] || sleep 0.05
		i=$((i + 1))
	done
	[ -n "$port" ] || { echo "hookd did not start:" >&2; cat "$tmp/log" >&2; exit 1; }
	set -- $(cpu_ticks "$pid")
	self0=$1 kids0=$2
	echo "0:0" > "$tmp/wrk.time"
	$timer wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" -s "$tmp/post.lua" \
		"http://127.0.0.1:$port/webhook" > "$tmp/wrk.out"
	set -- $(cpu_ticks "$pid")
	self=$(($1 - self0)) kids=$(($2 - kids0))
	kill -TERM "$pid"
	wait "$pid" || true
	pid=
	if grep -q "Non-2xx" "$tmp/wrk.out"; then
		echo "journal $mode: some answers were not 2xx:" >&2
		cat "$tmp/wrk.out" >&2
		grep -v 'status=ok' "$tmp/log" | head -5 >&2
		exit 1
	fi
	# requests/s; hookd's own CPU time a request; and all the CPU time a
	# request costs (hookd, its hooks, wrk), all in us.
	wrk_s=$(awk -F: '{ print $1 + $2 }' "$tmp/wrk.time")
	awk -v self="$self" -v kids="$kids" -v wrk_s="$wrk_s" -v hz="$(getconf CLK_TCK)" '
		/ requests in / { n = $1 }
		/^Requests\/sec:/ { rps = $2 }
		END { printf "%s %.0f %.0f\n", rps, self * 1e6 / hz / n,
			((self + kids) / hz + wrk_s) * 1e6 / n }' "$tmp/wrk.out"
}

# A process's own CPU time (utime + stime) and that of its reaped
# children (cutime + cstime), in clock ticks.
cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13, $14 + $15 }'
}

best_off=0
best_on=0
cpu_off=
cpu_on=
r=1
while [ $r -le "$ROUNDS" ]; do
	set -- $(measure off)
	off=$1
	cpu_off="$cpu_off $2"
	all_off="${all_off:-} $3"
	set -- $(measure on)
	on=$1
	cpu_on="$cpu_on $2"
	all_on="${all_on:-} $3"
	ratio=$(echo "$on $off" | awk '{ printf "%.3f", $1 / $2 }')
	ratios="${ratios:-} $ratio"
	echo "round $r: journal off $off req/s, on $on req/s, on/off $ratio"
	best_off=$(echo "$off $best_off" | awk '{ print ($1 > $2) ? $1 : $2 }')
	best_on=$(echo "$on $best_on" | awk '{ print ($1 > $2) ? $1 : $2 }')
	r=$((r + 1))
done
# The CPU times a request are medians: less disturbed by other load on
# the machine than the request rates.
median() {
	echo "$@" | tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
echo "$best_off $best_on $(median $cpu_off) $(median $cpu_on) $(median $ratios)" \
	"$(median $all_off) $(median $all_on)" | awk '{
	printf "journal off: best %.0f req/s; CPU a request (median): hookd %d us, all %d us\n",
		$1, $3, $6
	printf "journal on:  best %.0f req/s; CPU a request (median): hookd %d us, all %d us\n",
		$2, $4, $7
	printf "on/off: %.2f best to best, %.2f median of the rounds,", $2 / $1, $5
	printf " %.2f from the CPU time a request\n", $6 / $7
}'
