/* payment.set_status: staff or a payment service moves a payment through
 * pending -> completed | failed, failed -> pending (a retry); completed is
 * final. The order's row is locked before the payment's, the order the order
 * worker uses too, so a payment completing and its order being cancelled
 * serialise: whichever commits second sees the first and is refused. */
#include <string.h>

#include "workers/payment/payment.h"

static bool transition_allowed(const char *cur, const char *to)
{
    if (strcmp(cur, "pending") == 0)
        return strcmp(to, "completed") == 0 || strcmp(to, "failed") == 0;
    if (strcmp(cur, "failed") == 0)
        return strcmp(to, "pending") == 0;
    return false;
}

int payment_set_status(struct bk_call *c)
{
    /* DRF checks the permission before it reads the body */
    if (!c->actor.is_staff && c->actor.service[0] == '\0')
        return bk_reply_detail(c, 403, "You do not have permission to perform this action.");
    const char *to = bk_in_str(c, "status");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);

    PGresult *o = BK_SQL(c,
                         "SELECT o.status FROM orders o "
                         "WHERE o.id = (SELECT order_id FROM payments WHERE id = $1) FOR UPDATE",
                         id);
    if (!o)
        return -1;
    if (PQntuples(o) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    const char *order_status = PQgetvalue(o, 0, 0);
    PGresult *p = BK_SQL(c, "SELECT status FROM payments WHERE id = $1 FOR UPDATE", id);
    if (!p)
        return -1;
    if (PQntuples(p) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    const char *cur = PQgetvalue(p, 0, 0);

    if (!transition_allowed(cur, to))
        return bk_reply_detail(
            c, 409, bk_strf(c, "Cannot change payment status from '%s' to '%s'.", cur, to));
    /* money is not taken for an order that will never ship (the reference
     * checks nothing here; an order is cancelled only while unpaid by staff,
     * and this keeps a cancel and a completion from both winning) */
    if (strcmp(to, "completed") == 0 && strcmp(order_status, "pending") != 0)
        return bk_reply_detail(
            c, 409,
            bk_strf(c, "Cannot change payment status from '%s' to '%s': the order is %s.", cur, to,
                    order_status));

    PGresult *u = BK_SQL(
        c, "UPDATE payments p SET status = $2 WHERE p.id = $1 RETURNING payment_json(p)", id, to);
    if (!u || PQntuples(u) != 1)
        return -1;
    /* a retry (failed -> pending) starts the payment again: payment.initiated
     * tells a payment service to process it, as it did the first time */
    const char *event = strcmp(to, "completed") == 0 ? "payment.completed"
                        : strcmp(to, "failed") == 0  ? "payment.failed"
                                                     : "payment.initiated";
    /* the representation, and what changed (the audit trail's) */
    json_error_t err;
    json_t *data = json_loads(PQgetvalue(u, 0, 0), 0, &err);
    if (!data ||
        json_object_set_new(data, "changes", json_pack("{s:[s,s]}", "status", cur, to)) != 0 ||
        bk_emit(c, event, data) != 0)
        return -1;
    return bk_reply_text(c, 200, PQgetvalue(u, 0, 0));
}
