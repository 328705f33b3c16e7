/* order.place: a new pending order of the caller; the database computes the
 * total and builds the representation that the reply and order.placed share
 * (a new order has no payment: order_json's inlinable form, 008_inline.sql). */
#include "workers/order/order.h"

int order_place(struct bk_call *c)
{
    int64_t quantity = 0, price = 0;
    const char *name = bk_in_str(c, "product_name");
    bk_in_int(c, "quantity", &quantity);
    bk_in_money(c, "price", &price);
    if (bk_failed(c))
        return bk_reply_invalid(c);

    PGresult *r =
        BK_SQL(c,
               "INSERT INTO orders (user_id, product_name, quantity, price) "
               "VALUES ($1, $2, $3, $4) RETURNING order_json(orders, NULL::payments)",
               c->actor.id, name, bk_strf(c, "%lld", (long long)quantity), bk_money_str(c, price));
    if (!r || PQntuples(r) != 1)
        return -1;
    const char *order = PQgetvalue(r, 0, 0);
    if (bk_emit_text(c, "order.placed", order) != 0)
        return -1;
    return bk_reply_text(c, 201, order);
}
