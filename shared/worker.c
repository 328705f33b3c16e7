/* The worker runtime (see worker.h): supervisor, consumer loop, inbox,
 * transaction, reply, ack, dead-lettering, and the call API handlers use. */
#include "shared/worker.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/amqp.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/contract.h"
#include "shared/json.h"
#include "shared/jwt.h"
#include "shared/links.h"
#include "shared/log.h"
#include "shared/outbox.h"
#include "shared/routes.h"
#include "shared/secret.h"
#include "shared/util.h"

#define MAX_RESULTS 64
#define MAX_ARGS    32 /* declared arguments of one command */

/* One declared argument as the runtime read it (bk_in_*). */
struct bk_value {
    const struct bk_field *f;
    bool set;      /* sent and valid (null included) */
    bool is_null;  /* sent as null (or "" where that means null) */
    const char *s; /* strings, choices, dates, ids: NUL-terminated in the arena */
    int64_t i;     /* integers; decimals in cents */
    bool b;
    const void *bin;
    size_t len;
};

struct bk_call_state {
    void **allocs; /* the call's arena: everything freed when the call ends */
    size_t n_allocs, cap_allocs;
    PGresult *results[MAX_RESULTS];
    int n_results;
    json_t *errors;    /* field -> [messages] */
    bool not_found;    /* a malformed path id: 404, not 400 */
    bool page_invalid; /* ...or a bad ?page=: 404 "Invalid page." */
    bool replied;
    bool commit_anyway;
    int status;
    json_t *body;
    json_t *headers;
    void *blob; /* bk_reply_blob's bytes, packed as bin under body.data */
    size_t blob_len;
    json_t *events; /* [[name, body-bytes-as-msgpack-sbuffer]...] kept as json for simplicity */
    char sqlstate[6];
    char constraint[64];
    const struct bk_command_decl *decl; /* set by bk_call_validate */
    bool partial;
    int n_vals;
    struct bk_value vals[MAX_ARGS];
    /* A read's actor check, folded into its first statement (fold_sql): the
     * actor's is_staff and role are a guess until it ran. */
    bool actor_pending;
    int actor_fail;            /* 0, or ACTOR_GONE, ACTOR_INACTIVE, ACTOR_CHANGED */
    struct token_entry *token; /* the caller's token cache entry, or NULL */
    struct write_open *open;   /* a write's opening statements (write_open_send) */
};

/* A write's opening statements (write_open_send), sent with the handler's
 * first statement. */
struct write_open {
    const struct delivery *d;
    const struct inbox_key *k;
    bool sent;   /* BEGIN and the claim went out */
    bool used;   /* the claim found the message id used: answer from the inbox */
    bool failed; /* an opening statement failed */
};

/* What a freshness check found wrong with the caller. */
enum { ACTOR_GONE = 1, ACTOR_INACTIVE, ACTOR_CHANGED };

/* Verified access tokens, so that a copy checks a token's Ed25519 signature
 * once, not on every command: keyed by the exact token text, used until its
 * exp, all dropped when the key folder changes (bk_jwt_keys_version: a key
 * removed revokes its tokens as soon as it did before). An entry also keeps
 * what the database said of the user at the last check (is_staff, role):
 * the guess a read's folded check confirms (fold_sql). At most TOKEN_CACHE
 * entries of at most BK_JWT_MAX bytes: a new token takes its slot. */
#define TOKEN_CACHE 512
struct token_entry {
    char *token; /* NULL: an empty slot */
    struct bk_jwt_claims cl;
    bool is_staff; /* the database's (or the token's until one was read) */
    char role[16];
};
static struct token_entry token_cache[TOKEN_CACHE];
static uint64_t token_cache_version;

static volatile sig_atomic_t stopping;
static int (*housekeeping)(struct bk_db *db);
static int housekeeping_interval_s = 3600;

void bk_worker_housekeeping(int (*fn)(struct bk_db *db), int interval_s)
{
    housekeeping = fn;
    housekeeping_interval_s = interval_s > 0 ? interval_s : 3600;
}

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* ---- arena ---------------------------------------------------------------- */

void *bk_alloc(struct bk_call *c, size_t n)
{
    struct bk_call_state *st = c->st;
    if (st->n_allocs == st->cap_allocs) {
        size_t cap = st->cap_allocs ? st->cap_allocs * 2 : 16;
        void **a = realloc(st->allocs, cap * sizeof *a);
        if (!a)
            abort(); /* out of memory: let the supervisor restart us */
        st->allocs = a;
        st->cap_allocs = cap;
    }
    void *p = calloc(1, n ? n : 1);
    if (!p)
        abort();
    st->allocs[st->n_allocs++] = p;
    return p;
}

char *bk_strf(struct bk_call *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = bk_alloc(c, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void call_state_free(struct bk_call_state *st)
{
    for (size_t i = 0; i < st->n_allocs; i++)
        free(st->allocs[i]);
    free(st->allocs);
    for (int i = 0; i < st->n_results; i++)
        PQclear(st->results[i]);
    json_decref(st->errors);
    json_decref(st->body);
    json_decref(st->headers);
    json_decref(st->events);
    free(st->blob);
    memset(st, 0, sizeof *st);
}

struct bk_call *bk_call_new(const msgpack_object *args)
{
    struct bk_call *c = calloc(1, sizeof *c);
    c->st = calloc(1, sizeof *c->st);
    c->args = args;
    c->command = c->message_id = c->correlation_id = c->request_id = c->client_ip = c->client_key =
        c->publisher = c->request_target = "";
    c->public_base = bk_config_str("public_base_url");
    return c;
}

void bk_call_free(struct bk_call *c)
{
    if (!c)
        return;
    call_state_free(c->st);
    free(c->st);
    free(c);
}

int bk_call_status(const struct bk_call *c)
{
    return c->st->replied ? c->st->status : 0;
}

const json_t *bk_call_body(const struct bk_call *c)
{
    return c->st->body;
}

/* ---- errors and replies --------------------------------------------------- */

json_t *bk_errors_of(struct bk_call *c, const char *field)
{
    if (!c->st->errors)
        c->st->errors = json_object();
    json_t *list = json_object_get(c->st->errors, field);
    if (!list) {
        list = json_array();
        json_object_set_new(c->st->errors, field, list);
    }
    return list;
}

void bk_error(struct bk_call *c, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(bk_errors_of(c, field), json_string(msg));
}

bool bk_failed(const struct bk_call *c)
{
    return c->st->not_found || (c->st->errors && json_object_size(c->st->errors) > 0);
}

int bk_reply(struct bk_call *c, int status, json_t *body)
{
    json_decref(c->st->body);
    c->st->status = status;
    c->st->body = body;
    c->st->replied = true;
    return 0;
}

int bk_reply_text(struct bk_call *c, int status, const char *json_text)
{
    json_error_t err;
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, &err);
    if (!v) {
        bk_log(BK_ERROR, c->request_id, "reply is not JSON: %s", err.text);
        return -1;
    }
    return bk_reply(c, status, v);
}

int bk_reply_detail(struct bk_call *c, int status, const char *detail)
{
    return bk_reply(c, status, json_pack("{s:s}", "detail", detail));
}

int bk_reply_code(struct bk_call *c, int status, const char *detail, const char *code)
{
    return bk_reply(c, status, json_pack("{s:s, s:s}", "detail", detail, "code", code));
}

int bk_reply_invalid(struct bk_call *c)
{
    if (c->st->not_found)
        return bk_reply_detail(c, 404, c->st->page_invalid ? "Invalid page." : "Not found.");
    json_t *e = c->st->errors ? json_incref(c->st->errors) : json_object();
    return bk_reply(c, 400, e);
}

int bk_reply_blob(struct bk_call *c, const char *content_type, const char *etag, const void *data,
                  size_t len)
{
    free(c->st->blob);
    c->st->blob = malloc(len ? len : 1);
    if (!c->st->blob)
        return -1;
    memcpy(c->st->blob, data, len);
    c->st->blob_len = len;
    return bk_reply(c, 200, json_pack("{s:s, s:s}", "content_type", content_type, "etag", etag));
}

void bk_commit_anyway(struct bk_call *c)
{
    c->st->commit_anyway = true;
}

void bk_reply_header(struct bk_call *c, const char *name, const char *value)
{
    if (!c->st->headers)
        c->st->headers = json_object();
    json_object_set_new(c->st->headers, name, json_string(value));
}

/* ---- arguments ------------------------------------------------------------ */

const msgpack_object *bk_arg(struct bk_call *c, const char *key)
{
    const msgpack_object *o = bk_codec_get(c->args, key);
    return o && o->type != MSGPACK_OBJECT_NIL ? o : NULL;
}

bool bk_arg_present(struct bk_call *c, const char *key)
{
    return bk_codec_get(c->args, key) != NULL;
}

/* Absent, null and required: records DRF's message. Returns the object or
 * NULL when there is nothing to parse. */
static const msgpack_object *arg_get(struct bk_call *c, const char *key, unsigned flags)
{
    const msgpack_object *o = bk_codec_get(c->args, key);
    if (!o) {
        if (flags & BK_REQUIRED)
            bk_error(c, key, "This field is required.");
        return NULL;
    }
    if (o->type == MSGPACK_OBJECT_NIL) {
        if (flags & BK_REQUIRED)
            bk_error(c, key, "This field may not be null.");
        return NULL;
    }
    return o;
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            k++;
    return k;
}

const char *bk_arg_str(struct bk_call *c, const char *key, unsigned flags, size_t max)
{
    const msgpack_object *o = arg_get(c, key, flags);
    if (!o)
        return NULL;
    const char *p;
    size_t n;
    char num[32];
    if (o->type == MSGPACK_OBJECT_STR) {
        p = o->via.str.ptr;
        n = o->via.str.size;
    } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
               o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        /* DRF's CharField takes numbers and turns them into text */
        n = (size_t)(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                         ? snprintf(num, sizeof num, "%llu", (unsigned long long)o->via.u64)
                         : snprintf(num, sizeof num, "%lld", (long long)o->via.i64));
        p = num;
    } else {
        bk_error(c, key, "Not a valid string.");
        return NULL;
    }
    if (n && memchr(p, '\0', n)) {
        bk_error(c, key, "Null characters are not allowed.");
        return NULL;
    }
    if (!(flags & BK_NO_TRIM)) {
        while (n && isspace((unsigned char)*p))
            p++, n--;
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
    }
    if (n == 0 && !(flags & BK_ALLOW_BLANK)) {
        bk_error(c, key, "This field may not be blank.");
        return NULL;
    }
    if (utf8_chars(p, n) > max) {
        bk_error(c, key, "Ensure this field has no more than %zu characters.", max);
        return NULL;
    }
    char *s = bk_alloc(c, n + 1);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Parses a whole decimal integer with optional sign and surrounding spaces. */
static bool parse_int(const char *p, size_t n, int64_t *out)
{
    char buf[32];
    while (n && isspace((unsigned char)*p))
        p++, n--;
    while (n && isspace((unsigned char)p[n - 1]))
        n--;
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    size_t i = (buf[0] == '-' || buf[0] == '+') ? 1 : 0;
    if (i == n)
        return false;
    for (size_t j = i; j < n; j++)
        if (!isdigit((unsigned char)buf[j]))
            return false;
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno)
        return false;
    *out = v;
    return true;
}

bool bk_arg_int(struct bk_call *c, const char *key, unsigned flags, int64_t min, int64_t max,
                int64_t *out)
{
    const msgpack_object *o = arg_get(c, key, flags);
    if (!o)
        return false;
    int64_t v = 0;
    bool ok = false;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        ok = o->via.u64 <= (uint64_t)INT64_MAX;
        v = (int64_t)o->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        ok = true;
        v = o->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        ok = isfinite(o->via.f64) && o->via.f64 == floor(o->via.f64) && fabs(o->via.f64) < 9e15;
        v = ok ? (int64_t)o->via.f64 : 0;
        break;
    case MSGPACK_OBJECT_STR:
        ok = parse_int(o->via.str.ptr, o->via.str.size, &v);
        break;
    default:
        break;
    }
    if (!ok) {
        bk_error(c, key, "A valid integer is required.");
        return false;
    }
    if (v < min) {
        bk_error(c, key, "Ensure this value is greater than or equal to %lld.", (long long)min);
        return false;
    }
    if (v > max) {
        bk_error(c, key, "Ensure this value is less than or equal to %lld.", (long long)max);
        return false;
    }
    *out = v;
    return true;
}

bool bk_arg_bool(struct bk_call *c, const char *key, unsigned flags, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "1", "yes", "on", "y", "t", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "0", "no", "off", "n", "f", NULL};
    const msgpack_object *o = arg_get(c, key, flags);
    if (!o)
        return false;
    if (o->type == MSGPACK_OBJECT_BOOLEAN) {
        *out = o->via.boolean;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= 1) {
        *out = o->via.u64 == 1;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_STR) {
        for (int i = 0; yes[i]; i++)
            if (bk_codec_str_eq(o, yes[i]))
                return *out = true, true;
        for (int i = 0; no[i]; i++)
            if (bk_codec_str_eq(o, no[i]))
                return *out = false, true;
    }
    bk_error(c, key, "Must be a valid boolean.");
    return false;
}

const void *bk_arg_bin(struct bk_call *c, const char *key, unsigned flags, size_t max, size_t *len)
{
    const msgpack_object *o = arg_get(c, key, flags);
    if (!o)
        return NULL;
    if (o->type != MSGPACK_OBJECT_BIN) {
        bk_error(c, key, "The submitted data was not a file. Check the encoding type on the form.");
        return NULL;
    }
    if (o->via.bin.size == 0) {
        bk_error(c, key, "The submitted file is empty.");
        return NULL;
    }
    if (o->via.bin.size > max) {
        bk_error(c, key, "The submitted file is too large (at most %zu bytes).", max);
        return NULL;
    }
    *len = o->via.bin.size;
    return o->via.bin.ptr;
}

const char *bk_arg_id(struct bk_call *c, const char *key)
{
    const msgpack_object *o = bk_arg(c, key);
    int64_t v = 0;
    bool ok = false;
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        v = (int64_t)o->via.u64;
        ok = true;
    } else if (o && o->type == MSGPACK_OBJECT_STR) {
        ok = parse_int(o->via.str.ptr, o->via.str.size, &v);
    }
    if (!ok || v <= 0) {
        c->st->not_found = true;
        return NULL;
    }
    return bk_strf(c, "%lld", (long long)v);
}

