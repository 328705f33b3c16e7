/* Helpers every handler group of the profile worker uses: ownership, search
 * terms, the staff
 * lock. (The fields themselves are declared in shared/contract.c.) */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/contract.h"
#include "shared/log.h"
#include "shared/validate.h"
#include "workers/profile/profile.h"

const char *pr_base(struct bk_call *c)
{
    return c->public_base ? c->public_base : "";
}

json_t *pr_parse(struct bk_call *c, const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    if (!v)
        bk_log(BK_ERROR, c->request_id, "representation is not JSON: %s", err.text);
    return v;
}

void pr_hide_private(struct bk_call *c, json_t *profile)
{
    json_int_t id = json_integer_value(json_object_get(profile, "id"));
    if (c->actor.is_staff || (c->actor.user_id && id == c->actor.user_id))
        return;
    /* the fields the declaration says a reply may leave out */
    const struct bk_repr *r = bk_contract_repr("UserProfile");
    for (const struct bk_field *f = r ? r->fields : NULL; f && f->name; f++)
        if (f->flags & BK_F_OMITTED)
            json_object_del(profile, f->name);
}

int64_t pr_owner(struct bk_call *c, const char *sql, const char *id, bool check_owner,
                 PGresult **row)
{
    PGresult *r = BK_SQL(c, sql, id);
    if (!r)
        return -1;
    if (row)
        *row = r;
    if (PQntuples(r) == 0) {
        bk_reply_detail(c, 404, "Not found.");
        return 0;
    }
    int64_t owner = atoll(PQgetvalue(r, 0, 0));
    if (check_owner && owner != c->actor.user_id && !c->actor.is_staff) {
        bk_reply_detail(c, 403, "You do not have permission to perform this action.");
        return 0;
    }
    return owner;
}

/* ?user=: 0 no filter, 1 filter on *uid, 2 matches nothing. */
static int user_filter(struct bk_call *c, const char **uid)
{
    const msgpack_object *o = bk_arg(c, "user");
    if (!o)
        return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        *uid = bk_strf(c, "%llu", (unsigned long long)o->via.u64);
        return 1;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return 2;
    if (o->via.str.size == 0)
        return 0;
    if (o->via.str.size > 18)
        return 2;
    for (uint32_t i = 0; i < o->via.str.size; i++)
        if (!isdigit((unsigned char)o->via.str.ptr[i]))
            return 2;
    *uid = bk_strf(c, "%.*s", (int)o->via.str.size, o->via.str.ptr);
    return 1;
}

int pr_owned_list(struct bk_call *c, const struct pr_owned *o)
{
    if (o->list && bk_list_wanted(c, o->list)) {
        const char *base = pr_base(c); /* named in the condition: the count types it */
        return bk_list_reply(c, o->list, "$1::text IS NOT NULL", 1, &base);
    }
    struct bk_page p;
    bk_page_args(c, &p);
    if (bk_failed(c))
        return bk_reply_invalid(c);
    const char *uid = NULL;
    int f = user_filter(c, &uid);
    json_t *results = json_array();
    int64_t count = 0;
    if (f != 2) {
        PGresult *r = f ? BK_SQL(c, o->count_user, uid) : BK_SQL0(c, o->count_all);
        if (!r)
            goto fail;
        count = atoll(PQgetvalue(r, 0, 0));
    }
    if (p.offset < count) {
        PGresult *r = f ? BK_SQL(c, o->page_user, pr_base(c), p.limit_s, p.offset_s, uid)
                        : BK_SQL(c, o->page_all, pr_base(c), p.limit_s, p.offset_s);
        if (!r)
            goto fail;
        for (int i = 0; i < PQntuples(r); i++) {
            json_t *v = pr_parse(c, PQgetvalue(r, i, 0));
            if (!v)
                goto fail;
            json_array_append_new(results, v);
        }
    }
    return bk_reply_page(c, &p, count, results);
fail:
    json_decref(results);
    return -1;
}

int pr_owned_get(struct bk_call *c, const struct pr_owned *o)
{
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c, o->get, id, pr_base(c));
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}

int pr_owned_delete(struct bk_call *c, const struct pr_owned *o)
{
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    int64_t owner = pr_owner(c, o->owner, id, true, NULL);
    if (owner <= 0)
        return (int)owner;
    const char *before = pr_owned_before(c, o, id);
    json_t *row = before ? pr_parse(c, before) : NULL;
    if (!row || !BK_SQL(c, o->del, id)) {
        json_decref(row);
        return -1;
    }
    if (bk_emit(c, bk_strf(c, "%s.deleted", o->name),
                json_pack("{s:I, s:I, s:o}", "id", (json_int_t)atoll(id), "user_id",
                          (json_int_t)owner, "before", row)) != 0)
        return -1;
    return bk_reply(c, 204, json_null());
}

const char *pr_owned_before(struct bk_call *c, const struct pr_owned *o, const char *id)
{
    PGresult *r = BK_SQL(c, o->get, id, pr_base(c));
    return r && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : NULL;
}

int pr_owned_updated(struct bk_call *c, const struct pr_owned *o, const char *id, int64_t owner,
                     const char *before, const char *after)
{
    json_t *b = pr_parse(c, before), *a = pr_parse(c, after), *changes = json_object();
    int rc = -1;
    if (!b || !a || !changes)
        goto out;
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v)
    {
        json_t *was = json_object_get(b, k);
        if (!json_equal(was, v))
            json_object_set_new(changes, k, json_pack("[O,O]", was ? was : json_null(), v));
    }
    if (json_object_size(changes) == 0) {
        rc = 0;
        goto out;
    }
    rc = bk_emit(c, bk_strf(c, "%s.updated", o->name),
                 json_pack("{s:I, s:I, s:O}", "id", (json_int_t)atoll(id), "user_id",
                           (json_int_t)owner, "changes", changes));
out:
    json_decref(a);
    json_decref(b);
    json_decref(changes);
    return rc;
}

int pr_search_patterns(struct bk_call *c, const char *search, const char **out)
{
    int n = 0;
    const char *p = search;
    while (*p && n < PR_MAX_TERMS) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        size_t len = 0;
        while (p[len] && !isspace((unsigned char)p[len]) && p[len] != ',')
            len++;
        if (len == 0)
            break;
        char *pat = bk_alloc(c, 2 * len + 3), *o = pat;
        *o++ = '%';
        for (size_t i = 0; i < len; i++) {
            if (p[i] == '%' || p[i] == '_' || p[i] == '\\')
                *o++ = '\\';
            *o++ = p[i];
        }
        *o++ = '%';
        *o = '\0';
        out[n++] = pat;
        p += len;
    }
    return n;
}

int pr_lock_staff(struct bk_call *c, const char *id, int64_t *n_staff, bool *id_is_staff,
                  bool *actor_is_staff)
{
    PGresult *r =
        BK_SQL0(c, "SELECT id FROM users WHERE is_staff AND is_active ORDER BY id FOR UPDATE");
    if (!r)
        return -1;
    int64_t target = id ? atoll(id) : 0;
    *n_staff = PQntuples(r);
    *id_is_staff = *actor_is_staff = false;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t v = atoll(PQgetvalue(r, i, 0));
        if (v == target)
            *id_is_staff = true;
        if (v == c->actor.user_id)
            *actor_is_staff = true;
    }
    return 0;
}
