-- wrk script of the benchmark: POST the body in $BENCH_BODY, as $BENCH_CONTENT_TYPE
-- (JSON by default), and print one JSON line at the end. With $BENCH_RATE (requests/s, 0: none), requests are sent on a fixed
-- schedule, one every 1/rate s, whatever the server's latency, as long as a connection
-- is free: every server is offered the same load, as wrk2 does. Without it, each
-- connection sends its next request as soon as it has the answer.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *now);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
wrk.body = file:read("*a")
file:close()

local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local interval_ms = rate > 0 and 1000 / rate or 0
local next_ms = nil

-- Called before each request: how many ms to wait. Each call takes the next slot of
-- the schedule; a request already late goes at once, and the schedule does not move.
function delay()
  if interval_ms == 0 then
    return 0
  end
  local now = now_ms()
  next_ms = next_ms or now
  local wait = next_ms - now
  next_ms = next_ms + interval_ms
  return wait > 0 and wait or 0
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