/* ---- declared arguments (shared/contract.h) ------------------------------- */

static bool is_blank_str(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == 0;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Django's parse_date: \d{4}-\d{1,2}-\d{1,2} and a real calendar day, as
 * YYYY-MM-DD in the arena; NULL when malformed. */
static const char *read_date(struct bk_call *c, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > 10)
        return NULL;
    char buf[11];
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    int y = 0, m = 0, d = 0, i = 0;
    for (int k = 0; k < 4; k++, i++) {
        if (!isdigit((unsigned char)buf[i]))
            return NULL;
        y = y * 10 + buf[i] - '0';
    }
    if (buf[i++] != '-')
        return NULL;
    for (int k = 0; k < 2 && isdigit((unsigned char)buf[i]); k++, i++)
        m = m * 10 + buf[i] - '0';
    if (buf[i++] != '-')
        return NULL;
    int ds = i;
    for (int k = 0; k < 2 && isdigit((unsigned char)buf[i]); k++, i++)
        d = d * 10 + buf[i] - '0';
    if (i == ds || buf[i] != '\0')
        return NULL;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days[m - 1] + (m == 2 && leap(y)))
        return NULL;
    return bk_strf(c, "%04d-%02d-%02d", y, m, d);
}

void bk_error_no_object(struct bk_call *c, const char *key, const char *pk)
{
    json_array_append_new(
        bk_errors_of(c, key),
        json_string(bk_strf(c, "Invalid pk \"%s\" - object does not exist.", pk)));
}

/* DRF's PrimaryKeyRelatedField: the id as a decimal string, or NULL with
 * DRF's message recorded. Strings are read as Python's int() reads them
 * (surrounding spaces, a sign); what is not a row id at all (0, negative,
 * beyond bigint) does not exist. */
static const char *read_pk(struct bk_call *c, const char *key, bool required)
{
    const msgpack_object *o = bk_codec_get(c->args, key);
    if (!o) {
        if (required)
            bk_error(c, key, "This field is required.");
        return NULL;
    }
    if (o->type == MSGPACK_OBJECT_NIL || is_blank_str(o)) {
        bk_error(c, key, "This field may not be null."); /* DRF turns "" into None */
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
            bk_error(c, key, "Incorrect type. Expected pk value, received str.");
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
        bk_error(c, key, "Incorrect type. Expected pk value, received %s.", type);
        return NULL;
    }
    }
    if (!is_int || v <= 0) {
        bk_error_no_object(c, key, echo);
        return NULL;
    }
    return bk_strf(c, "%lld", v);
}

/* Reads one declared argument into v, recording DRF's message when it is
 * invalid. The order of checks is DRF's: presence, null, type, limits, then
 * the format's validator. */
static void read_arg(struct bk_call *c, const struct bk_field *f, bool partial, struct bk_value *v)
{
    const char *key = f->name;
    bool required = (f->flags & BK_F_REQUIRED) && !partial;
    unsigned flags = required ? BK_REQUIRED : BK_OPTIONAL;
    const msgpack_object *raw = bk_codec_get(c->args, key);
    bool present = raw != NULL, nil = raw && raw->type == MSGPACK_OBJECT_NIL;
    v->f = f;

    /* an explicit null on a field that takes none (allow_null=False) */
    if (nil && !required && (f->flags & BK_F_NULL_IS_ERROR)) {
        bk_error(c, key, "This field may not be null.");
        return;
    }
    switch (f->type) {
    case BK_T_STRING:
        if (f->format == BK_FMT_DATE) {
            if (!present) {
                if (required)
                    bk_error(c, key, "This field is required.");
            } else if (nil || is_blank_str(raw)) {
                v->set = v->is_null = true; /* null, or "" from a form: no date */
            } else if ((v->s = read_date(c, raw)) != NULL) {
                v->set = true;
            } else {
                bk_error(c, key, "%s", bk_contract_format_message(BK_FMT_DATE));
            }
            return;
        }
        if (f->flags & BK_F_BLANK)
            flags |= BK_ALLOW_BLANK;
        if (f->flags & BK_F_NO_TRIM)
            flags |= BK_NO_TRIM;
        v->s = bk_arg_str(c, key, flags, f->max ? (size_t)f->max : SIZE_MAX);
        if (v->s && f->format != BK_FMT_NONE && !bk_contract_format_ok(f->format, v->s)) {
            bk_error(c, key, "%s", bk_contract_format_message(f->format));
            v->s = NULL;
        }
        v->set = v->s != NULL;
        v->is_null = nil;
        return;
    case BK_T_INTEGER:
        if ((f->flags & BK_F_NULLABLE) && (nil || (raw && is_blank_str(raw)))) {
            v->set = v->is_null = true; /* null, or "" from a form, is no value */
            return;
        }
        v->set = bk_arg_int(c, key, flags, f->min || f->max ? f->min : INT64_MIN,
                            f->min || f->max ? f->max : INT64_MAX, &v->i);
        return;
    case BK_T_BOOLEAN:
        v->set = bk_arg_bool(c, key, flags, &v->b);
        return;
    case BK_T_DECIMAL:
        v->set = bk_arg_money(c, key, flags, (int)f->max, f->min, &v->i);
        return;
    case BK_T_CHOICE:
        v->s = bk_arg_choice(c, key, flags, f->choices);
        v->set = v->s != NULL;
        return;
    case BK_T_BINARY:
        if (!present || nil) {
            v->set = v->is_null = nil;
            if (required)
                bk_error(c, key, "No file was submitted.");
            return;
        }
        v->bin = bk_arg_bin(c, key, BK_OPTIONAL, (size_t)f->max, &v->len);
        v->set = v->bin != NULL;
        return;
    case BK_T_ID:
        if (required || present) {
            v->s = bk_arg_id(c, key);
            v->set = v->s != NULL;
        }
        return;
    case BK_T_PK:
        v->s = read_pk(c, key, required);
        v->set = v->s != NULL;
        return;
    case BK_T_PAGE: {
        struct bk_page p;
        bk_page_args(c, &p); /* a bad page is recorded; the handler reads p again */
        return;
    }
    default:
        return; /* output only */
    }
}

struct validation {
    struct bk_call *c;
};

static int validate_one(const struct bk_field *f, void *ctx)
{
    struct bk_call *c = ((struct validation *)ctx)->c;
    struct bk_call_state *st = c->st;
    if (st->n_vals == MAX_ARGS) {
        bk_log(BK_ERROR, c->request_id, "%s: more than %d declared args", c->command, MAX_ARGS);
        return -1;
    }
    struct bk_value *v = &st->vals[st->n_vals++];
    memset(v, 0, sizeof *v);
    v->f = f;
    if (f->flags & (BK_F_LENIENT | BK_F_HEADER))
        return 0; /* the handler reads it (bk_arg), or the runtime did (partial) */
    read_arg(c, f, st->partial, v);
    return 0;
}

void bk_call_validate(struct bk_call *c)
{
    struct bk_call_state *st = c->st;
    st->decl = bk_contract_command(c->command);
    st->n_vals = 0;
    if (!st->decl)
        return;
    /* DRF's partial update: PATCH (or an update over AMQP without the flag)
     * leaves out what it does not change */
    st->partial = false;
    if (st->decl->flags & BK_C_PARTIAL) {
        const msgpack_object *o = bk_arg(c, "partial");
        st->partial = !(o && o->type == MSGPACK_OBJECT_BOOLEAN && !o->via.boolean);
    }
    struct validation x = {c};
    bk_contract_each_arg(st->decl, validate_one, &x);
}

/* The value of a declared argument; a handler reading one its command does
 * not declare is a bug the test build stops on. */
static const struct bk_value *value_of(struct bk_call *c, const char *key)
{
    for (int i = 0; i < c->st->n_vals; i++)
        if (strcmp(c->st->vals[i].f->name, key) == 0)
            return &c->st->vals[i];
    bk_log(BK_ERROR, c->request_id, "%s reads the undeclared arg \"%s\"", c->command, key);
#ifdef BK_TEST_HOOKS
    abort();
#endif
    return NULL;
}

const char *bk_in_str(struct bk_call *c, const char *key)
{
    const struct bk_value *v = value_of(c, key);
    return v && v->set ? v->s : NULL;
}

bool bk_in_int(struct bk_call *c, const char *key, int64_t *out)
{
    const struct bk_value *v = value_of(c, key);
    if (!v || !v->set || v->is_null || (v->f->type != BK_T_INTEGER && v->f->type != BK_T_DECIMAL))
        return false;
    *out = v->i;
    return true;
}

bool bk_in_bool(struct bk_call *c, const char *key, bool *out)
{
    const struct bk_value *v = value_of(c, key);
    if (!v || !v->set || v->is_null || v->f->type != BK_T_BOOLEAN)
        return false;
    *out = v->b;
    return true;
}

bool bk_in_money(struct bk_call *c, const char *key, int64_t *cents)
{
    return bk_in_int(c, key, cents);
}

const void *bk_in_bin(struct bk_call *c, const char *key, size_t *len)
{
    const struct bk_value *v = value_of(c, key);
    if (!v || !v->set || v->is_null)
        return NULL;
    *len = v->len;
    return v->bin;
}

bool bk_in_set(struct bk_call *c, const char *key)
{
    const struct bk_value *v = value_of(c, key);
    return v && v->set;
}

bool bk_in_null(struct bk_call *c, const char *key)
{
    const struct bk_value *v = value_of(c, key);
    return v && v->is_null;
}

bool bk_in_partial(struct bk_call *c)
{
    return c->st->partial;
}

bool bk_not_found(const struct bk_call *c)
{
    return c->st->not_found;
}

/* ---- SQL and events ------------------------------------------------------- */

