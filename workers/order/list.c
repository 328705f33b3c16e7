/* order.list and order.get: the caller's orders (staff: anyone's). */
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "shared/listing.h"
#include "workers/order/order.h"

/* One page and the count in one statement (one snapshot), the representation
 * built only for the rows of the page. $1 limit, $2 offset, then the
 * filter's own parameters. order_json(o, p) is inlined into the statement's
 * plan (schema/008_inline.sql): nothing is planned per execution. */
#define ORDER_PAGE(where)                                                                          \
    "SELECT (SELECT count(*) FROM orders o WHERE " where "), "                                     \
    "coalesce((SELECT json_agg(order_json(o, p) ORDER BY o.order_date DESC, o.id DESC) "           \
    "FROM orders o LEFT JOIN payments p ON p.order_id = o.id "                                     \
    "WHERE o.id IN (SELECT o.id FROM orders o WHERE " where                                        \
    " ORDER BY o.order_date DESC, o.id DESC LIMIT $1 OFFSET $2)), '[]')"

/* Separate statements rather than "$3 IS NULL OR ...": each gets a plan that
 * uses its index. */
static const char *const page_sql[2][2] = {
    /* [everyone][by status] */
    {ORDER_PAGE("o.user_id = $3"), ORDER_PAGE("o.user_id = $3 AND o.status = $4")},
    {ORDER_PAGE("true"), ORDER_PAGE("o.status = $3")},
};

/* DRF's view reads query_params.get("all") in ("1", "true"); over AMQP the
 * JSON true and 1 say the same. */
static bool wants_all(struct bk_call *c)
{
    const msgpack_object *o = bk_arg(c, "all");
    if (!o)
        return false;
    return bk_codec_str_eq(o, "1") || bk_codec_str_eq(o, "true") ||
           (o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean) ||
           (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == 1);
}

/* The list conventions (shared/listing.h); ?status= and ?all= alone keep
 * the statements above. */
static const char *const statuses[] = {"pending", "shipped", "delivered", "cancelled", NULL};
static const struct bk_list_field order_fields[] = {
    {"id", "o.id", BK_LT_INT, BK_LF_ORDER, NULL},
    {"order_date", "o.order_date", BK_LT_TIME, BK_LF_ORDER | BK_LF_RANGE, NULL},
    {"total", "o.total", BK_LT_INT, BK_LF_ORDER, NULL},
    {"price", "o.price", BK_LT_INT, BK_LF_ORDER, NULL},
    {"quantity", "o.quantity", BK_LT_INT, BK_LF_ORDER, NULL},
    {"product_name", "o.product_name", BK_LT_TEXT, BK_LF_ORDER | BK_LF_SEARCH, NULL},
    {"status", "o.status", BK_LT_CHOICE, BK_LF_ORDER | BK_LF_EXACT | BK_LF_LENIENT, statuses},
    {"user", "o.user_id", BK_LT_INT, BK_LF_EXACT, NULL},
    {NULL, NULL, 0, 0, NULL},
};
static const struct bk_list_spec order_spec = {
    .from = "orders o LEFT JOIN payments p ON p.order_id = o.id",
    .row = "order_json(o, p)",
    .key = "o.id",
    .order = "o.order_date DESC, o.id DESC",
    .tiebreak = "o.id DESC",
    .fast_args = "status,all",
    .fields = order_fields,
};

int order_list(struct bk_call *c)
{
    if (bk_list_wanted(c, &order_spec)) {
        if (c->actor.is_staff && wants_all(c))
            return bk_list_reply(c, &order_spec, NULL, 0, NULL);
        const char *me = c->actor.id;
        return bk_list_reply(c, &order_spec, "o.user_id = $1", 1, &me);
    }
    struct bk_page page;
    if (!bk_page_args(c, &page))
        return bk_reply_invalid(c);

    /* ?status= filters as Django's filter(status=...) does: an unknown value
     * matches nothing, an empty one does not filter */
    const char *status = NULL;
    const msgpack_object *s = bk_arg(c, "status");
    if (s && s->type == MSGPACK_OBJECT_STR) {
        if (s->via.str.size > 0 && memchr(s->via.str.ptr, '\0', s->via.str.size))
            return bk_reply_page(c, &page, 0, json_array());
        if (s->via.str.size > 0)
            status = bk_strf(c, "%.*s", (int)s->via.str.size, s->via.str.ptr);
    } else if (s) {
        return bk_reply_page(c, &page, 0, json_array()); /* no status is a number */
    }

    bool everyone = c->actor.is_staff && wants_all(c);
    const char *params[4] = {page.limit_s, page.offset_s};
    int n = 2;
    if (!everyone)
        params[n++] = c->actor.id;
    if (status)
        params[n++] = status;
    PGresult *r = bk_sql(c, page_sql[everyone][status != NULL], n, params);
    if (!r || PQntuples(r) != 1)
        return -1;
    return bk_reply_page_text(c, &page, atoll(PQgetvalue(r, 0, 0)), PQgetvalue(r, 0, 1));
}

/* One order with its payment, inlined as ORDER_PAGE's rows are. */
#define ORDER_ONE "SELECT order_json(o, p) FROM orders o LEFT JOIN payments p ON p.order_id = o.id "

int order_get(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = c->actor.is_staff
                      ? BK_SQL(c, ORDER_ONE "WHERE o.id = $1", id)
                      : BK_SQL(c, ORDER_ONE "WHERE o.id = $1 AND o.user_id = $2", id, c->actor.id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}
