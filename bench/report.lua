-- wrk script shared by every bench/run.sh scenario. Configured by environment variables:
--   BENCH_METHOD  GET (default) or PUT
--   BENCH_AUTH    bearer token sent as Authorization (optional)
--   BENCH_BODY    PUT body, a string.format template taking (thread, counter, thread, counter)
-- When wrk finishes, done() prints one parsable line:
--   BENCH rps=<req/s> p50_ms=<ms> p99_ms=<ms> requests=<n> errors=<socket errors> non2xx=<n>

local method = os.getenv("BENCH_METHOD") or "GET"
local auth = os.getenv("BENCH_AUTH") or ""
local body = os.getenv("BENCH_BODY") or ""

if auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end

if method ~= "GET" then
  -- A dynamic request only for writes: GET stays a static, pre-built request, so wrk spends no Lua
  -- time per request on the read scenarios (it shares the two cores with the server under test).
  local next_id = 0
  function setup(thread)
    next_id = next_id + 1
    thread:set("thread_id", next_id)
  end

  local counter = 0
  function request()
    counter = counter + 1
    -- Vary name and uri on every request so each PUT really changes the row.
    local headers = {["Content-Type"] = "application/json"}
    if auth ~= "" then headers["Authorization"] = "Bearer " .. auth end
    return wrk.format(method, nil, headers, string.format(body, thread_id, counter, thread_id, counter))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format("BENCH rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d non2xx=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
