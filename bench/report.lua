-- wrk's `done` of every bench/*.lua script: one machine-readable line at the end,
--   BENCH requests=N duration_us=N p50_us=N p99_us=N errors=N non2xx=N
-- Loaded with `done = dofile(<this script's folder> .. "report.lua")`.
return function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
