-- POST /api/auth/login/ for one existing user: wrk ... login.lua URL -- USERNAME PASSWORD
package.path = "scripts/bench.d/?.lua;" .. package.path
done = require("common").done

function init(args)
   wrk.method = "POST"
   wrk.path = "/api/auth/login/"
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = string.format('{"username":"%s","password":"%s"}', args[1], args[2])
end