static PGresult *keep_result(struct bk_call *c, PGresult *r)
{
    if (!r) {
        snprintf(c->st->sqlstate, sizeof c->st->sqlstate, "%s", "");
        return NULL;
    }
    if (!bk_db_ok(r)) {
        snprintf(c->st->sqlstate, sizeof c->st->sqlstate, "%s", bk_db_state(r));
        const char *k = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        snprintf(c->st->constraint, sizeof c->st->constraint, "%s", k ? k : "");
        /* constraint violations are answers the handler maps; anything
         * else is worth a line in the log */
        if (strncmp(c->st->sqlstate, "23", 2) != 0)
            bk_log(BK_ERROR, c->request_id, "sql failed (%s): %s", c->st->sqlstate,
                   PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    if (c->st->n_results == MAX_RESULTS) {
        /* a handler running more statements than this is a bug */
        bk_log(BK_ERROR, c->request_id, "more than %d SQL results in one call", MAX_RESULTS);
        PQclear(r);
        return NULL;
    }
    c->st->results[c->st->n_results++] = r;
    return r;
}

/* ---- the actor's freshness check ------------------------------------------ */

/* Reads the actor's row: 0 with is_staff and role updated, ACTOR_GONE or
 * ACTOR_INACTIVE, or -1 when the database failed. */
static const char SQL_ACTOR[] = "SELECT is_active, is_staff, role FROM users WHERE id = $1";

/* The actor's row as SQL_ACTOR read it (r is cleared): 0 with is_staff and
 * role updated, ACTOR_GONE or ACTOR_INACTIVE, or -1 when the statement
 * failed. */
static int actor_row(PGresult *r, struct bk_actor *a)
{
    int rc = -1;
    if (bk_db_ok(r)) {
        rc = PQntuples(r) == 0                       ? ACTOR_GONE
             : strcmp(PQgetvalue(r, 0, 0), "t") != 0 ? ACTOR_INACTIVE
                                                     : 0;
        if (rc == 0) {
            a->is_staff = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
            snprintf(a->role, sizeof a->role, "%s", PQgetvalue(r, 0, 2));
        }
    }
    PQclear(r);
    return rc;
}

/* Reads the actor's row on its own (actor_row's answers). */
static int actor_read(struct bk_db *db, struct bk_actor *a)
{
    const char *params[] = {a->id};
    return actor_row(bk_db_exec(db, SQL_ACTOR, 1, params), a);
}

/* The result of checking the guess in c->actor against fresh: 0 or
 * ACTOR_CHANGED. */
static int actor_compare(const struct bk_call *c, const struct bk_actor *fresh)
{
    return fresh->is_staff != c->actor.is_staff || strcmp(fresh->role, c->actor.role) != 0
               ? ACTOR_CHANGED
               : 0;
}

/* The check on its own, for a read whose handler runs no statement it can
 * be folded into: 0 when the guess holds, else actor_fail is set; -1 when
 * the database failed. */
static int actor_confirm(struct bk_call *c)
{
    struct bk_actor fresh = c->actor;
    int rc = actor_read(c->db, &fresh);
    if (rc < 0)
        return -1;
    c->st->actor_pending = false;
    c->st->actor_fail = rc ? rc : actor_compare(c, &fresh);
    return 0;
}

/* Each read statement folded so far: the handler's text (by address, the
 * text compared too) and the statement that also checks the actor. */
#define MAX_FOLDED    128
#define MAX_FOLD_ARGS 61 /* the statement's own; 3 more are the actor's */
static struct {
    const char *sql;
    char *text, *folded;
} folded[MAX_FOLDED];
static int n_folded;

/* The handler's SELECT as a subquery, gated by actor_check (schema/008): a
 * qual without columns is evaluated once, before the subquery runs, in the
 * statement's snapshot. NULL when sql is not a plain SELECT (or WITH) or the
 * table is full: the check then runs on its own. */
static const char *fold_sql(const char *sql, int n)
{
    for (int i = 0; i < n_folded; i++)
        if (folded[i].sql == sql && strcmp(folded[i].text, sql) == 0)
            return folded[i].folded;
    const char *p = sql;
    while (isspace((unsigned char)*p))
        p++;
    bool select = strncasecmp(p, "SELECT", 6) == 0 && isspace((unsigned char)p[6]);
    bool with = strncasecmp(p, "WITH", 4) == 0 && isspace((unsigned char)p[4]);
    if ((!select && !with) || n > MAX_FOLD_ARGS || n_folded == MAX_FOLDED || strchr(sql, ';'))
        return NULL;
    static const char FOLD[] =
        "SELECT q.* FROM (%s) q WHERE actor_check($%d::bigint, $%d::boolean, $%d::text)";
    size_t len = strlen(sql) + sizeof FOLD + 32;
    char *text = strdup(sql), *f = malloc(len);
    if (!text || !f || snprintf(f, len, FOLD, sql, n + 1, n + 2, n + 3) >= (int)len) {
        free(text);
        free(f);
        return NULL;
    }
    folded[n_folded].sql = sql;
    folded[n_folded].text = text;
    folded[n_folded].folded = f;
    return folded[n_folded++].folded;
}

/* Runs a read's statement with the actor check folded in (or before it when
 * it does not fold). NULL with actor_fail set when the caller is gone,
 * inactive or not as guessed: the runtime answers or runs the read again. */
static PGresult *exec_checked(struct bk_call *c, const char *sql, int n, const char *const *values,
                              const int *lengths, const int *formats)
{
    const char *f = fold_sql(sql, n);
    if (!f) {
        if (actor_confirm(c) != 0)
            return keep_result(c, NULL);
        if (c->st->actor_fail)
            return NULL;
        return keep_result(c, bk_db_exec_bin(c->db, sql, n, values, lengths, formats));
    }
    const char *v[MAX_FOLD_ARGS + 3];
    int len[MAX_FOLD_ARGS + 3], fmt[MAX_FOLD_ARGS + 3];
    for (int i = 0; i < n; i++) {
        v[i] = values[i];
        len[i] = lengths ? lengths[i] : 0;
        fmt[i] = formats ? formats[i] : 0;
    }
    v[n] = c->actor.id;
    v[n + 1] = c->actor.is_staff ? "t" : "f";
    v[n + 2] = c->actor.role;
    for (int i = n; i < n + 3; i++)
        len[i] = fmt[i] = 0;
    PGresult *r = bk_db_exec_bin(c->db, f, n + 3, v, len, fmt);
    const char *state = bk_db_state(r);
    if (r && !bk_db_ok(r) && strncmp(state, "BKA0", 4) == 0) {
        c->st->actor_fail = state[4] == '1'   ? ACTOR_GONE
                            : state[4] == '2' ? ACTOR_INACTIVE
                                              : ACTOR_CHANGED;
        c->st->actor_pending = false;
        snprintf(c->st->sqlstate, sizeof c->st->sqlstate, "%s", state);
        PQclear(r);
        return NULL;
    }
    if (bk_db_ok(r))
        c->st->actor_pending = false;
    return keep_result(c, r);
}

static PGresult *write_open_send(struct bk_call *c, const struct bk_db_stmt *s);

PGresult *bk_sql(struct bk_call *c, const char *sql, int n, const char *const *params)
{
    if (c->st->open && !c->st->open->sent) {
        const struct bk_db_stmt s = {sql, n, params, NULL, NULL};
        PGresult *r = write_open_send(c, &s);
        return r ? keep_result(c, r) : NULL;
    }
    if (c->st->actor_pending)
        return exec_checked(c, sql, n, params, NULL, NULL);
    return keep_result(c, bk_db_exec(c->db, sql, n, params));
}

PGresult *bk_sql_once(struct bk_call *c, const char *sql, int n, const char *const *params)
{
    /* a text built per request does not fold (the fold table is by
     * address): the caller is checked first, on its own */
    if (c->st->actor_pending) {
        if (actor_confirm(c) != 0)
            return keep_result(c, NULL);
        if (c->st->actor_fail)
            return NULL;
    }
    return keep_result(c, bk_db_exec_once(c->db, sql, n, params));
}

PGresult *bk_sql_bin(struct bk_call *c, const char *sql, int n, const char *const *values,
                     const int *lengths, const int *formats)
{
    if (c->st->open && !c->st->open->sent) {
        const struct bk_db_stmt s = {sql, n, values, lengths, formats};
        PGresult *r = write_open_send(c, &s);
        return r ? keep_result(c, r) : NULL;
    }
    if (c->st->actor_pending)
        return exec_checked(c, sql, n, values, lengths, formats);
    return keep_result(c, bk_db_exec_bin(c->db, sql, n, values, lengths, formats));
}

const char *bk_sql_state(const struct bk_call *c)
{
    return c->st->sqlstate;
}

const char *bk_sql_constraint(const struct bk_call *c)
{
    return c->st->constraint;
}

int bk_emit(struct bk_call *c, const char *event, json_t *data)
{
    if (!data)
        return -1;
    if (!c->st->events)
        c->st->events = json_array();
    json_t *ev = bk_event_new(event, data, c->request_id, c->message_id);
    if (!ev)
        return -1;
    /* who, for the audit trail: the verified token's user or service, and
     * whether the bridge (HTTP) or another publisher (AMQP) sent it */
    bool http = c->publisher[0] && strcmp(c->publisher, bk_config_str("bridge_amqp_user")) == 0;
    if (bk_event_actor(ev, c->actor.authenticated ? (long long)c->actor.user_id : 0,
                       c->actor.service, http ? "http" : "amqp") != 0) {
        json_decref(ev);
        return -1;
    }
    return json_array_append_new(c->st->events, ev);
}

int bk_emit_text(struct bk_call *c, const char *event, const char *data_json)
{
    json_error_t err;
    return bk_emit(c, event, json_loads(data_json, JSON_DECODE_ANY, &err));
}

/* ---- the runtime ---------------------------------------------------------- */

struct runtime {
    const char *name;
    const struct bk_command *commands;
    amqp_connection_state_t amqp;
    /* The read commands' names (flag BK_READ), NULL-terminated: bound to
     * <name>.reads at every connect (bk_amqp_declare_reads). */
    const char **reads;
    bool reads_consumed; /* <name>.reads is consumed on this connection */
    /* Replies go out on a connection of their own: a reply the broker refuses
     * (RabbitMQ 3.10 closes the connection on some reply_to names) then
     * breaks only this one, never the consumer with its unsettled commands. */
    amqp_connection_state_t reply_amqp;
    int64_t reply_retry_ms; /* after a failed connect, not before this (mono) */
    struct bk_db *db;
    struct bk_outbox *outbox;
    const char *key_dir;
    long max_deliveries;
    char public_base[512]; /* public_base_url without its trailing slash */
    uint64_t ack_upto;     /* the last delivery done and not acked yet, 0: none */
    /* Deliveries taken off the channel while the database is away, oldest
     * first: held unsettled (an outage costs them no delivery), run when it
     * is back, or answered 503 when their caller's time runs out. */
    amqp_envelope_t *held;
    size_t n_held, cap_held;
    bool retry_ch_open;   /* channel 2 of the reply connection, in confirm mode */
    uint64_t retry_tag;   /* the last publish on it */
    char last_error[160]; /* why the last attempt failed (for the retry headers) */
};

/* The consumer tags of a copy's two consumers on channel 1. */
#define WRITES_TAG "writes"
#define READS_TAG  "reads"

/* What we know of one delivery, read from its AMQP properties. */
struct delivery {
    uint64_t tag;
    bool redelivered;
    bool from_reads; /* delivered by <worker>.reads (a classic queue) */
    char command[128];
    char message_id[64];
    char correlation_id[128];
    char request_id[BK_REQUEST_ID_MAX + 1];
    char reply_to[BK_AMQP_REPLY_TO_MAX + 1];
    bool reply_to_bad; /* present and not an address we publish to */
    char user_id[64];  /* the publisher's broker identity (RabbitMQ checks it); "" when absent */
    char client_ip[64];
    char request_target[BK_LINK_MAX];
    char test_crash[32];
    int64_t test_fail; /* x-test-fail (test builds): fail until this many attempts failed */
    int64_t delivery_count;
    int64_t attempts;         /* failed attempts before this delivery (x-bk-attempts) */
    int64_t delays;           /* delayed retries so far (x-bk-delays) */
    int64_t first_failure_ms; /* x-bk-first-failure, 0: none yet */
    int64_t sent_at_ms;       /* 0 when unknown */
    int64_t expiration_ms;    /* -1 when none */
    amqp_bytes_t body;
};

static int64_t field_int(const amqp_field_value_t *v, bool *ok)
{
    *ok = true;
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        return v->value.i8;
    case AMQP_FIELD_KIND_U8:
        return v->value.u8;
    case AMQP_FIELD_KIND_I16:
        return v->value.i16;
    case AMQP_FIELD_KIND_U16:
        return v->value.u16;
    case AMQP_FIELD_KIND_I32:
        return v->value.i32;
    case AMQP_FIELD_KIND_U32:
        return v->value.u32;
    case AMQP_FIELD_KIND_I64:
        return v->value.i64;
    case AMQP_FIELD_KIND_U64:
        return (int64_t)v->value.u64;
    case AMQP_FIELD_KIND_TIMESTAMP:
        return (int64_t)v->value.u64;
    default:
        *ok = false;
        return 0;
    }
}

/* Did this worker itself publish the delivery (a delayed retry), or the
 * staff's dead-letter replay (which carries x-bk-publisher over from the
 * dead letter)? The broker checks user_id against the connection, so only
 * those identities can claim it. */
static bool republished_by_us(const struct delivery *d)
{
    return d->user_id[0] && (strcmp(d->user_id, bk_amqp_user(BK_AMQP_PROCESS)) == 0 ||
                             strcmp(d->user_id, bk_amqp_user(BK_AMQP_DEAD_LETTERS)) == 0);
}

static void read_delivery(const amqp_envelope_t *env, struct delivery *d)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    memset(d, 0, sizeof *d);
    d->tag = env->delivery_tag;
    d->redelivered = env->redelivered;
    d->from_reads = env->consumer_tag.len == sizeof READS_TAG - 1 &&
                    memcmp(env->consumer_tag.bytes, READS_TAG, sizeof READS_TAG - 1) == 0;
    d->expiration_ms = -1;
    d->body = env->message.body;
    bk_amqp_cstr(env->routing_key, d->command, sizeof d->command);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        bk_amqp_cstr(p->message_id, d->message_id, sizeof d->message_id);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        bk_amqp_cstr(p->correlation_id, d->correlation_id, sizeof d->correlation_id);
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG) {
        /* checked as received: a copy cut to our buffer would be another name */
        if (bk_amqp_reply_to_valid(p->reply_to.bytes, p->reply_to.len))
            bk_amqp_cstr(p->reply_to, d->reply_to, sizeof d->reply_to);
        else
            d->reply_to_bad = p->reply_to.len > 0;
    }
    if ((p->_flags & AMQP_BASIC_USER_ID_FLAG) && p->user_id.len < sizeof d->user_id)
        bk_amqp_cstr(p->user_id, d->user_id, sizeof d->user_id);
    if (p->_flags & AMQP_BASIC_EXPIRATION_FLAG) {
        char e[32];
        bk_amqp_cstr(p->expiration, e, sizeof e);
        char *end;
        long long v = strtoll(e, &end, 10);
        if (end != e && *end == '\0' && v >= 0)
            d->expiration_ms = v;
    }
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
        d->sent_at_ms = (int64_t)p->timestamp * 1000 + 999; /* seconds: be lenient */
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        char key[64];
        bk_amqp_cstr(e->key, key, sizeof key);
        bool ok;
        if (strcmp(key, "x-delivery-count") == 0) {
            int64_t v = field_int(&e->value, &ok);
            if (ok && v > 0) /* a publisher's own header can only add */
                d->delivery_count = v;
        } else if (strcmp(key, "x-test-fail") == 0) {
            int64_t v = field_int(&e->value, &ok);
            if (ok && v > 0)
                d->test_fail = v;
        } else if (strcmp(key, "timestamp_in_ms") == 0) {
            int64_t v = field_int(&e->value, &ok);
            if (ok && v > 0)
                d->sent_at_ms = v;
        } else if (strcmp(key, "x-bk-attempts") == 0 || strcmp(key, "x-bk-delays") == 0 ||
                   strcmp(key, "x-bk-first-failure") == 0) {
            /* a publisher could only make its own command give up sooner */
            int64_t v = field_int(&e->value, &ok);
            if (ok && v > 0 && strcmp(key, "x-bk-attempts") == 0)
                d->attempts = v;
            else if (ok && v > 0 && strcmp(key, "x-bk-delays") == 0)
                d->delays = v;
            else if (ok && v > 0)
                d->first_failure_ms = v;
        } else if (e->value.kind == AMQP_FIELD_KIND_UTF8 ||
                   e->value.kind == AMQP_FIELD_KIND_BYTES) {
            if (strcmp(key, "x-request-id") == 0 &&
                bk_request_id_valid(e->value.value.bytes.bytes, e->value.value.bytes.len))
                bk_amqp_cstr(e->value.value.bytes, d->request_id, sizeof d->request_id);
            else if (strcmp(key, "x-client-ip") == 0)
                bk_amqp_cstr(e->value.value.bytes, d->client_ip, sizeof d->client_ip);
            else if (strcmp(key, "x-request-target") == 0 &&
                     e->value.value.bytes.len < sizeof d->request_target) /* never cut short */
                bk_amqp_cstr(e->value.value.bytes, d->request_target, sizeof d->request_target);
            else if (strcmp(key, "x-test-crash") == 0)
                bk_amqp_cstr(e->value.value.bytes, d->test_crash, sizeof d->test_crash);
            else if (strcmp(key, "x-bk-publisher") == 0 && republished_by_us(d) &&
                     e->value.value.bytes.len < sizeof d->user_id)
                /* a delayed retry: the worker republished it, the original
                 * publisher's identity rides along (only we can publish as us) */
                bk_amqp_cstr(e->value.value.bytes, d->user_id, sizeof d->user_id);
        }
    }
}

/* x-client-ip and x-request-target are what the bridge saw; any other
 * publisher could set them to anything (a victim's address, to lock it out
 * of logins; a fresh one per try, to escape the limit). So they count only
 * when the broker vouches that the bridge published the command, and a
 * per-address limit keys on the publisher's identity otherwise. */
static void trust_headers(struct delivery *d, char *client_key, size_t n)
{
    if (d->user_id[0] && strcmp(d->user_id, bk_config_str("bridge_amqp_user")) == 0) {
        snprintf(client_key, n, "%s%s", d->client_ip[0] ? "ip:" : "", d->client_ip);
        return;
    }
    d->client_ip[0] = '\0';
    d->request_target[0] = '\0';
    snprintf(client_key, n, "%s%s", d->user_id[0] ? "svc:" : "", d->user_id);
}

/* A command from another service may bring no request id of its own: its
 * message_id then names the request in the logs and events. */
static void default_request_id(struct delivery *d)
{
    if (!d->request_id[0] && bk_request_id_valid(d->message_id, strlen(d->message_id)))
        snprintf(d->request_id, sizeof d->request_id, "%s", d->message_id);
}

/* Packs {"status", "body", "headers"?, "user_id" | "service"?} into sb. Who
 * the verified token named goes back to the caller for its access log (the
 * bridge verifies no token of its own for that). actor may be NULL. */
