-- GET /api/users/{id}/ of a user with nested educations, certificates, achievements.
-- scripts/bench's prepare_user_get passes METHOD PATH TOKEN [BODY] (common.fixed).
package.path = "scripts/bench.d/?.lua;" .. package.path
local common = require("common")
done = common.done
init = common.fixed
