/* admin.dead_letters*: the staff's view of backend.dead (list, replay,
 * discard), so that the console talks only to the HTTP API. The broker work
 * is done as the dead-letters identity, which may read backend.dead and
 * publish to backend.commands and nothing else; the profile worker's own
 * identity keeps its narrow rights.
 *
 * A queue cannot be read without taking its messages: each call takes up to
 * SCAN_MAX of them unacknowledged (basic.get), acts on those it wants, and
 * closes its connection, which gives the others back to the queue in their
 * order. Calls take turns (an advisory lock), so none sees a part of it.
 *
 * Replay is backendctl replay-dead-letters' (workers/ctl/replay.c): the
 * message id is kept, so a command that had in fact taken effect gets its
 * stored reply and no second one; bookkeeping headers go, so the worker
 * counts afresh; reply_to and expiration go (the caller is long gone). It
 * is published as dead-letters with the original publisher in
 * x-bk-publisher, which the workers honour from this identity.
 *
 * The broker's part cannot join the database transaction: a message is
 * replayed or discarded before the command commits its events
 * (dead_letter.replayed, dead_letter.discarded: the audit trail). Should
 * the commit fail, the command runs again and finds the message gone
 * ("not_found"), and that step is missing from the audit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/amqp.h"
#include "shared/codec.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/util.h"
#include "workers/profile/profile.h"

#define SCAN_MAX    1000 /* messages one call looks at */
#define IDS_MAX     100  /* message ids one replay or discard names */
#define ID_MAX      128
#define MAX_HEADERS 64

static const amqp_table_entry_t *header(const amqp_table_t *t, const char *key)
{
    size_t n = strlen(key);
    for (int i = 0; t && i < t->num_entries; i++)
        if (t->entries[i].key.len == n && memcmp(t->entries[i].key.bytes, key, n) == 0)
            return &t->entries[i];
    return NULL;
}

static const char *header_str(struct bk_call *c, const amqp_table_t *t, const char *key)
{
    const amqp_table_entry_t *e = header(t, key);
    if (!e || (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES))
        return NULL;
    return bk_strf(c, "%.*s", (int)e->value.value.bytes.len, (char *)e->value.value.bytes.bytes);
}

static bool header_int(const amqp_table_t *t, const char *key, int64_t *out)
{
    const amqp_table_entry_t *e = header(t, key);
    if (!e)
        return false;
    switch (e->value.kind) {
    case AMQP_FIELD_KIND_I8:
        *out = e->value.value.i8;
        return true;
    case AMQP_FIELD_KIND_I16:
        *out = e->value.value.i16;
        return true;
    case AMQP_FIELD_KIND_I32:
        *out = e->value.value.i32;
        return true;
    case AMQP_FIELD_KIND_I64:
        *out = e->value.value.i64;
        return true;
    case AMQP_FIELD_KIND_U8:
        *out = e->value.value.u8;
        return true;
    case AMQP_FIELD_KIND_U16:
        *out = e->value.value.u16;
        return true;
    case AMQP_FIELD_KIND_U32:
        *out = e->value.value.u32;
        return true;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        *out = (int64_t)e->value.value.u64;
        return true;
    default:
        return false;
    }
}

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char at[32];
    bk_rfc3339(ms * 1000, at);
    return json_string(at);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The args of a command's body, as JSON (unmasked: the caller masks them),
 * or a note when the body is not an envelope we can show. */
static json_t *args_of(amqp_bytes_t body)
{
    msgpack_unpacked u;
    const char *why;
    json_t *out = NULL;
    msgpack_unpacked_init(&u);
    if (bk_codec_unpack(body.bytes, body.len, &u, &why) == 0 && u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *a = bk_codec_get(&u.data, "args");
        if (a) {
            out = bk_json_from_msgpack(a);
            if (!out)
                out = json_pack("{s:s}", "_note", "not shown: holds binary data (an upload)");
        }
    }
    if (!out)
        out = json_pack("{s:s}", "_note", "not shown: the body is not a command envelope");
    msgpack_unpacked_destroy(&u);
    return out;
}

