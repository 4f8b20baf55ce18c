-- wrk script for tests/bench/bench.sh: POSTs one JSON payload with
-- Northflank's headers, each request with a delivery id of its own (a
-- resent id would be a duplicate, answered without running anything).
-- Settings come from the environment, so one script serves every daemon:
--   BENCH_PATH   the URL path            BENCH_TOKEN  the token header value
--   BENCH_BODY   the payload file        BENCH_EVENT  the Event-Type header
--   BENCH_RUN    a prefix that makes the ids unique across runs
--   BENCH_LIMIT  if set, stop after that many answers (the burst: a fixed
--                number of deliveries, as fast as they go; run with -t1)
--   BENCH_CLOSE  if set, every request says "Connection: close": a new
--                connection each (scenario a, where hookd closes anyway)
-- At the end it prints one line of JSON with the counts and percentiles.

local path = os.getenv("BENCH_PATH") or "/"
local token = os.getenv("BENCH_TOKEN") or ""
local event = os.getenv("BENCH_EVENT") or "build:start"
local run = os.getenv("BENCH_RUN") or "run"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = f:read("*a")
f:close()

local n = 0
local headers = {
	["Content-Type"] = "application/json",
	["X-Northflank-Notification-Integration-Token"] = token,
	["X-Northflank-Notification-Integration-Event-Type"] = event,
	["X-Northflank-Notification-Integration-Id"] = "bench-integration",
	["X-Northflank-Notification-Integration-Name"] = "Bench",
}
if os.getenv("BENCH_CLOSE") then
	headers["Connection"] = "close"
end

request = function()
	n = n + 1
	headers["X-Northflank-Notification-Integration-Event-Id"] = run .. "-" .. n
	return wrk.format("POST", path, headers, body)
end

-- Only defined for a burst: wrk calls response() for every answer when it
-- exists, which the timed scenarios should not pay for.
local limit = tonumber(os.getenv("BENCH_LIMIT") or "")
if limit then
	local answered = 0
	response = function(status, headers, body)
		answered = answered + 1
		if answered >= limit then
			wrk.thread:stop()
		end
	end
end

done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		'{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
		'"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
		summary.requests, summary.duration, latency:percentile(50),
		latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
