/* payment.list and payment.get: payments of the caller's orders (staff: all),
 * newest first. */
#include <stdlib.h>

#include "shared/listing.h"
#include "workers/payment/payment.h"

/* One page and the count in one statement; $1 limit, $2 offset, $3 the
 * owner when not staff. */
#define PAYMENT_PAGE(from_where)                                                                   \
    "SELECT (SELECT count(*) " from_where "), "                                                    \
    "coalesce((SELECT json_agg(payment_json(p) ORDER BY p.payment_date DESC, p.id DESC) "          \
    "FROM payments p WHERE p.id IN (SELECT p.id " from_where                                       \
    " ORDER BY p.payment_date DESC, p.id DESC LIMIT $1 OFFSET $2)), '[]')"

static const char *const own_page_sql =
    PAYMENT_PAGE("FROM payments p JOIN orders o ON o.id = p.order_id WHERE o.user_id = $3");
static const char *const all_page_sql = PAYMENT_PAGE("FROM payments p");

/* The list conventions (shared/listing.h); a plain page keeps the
 * statements above. */
static const char *const statuses[] = {"pending", "completed", "failed", NULL};
static const struct bk_list_field payment_fields[] = {
    {"id", "p.id", BK_LT_INT, BK_LF_ORDER, NULL},
    {"payment_date", "p.payment_date", BK_LT_TIME, BK_LF_ORDER | BK_LF_RANGE, NULL},
    {"amount", "p.amount", BK_LT_INT, BK_LF_ORDER, NULL},
    {"status", "p.status", BK_LT_CHOICE, BK_LF_ORDER | BK_LF_EXACT, statuses},
    {"order", "p.order_id", BK_LT_INT, BK_LF_EXACT, NULL},
    {"user", "o.user_id", BK_LT_INT, BK_LF_EXACT, NULL},
    {"product_name", "o.product_name", BK_LT_TEXT, BK_LF_SEARCH, NULL},
    {NULL, NULL, 0, 0, NULL},
};
static const struct bk_list_spec payment_spec = {
    .from = "payments p JOIN orders o ON o.id = p.order_id",
    .row = "payment_json(p)",
    .key = "p.id",
    .order = "p.payment_date DESC, p.id DESC",
    .tiebreak = "p.id DESC",
    .fast_args = NULL,
    .fields = payment_fields,
};

int payment_list(struct bk_call *c)
{
    if (bk_list_wanted(c, &payment_spec)) {
        if (c->actor.is_staff)
            return bk_list_reply(c, &payment_spec, NULL, 0, NULL);
        const char *me = c->actor.id;
        return bk_list_reply(c, &payment_spec, "o.user_id = $1", 1, &me);
    }
    struct bk_page page;
    if (!bk_page_args(c, &page))
        return bk_reply_invalid(c);
    PGresult *r = c->actor.is_staff
                      ? BK_SQL(c, all_page_sql, page.limit_s, page.offset_s)
                      : BK_SQL(c, own_page_sql, page.limit_s, page.offset_s, c->actor.id);
    if (!r || PQntuples(r) != 1)
        return -1;
    return bk_reply_page_text(c, &page, atoll(PQgetvalue(r, 0, 0)), PQgetvalue(r, 0, 1));
}

int payment_get(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = c->actor.is_staff
                      ? BK_SQL(c, "SELECT payment_json(p) FROM payments p WHERE p.id = $1", id)
                      : BK_SQL(c,
                               "SELECT payment_json(p) FROM payments p "
                               "JOIN orders o ON o.id = p.order_id "
                               "WHERE p.id = $1 AND o.user_id = $2",
                               id, c->actor.id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}
