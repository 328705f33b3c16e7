/* payment.initiate: the owner pays for a pending order, the amount equal to
 * its total, once. The order's row lock serialises two attempts for one
 * order; the unique constraint on payments.order_id backs it. */
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "workers/payment/payment.h"

int payment_initiate(struct bk_call *c)
{
    int64_t amount = 0, total = 0;
    const char *total_s = NULL;
    const char *order = bk_in_str(c, "order");
    if (order) {
        /* the caller's own orders only, locked: a concurrent initiate, cancel
         * or ship of this order waits for our commit */
        PGresult *r = BK_SQL(c,
                             "SELECT o.status, o.total::text, (o.total * 100)::bigint, "
                             "EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id) "
                             "FROM orders o WHERE o.id = $1 AND o.user_id = $2 FOR UPDATE",
                             order, c->actor.id);
        if (!r)
            return -1;
        if (PQntuples(r) == 0) {
            const msgpack_object *o = bk_codec_get(c->args, "order");
            bk_error_no_object(c, "order",
                               o->type == MSGPACK_OBJECT_STR
                                   ? bk_strf(c, "%.*s", (int)o->via.str.size, o->via.str.ptr)
                                   : order);
        } else if (strcmp(PQgetvalue(r, 0, 3), "t") == 0) {
            bk_error(c, "order", "payment with this order already exists.");
        } else if (strcmp(PQgetvalue(r, 0, 0), "pending") != 0) {
            bk_error(c, "order", "Only a pending order can be paid for.");
        } else {
            total_s = PQgetvalue(r, 0, 1);
            total = atoll(PQgetvalue(r, 0, 2));
        }
    }
    /* Payment.amount is DecimalField(15, 2) with no bounds of its own: any
     * other value is refused by the comparison with the total below */
    bk_in_money(c, "amount", &amount);
    if (bk_failed(c))
        return bk_reply_invalid(c);
    if (amount != total) {
        bk_error(c, "amount", "Amount must equal the order total (%s).", total_s);
        return bk_reply_invalid(c);
    }

    PGresult *r = BK_SQL(c,
                         "INSERT INTO payments (order_id, amount) VALUES ($1, $2) "
                         "RETURNING payment_json(payments)",
                         order, bk_money_str(c, amount));
    if (!r) {
        if (strcmp(bk_sql_state(c), "23505") == 0) {
            bk_error(c, "order", "payment with this order already exists.");
            return bk_reply_invalid(c);
        }
        return -1;
    }
    const char *payment = PQgetvalue(r, 0, 0);
    if (bk_emit_text(c, "payment.initiated", payment) != 0)
        return -1;
    return bk_reply_text(c, 201, payment);
}
