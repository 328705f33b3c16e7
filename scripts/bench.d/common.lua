-- Shared by the scenario scripts: prints one machine-readable line that
-- scripts/bench parses. non2xx = wrk's count of answers with status >= 400
-- (no route benchmarked here answers 1xx or 3xx).
local M = {}

function M.done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d sockerr=%d\n",
      summary.requests, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      e.status, e.connect + e.read + e.write + e.timeout))
end

return M
