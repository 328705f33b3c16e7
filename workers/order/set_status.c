/* order.set_status: the order state machine. The order's row lock (and its
 * payment's) is taken before the rules are read, so a concurrent cancel,
 * ship or payment completion waits and then sees the outcome. */
#include <stdlib.h>
#include <string.h>

#include "workers/order/order.h"

/* Staff may ship a paid pending order, deliver a shipped one and cancel an
 * unpaid pending one; the owner may cancel a pending unpaid one (issue 6: a
 * paid order cancelled by its owner would keep a completed payment; the
 * reference lets the owner cancel regardless). */
static bool transition_allowed(const char *cur, const char *to, bool paid, bool staff, bool owner)
{
    bool pending = strcmp(cur, "pending") == 0;
    if (staff) {
        if (pending && strcmp(to, "shipped") == 0 && paid)
            return true;
        if (strcmp(cur, "shipped") == 0 && strcmp(to, "delivered") == 0)
            return true;
        if (pending && strcmp(to, "cancelled") == 0 && !paid)
            return true;
    }
    return owner && pending && strcmp(to, "cancelled") == 0 && !paid;
}

int order_set_status(struct bk_call *c)
{
    /* DRF validates the body before it looks the order up */
    const char *to = bk_in_str(c, "status");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);

    const char *me = c->actor.id;
    PGresult *r = c->actor.is_staff
                      ? BK_SQL(c, "SELECT status, user_id FROM orders WHERE id = $1 FOR UPDATE", id)
                      : BK_SQL(c,
                               "SELECT status, user_id FROM orders WHERE id = $1 AND user_id = $2 "
                               "FOR UPDATE",
                               id, me);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    const char *cur = PQgetvalue(r, 0, 0);
    const char *owner_id = PQgetvalue(r, 0, 1);

    PGresult *p = BK_SQL(c, "SELECT status FROM payments WHERE order_id = $1 FOR UPDATE", id);
    if (!p)
        return -1;
    bool paid = PQntuples(p) == 1 && strcmp(PQgetvalue(p, 0, 0), "completed") == 0;

    if (!transition_allowed(cur, to, paid, c->actor.is_staff, strcmp(owner_id, me) == 0))
        return bk_reply_detail(
            c, 409, bk_strf(c, "Cannot change order status from '%s' to '%s'.", cur, to));

    PGresult *u = BK_SQL(
        c, "UPDATE orders o SET status = $2 WHERE o.id = $1 RETURNING order_json(o)", id, to);
    if (!u || PQntuples(u) != 1)
        return -1;
    if (bk_emit(c, "order.status_changed",
                json_pack("{s:I, s:I, s:s, s:s, s:{s:[s,s]}}", "order_id", (json_int_t)atoll(id),
                          "user_id", (json_int_t)atoll(owner_id), "from", cur, "to", to, "changes",
                          "status", cur, to)) != 0)
        return -1;
    return bk_reply_text(c, 200, PQgetvalue(u, 0, 0));
}