static int pack_reply(msgpack_sbuffer *sb, int status, const json_t *body, const json_t *headers,
                      const void *blob, size_t blob_len, const struct bk_actor *actor)
{
    msgpack_packer pk;
    bool user = actor && actor->authenticated && actor->user_id > 0;
    bool service = actor && actor->authenticated && !user && actor->service[0];
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + (headers ? 1 : 0) + (user || service ? 1 : 0));
    msgpack_pack_str_with_body(&pk, "status", 6);
    msgpack_pack_int(&pk, status);
    msgpack_pack_str_with_body(&pk, "body", 4);
    if (blob && json_is_object(body)) {
        /* the body's fields, then the bytes as bin: JSON cannot carry them */
        const char *k;
        json_t *v;
        msgpack_pack_map(&pk, json_object_size(body) + 1);
        json_object_foreach((json_t *)body, k, v)
        {
            msgpack_pack_str_with_body(&pk, k, strlen(k));
            if (bk_json_pack(&pk, v))
                return -1;
        }
        msgpack_pack_str_with_body(&pk, "data", 4);
        msgpack_pack_bin_with_body(&pk, blob, blob_len);
    } else if (body ? bk_json_pack(&pk, body) : msgpack_pack_nil(&pk)) {
        return -1;
    }
    if (headers) {
        msgpack_pack_str_with_body(&pk, "headers", 7);
        if (bk_json_pack(&pk, headers))
            return -1;
    }
    if (user) {
        msgpack_pack_str_with_body(&pk, "user_id", 7);
        msgpack_pack_int64(&pk, actor->user_id);
    } else if (service) {
        msgpack_pack_str_with_body(&pk, "service", 7);
        msgpack_pack_str_with_body(&pk, actor->service, strlen(actor->service));
    }
    return 0;
}

static void reply_conn_drop(struct runtime *rt)
{
    if (rt->reply_amqp)
        amqp_destroy_connection(rt->reply_amqp); /* no close handshake: it may be closed */
    rt->reply_amqp = NULL;
}

/* The reply connection, (re)opened when needed. Nothing is read from it but
 * the broker's close: looked for before each publish, without waiting, so a
 * connection the broker closed is replaced instead of written into. */
static amqp_connection_state_t reply_conn(struct runtime *rt)
{
    while (rt->reply_amqp) {
        amqp_frame_t f;
        struct timeval tv = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(rt->reply_amqp, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            return rt->reply_amqp;
        if (rc == AMQP_STATUS_OK && !(f.frame_type == AMQP_FRAME_METHOD &&
                                      (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                                       f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)))
            continue; /* nothing else is expected; skip it */
        bk_log(BK_WARN, NULL, "reply connection closed by the broker, reopening");
        reply_conn_drop(rt);
    }
    if (bk_mono_ms() < rt->reply_retry_ms)
        return NULL;
    char name[64];
    snprintf(name, sizeof name, "%s-replies-%d", rt->name, (int)getpid());
    /* no heartbeat: it may sit idle between replies (as the outbox relay's) */
    rt->reply_amqp = bk_amqp_connect(name, 0);
    if (!rt->reply_amqp)
        rt->reply_retry_ms = bk_mono_ms() + 1000;
    return rt->reply_amqp;
}

static void send_reply_bytes(struct runtime *rt, const struct delivery *d, const void *buf,
                             size_t len)
{
    if (!d->reply_to[0])
        return;
    amqp_connection_state_t conn = reply_conn(rt);
    if (!conn) {
        bk_log(BK_WARN, d->request_id, "reply to %s lost: no reply connection", d->reply_to);
        return;
    }
    amqp_basic_properties_t p;
    p._flags =
        AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_USER_ID_FLAG;
    p.content_type = amqp_cstring_bytes("application/msgpack");
    p.delivery_mode = 1;
    p.user_id = amqp_cstring_bytes(bk_amqp_user(BK_AMQP_PROCESS));
    if (d->correlation_id[0]) {
        p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        p.correlation_id = amqp_cstring_bytes(d->correlation_id);
    }
    amqp_bytes_t body = {len, (void *)buf};
    int rc = amqp_basic_publish(conn, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(d->reply_to), 0,
                                0, &p, body);
    if (rc != AMQP_STATUS_OK) {
        bk_log(BK_WARN, d->request_id, "reply to %s failed: %s", d->reply_to,
               amqp_error_string2(rc));
        reply_conn_drop(rt);
    }
}

static void send_reply(struct runtime *rt, const struct delivery *d, int status, json_t *body)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (pack_reply(&sb, status, body, NULL, NULL, 0, NULL) == 0)
        send_reply_bytes(rt, d, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    json_decref(body);
}

static void send_detail(struct runtime *rt, const struct delivery *d, int status,
                        const char *detail)
{
    send_reply(rt, d, status, json_pack("{s:s}", "detail", detail));
}

/* Acks are batched: a delivery whose command has committed and replied is
 * marked, and one ack with multiple=1 settles every marked delivery when no
 * further one is waiting in our buffer (on a quorum queue each ack is a Raft
 * command, so under load one ack per batch saves the broker real work). A
 * crash before the flush only means a redelivery, which the inbox absorbs. */
static void ack(struct runtime *rt, const struct delivery *d)
{
    rt->ack_upto = d->tag;
}

static void flush_acks(struct runtime *rt)
{
    if (rt->ack_upto && rt->amqp)
        amqp_basic_ack(rt->amqp, 1, rt->ack_upto, 1);
    rt->ack_upto = 0;
}

/* Into backend.dead through the queue's dead-letter exchange. */
static void dead_letter(struct runtime *rt, const struct delivery *d)
{
    flush_acks(rt);
    amqp_basic_reject(rt->amqp, 1, d->tag, 0);
}

/* Back to the queue for another delivery (x-delivery-count grows). */
static void requeue(struct runtime *rt, const struct delivery *d)
{
    /* a little pause so a database restart is not burnt through at once */
    usleep((useconds_t)(100000 * (d->delivery_count + 1)));
    flush_acks(rt);
    amqp_basic_nack(rt->amqp, 1, d->tag, 0, 1);
}

static uint32_t token_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a: the slot only; the text decides */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* token's claims, from the cache or verified now (and then cached when it
 * is an access token). *entry is its cache entry, or NULL. */
static enum bk_jwt_err token_verify(struct runtime *rt, const char *token, int64_t now,
                                    struct bk_jwt_claims *cl, struct token_entry **entry)
{
    *entry = NULL;
    uint64_t v = bk_jwt_keys_version(rt->key_dir);
    if (v != token_cache_version) {
        for (size_t i = 0; i < TOKEN_CACHE; i++) {
            free(token_cache[i].token);
            token_cache[i].token = NULL;
        }
        token_cache_version = v;
    }
    struct token_entry *t = &token_cache[token_hash(token) % TOKEN_CACHE];
    if (t->token && strcmp(t->token, token) == 0) {
        if (t->cl.exp <= now)
            return BK_JWT_EXPIRED;
        *cl = t->cl;
        *entry = t;
        return BK_JWT_OK;
    }
    enum bk_jwt_err e = bk_jwt_verify(rt->key_dir, token, now, cl);
    if (e != BK_JWT_OK || strcmp(cl->token_type, "access") != 0)
        return e;
    char *copy = strdup(token);
    if (!copy)
        return e; /* verified, just not cached */
    free(t->token);
    t->token = copy;
    t->cl = *cl;
    t->is_staff = cl->is_staff;
    snprintf(t->role, sizeof t->role, "%s", cl->role);
    *entry = t;
    return e;
}

/* The 401 of a caller who is gone or inactive (simplejwt's words). */
static void send_actor_refusal(struct runtime *rt, const struct delivery *d, int fail)
{
    bool gone = fail == ACTOR_GONE;
    send_reply(rt, d, 401,
               json_pack("{s:s, s:s}", "detail", gone ? "User not found" : "User is inactive",
                         "code", gone ? "user_not_found" : "user_inactive"));
}

/* Reads the actor's row now (the check that is not folded): 0 when the call
 * may proceed, the status already sent (401, 403), or -1 (database). */
static int actor_settle(struct runtime *rt, const struct delivery *d, const struct bk_command *cmd,
                        struct bk_call *c)
{
    int rc = actor_read(rt->db, &c->actor);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        send_actor_refusal(rt, d, rc);
        return 401;
    }
    struct token_entry *t = c->st->token;
    if (t) {
        t->is_staff = c->actor.is_staff;
        snprintf(t->role, sizeof t->role, "%s", c->actor.role);
    }
    if (cmd->auth == BK_STAFF && !c->actor.is_staff) {
        send_detail(rt, d, 403, "You do not have permission to perform this action.");
        return 403;
    }
    return 0;
}

/* Verifies the access token against the command's rule. Returns 0 when the
 * call may proceed, else the reply status it has already sent (-1: the
 * database failed). A read by a user proceeds with the user's is_staff and
 * role as last seen, to be confirmed by its first statement (fold_sql); any
 * other command reads them first. */
static int authenticate(struct runtime *rt, const struct delivery *d, const struct bk_command *cmd,
                        const msgpack_object *auth, struct bk_call *c)
{
    memset(&c->actor, 0, sizeof c->actor);
    bool has_token = auth && auth->type == MSGPACK_OBJECT_STR && auth->via.str.size > 0;
    if (!has_token) {
        if (cmd->auth == BK_PUBLIC)
            return 0;
        send_reply(rt, d, 401,
                   json_pack("{s:s}", "detail", "Authentication credentials were not provided."));
        return 401;
    }
    char token[BK_JWT_MAX + 1];
    struct bk_jwt_claims cl;
    struct token_entry *entry = NULL;
    enum bk_jwt_err e = BK_JWT_MALFORMED;
    if (auth->via.str.size <= BK_JWT_MAX && !memchr(auth->via.str.ptr, '\0', auth->via.str.size)) {
        memcpy(token, auth->via.str.ptr, auth->via.str.size);
        token[auth->via.str.size] = '\0';
        e = token_verify(rt, token, bk_now_ms() / 1000, &cl, &entry);
    }
    if (e != BK_JWT_OK || strcmp(cl.token_type, "access") != 0) {
        /* public commands ignore credentials, as simplejwt's token views
         * and a register view with no authentication classes do */
        if (cmd->auth == BK_PUBLIC)
            return 0;
        send_reply(rt, d, 401,
                   json_pack("{s:s, s:s}", "detail", "Given token not valid for any token type",
                             "code", "token_not_valid"));
        return 401;
    }
    c->actor.authenticated = true;
    snprintf(c->actor.jti, sizeof c->actor.jti, "%s", cl.jti);
    snprintf(c->actor.family, sizeof c->actor.family, "%s", cl.family);
    if (cl.service[0]) {
        snprintf(c->actor.service, sizeof c->actor.service, "%s", cl.service);
        if (cmd->auth == BK_USER_OR_SERVICE || cmd->auth == BK_PUBLIC)
            return 0;
        send_detail(rt, d, 403, "You do not have permission to perform this action.");
        return 403;
    }
    /* The token says who; the database says whether that user still exists,
     * is active and is staff now (a demoted staff user loses access at once),
     * on every command: for a read in its own first statement. */
    c->actor.user_id = cl.user_id;
    snprintf(c->actor.id, sizeof c->actor.id, "%lld", (long long)cl.user_id);
    c->actor.is_staff = entry ? entry->is_staff : cl.is_staff;
    snprintf(c->actor.role, sizeof c->actor.role, "%s", entry ? entry->role : cl.role);
    c->st->token = entry;
    if (cmd->auth != BK_STAFF || c->actor.is_staff) {
        c->st->actor_pending = true;
        return 0;
    }
    return actor_settle(rt, d, cmd, c);
}

/* What the inbox knows of one write command: who sent it, under which server
 * key its fingerprint was made, and the fingerprint. */
struct inbox_key {
    char caller[96];   /* "user:<id>", "service:<name>", "anon", "anon@<broker user>" */
    char context[160]; /* message id (lower case) and caller: what a sealed reply is bound to */
    struct bk_secret_key key; /* the current server key */
    unsigned char fp[BK_SECRET_FP_LEN];
    msgpack_sbuffer args; /* the args as packed again, for a fingerprint under an older key */
};

/* The caller a stored reply belongs to: the verified token's subject, else
 * anonymous, split by the broker-checked user_id property when there is one
 * (RabbitMQ refuses a user_id that is not the connection's user). */
static void inbox_caller(const struct delivery *d, const struct bk_actor *a, char *out, size_t n)
{
    if (a->authenticated && a->user_id > 0)
        snprintf(out, n, "user:%lld", (long long)a->user_id);
    else if (a->authenticated && a->service[0])
        snprintf(out, n, "service:%s", a->service);
    else if (d->user_id[0])
        snprintf(out, n, "anon@%s", d->user_id);
    else
        snprintf(out, n, "anon");
}

/* Fills k for the call. 0, or -1 without a server key (logged). */
static int inbox_key_init(struct runtime *rt, const struct delivery *d, struct bk_call *c,
                          struct inbox_key *k)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&k->args);
    inbox_caller(d, &c->actor, k->caller, sizeof k->caller);
    /* the uuid column prints lower case: the context must not depend on how
     * the client spelled the id */
    size_t i = 0;
    for (; d->message_id[i] && i < sizeof k->context - 1; i++)
        k->context[i] = (char)tolower((unsigned char)d->message_id[i]);
    snprintf(k->context + i, sizeof k->context - i, "\n%s", k->caller);
    msgpack_packer_init(&pk, &k->args, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *c->args);
    if (bk_secret_get(rt->key_dir, BK_SECRET_CURRENT, NULL, &k->key) != 0) {
        bk_log(BK_ERROR, d->request_id, "no server key in %s (backendctl keygen)", rt->key_dir);
        return -1;
    }
    bk_secret_fingerprint(&k->key, d->command, k->caller, k->args.data, k->args.size, k->fp);
    return 0;
}

static void inbox_key_free(struct inbox_key *k)
{
    msgpack_sbuffer_destroy(&k->args);
    sodium_memzero(&k->key, sizeof k->key);
}

/* This caller's row of the message id, or a row from before migration 006
 * (key_id NULL: any caller's, kept only as "this id was used"). */
static const char SQL_INBOX_GET[] =
    "SELECT key_id, fingerprint, reply FROM inbox WHERE message_id = $1 "
    "AND (caller = $2 OR key_id IS NULL) ORDER BY key_id NULLS FIRST LIMIT 1";
