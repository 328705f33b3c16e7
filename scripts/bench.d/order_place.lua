-- POST /api/orders/ (a new order each time).
-- scripts/bench's prepare_order_place passes METHOD PATH TOKEN [BODY] (common.fixed).
package.path = "scripts/bench.d/?.lua;" .. package.path
local common = require("common")
done = common.done
init = common.fixed
