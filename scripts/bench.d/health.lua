-- GET /api/health/
package.path = "scripts/bench.d/?.lua;" .. package.path
done = require("common").done
wrk.method = "GET"
wrk.path = "/api/health/"
