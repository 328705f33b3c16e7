/* payment.initiate: the owner pays for a pending order, the amount equal to
 * its total, once. The order's row lock serialises two attempts for one
 * order; the unique constraint on payments.order_id backs it. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "workers/payment/payment.h"

static void does_not_exist(struct bk_call *c, const char *pk)
{
    json_array_append_new(
        bk_errors_of(c, "order"),
        json_string(bk_strf(c, "Invalid pk \"%s\" - object does not exist.", pk)));
}

/* DRF's PrimaryKeyRelatedField: the id as a decimal string, or NULL with
 * DRF's message recorded. Strings are read as Python's int() reads them
 * (surrounding spaces, a sign); what is not a row id at all (0, negative,
 * beyond bigint) does not exist. */
static const char *arg_order(struct bk_call *c)
{
    const msgpack_object *o = bk_codec_get(c->args, "order");
    if (!o) {
        bk_error(c, "order", "This field is required.");
        return NULL;
    }
    if (o->type == MSGPACK_OBJECT_NIL || (o->type == MSGPACK_OBJECT_STR && o->via.str.size == 0)) {
        bk_error(c, "order", "This field may not be null."); /* DRF turns "" into None */
        return NULL;
    }
    const char *echo;
    long long v = 0;
    bool is_int = false;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        echo = bk_strf(c, "%llu", (unsigned long long)o->via.u64);
        is_int = o->via.u64 <= (uint64_t)INT64_MAX;
        v = is_int ? (long long)o->via.u64 : 0;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        echo = bk_strf(c, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_STR: {
        echo = bk_strf(c, "%.*s", (int)o->via.str.size, o->via.str.ptr);
        const char *p = echo;
        while (isspace((unsigned char)*p))
            p++;
        const char *digits = p + (*p == '+' || *p == '-');
        const char *q = digits;
        while (isdigit((unsigned char)*q))
            q++;
        const char *end = q;
        while (isspace((unsigned char)*q))
            q++;
        if (end == digits || *q || strlen(echo) != o->via.str.size) {
            bk_error(c, "order", "Incorrect type. Expected pk value, received str.");
            return NULL;
        }
        errno = 0;
        v = strtoll(p, NULL, 10);
        is_int = errno == 0;
        break;
    }
    default: {
        const char *type = o->type == MSGPACK_OBJECT_BOOLEAN ? "bool"
                           : o->type == MSGPACK_OBJECT_ARRAY ? "list"
                           : o->type == MSGPACK_OBJECT_MAP   ? "dict"
                           : o->type == MSGPACK_OBJECT_BIN   ? "bytes"
                                                             : "float";
        bk_error(c, "order", "Incorrect type. Expected pk value, received %s.", type);
        return NULL;
    }
    }
    if (!is_int || v <= 0) {
        does_not_exist(c, echo);
        return NULL;
    }
    return bk_strf(c, "%lld", v);
}

int payment_initiate(struct bk_call *c)
{
    int64_t amount = 0, total = 0;
    const char *total_s = NULL;
    const char *order = arg_order(c);
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
            does_not_exist(c, o->type == MSGPACK_OBJECT_STR
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
    bk_arg_money(c, "amount", BK_REQUIRED, 15, INT64_MIN, &amount);
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
