-- POST /api/auth/token/refresh/ with a token never used before on every
-- request (a refresh token works once): wrk ... refresh.lua URL -- FILE THREADS
-- FILE holds one pre-minted refresh token a line; thread k of THREADS takes
-- lines k+1, k+1+THREADS, ... When a thread runs out it sends its last token
-- again (answered 401, counted as non-2xx) and done() reports the shortfall.
package.path = "scripts/bench.d/?.lua;" .. package.path
local common = require("common")

local threads, next_tid = {}, 0
function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

local pool = {}
used, pool_size = 0, 0 -- globals: done() reads them with thread:get
function init(args)
   local nthreads = tonumber(args[2]) or 1
   local i = 0
   for line in io.lines(args[1]) do
      if i % nthreads == tid and line ~= "" then
         pool[#pool + 1] = line
      end
      i = i + 1
   end
   pool_size = #pool
   wrk.method = "POST"
   wrk.path = "/api/auth/token/refresh/"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   used = used + 1
   local token = pool[math.min(used, #pool)]
   return wrk.format(nil, nil, nil, '{"refresh":"' .. token .. '"}')
end

function done(summary, latency, requests)
   common.done(summary, latency, requests)
   local short = 0
   for _, t in ipairs(threads) do
      local n, size = t:get("used"), t:get("pool_size")
      if n > size then short = short + (n - size) end
   end
   if short > 0 then
      io.write(string.format("POOL_EXHAUSTED reused=%d\n", short))
   end
end