static const char SQL_INBOX_PUT[] =
    "INSERT INTO inbox (message_id, caller, command, key_id, fingerprint, status, reply) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (message_id, caller) DO NOTHING RETURNING 1";

static const char USED[] = "This message_id (or Idempotency-Key) was already used.";

/* Answers from the stored row of message_id for this caller if there is one:
 * its reply when the command is the same, 422 when it is another, 409 when
 * the row cannot be answered from (written before the keys, or under a key
 * no longer in key_dir, or not opening): never a second effect. Returns 1
 * when it answered, 0 when there is no row, -1 on a database failure. */
static int replay_stored(struct runtime *rt, const struct delivery *d, const struct inbox_key *k)
{
    const char *params[] = {d->message_id, k->caller};
    PGresult *r = bk_db_exec(rt->db, SQL_INBOX_GET, 2, params);
    unsigned char *stored_fp = NULL, *box = NULL, *plain = NULL;
    struct bk_secret_key old;
    int rc = -1;
    if (!bk_db_ok(r))
        goto out;
    rc = 0;
    if (PQntuples(r) == 0)
        goto out;
    rc = 1;
    if (PQgetisnull(r, 0, 0)) {
        send_detail(rt, d, 409, USED);
        goto out;
    }
    const char *kid = PQgetvalue(r, 0, 0);
    const struct bk_secret_key *key = &k->key;
    unsigned char fp[BK_SECRET_FP_LEN];
    memcpy(fp, k->fp, sizeof fp);
    if (strcmp(kid, k->key.kid) != 0) { /* written before a rotation */
        if (bk_secret_get(rt->key_dir, BK_SECRET_BY_KID, kid, &old) != 0) {
            bk_log(BK_ERROR, d->request_id, "inbox row under server key %s, which is gone", kid);
            send_detail(rt, d, 409, USED);
            goto out;
        }
        key = &old;
        bk_secret_fingerprint(key, d->command, k->caller, k->args.data, k->args.size, fp);
    }
    size_t fplen = 0, len = 0;
    stored_fp = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &fplen);
    box = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 2), &len);
    if (!stored_fp || fplen != BK_SECRET_FP_LEN || sodium_memcmp(stored_fp, fp, sizeof fp) != 0) {
        send_detail(rt, d, 422,
                    "This message_id (or Idempotency-Key) was already used for another request.");
        goto out;
    }
    plain =
        box && len >= BK_SECRET_SEAL_OVERHEAD ? malloc(len - BK_SECRET_SEAL_OVERHEAD + 1) : NULL;
    if (!plain || bk_secret_open(key, k->context, box, len, plain) != 0) {
        bk_log(BK_ERROR, d->request_id, "inbox reply does not open under key %s", kid);
        send_detail(rt, d, 409, USED);
        goto out;
    }
    send_reply_bytes(rt, d, plain, len - BK_SECRET_SEAL_OVERHEAD);
    sodium_memzero(plain, len - BK_SECRET_SEAL_OVERHEAD);
out:
    free(plain);
    PQfreemem(stored_fp);
    PQfreemem(box);
    sodium_memzero(&old, sizeof old);
    PQclear(r);
    return rc;
}

/* Stores message_id and its reply, sealed, for this caller. Returns 1 when
 * stored, 0 when the row was there already (a concurrent duplicate won), -1
 * on failure. */
static int store_reply(struct runtime *rt, const struct delivery *d, const struct inbox_key *k,
                       int status, const msgpack_sbuffer *reply)
{
    char st[8];
    size_t box_len = reply->size + BK_SECRET_SEAL_OVERHEAD;
    unsigned char *box = malloc(box_len);
    if (!box || box_len > INT_MAX) {
        free(box);
        return -1;
    }
    bk_secret_seal(&k->key, k->context, reply->data, reply->size, box);
    snprintf(st, sizeof st, "%d", status);
    const char *v[] = {d->message_id,       k->caller, d->command,       k->key.kid,
                       (const char *)k->fp, st,        (const char *)box};
    const int len[] = {0, 0, 0, 0, BK_SECRET_FP_LEN, 0, (int)box_len};
    const int fmt[] = {0, 0, 0, 0, 1, 0, 1};
    PGresult *r = bk_db_exec_bin(rt->db, SQL_INBOX_PUT, 7, v, len, fmt);
    int rc = !bk_db_ok(r) ? -1 : PQntuples(r) == 1 ? 1 : 0;
    if (rc < 0)
        bk_log(BK_ERROR, d->request_id, "inbox insert failed: %s",
               r ? PQresultErrorMessage(r) : "connection lost");
    PQclear(r);
    free(box);
    return rc;
}

static void maybe_crash(const struct delivery *d, const char *when)
{
#ifdef BK_TEST_HOOKS
    /* tests make a copy die at a chosen point, once: the redelivery runs */
    if (!d->redelivered && strcmp(d->test_crash, when) == 0) {
        bk_log(BK_WARN, d->request_id, "test hook: SIGKILL %s", when);
        raise(SIGKILL);
    }
#else
    (void)d, (void)when;
#endif
}

/* What became of one attempt at a delivery. */
enum outcome {
    DONE,   /* settled (acked, dead-lettered) and answered */
    FAILED, /* the command failed: unsettled; retried, later, or moved aside */
    OUTAGE, /* the database is unreachable: unsettled; run again when it is back */
};

/* After a failed attempt: an outage when the database connection is gone
 * (costs the command nothing), else a failure of the command itself. */
static enum outcome failure(struct runtime *rt, const char *what, const char *sqlstate)
{
    if (PQstatus(bk_db_conn(rt->db)) != CONNECTION_OK)
        return OUTAGE;
    snprintf(rt->last_error, sizeof rt->last_error, "%s%s%s", what,
             sqlstate && *sqlstate ? ", SQLSTATE " : "", sqlstate ? sqlstate : "");
    return FAILED;
}

/* ---- writes: two round trips ------------------------------------------------
 * A write opens with BEGIN, its caller's check (is_active, is_staff, role:
 * the guess the handler runs with) and the inbox claim, sent in one libpq
 * pipeline with the handler's first statement; it closes with the reply
 * stored in the claimed row, the outbox rows and COMMIT in a second. The
 * claim is the inbox check: an INSERT that finds this caller's row of the
 * message id (or a row from before migration 006) inserts nothing, and the
 * command's work is rolled back and answered from the stored reply. A copy
 * running the same message concurrently waits on the claim until the first
 * commits (then finds its row) or rolls back (then runs it). */

static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_INBOX_CLAIM[] =
    "INSERT INTO inbox (message_id, caller, command, key_id, fingerprint, status, reply) "
    "SELECT $1::uuid, $2::text, $3::text, $4::text, $5::bytea, 0, '\\x'::bytea "
    "WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE message_id = $1::uuid AND key_id IS NULL) "
    "ON CONFLICT (message_id, caller) DO NOTHING RETURNING 1";
static const char SQL_INBOX_FILL[] =
    "UPDATE inbox SET status = $3, reply = $4 WHERE message_id = $1 AND caller = $2";

/* Sends the write's opening statements, with the handler's statement s when
 * there is one, and returns s's result (NULL when the call cannot go on:
 * see failed, used, actor_fail). */
static PGresult *write_open_send(struct bk_call *c, const struct bk_db_stmt *s)
{
    struct write_open *w = c->st->open;
    struct bk_db_stmt st[4];
    PGresult *res[4];
    int n = 0, actor = -1, claim, mine = -1;
    w->sent = true;
    st[n++] = (struct bk_db_stmt){SQL_BEGIN, 0, NULL, NULL, NULL};
    const char *who[] = {c->actor.id};
    if (c->st->actor_pending) {
        actor = n;
        st[n++] = (struct bk_db_stmt){SQL_ACTOR, 1, who, NULL, NULL};
    }
    const char *v[] = {w->d->message_id, w->k->caller, w->d->command, w->k->key.kid,
                       (const char *)w->k->fp};
    static const int len[] = {0, 0, 0, 0, BK_SECRET_FP_LEN}, fmt[] = {0, 0, 0, 0, 1};
    claim = n;
    st[n++] = (struct bk_db_stmt){SQL_INBOX_CLAIM, 5, v, len, fmt};
    if (s) {
        mine = n;
        st[n++] = *s;
    }
    if (bk_db_pipeline(c->db, n, st, res) != 0) {
        w->failed = true;
        return NULL;
    }
    w->failed = !bk_db_ok(res[0]) || !bk_db_ok(res[claim]);
    w->used = bk_db_ok(res[claim]) && PQntuples(res[claim]) == 0;
    if (actor >= 0) {
        struct bk_actor fresh = c->actor;
        int a = actor_row(res[actor], &fresh);
        res[actor] = NULL;
        c->st->actor_pending = false;
        if (a < 0)
            w->failed = true;
        else
            c->st->actor_fail = a ? a : actor_compare(c, &fresh);
    }
    PGresult *out = NULL;
    if (mine >= 0) {
        out = res[mine];
        res[mine] = NULL;
    }
    for (int i = 0; i < n; i++)
        PQclear(res[i]);
    if (w->failed || w->used || c->st->actor_fail) {
        PQclear(out);
        return NULL;
    }
    return out;
}

/* Stores the reply in the claimed row, the events in the outbox, and
 * commits, in one round trip. 0 or -1 (nothing committed). */
static int write_close(struct runtime *rt, const struct delivery *d, const struct inbox_key *k,
                       struct bk_call *c, int status, const msgpack_sbuffer *reply)
{
    size_t n_ev = c->st->events ? json_array_size(c->st->events) : 0;
    size_t box_len = reply->size + BK_SECRET_SEAL_OVERHEAD;
    struct bk_outbox_row *rows = n_ev ? calloc(n_ev, sizeof *rows) : NULL;
    struct bk_db_stmt st[BK_DB_PIPELINE_MAX];
    PGresult *res[BK_DB_PIPELINE_MAX] = {NULL};
    unsigned char *box = malloc(box_len);
    int rc = -1, n = 0;
    size_t built = 0;
    if (!box || box_len > INT_MAX || (n_ev && !rows) || n_ev + 2 > BK_DB_PIPELINE_MAX)
        goto out;
    bk_secret_seal(&k->key, k->context, reply->data, reply->size, box);
    char stat[8];
    snprintf(stat, sizeof stat, "%d", status);
    const char *v[] = {d->message_id, k->caller, stat, (const char *)box};
    const int len[] = {0, 0, 0, (int)box_len}, fmt[] = {0, 0, 0, 1};
    st[n++] = (struct bk_db_stmt){SQL_INBOX_FILL, 4, v, len, fmt};
    for (; built < n_ev; built++)
        if (bk_outbox_row(json_array_get(c->st->events, built), &rows[built], &st[n++]) != 0) {
            built++;
            goto out;
        }
    st[n++] = (struct bk_db_stmt){SQL_COMMIT, 0, NULL, NULL, NULL};
    if (bk_db_pipeline(rt->db, n, st, res) != 0)
        goto out;
    rc = 0;
    for (int i = 0; i < n; i++)
        if (!bk_db_ok(res[i])) {
            snprintf(c->st->sqlstate, sizeof c->st->sqlstate, "%s", bk_db_state(res[i]));
            if (PQresultStatus(res[i]) != PGRES_PIPELINE_ABORTED)
                bk_log(BK_ERROR, d->request_id, "closing the transaction failed: %s",
                       PQresultErrorMessage(res[i]));
            rc = -1;
        }
    if (rc == 0 && strcmp(PQcmdTuples(res[0]), "1") != 0) {
        bk_log(BK_ERROR, d->request_id, "the inbox claim is gone");
        rc = -1;
    }
out:
    for (int i = 0; i < n; i++)
        PQclear(res[i]);
    for (size_t i = 0; i < built; i++)
        bk_outbox_row_free(&rows[i]);
    free(rows);
    free(box);
    return rc;
}

/* Runs a write command: inbox, transaction, outbox. On DONE the reply is
 * sent and the delivery acked; otherwise nothing is settled. */
static enum outcome run_write(struct runtime *rt, const struct delivery *d,
                              const struct bk_command *cmd, struct bk_call *c)
{
    struct inbox_key k;
    struct write_open w = {0};
    enum outcome result = DONE;
    const char *what = "the inbox";
    msgpack_sbuffer reply;
    msgpack_sbuffer_init(&reply);
    if (inbox_key_init(rt, d, c, &k) != 0)
        goto retry;

    int rc;
    for (int attempt = 0;; attempt++) {
        w = (struct write_open){.d = d, .k = &k};
        c->st->open = &w;
        bk_call_validate(c);
        rc = cmd->handler(c);
        c->st->open = NULL;
        what = "the handler failed";
        /* a handler that ran no statement has not checked its caller yet */
        if (!w.sent && c->st->actor_pending && actor_confirm(c) != 0)
            goto rollback;
        if (!c->st->actor_fail)
            break;
        /* the work is void: its caller is gone, inactive, or not what it
         * ran as (then it runs again, as what the database says, once) */
        if (w.sent)
            bk_db_simple(rt->db, "ROLLBACK");
        int fail = c->st->actor_fail;
        struct token_entry *t = c->st->token;
        call_state_free(c->st);
        c->st->token = t;
        if (fail != ACTOR_CHANGED) {
            send_actor_refusal(rt, d, fail);
            c->st->status = 401;
            ack(rt, d);
            goto out;
        }
        int a = attempt == 0 ? actor_settle(rt, d, cmd, c) : -1;
        if (a < 0) {
            what = "reading the caller";
            goto retry;
        }
        if (a > 0) {
            c->st->status = a;
            ack(rt, d);
            goto out;
        }
    }
    if (w.failed) {
        what = "opening the transaction";
        goto rollback;
    }
    if (w.used) {
        bk_db_simple(rt->db, "ROLLBACK");
        if (replay_stored(rt, d, &k) <= 0)
            goto retry;
        ack(rt, d);
        goto out;
    }
    if (rc != 0 || !c->st->replied || c->st->status >= 500)
        goto rollback;
    what = "storing the outcome";
    if (pack_reply(&reply, c->st->status, c->st->body, c->st->headers, c->st->blob, c->st->blob_len,
                   &c->actor) != 0)
        goto rollback;
    if (c->st->status >= 400 && !c->st->commit_anyway) {
        /* a refusal has no effect: drop whatever the handler did, but keep
         * the answer so a repeat gets the same one */
        if (w.sent)
            bk_db_simple(rt->db, "ROLLBACK");
        int put = store_reply(rt, d, &k, c->st->status, &reply);
        if (put < 0)
            goto retry;
        if (put == 0) {
            /* a concurrent copy of this message committed first: the
             * caller gets the first reply */
            if (replay_stored(rt, d, &k) < 0)
                goto retry;
            ack(rt, d);
            goto out;
        }
    } else {
        if (!w.sent) { /* a handler that succeeded without a statement */
            c->st->open = &w;
            write_open_send(c, NULL);
            c->st->open = NULL;
            if (w.failed || c->st->actor_fail)
                goto rollback;
            if (w.used) {
                bk_db_simple(rt->db, "ROLLBACK");
                if (replay_stored(rt, d, &k) <= 0)
                    goto retry;
                ack(rt, d);
                goto out;
            }
        }
        if (write_close(rt, d, &k, c, c->st->status, &reply) != 0)
            goto rollback;
        if (c->st->events)
            bk_outbox_wake(rt->outbox);
    }
    maybe_crash(d, "after-commit");
    send_reply_bytes(rt, d, reply.data, reply.size);
    ack(rt, d);
    goto out;
rollback:
    if (w.sent)
        bk_db_simple(rt->db, "ROLLBACK");
retry:
    result = failure(rt, what, c->st->sqlstate);
    bk_log(BK_WARN, d->request_id, "%s failed (%s): %s", d->command,
           result == OUTAGE ? "database unreachable" : rt->last_error,
           result == OUTAGE ? "held until it is back" : "will be retried");
out:
    inbox_key_free(&k);
    msgpack_sbuffer_destroy(&reply);
    return result;
}

