/* The source systems' variants (struct br_variant, shared/routes.h) applied
 * to a request's args and to a reply's JSON body: the one place where a
 * system's shapes become ours and back (issue 14). Pure functions over
 * jansson values, unit tested in tests/unit/test_bridge_variant.c. */
#ifndef BR_VARIANT_H
#define BR_VARIANT_H

#include <jansson.h>

#include "shared/routes.h"
#include "workers/bridge/request.h"

/* Applies v to args and the uploaded files' names (renames, then
 * dispatch). *command starts as the row's command and becomes the
 * dispatched one; *reply_v gets the variant that shapes the reply (the
 * dispatched entry's, else v). Returns 0, or 400 with *err = a DRF field
 * error body (caller owns) for a missing or unknown dispatch value. */
int br_variant_request(const struct br_variant *v, json_t *args, struct br_file *files,
                       const char **command, const struct br_variant **reply_v, json_t **err);

/* Shapes a reply body in place (v may be NULL: nothing to do): lift, then
 * the renames back to the system's names on the top object and on the
 * objects directly inside it ({"user": {...}}, error lists by field). */
void br_variant_reply(const struct br_variant *v, json_t *body);

/* The answer of a GET on a dispatching route (001's user/): each value of
 * the dispatch with the parameter that selects it, {"register":
 * "action=register", ...}. Caller owns; NULL when v does not dispatch. */
json_t *br_variant_actions(const struct br_variant *v);

/* The documents' side of v's renames: the object schema's properties and
 * required names (a request body's or a reply's) under the system's names
 * (ours -> theirs), in place; the same for an example body. v may be NULL. */
void br_variant_schema(const struct br_variant *v, json_t *schema);
void br_variant_example(const struct br_variant *v, json_t *example);

#endif
