-- wrk script: POST one chat completion per request and print the results as JSON.
--
-- Environment: BENCH_BODY (the JSON body; a one-message non-streaming request by default),
-- BENCH_KEY (sent as `Authorization: Bearer ...` when set), BENCH_HEADERS (more headers, one
-- `name: value` a line: Portkey's routing headers).
-- The `done` hook prints one line `BENCH_JSON {...}` with counts, errors and latency
-- percentiles in microseconds, which bench/gateway_bench.py reads.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
  or '{"model":"bench","messages":[{"role":"user","content":"Say hello."}]}'
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
