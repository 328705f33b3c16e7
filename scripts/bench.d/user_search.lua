-- GET /api/users/?search=TERM among >= 100,000 users.
-- scripts/bench's prepare_user_search passes METHOD PATH TOKEN [BODY] (common.fixed).
package.path = "scripts/bench.d/?.lua;" .. package.path
local common = require("common")
done = common.done
init = common.fixed
