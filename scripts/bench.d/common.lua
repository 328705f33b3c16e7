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

-- The same request every time, from the script's arguments:
--   wrk ... SCRIPT URL -- METHOD PATH [TOKEN|-] [JSON_BODY]
-- (TOKEN becomes "Authorization: Bearer TOKEN"; "-" or nothing: none).
-- A scenario script that needs no more says `init = require("common").fixed`.
function M.fixed(args)
   wrk.method = args[1]
   wrk.path = args[2]
   if args[3] and args[3] ~= "-" and args[3] ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. args[3]
   end
   if args[4] and args[4] ~= "" then
      wrk.headers["Content-Type"] = "application/json"
      wrk.body = args[4]
   end
end

return M