static enum outcome run_read(struct runtime *rt, const struct delivery *d,
                             const struct bk_command *cmd, struct bk_call *c)
{
#ifdef BK_TEST_HOOKS
    /* tests: a read that kills every copy it reaches (a poison read) */
    if (strcmp(d->test_crash, "every-read") == 0) {
        bk_log(BK_WARN, d->request_id, "test hook: SIGKILL every-read");
        raise(SIGKILL);
    }
#endif
    bk_call_validate(c);
    int rc = cmd->handler(c);
    /* a handler that ran no statement (a 400, a 404 of a malformed id) has
     * not checked its caller yet */
    if (c->st->actor_pending && actor_confirm(c) != 0)
        return failure(rt, "reading the caller", c->st->sqlstate);
    if (c->st->actor_fail) {
        /* the handler's work is void: its caller is gone, inactive, or not
         * what it ran as (then it runs again, as what the database says) */
        int fail = c->st->actor_fail;
        struct token_entry *t = c->st->token;
        call_state_free(c->st);
        c->st->token = t;
        int a = fail == ACTOR_CHANGED ? actor_settle(rt, d, cmd, c)
                                      : (send_actor_refusal(rt, d, fail), 401);
        if (a < 0)
            return failure(rt, "reading the caller", c->st->sqlstate);
        if (a > 0) {
            ack(rt, d);
            c->st->status = a;
            return DONE;
        }
        bk_call_validate(c);
        rc = cmd->handler(c);
    }
    if (rc != 0 || !c->st->replied || c->st->status >= 500)
        return failure(rt, "the handler failed", c->st->sqlstate);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (pack_reply(&sb, c->st->status, c->st->body, c->st->headers, c->st->blob, c->st->blob_len,
                   &c->actor) == 0)
        send_reply_bytes(rt, d, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ack(rt, d);
    return DONE;
}

/* "<worker>.health" is built in: the bridge's health check travels the path
 * of a real command and reports whether this worker reaches the database. */
static bool is_health(const struct runtime *rt, const char *command)
{
    size_t n = strlen(rt->name);
    return strncmp(command, rt->name, n) == 0 && strcmp(command + n, ".health") == 0;
}

static void answer_health(struct runtime *rt, const struct delivery *d)
{
    bool connected = bk_db_ensure(rt->db) == 0;
    PGresult *r = connected ? bk_db_exec(rt->db, "SELECT 1", 0, NULL) : NULL;
    bool ok = bk_db_ok(r);
    PQclear(r);
    /* a short reason, not libpq's message: the health route is public */
    const char *database = ok          ? "ok"
                           : connected ? "unavailable: SELECT 1 failed"
                                       : "unavailable: cannot connect";
    send_reply(rt, d, ok ? 200 : 503,
               json_pack("{s:s, s:s}", "worker", rt->name, "database", database));
}

/* A read the classic queue delivered again: the copy that held it died (or
 * its connection broke) before acking. A classic queue counts no deliveries,
 * so a read that kills its copy would otherwise come back forever: it is not
 * run again but acked and answered 503 with "retry": true, which tells the
 * bridge (and any caller) to publish it afresh, once. A read is thus run at
 * most once per publish; it has no effect to lose. */
static void drop_redelivered_read(struct runtime *rt, const struct delivery *d)
{
    bk_log(BK_WARN, d->request_id, "%s: read delivered again (its copy died?): not run, 503",
           d->command);
    ack(rt, d);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    json_t *body =
        json_pack("{s:s}", "detail", "Service temporarily unavailable, try again later.");
    json_t *headers = json_pack("{s:s}", "Retry-After", bk_config_str("http_retry_after_s"));
    if (body && headers && pack_reply(&sb, 503, body, headers, NULL, 0, NULL) == 0) {
        /* one more key in the reply's map: "retry": true */
        sb.data[0] = (char)((unsigned char)sb.data[0] + 1); /* fixmap of 3 -> 4 entries */
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_str_with_body(&pk, "retry", 5);
        msgpack_pack_true(&pk);
        send_reply_bytes(rt, d, sb.data, sb.size);
    }
    json_decref(body);
    json_decref(headers);
    msgpack_sbuffer_destroy(&sb);
}

/* One attempt at a delivery. Refusals (malformed, unknown, expired, too many
 * deliveries) are settled here; a failure or an outage is left unsettled for
 * handle() to decide. */
static enum outcome process(struct runtime *rt, const amqp_envelope_t *env)
{
    enum outcome result = DONE;
    struct delivery d;
    read_delivery(env, &d);
    default_request_id(&d);
    const char *cid = d.request_id;
    int64_t t0 = bk_mono_us();
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);

    if (d.reply_to_bad) {
        /* nobody can be told the outcome, and the name may be one the broker
         * chokes on: refused unrun (no effect), as a malformed command is */
        bk_log(BK_WARN, cid, "%s: reply_to is not a queue name or direct reply-to: dead-lettered",
               d.command);
        dead_letter(rt, &d);
        goto out;
    }
    /* From here every refusal settles the delivery before it replies, so even
     * a reply that broke a connection could not bring the command back. */
    if (d.from_reads && d.redelivered) {
        drop_redelivered_read(rt, &d);
        goto out;
    }
    if (d.delivery_count >= rt->max_deliveries) {
        bk_log(BK_ERROR, cid, "%s failed %lld deliveries: dead-lettered", d.command,
               (long long)d.delivery_count);
        dead_letter(rt, &d);
        send_detail(rt, &d, 500, "A server error occurred.");
        goto out;
    }
    if (d.expiration_ms >= 0 && d.sent_at_ms > 0 && bk_now_ms() > d.sent_at_ms + d.expiration_ms) {
        bk_log(BK_INFO, cid, "%s expired before it could run: dead-lettered", d.command);
        dead_letter(rt, &d);
        goto out;
    }
    const char *why = NULL;
    char whybuf[160];
    const struct bk_command *cmd = NULL;
    char client_key[200];
    trust_headers(&d, client_key, sizeof client_key);
    if (!d.user_id[0]) {
        /* who published decides which headers count; without it, nothing does */
        why = "the user_id property is missing";
    } else if (bk_codec_unpack(d.body.bytes, d.body.len, &msg, &why) != 0) {
        /* why is set */
    } else if (msg.data.type != MSGPACK_OBJECT_MAP) {
        why = "the body is not a map";
    } else if (!bk_codec_get(&msg.data, "v") ||
               bk_codec_get(&msg.data, "v")->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
               bk_codec_get(&msg.data, "v")->via.u64 != 1) {
        why = "\"v\" must be 1";
    } else if (bk_codec_get(&msg.data, "auth") &&
               bk_codec_get(&msg.data, "auth")->type != MSGPACK_OBJECT_NIL &&
               bk_codec_get(&msg.data, "auth")->type != MSGPACK_OBJECT_STR) {
        why = "\"auth\" must be a string or nil";
    } else if (!bk_codec_get(&msg.data, "args") ||
               bk_codec_get(&msg.data, "args")->type != MSGPACK_OBJECT_MAP) {
        why = "\"args\" must be a map";
    } else if (!bk_uuid_valid(d.message_id, strlen(d.message_id))) {
        why = "message_id must be a UUID";
    } else {
        for (const struct bk_command *k = rt->commands; k->name; k++)
            if (strcmp(k->name, d.command) == 0)
                cmd = k;
        if (!cmd && is_health(rt, d.command)) {
            answer_health(rt, &d);
            ack(rt, &d);
            goto out;
        }
        if (!cmd) {
            snprintf(whybuf, sizeof whybuf, "Unknown command \"%.100s\".", d.command);
            bk_log(BK_WARN, cid, "%s", whybuf);
            dead_letter(rt, &d);
            send_detail(rt, &d, 400, whybuf);
            goto out;
        }
    }
    if (why) {
        snprintf(whybuf, sizeof whybuf, "Malformed command: %s.", why);
        bk_log(BK_WARN, cid, "%s (%s): dead-lettered", whybuf, d.command);
        dead_letter(rt, &d);
        send_detail(rt, &d, 400, whybuf);
        goto out;
    }

    if (bk_db_ensure(rt->db) != 0) {
        result = OUTAGE;
        goto out;
    }
    struct bk_call_state st = {0};
    struct bk_call c = {
        .command = cmd->name,
        .message_id = d.message_id,
        .correlation_id = d.correlation_id,
        .request_id = d.request_id,
        .client_ip = d.client_ip,
        .client_key = client_key,
        .publisher = d.user_id,
        .request_target = d.request_target,
        .public_base = rt->public_base,
        .args = bk_codec_get(&msg.data, "args"),
        .db = rt->db,
        .st = &st,
    };
    int a = authenticate(rt, &d, cmd, bk_codec_get(&msg.data, "auth"), &c);
    if (a < 0)
        result = failure(rt, "reading the caller", st.sqlstate);
    else if (a > 0)
        ack(rt, &d);
    else if (cmd->flags & BK_READ)
        result = run_read(rt, &d, cmd, &c);
    else
        result = run_write(rt, &d, cmd, &c);
    if (result != DONE) {
        call_state_free(&st);
        goto out;
    }
    /* one line per command: with the bridge's access line, one grep of the
     * request id shows the whole path */
    const struct bk_log_field f[] = {
        BK_LOG_STR("command", d.command),
        BK_LOG_NUM("status", a > 0 ? a : st.status), /* a refusal is sent by authenticate */
        BK_LOG_NUM("duration_ms", (double)(bk_mono_us() - t0) / 1000.0),
        BK_LOG_STR("message_id", d.message_id),
        BK_LOG_STR("service", c.actor.service),
        c.actor.user_id > 0 ? (struct bk_log_field)BK_LOG_NUM("user_id", c.actor.user_id)
                            : (struct bk_log_field)BK_LOG_STR("user_id", ""),
    };
    bk_log_fields(BK_INFO, cid, "command", f, (int)(sizeof f / sizeof f[0]));
    call_state_free(&st);
out:
    msgpack_unpacked_destroy(&msg);
    return result;
}

/* ---- failures: outages wait, failures retry later, then move aside -------- */

/* Attempts right away before a delayed retry (a serialization failure or a
 * deadlock usually passes at once). */
#define IMMEDIATE_ATTEMPTS 3
/* Delayed retries: each tier is a queue whose TTL dead-letters the command
 * back to backend.commands (see bk_amqp_declare_topology). */
static const char *const RETRY_TIERS[] = {"1s", "5s", "30s"};
#define N_TIERS ((int64_t)(sizeof RETRY_TIERS / sizeof RETRY_TIERS[0]))
/* A held command's caller gets 503 this long before its own deadline, so the
 * answer arrives before the bridge gives up (and the command never runs). */
#define EXPIRY_MARGIN_MS 500

/* 503 + Retry-After: the service cannot run it now; nothing was done. */
static void send_unavailable(struct runtime *rt, const struct delivery *d)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    json_t *body =
        json_pack("{s:s}", "detail", "Service temporarily unavailable, try again later.");
    /* the same Retry-After as the bridge's own 503s */
    json_t *headers = json_pack("{s:s}", "Retry-After", bk_config_str("http_retry_after_s"));
    if (body && headers && pack_reply(&sb, 503, body, headers, NULL, 0, NULL) == 0)
        send_reply_bytes(rt, d, sb.data, sb.size);
    json_decref(body);
    json_decref(headers);
    msgpack_sbuffer_destroy(&sb);
}

/* A held delivery whose caller is about to give up: answered 503 and moved
 * to backend.dead unrun (like an expired command). True when it was. */
static bool give_up_if_due(struct runtime *rt, const amqp_envelope_t *env)
{
    struct delivery d;
    read_delivery(env, &d);
    default_request_id(&d);
    if (d.expiration_ms < 0 || d.sent_at_ms <= 0 ||
        bk_now_ms() < d.sent_at_ms + d.expiration_ms - EXPIRY_MARGIN_MS)
        return false;
    bk_log(BK_WARN, d.request_id, "%s: the database is still away at its caller's deadline: 503",
           d.command);
    dead_letter(rt, &d);
    send_unavailable(rt, &d);
    return true;
}

static void held_drop_all(struct runtime *rt)
{
    for (size_t i = 0; i < rt->n_held; i++)
        amqp_destroy_envelope(&rt->held[i]);
    rt->n_held = 0;
}

enum wait_result { DB_BACK, SETTLED, LOST, STOPPING };

/* The database is unreachable: keep what we hold unsettled, take no new work
 * beyond the prefetch (deliveries the broker pushes are held in order),
 * answer held commands whose callers give up, and return when the database
 * is back. Waiting inside amqp_consume_message keeps the AMQP heartbeats. */
