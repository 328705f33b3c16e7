-- GET /api/orders/?page_size=20 of a user with >= 20 orders.
-- scripts/bench's prepare_order_list passes METHOD PATH TOKEN [BODY] (common.fixed).
package.path = "scripts/bench.d/?.lua;" .. package.path
local common = require("common")
done = common.done
init = common.fixed
