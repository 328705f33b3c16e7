-- POST /api/auth/register/ with a new username on every request:
-- wrk ... register.lua URL -- PREFIX PASSWORD  (PREFIX unique per run)
package.path = "scripts/bench.d/?.lua;" .. package.path
done = require("common").done

local next_tid = 1
function setup(thread)
   thread:set("tid", next_tid) -- a global in that thread's Lua state
   next_tid = next_tid + 1
end

local prefix, password, n = "b", "v3ry-Secret-pass", 0
function init(args)
   prefix = args[1] or prefix
   password = args[2] or password
end

function request()
   n = n + 1
   local name = string.format("%s_%d_%d", prefix, tid, n)
   local body = string.format(
      '{"username":"%s","email":"%s@example.com","password":"%s","password2":"%s"}',
      name, name, password, password)
   return wrk.format("POST", "/api/auth/register/", { ["Content-Type"] = "application/json" }, body)
end