static enum wait_result wait_for_database(struct runtime *rt, const amqp_envelope_t *current)
{
    int backoff = 100;
    int64_t since = bk_mono_ms();
    bk_log(BK_WARN, NULL, "database unreachable: pausing, commands held unsettled");
    for (;;) {
        if (stopping)
            return STOPPING;
        if (bk_db_ensure(rt->db) == 0) {
            bk_log(BK_INFO, NULL, "database back after %lld ms: resuming",
                   (long long)(bk_mono_ms() - since));
            return DB_BACK;
        }
        if (give_up_if_due(rt, current))
            return SETTLED;
        size_t kept = 0;
        for (size_t i = 0; i < rt->n_held; i++) {
            if (give_up_if_due(rt, &rt->held[i]))
                amqp_destroy_envelope(&rt->held[i]);
            else
                rt->held[kept++] = rt->held[i];
        }
        rt->n_held = kept;
        flush_acks(rt);
        /* wait (the backoff) for what the broker pushes meanwhile */
        amqp_envelope_t env;
        struct timeval tv = {backoff / 1000, (backoff % 1000) * 1000};
        enum bk_amqp_next next = bk_amqp_next_delivery(rt->amqp, &env, &tv);
        if (next == BK_AMQP_DELIVERY) {
            char key[128];
            bk_amqp_cstr(env.routing_key, key, sizeof key);
            if (is_health(rt, key)) { /* answered now: "database unavailable" */
                process(rt, &env);
                amqp_destroy_envelope(&env);
                continue;
            }
            if (rt->n_held == rt->cap_held) {
                size_t cap = rt->cap_held ? rt->cap_held * 2 : 16;
                amqp_envelope_t *n = realloc(rt->held, cap * sizeof *n);
                if (!n) { /* cannot hold it: back to the queue (counted) */
                    amqp_basic_nack(rt->amqp, 1, env.delivery_tag, 0, 1);
                    amqp_destroy_envelope(&env);
                    continue;
                }
                rt->held = n;
                rt->cap_held = cap;
            }
            rt->held[rt->n_held++] = env;
        } else if (next == BK_AMQP_LOST) {
            return LOST; /* the broker requeues what the channel held */
        }
        /* short steps: a held caller's deadline must not be missed by more
         * than this (reconnecting to a refusing database is cheap) */
        backoff = backoff * 2 > 250 ? 250 : backoff * 2;
    }
}

/* Channel 2 of the reply connection, in confirm mode, for republishing. */
static amqp_connection_state_t retry_channel(struct runtime *rt)
{
    amqp_connection_state_t conn = reply_conn(rt);
    if (!conn) {
        rt->retry_ch_open = false;
        return NULL;
    }
    if (rt->retry_ch_open)
        return conn;
    amqp_channel_open(conn, 2);
    if (bk_amqp_check(amqp_get_rpc_reply(conn), "channel.open (retries)") != 0)
        return NULL;
    amqp_confirm_select(conn, 2);
    if (bk_amqp_check(amqp_get_rpc_reply(conn), "confirm.select (retries)") != 0)
        return NULL;
    rt->retry_ch_open = true;
    rt->retry_tag = 0;
    return conn;
}

static amqp_table_entry_t header_str(const char *key, const char *value)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(key)};
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

static amqp_table_entry_t header_int(const char *key, int64_t value)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(key)};
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = value;
    return e;
}

#define MAX_COPIED_HEADERS 32

/* Publishes a copy of the delivery to exchange (a retry tier, or the dead
 * letters) with why it failed, and waits for the broker's confirm. The copy
 * keeps message_id, reply_to, expiration and the request's headers; it is
 * published as us, with the original publisher in x-bk-publisher. 0 or -1. */
static int republish(struct runtime *rt, const amqp_envelope_t *env, const struct delivery *d,
                     const char *exchange, const char *tier)
{
    amqp_connection_state_t conn = retry_channel(rt);
    if (!conn)
        return -1;
    amqp_basic_properties_t p = env->message.properties;
    amqp_table_entry_t h[MAX_COPIED_HEADERS + 8];
    int n = 0;
    if (p._flags & AMQP_BASIC_HEADERS_FLAG)
        for (int i = 0; i < p.headers.num_entries && n < MAX_COPIED_HEADERS; i++) {
            amqp_bytes_t k = p.headers.entries[i].key;
            /* ours are written anew; the broker's bookkeeping starts afresh */
            if ((k.len >= 5 && memcmp(k.bytes, "x-bk-", 5) == 0) ||
                (k.len >= 8 && memcmp(k.bytes, "x-death", 7) == 0) ||
                (k.len == 16 && memcmp(k.bytes, "x-delivery-count", 16) == 0) ||
                (k.len > 8 && memcmp(k.bytes, "x-first-", 8) == 0) ||
                (k.len > 7 && memcmp(k.bytes, "x-last-", 7) == 0))
                continue;
            h[n++] = p.headers.entries[i];
        }
    int64_t now = bk_now_ms();
    h[n++] = header_int("x-bk-attempts", d->attempts + IMMEDIATE_ATTEMPTS);
    h[n++] = header_int("x-bk-delays", d->delays + (tier ? 1 : 0));
    h[n++] = header_int("x-bk-first-failure", d->first_failure_ms ? d->first_failure_ms : now);
    h[n++] = header_int("x-bk-last-failure", now);
    h[n++] = header_str("x-bk-last-error", rt->last_error);
    h[n++] = header_str("x-bk-publisher", d->user_id);
    if (tier)
        h[n++] = header_str("x-bk-retry-tier", tier);
    p.headers.entries = h;
    p.headers.num_entries = n;
    p._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_USER_ID_FLAG;
    p.user_id = amqp_cstring_bytes(bk_amqp_user(BK_AMQP_PROCESS));
    if (amqp_basic_publish(conn, 2, amqp_cstring_bytes(exchange), env->routing_key, 0, 0, &p,
                           env->message.body) != AMQP_STATUS_OK ||
        bk_amqp_wait_confirms(conn, 2, ++rt->retry_tag, 5000) != 0) {
        rt->retry_ch_open = false;
        bk_amqp_close(rt->reply_amqp);
        rt->reply_amqp = NULL;
        return -1;
    }
    return 0;
}

/* The command failed IMMEDIATE_ATTEMPTS times in a row: a delayed retry on
 * the next tier, or after the last one backend.dead with the reason; then
 * the delivery is acked. If the broker takes neither copy, the delivery goes
 * back to its queue as before (counted towards max_deliveries). */
static void retry_later(struct runtime *rt, const amqp_envelope_t *env)
{
    struct delivery d;
    read_delivery(env, &d);
    default_request_id(&d);
    if (d.delays < N_TIERS) {
        const char *tier = RETRY_TIERS[d.delays];
        if (republish(rt, env, &d, BK_EX_RETRY, tier) == 0) {
            bk_log(BK_WARN, d.request_id, "%s failed %lld times (%s): retried in %s", d.command,
                   (long long)(d.attempts + IMMEDIATE_ATTEMPTS), rt->last_error, tier);
            ack(rt, &d);
            return;
        }
    } else if (republish(rt, env, &d, BK_EX_DLX, NULL) == 0) {
        bk_log(BK_ERROR, d.request_id, "%s failed %lld times (%s): dead-lettered", d.command,
               (long long)(d.attempts + IMMEDIATE_ATTEMPTS), rt->last_error);
        ack(rt, &d);
        send_detail(rt, &d, 500, "A server error occurred.");
        return;
    }
    bk_log(BK_WARN, d.request_id, "%s: cannot republish for a later retry: requeued", d.command);
    requeue(rt, &d);
}

/* One delivery to its end: an outage waits (uncounted), a failure is tried
 * again at once a few times, then later. */
static void handle(struct runtime *rt, const amqp_envelope_t *env)
{
    for (int failures = 0;;) {
        enum outcome o;
#ifdef BK_TEST_HOOKS
        /* tests make a command fail its first N attempts, to see the retries */
        struct delivery t;
        read_delivery(env, &t);
        if (t.test_fail > t.attempts + failures) {
            snprintf(rt->last_error, sizeof rt->last_error, "test hook: x-test-fail");
            o = FAILED;
        } else
#endif
            o = process(rt, env);
        if (o == DONE)
            return;
        if (o == OUTAGE) {
            enum wait_result w = wait_for_database(rt, env);
            if (w == DB_BACK)
                continue;
            if (w == LOST) {
                bk_log(BK_WARN, NULL, "broker connection lost while the database was away");
                amqp_destroy_connection(rt->amqp);
                rt->amqp = NULL;
                rt->ack_upto = 0;
                held_drop_all(rt);
            }
            return; /* SETTLED, or STOPPING: the broker requeues it */
        }
        if (++failures < IMMEDIATE_ATTEMPTS) {
            usleep((useconds_t)(50000 * failures));
            continue;
        }
        retry_later(rt, env);
        return;
    }
}

/* After a channel error (the broker closed channel 1): acknowledge the close
 * and open the channel again. 0 or -1. */
static int channel_reopen(amqp_connection_state_t c)
{
    amqp_channel_close_ok_t ok = {0};
    if (amqp_send_method(c, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != 0)
        return -1;
    amqp_channel_open(c, 1);
    return bk_amqp_check(amqp_get_rpc_reply(c), "channel.open");
}

static int consume(struct runtime *rt, const char *queue, const char *tag)
{
    amqp_basic_consume(rt->amqp, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag), 0, 0, 0,
                       amqp_empty_table);
    if (bk_amqp_check(amqp_get_rpc_reply(rt->amqp), "basic.consume") != 0) {
        bk_log(BK_ERROR, NULL,
               "cannot consume %s as \"%s\": does the queue exist (backendctl broker-setup) "
               "and may this identity read it?",
               queue, bk_amqp_user(BK_AMQP_PROCESS));
        return -1;
    }
    return 0;
}

/* Connects and starts consuming the worker queue (quorum: the writes, and
 * the reads while <name>.reads is missing) and <name>.reads, which it
 * declares and binds first: the queue is gone when its node dies, and the
 * next connect of any copy brings it back. Both consumers share channel 1,
 * so the prefetch (per consumer), the batched acks and every check of a
 * delivery are the same for both. Without <name>.reads (an identity that
 * may not declare it) the copy serves everything from the worker queue,
 * where the reads then arrive. 0 or -1. */
static int consumer_open(struct runtime *rt, const char *queue)
{
    char name[64], reads[64];
    snprintf(name, sizeof name, "%s-worker-%d", rt->name, (int)getpid());
    snprintf(reads, sizeof reads, "%s.reads", rt->name);
    rt->amqp = bk_amqp_connect(name, 30); /* the consume loop wakes every second */
    if (!rt->amqp)
        return -1;
    rt->reads_consumed = false;
    bool have_reads = rt->reads[0] != NULL;
    if (have_reads && bk_amqp_declare_reads(rt->amqp, 1, rt->name, rt->reads) != 0) {
        bk_log(BK_WARN, NULL, "%s unavailable: reads are served from %s", reads, queue);
        have_reads = false;
        if (channel_reopen(rt->amqp) != 0)
            goto fail;
    }
    amqp_basic_qos(rt->amqp, 1, 0, (uint16_t)bk_config_long("amqp_prefetch"), 0);
    if (bk_amqp_check(amqp_get_rpc_reply(rt->amqp), "basic.qos") != 0)
        goto fail;
    if (consume(rt, queue, WRITES_TAG) != 0)
        goto fail;
    if (have_reads) {
        if (consume(rt, reads, READS_TAG) != 0)
            goto fail;
        rt->reads_consumed = true;
    }
    return 0;
fail:
    bk_amqp_close(rt->amqp);
    rt->amqp = NULL;
    return -1;
}

static int run_copy(const char *name, const struct bk_command *commands, int (*init)(void))
{
    struct runtime rt = {
        .name = name,
        .commands = commands,
        .key_dir = bk_config_str("key_dir"),
        .max_deliveries = bk_config_long("max_deliveries"),
    };
    char queue[64];
    snprintf(queue, sizeof queue, "%s.commands", name);
    int status = 1;

    /* config.c checked its form (http(s), no trailing slash); the length is ours */
    const char *base = bk_config_str("public_base_url");
    if (strlen(base) >= sizeof rt.public_base) {
        bk_log(BK_ERROR, NULL, "config: public_base_url: longer than %zu bytes",
               sizeof rt.public_base - 1);
        return 1;
    }
    snprintf(rt.public_base, sizeof rt.public_base, "%s", base);
    if (init && init() != 0)
        return 1;
    /* every write seals its stored reply: without the server key, refuse to start */
    struct bk_secret_key key;
    int have_key = bk_secret_get(rt.key_dir, BK_SECRET_CURRENT, NULL, &key);
    sodium_memzero(&key, sizeof key);
    if (have_key != 0)
        return 1;
    rt.db = bk_db_open(30000);
    if (!rt.db)
        return 1;
    rt.outbox = bk_outbox_start(name);
    if (!rt.outbox)
        goto out;

    size_t n_cmds = 0, n_reads = 0;
    while (commands[n_cmds].name)
        n_cmds++;
    rt.reads = calloc(n_cmds + 1, sizeof *rt.reads);
    if (!rt.reads)
        goto out;
    for (size_t i = 0; i < n_cmds; i++)
        if (commands[i].flags & BK_READ)
            rt.reads[n_reads++] = commands[i].name;

    int backoff = 100;
    /* copies start their housekeeping at different times */
    int64_t next_housekeeping = bk_mono_ms() + (int64_t)randombytes_uniform(60000);
    while (!stopping) {
        if (housekeeping && bk_mono_ms() >= next_housekeeping) {
            if (bk_db_ensure(rt.db) != 0 || housekeeping(rt.db) != 0)
                bk_log(BK_WARN, NULL, "housekeeping failed, will try again");
            next_housekeeping = bk_mono_ms() + (int64_t)housekeeping_interval_s * 1000;
        }
        if (!rt.amqp) {
            if (consumer_open(&rt, queue) != 0) {
                usleep((useconds_t)backoff * 1000);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            backoff = 100;
            if (rt.reads_consumed)
                bk_log(BK_INFO, NULL, "consuming %s and %s.reads", queue, name);
            else
                bk_log(BK_INFO, NULL, "consuming %s", queue);
        }
        amqp_envelope_t env;
        if (rt.n_held > 0) { /* taken while the database was away: oldest first */
            env = rt.held[0];
            memmove(rt.held, rt.held + 1, --rt.n_held * sizeof *rt.held);
            handle(&rt, &env);
            amqp_destroy_envelope(&env);
            continue;
        }
        struct timeval tv = {1, 0};
        if (!amqp_data_in_buffer(rt.amqp) && !amqp_frames_enqueued(rt.amqp))
            flush_acks(&rt); /* about to wait: settle what is done */
        enum bk_amqp_next next = bk_amqp_next_delivery(rt.amqp, &env, &tv);
        if (next == BK_AMQP_DELIVERY) {
            handle(&rt, &env);
            amqp_destroy_envelope(&env);
            continue;
        }
        if (next == BK_AMQP_IDLE)
            continue;
        bk_log(BK_WARN, NULL, "broker connection lost, reconnecting");
        amqp_destroy_connection(rt.amqp);
        rt.amqp = NULL;
        rt.ack_upto = 0; /* the broker requeues what the lost channel held */
    }
    flush_acks(&rt);
    status = 0;
out:
    held_drop_all(&rt);
    free(rt.held);
    free(rt.reads);
    bk_outbox_stop(rt.outbox);
    bk_amqp_close(rt.amqp);
    bk_amqp_close(rt.reply_amqp);
    bk_db_close(rt.db);
    return status;
}

/* ---- supervisor ----------------------------------------------------------- */

#define MAX_COPIES 32

static pid_t spawn(const char *name, const struct bk_command *commands, int (*init)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        int rc = run_copy(name, commands, init);
        bk_log(BK_INFO, NULL, "copy exits (%d)", rc);
        _exit(rc);
    }
    return pid;
}