/* What the staff see of one dead letter. */
static json_t *describe(struct bk_call *c, const amqp_message_t *m, const char *command)
{
    const amqp_basic_properties_t *p = &m->properties;
    const amqp_table_t *h = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
    const char *mid = (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
                          ? bk_strf(c, "%.*s", (int)p->message_id.len, (char *)p->message_id.bytes)
                          : NULL;
    const char *publisher = header_str(c, h, "x-bk-publisher");
    if (!publisher && (p->_flags & AMQP_BASIC_USER_ID_FLAG))
        publisher = bk_strf(c, "%.*s", (int)p->user_id.len, (char *)p->user_id.bytes);
    /* why: the worker's words after failed attempts, else the broker's
     * (rejected: undecodable, unknown, expired or too often delivered) */
    const char *reason = header_str(c, h, "x-bk-last-error");
    if (!reason)
        reason = header_str(c, h, "x-first-death-reason");
    int64_t attempts = 0, first = 0, last = 0;
    header_int(h, "x-bk-attempts", &attempts);
    header_int(h, "x-bk-first-failure", &first);
    if (!header_int(h, "x-bk-last-failure", &last)) {
        const amqp_table_entry_t *xd = header(h, "x-death");
        if (xd && xd->value.kind == AMQP_FIELD_KIND_ARRAY &&
            xd->value.value.array.num_entries > 0 &&
            xd->value.value.array.entries[0].kind == AMQP_FIELD_KIND_TABLE &&
            header_int(&xd->value.value.array.entries[0].value.table, "time", &last))
            last *= 1000; /* a timestamp: seconds */
        else if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
            last = (int64_t)p->timestamp * 1000;
    }
    return json_pack("{s:o, s:s, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "message_id",
                     str_or_null(mid), "command", command, "reason",
                     str_or_null(reason ? reason : "unknown"), "attempts", (json_int_t)attempts,
                     "first_failure", time_or_null(first), "dead_lettered_at", time_or_null(last),
                     "publisher", str_or_null(publisher), "request_id",
                     str_or_null(header_str(c, h, "x-request-id")), "args", args_of(m->body));
}

/* The args of every item of items masked in one statement (mask_secrets,
 * schema/010_audit.sql: the audit trail masks with the same rule). */
static int mask_args(struct bk_call *c, json_t *items)
{
    json_t *all = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) json_array_append(all, json_object_get(it, "args"));
    char *text = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    if (!text)
        return -1;
    const char *v = bk_strf(c, "%s", text);
    free(text);
    PGresult *r = BK_SQL(c, "SELECT mask_secrets($1::jsonb)::text", v);
    if (!r)
        return -1;
    json_error_t err;
    json_t *masked = json_loads(PQgetvalue(r, 0, 0), 0, &err);
    if (!masked || json_array_size(masked) != json_array_size(items)) {
        json_decref(masked);
        return -1;
    }
    json_array_foreach(items, i, it) json_object_set(it, "args", json_array_get(masked, i));
    json_decref(masked);
    return 0;
}

/* What one call does with a dead letter it took. */
enum action { LIST, REPLAY, DISCARD };

struct scan {
    enum action action;
    const char *prefix; /* LIST: only commands starting so */
    const char **ids;   /* REPLAY, DISCARD: the message ids asked for */
    int n_ids;
    json_t *items;   /* described: listed, replayed or discarded */
    int64_t skipped; /* LIST: how many did not match the prefix */
    bool truncated;  /* more than SCAN_MAX were in the queue */
    uint64_t confirm_tag;
};

static bool wanted(const struct scan *s, const char *mid)
{
    for (int i = 0; mid && i < s->n_ids; i++)
        if (strcmp(s->ids[i], mid) == 0)
            return true;
    return false;
}

static bool is_bookkeeping(amqp_bytes_t key)
{
    static const char *const drop[] = {"x-death",
                                       "x-delivery-count",
                                       "x-first-death-exchange",
                                       "x-first-death-queue",
                                       "x-first-death-reason",
                                       "x-last-death-exchange",
                                       "x-last-death-queue",
                                       "x-last-death-reason",
                                       "x-bk-attempts",
                                       "x-bk-delays",
                                       "x-bk-first-failure",
                                       "x-bk-last-failure",
                                       "x-bk-last-error",
                                       "x-bk-retry-tier",
                                       "x-bk-publisher",
                                       "x-bk-replayed-by",
                                       NULL};
    for (int i = 0; drop[i]; i++)
        if (key.len == strlen(drop[i]) && memcmp(key.bytes, drop[i], key.len) == 0)
            return true;
    return false;
}

