-- GET /api/orders/{id}/ as the owner.
-- scripts/bench's prepare_order_get passes METHOD PATH TOKEN [BODY] (common.fixed).
package.path = "scripts/bench.d/?.lua;" .. package.path
local common = require("common")
done = common.done
init = common.fixed