int bk_worker_main(const char *name, const struct bk_command *commands, int (*init)(void), int argc,
                   char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--read-commands") == 0) {
        /* the read commands, one a line: scripts/lib.sh grants this worker's
         * identity the binding of exactly these to <name>.reads */
        for (const struct bk_command *cmd = commands; cmd->name; cmd++)
            if (cmd->flags & BK_READ)
                printf("%s\n", cmd->name);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (bk_config_load(NULL) != 0)
        return 2;
    bk_log_init(name);
    if (sodium_init() < 0)
        return 2;
    /* a command without a declaration would run unvalidated and undocumented */
    for (const struct bk_command *cmd = commands; cmd->name; cmd++)
        if (!bk_contract_command(cmd->name)) {
            bk_log(BK_ERROR, NULL, "%s is not declared in shared/contract.c", cmd->name);
            return 2;
        }
    char key[64];
    snprintf(key, sizeof key, "%s_copies", name);
    /* <name>_copies, else worker_copies; config.c bounds both to 1..MAX_COPIES */
    long copies = bk_config_set(key) ? bk_config_long(key) : bk_config_long("worker_copies");
    if (copies < 1 || copies > MAX_COPIES)
        copies = MAX_COPIES;

    struct sigaction sa = {0};
    sa.sa_handler = on_stop; /* no SA_RESTART: waitpid and consume wake up */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    pid_t pids[MAX_COPIES];
    int64_t started[MAX_COPIES];
    for (long i = 0; i < copies; i++) {
        pids[i] = spawn(name, commands, init);
        started[i] = bk_mono_ms();
    }
    bk_log(BK_INFO, NULL, "%s worker started with %ld copies", name, copies);
    while (!stopping) {
        int st;
        pid_t dead = waitpid(-1, &st, 0);
        if (dead < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (long i = 0; i < copies; i++) {
            if (pids[i] != dead || stopping)
                continue;
            bk_log(BK_WARN, NULL, "copy %d ended (%s %d), restarting", (int)dead,
                   WIFSIGNALED(st) ? "signal" : "status",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            /* a copy that dies at once (no database) is not restarted in a
             * tight loop */
            if (bk_mono_ms() - started[i] < 1000)
                sleep(1);
            pids[i] = spawn(name, commands, init);
            started[i] = bk_mono_ms();
        }
    }
    for (long i = 0; i < copies; i++)
        kill(pids[i], SIGTERM);
    for (long i = 0; i < copies; i++)
        waitpid(pids[i], NULL, 0);
    bk_log(BK_INFO, NULL, "%s worker stopped", name);
    bk_config_free();
    return 0;
}

/* ---- money ---------------------------------------------------------------- */

/* Python's repr of a float: the shortest digits that read back, written
 * plainly when the exponent is in [-4, 16) ("100.0", "0.0001"), else as
 * "1e+16". DRF reads a JSON number through it (str(float)). */
static void py_repr(double v, char *out, size_t n)
{
    if (!isfinite(v)) {
        snprintf(out, n, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    char e[40];
    int prec = 0;
    for (; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, v);
        if (strtod(e, NULL) == v)
            break;
    }
    int exp10 = atoi(strchr(e, 'e') + 1);
    if (exp10 < -4 || exp10 >= 16) {
        snprintf(out, n, "%s", e);
        return;
    }
    int decimals = prec - exp10 > 0 ? prec - exp10 : 0;
    int w = snprintf(out, n, "%.*f", decimals, v);
    if (w > 0 && (size_t)w + 3 <= n && !strchr(out, '.'))
        memcpy(out + w, ".0", 3);
}

/* Python's str() of what a client sent, for a choice error message. */
static const char *choice_echo(struct bk_call *c, const msgpack_object *o)
{
    char buf[400];
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        return bk_strf(c, "%.*s", (int)o->via.str.size, o->via.str.size ? o->via.str.ptr : "");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return bk_strf(c, "%llu", (unsigned long long)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return bk_strf(c, "%lld", (long long)o->via.i64);
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean ? "True" : "False";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        py_repr(o->via.f64, buf, sizeof buf);
        return bk_strf(c, "%s", buf);
    default: {
        json_t *j = bk_json_from_msgpack(o);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        const char *out = s ? bk_strf(c, "%s", s) : "";
        free(s);
        json_decref(j);
        return out;
    }
    }
}

const char *bk_arg_choice(struct bk_call *c, const char *key, unsigned flags,
                          const char *const *choices)
{
    const msgpack_object *o = arg_get(c, key, flags);
    if (!o)
        return NULL;
    for (int i = 0; choices[i]; i++)
        if (bk_codec_str_eq(o, choices[i]))
            return choices[i];
    /* not through bk_error: its message buffer would cut a long echo */
    const char *msg = bk_strf(c, "\"%s\" is not a valid choice.", choice_echo(c, o));
    json_array_append_new(bk_errors_of(c, key), json_string(msg));
    return NULL;
}

bool bk_arg_money(struct bk_call *c, const char *key, unsigned flags, int max_digits,
                  int64_t min_cents, int64_t *cents)
{
    const msgpack_object *o = arg_get(c, key, flags);
    if (!o)
        return false;
    char buf[64];
    const char *p;
    size_t n;
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        p = o->via.str.size ? o->via.str.ptr : "";
        n = o->via.str.size;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        n = (size_t)snprintf(buf, sizeof buf, "%llu", (unsigned long long)o->via.u64);
        p = buf;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        n = (size_t)snprintf(buf, sizeof buf, "%lld", (long long)o->via.i64);
        p = buf;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64)) {
            bk_error(c, key, "A valid number is required.");
            return false;
        }
        py_repr(o->via.f64, buf, sizeof buf);
        p = buf;
        n = strlen(buf);
        break;
    default:
        bk_error(c, key, "A valid number is required.");
        return false;
    }
    while (n && isspace((unsigned char)*p))
        p++, n--;
    while (n && isspace((unsigned char)p[n - 1]))
        n--;
    if (n > 1000) { /* DRF trims, then refuses over-long strings */
        bk_error(c, key, "String value too large.");
        return false;
    }
    /* sign, whole digits, optional point and fraction digits; nothing else
     * (no exponent: "1e3" is refused, and so are NaN and Infinity) */
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '-' || p[i] == '+'))
        neg = p[i++] == '-';
    size_t int_start = i;
    while (i < n && isdigit((unsigned char)p[i]))
        i++;
    size_t int_len = i - int_start, frac_start = i, frac_len = 0;
    if (i < n && p[i] == '.') {
        frac_start = ++i;
        while (i < n && isdigit((unsigned char)p[i]))
            i++;
        frac_len = i - frac_start;
    }
    if (i != n || int_len + frac_len == 0) {
        bk_error(c, key, "A valid number is required.");
        return false;
    }
    /* DRF counts digits the way Decimal's tuple does: leading zeros of the
     * whole part go, trailing zeros of the fraction stay */
    size_t lead = 0;
    while (lead < int_len && p[int_start + lead] == '0')
        lead++;
    size_t sig_int = int_len - lead;
    size_t digits, decimals = frac_len;
    if (sig_int > 0) {
        digits = sig_int + frac_len;
    } else {
        size_t fz = 0;
        while (fz < frac_len && p[frac_start + fz] == '0')
            fz++;
        size_t sig = frac_len - fz;
        digits = sig ? sig : 1;
        if (decimals > digits)
            digits = decimals;
    }
    if ((int)digits > max_digits) {
        bk_error(c, key, "Ensure that there are no more than %d digits in total.", max_digits);
        return false;
    }
    if (decimals > 2) {
        bk_error(c, key, "Ensure that there are no more than 2 decimal places.");
        return false;
    }
    if ((int)(digits - decimals) > max_digits - 2) {
        bk_error(c, key, "Ensure that there are no more than %d digits before the decimal point.",
                 max_digits - 2);
        return false;
    }
    int64_t v = 0;
    for (size_t k = int_start; k < int_start + int_len; k++)
        v = v * 10 + (p[k] - '0');
    for (size_t k = 0; k < 2; k++)
        v = v * 10 + (k < frac_len ? p[frac_start + k] - '0' : 0);
    if (neg)
        v = -v;
    if (v < min_cents) {
        bk_error(c, key, "Ensure this value is greater than or equal to %lld.%02lld.",
                 (long long)(min_cents / 100), (long long)(llabs(min_cents) % 100));
        return false;
    }
    *cents = v;
    return true;
}

const char *bk_money_str(struct bk_call *c, int64_t cents)
{
    return bk_strf(c, "%s%lld.%02lld", cents < 0 ? "-" : "", (long long)(llabs(cents) / 100),
                   (long long)(llabs(cents) % 100));
}

/* ---- lists ---------------------------------------------------------------- */

bool bk_page_args(struct bk_call *c, struct bk_page *p)
{
    p->page = 1;
    p->size = 20;
    const msgpack_object *o = bk_arg(c, "page");
    if (o) {
        int64_t v = 0;
        bool ok =
            (o->type == MSGPACK_OBJECT_STR && parse_int(o->via.str.ptr, o->via.str.size, &v)) ||
            (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 < 1000000000 &&
             (v = (int64_t)o->via.u64, true));
        if (!ok || v < 1 || v > 1000000000) {
            c->st->not_found = true;
            c->st->page_invalid = true;
            return false;
        }
        p->page = v;
    }
    o = bk_arg(c, "page_size");
    if (o) {
        int64_t v = 0;
        bool ok =
            (o->type == MSGPACK_OBJECT_STR && parse_int(o->via.str.ptr, o->via.str.size, &v)) ||
            (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
             (v = (int64_t)(o->via.u64 > 1000 ? 1000 : o->via.u64), true));
        if (ok && v > 0)
            p->size = v > 100 ? 100 : v; /* DRF: invalid sizes fall back to the default */
    }
    p->offset = (p->page - 1) * p->size;
    p->limit_s = bk_strf(c, "%lld", (long long)p->size);
    p->offset_s = bk_strf(c, "%lld", (long long)p->offset);
    return true;
}

/* The start (public base + path) and the query of c's page links: from the
 * request target the bridge forwarded, else (a command published over AMQP)
 * from the command's GET route, its {params} and query parameters filled
 * from args. The Host header never gets here. 0 or -1. */
static int link_parts(struct bk_call *c, char *prefix, size_t n, struct bk_link_query *q)
{
    const char *t = c->request_target;
    if (t && *t && bk_link_target_ok(t)) {
        const char *qm = strchr(t, '?');
        int plen = qm ? (int)(qm - t) : (int)strlen(t);
        int k = snprintf(prefix, n, "%s%.*s", c->public_base, plen, t);
        memset(q, 0, sizeof *q);
        if (k >= 0 && (size_t)k < n && (!qm || bk_link_query_parse(q, qm + 1, strlen(qm + 1)) == 0))
            return 0;
    }
    char keys[512]; /* the command's declared query parameters */
    if (bk_contract_names(bk_contract_command(c->command), BK_F_QUERY, 0, keys, sizeof keys) < 0)
        return -1;
    for (const struct br_route *r = br_routes_find(NULL, c->command, "GET"); r;
         r = br_routes_find(r + 1, c->command, "GET")) {
        memset(q, 0, sizeof *q);
        if (bk_link_fill(prefix, n, c->public_base, r->pattern, c->args) >= 0 &&
            bk_link_query_from_args(q, keys, c->args) == 0)
            return 0;
    }
    return -1;
}

/* DRF's next/previous link to page (see bk_link_page); null, logged, when
 * the command has no route to link to or the link would be too long. */
static json_t *page_link(struct bk_call *c, int64_t page)
{
    struct bk_link_query *q = bk_alloc(c, sizeof *q);
    char *prefix = bk_alloc(c, BK_LINK_MAX), *out = bk_alloc(c, BK_LINK_MAX);
    if (link_parts(c, prefix, BK_LINK_MAX, q) != 0 ||
        bk_link_page(out, BK_LINK_MAX, prefix, q, page) < 0) {
        bk_log(BK_WARN, c->request_id, "%s: no page link (no route, or too long)", c->command);
        return json_null();
    }
    json_t *link = json_string(out);
    return link ? link : json_null(); /* a public_base_url that is not UTF-8 */
}

int bk_reply_page(struct bk_call *c, const struct bk_page *p, int64_t count, json_t *results)
{
    int64_t pages = count == 0 ? 1 : (count + p->size - 1) / p->size;
    if (p->page > pages) {
        json_decref(results);
        return bk_reply_detail(c, 404, "Invalid page.");
    }
    json_t *next = p->page < pages ? page_link(c, p->page + 1) : json_null();
    json_t *prev = p->page > 1 ? page_link(c, p->page - 1) : json_null();
    return bk_reply(c, 200,
                    json_pack("{s:I, s:o, s:o, s:o}", "count", (json_int_t)count, "next", next,
                              "previous", prev, "results", results));
}

int bk_reply_page_text(struct bk_call *c, const struct bk_page *p, int64_t count,
                       const char *results_json)
{
    json_error_t err;
    json_t *results = json_loads(results_json, 0, &err);
    if (!results) {
        bk_log(BK_ERROR, c->request_id, "page results are not JSON: %s", err.text);
        return -1;
    }
    return bk_reply_page(c, p, count, results);
}