static amqp_table_entry_t str_entry(const char *key, const char *value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

/* Back on backend.commands (see the top), confirmed. 0 or -1. */
static int replay(struct bk_call *c, amqp_connection_state_t conn, struct scan *s,
                  const amqp_message_t *m, const char *command, const char *publisher)
{
    amqp_basic_properties_t p = m->properties;
    amqp_table_entry_t h[MAX_HEADERS + 2];
    int n = 0;
    if (p._flags & AMQP_BASIC_HEADERS_FLAG)
        for (int i = 0; i < p.headers.num_entries && n < MAX_HEADERS; i++)
            if (!is_bookkeeping(p.headers.entries[i].key))
                h[n++] = p.headers.entries[i];
    if (publisher)
        h[n++] = str_entry("x-bk-publisher", publisher);
    h[n++] = str_entry("x-bk-replayed-by", c->actor.id);
    p.headers.entries = h;
    p.headers.num_entries = n;
    p._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_USER_ID_FLAG;
    p._flags &= ~(amqp_flags_t)(AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG);
    p.user_id = amqp_cstring_bytes(bk_amqp_user(BK_AMQP_DEAD_LETTERS));
    if (amqp_basic_publish(conn, 1, amqp_cstring_bytes(BK_EX_COMMANDS), amqp_cstring_bytes(command),
                           0, 0, &p, m->body) != AMQP_STATUS_OK ||
        bk_amqp_wait_confirms(conn, 1, ++s->confirm_tag, 5000) != 0) {
        bk_log(BK_ERROR, c->request_id, "dead letters: republishing %s failed", command);
        return -1;
    }
    return 0;
}

/* Takes up to SCAN_MAX dead letters and does s->action with those it wants.
 * 0, or -1 when the broker failed (whatever was done stays done). */
static int scan_queue(struct bk_call *c, struct scan *s);

/* One call at a time, across the worker's copies: a scan holds the messages
 * it looked at until it closes, so a second one at the same moment would
 * see a part of the queue (a list typed into, a replay during a list). A
 * write takes the transaction's lock (released at its commit or rollback);
 * a read, which has no transaction, the session's, released here. */
static int scan(struct bk_call *c, struct scan *s)
{
    bool write = s->action != LIST;
    if (!BK_SQL(c, write ? "SELECT pg_advisory_xact_lock(hashtext('backend.dead'))"
                         : "SELECT pg_advisory_lock(hashtext('backend.dead'))"))
        return -1;
    int rc = scan_queue(c, s);
    if (!write && !BK_SQL(c, "SELECT pg_advisory_unlock(hashtext('backend.dead'))"))
        return -1;
    return rc;
}

static int scan_queue(struct bk_call *c, struct scan *s)
{
    amqp_connection_state_t conn =
        bk_amqp_connect_as("profile-dead-letters", 0, BK_AMQP_DEAD_LETTERS);
    if (!conn)
        return -1;
    int rc = -1;
    if (s->action == REPLAY) {
        amqp_confirm_select(conn, 1);
        if (bk_amqp_check(amqp_get_rpc_reply(conn), "confirm.select") != 0)
            goto out;
    }
    for (int taken = 0;; taken++) {
        if (taken == SCAN_MAX) {
            s->truncated = true;
            break;
        }
        amqp_rpc_reply_t r = amqp_basic_get(conn, 1, amqp_cstring_bytes(BK_Q_DEAD), 0);
        if (bk_amqp_check(r, "basic.get") != 0)
            goto out;
        if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
            break;
        amqp_basic_get_ok_t *ok = r.reply.decoded;
        uint64_t tag = ok->delivery_tag;
        char command[256];
        bk_amqp_cstr(ok->routing_key, command, sizeof command);
        amqp_message_t m;
        if (bk_amqp_check(amqp_read_message(conn, 1, &m, 0), "read message") != 0)
            goto out;
        json_t *d = describe(c, &m, command);
        const char *mid = json_string_value(json_object_get(d, "message_id"));
        int step = 0;
        if (s->action == LIST) {
            if (strncmp(command, s->prefix, strlen(s->prefix)) == 0)
                json_array_append(s->items, d);
            else
                s->skipped++;
        } else if (wanted(s, mid)) {
            step = s->action == REPLAY ? replay(c, conn, s, &m, command,
                                                json_string_value(json_object_get(d, "publisher")))
                                       : 0;
            if (step == 0) {
                amqp_basic_ack(conn, 1, tag, 0);
                json_array_append(s->items, d);
            }
        }
        json_decref(d);
        amqp_destroy_message(&m);
        if (step != 0)
            goto out;
    }
    rc = 0;
out:
    /* closing hands every message not acked back to backend.dead */
    bk_amqp_close(conn);
    return rc;
}

/* ids: a list of 1..IDS_MAX message ids (strings). NULL with a field error
 * otherwise. */
static const char **read_ids(struct bk_call *c, int *n)
{
    const msgpack_object *o = bk_arg(c, "ids");
    *n = 0;
    if (!o) {
        bk_error(c, "ids", "This field is required.");
        return NULL;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        bk_error(c, "ids", "Expected a list of items.");
        return NULL;
    }
    if (o->via.array.size == 0 || o->via.array.size > IDS_MAX) {
        bk_error(c, "ids", "Give between 1 and %d message ids.", IDS_MAX);
        return NULL;
    }
    const char **ids = bk_alloc(c, o->via.array.size * sizeof *ids);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *v = &o->via.array.ptr[i];
        if (v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 || v->via.str.size > ID_MAX ||
            memchr(v->via.str.ptr, '\0', v->via.str.size)) {
            bk_error(c, "ids", "Each item must be a message id (1-%d characters).", ID_MAX);
            return NULL;
        }
        ids[i] = bk_strf(c, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    }
    *n = (int)o->via.array.size;
    return ids;
}

static json_t *not_found(const struct scan *s)
{
    json_t *out = json_array();
    for (int i = 0; i < s->n_ids; i++) {
        bool seen = false;
        size_t k;
        json_t *it;
        json_array_foreach(s->items, k, it)
        {
            const char *mid = json_string_value(json_object_get(it, "message_id"));
            if (mid && strcmp(mid, s->ids[i]) == 0)
                seen = true;
        }
        if (!seen)
            json_array_append_new(out, json_string(s->ids[i]));
    }
    return out;
}

/* GET /api/admin/dead-letters/?command=<prefix>: oldest first, paginated. */
int admin_dead_letters(struct bk_call *c)
{
    const char *prefix = bk_in_str(c, "command");
    struct bk_page page;
    bk_page_args(c, &page);
    if (bk_failed(c))
        return bk_reply_invalid(c);
    struct scan s = {.action = LIST, .prefix = prefix ? prefix : "", .items = json_array()};
    if (scan(c, &s) != 0) {
        json_decref(s.items);
        return -1; /* the broker: the runtime tries again, as for the database */
    }
    int64_t count = (int64_t)json_array_size(s.items);
    json_t *results = json_array();
    for (int64_t i = page.offset; i < count && i < page.offset + page.size; i++)
        json_array_append(results, json_array_get(s.items, (size_t)i));
    json_decref(s.items);
    if (mask_args(c, results) != 0) {
        json_decref(results);
        return -1;
    }
    if (s.truncated)
        bk_log(BK_WARN, c->request_id, "dead letters: more than %d in %s, listed the first",
               SCAN_MAX, BK_Q_DEAD);
    return bk_reply_page(c, &page, count, results);
}

/* The events of a replay or a discard, one per message (the audit trail's
 * object is the message id), then the reply. */
static int finish(struct bk_call *c, struct scan *s, const char *event, const char *reason)
{
    if (mask_args(c, s->items) != 0)
        return -1;
    size_t i;
    json_t *it;
    json_array_foreach(s->items, i, it)
    {
        json_t *data = json_pack(
            "{s:O, s:O, s:O, s:O, s:I}", "message_id", json_object_get(it, "message_id"), "command",
            json_object_get(it, "command"), "reason", json_object_get(it, "reason"), "args",
            json_object_get(it, "args"), "by", (json_int_t)c->actor.user_id);
        if (data && reason)
            json_object_set_new(data, "discard_reason", json_string(reason));
        if (bk_emit(c, event, data) != 0)
            return -1;
    }
    const char *done = s->action == REPLAY ? "replayed" : "discarded";
    json_t *body = json_pack("{s:O, s:o}", done, s->items, "not_found", not_found(s));
    json_decref(s->items);
    return bk_reply(c, 200, body);
}

/* POST /api/admin/dead-letters/replay/ {"ids": [...]} */
int admin_replay_dead_letters(struct bk_call *c)
{
    int n;
    const char **ids = read_ids(c, &n);
    if (bk_failed(c))
        return bk_reply_invalid(c);
    struct scan s = {.action = REPLAY, .ids = ids, .n_ids = n, .items = json_array()};
    if (scan(c, &s) != 0 && json_array_size(s.items) == 0) {
        json_decref(s.items);
        return -1; /* the broker: the runtime tries again, as for the database */
    }
    return finish(c, &s, "dead_letter.replayed", NULL);
}

/* POST /api/admin/dead-letters/discard/ {"ids": [...], "reason": "..."} */
int admin_discard_dead_letters(struct bk_call *c)
{
    int n;
    const char **ids = read_ids(c, &n);
    const char *reason = bk_in_str(c, "reason"); /* required, at most 500: declared */
    if (bk_failed(c))
        return bk_reply_invalid(c);
    struct scan s = {.action = DISCARD, .ids = ids, .n_ids = n, .items = json_array()};
    if (scan(c, &s) != 0 && json_array_size(s.items) == 0) {
        json_decref(s.items);
        return -1; /* the broker: the runtime tries again, as for the database */
    }
    return finish(c, &s, "dead_letter.discarded", reason);
}
