#include "workers/bridge/http.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shared/amqp.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/json.h"
#include "shared/jwt.h"
#include "shared/log.h"
#include "shared/secret.h"
#include "shared/util.h"
#include "workers/bridge/guard.h"
#include "workers/bridge/openapi.h"
#include "workers/bridge/policy.h"
#include "workers/bridge/request.h"
#include "shared/routes.h"
#include "workers/bridge/rpc.h"
#include "workers/bridge/static.h"
#include "workers/bridge/variant.h"

/* An over-limit or refused body up to this size is read and dropped so the
 * client gets its answer on a connection that stays usable; a bigger one is
 * answered at once and the connection closed. */
#define DISCARD_MAX     (16u << 20)
#define MAX_PARTS       64 /* fields of one multipart body */
#define MAX_REPLY_HDRS  16
#define POST_BUFFER     (64 * 1024)
#define IMMUTABLE_CACHE "public, max-age=31536000, immutable"
/* Files (BR_STATIC) may load scripts, styles and images from our origin
 * only, nothing inline (Swagger UI styles through the CSSOM, which CSP
 * allows) and nothing from elsewhere; its stylesheet draws icons from data:
 * URIs. tests/integration/test_docs.py fails on any violation. */
#define STATIC_CSP                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; "                                    \
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "              \
    "frame-ancestors 'none'"

/* CORS as django-cors-headers answers it (its defaults, plus our headers) */
#define CORS_ALLOW_METHODS "DELETE, GET, OPTIONS, PATCH, POST, PUT"
#define CORS_ALLOW_HEADERS                                                                         \
    "accept, authorization, content-type, idempotency-key, user-agent, x-request-id"
#define CORS_EXPOSE_HEADERS "X-Request-ID, Retry-After, Location"
#define CORS_MAX_AGE        "86400"

static struct {
    struct MHD_Daemon *d;
    int timeout_ms;
    int health_timeout_ms;
    size_t max_json, max_upload;
    const char *key_dir;
    char default_host[300];
    char *openapi;
    char *asyncapi;
    struct br_policy_list hosts;   /* allowed_hosts */
    struct br_policy_list origins; /* cors_allowed_origins; none: CORS off */
    atomic_uint probe_next;        /* health probes take turns over the workers */
    int64_t header_timeout_ms;     /* see guard.h */
    int64_t idle_timeout_ms;
    long retry_after_s;
    char retry_after[24];
} hs;

enum phase {
    PH_HEADERS, /* the first call: headers only */
    PH_BODY,    /* reading the body (or waiting for the final call) */
    PH_DISCARD, /* the answer is ready; dropping the body */
    PH_WAIT,    /* suspended, the command in flight */
};

/* One HTTP request, from the URI callback to the completion callback. */
struct req {
    struct MHD_Connection *conn;
    char *uri; /* the raw request target (path?query), for x-request-target */
    int64_t started_us;
    char method[16];
    char origin[BR_POLICY_MAX_LEN + 1]; /* the Origin header when CORS allows it, else "" */
    enum phase phase;
    bool has_body;
    uint64_t content_length; /* 0 when absent (chunked) */
    struct br_match match;

    enum br_body_kind kind;
    size_t limit;
    uint64_t received; /* body bytes seen, kept or not */
    char *body;
    size_t len, cap;
    struct MHD_PostProcessor *pp;
    struct br_file *parts, *last_part; /* multipart fields in order; filename NULL: text */
    int n_parts;
    bool form_failed;

    bool health;
    bool caller_counted; /* br_guard_caller_take succeeded: put it back when done */
    char health_cmd[64];
    char *request_url;
    const struct br_variant *reply_variant; /* shapes the reply (a source system's route) */
    struct br_call call;

    /* the answer; set by the AMQP thread before it resumes the connection */
    struct MHD_Response *response;
    unsigned status;

    /* for the access log line */
    size_t out_len;   /* body bytes of the last response built for r: the one sent */
    int64_t user_id;  /* from the worker's reply: who the verified token named */
    char service[64]; /* ...or which service */
};

#define REQ_OF(c) ((struct req *)((char *)(c)-offsetof(struct req, call)))

/* ---- responses ------------------------------------------------------------ */

static const char fallback_500[] = "{\"detail\":\"A server error occurred.\"}";

/* A response over n bytes of buf (mode as MHD's), recording n in r for the
 * access log: MHD has no getter for a response's size. */
static struct MHD_Response *buffer_response(struct req *r, size_t n, void *buf,
                                            enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, buf, mode);
    if (resp)
        r->out_len = n;
    return resp;
}

/* A JSON response; steals body. */
static struct MHD_Response *json_response(struct req *r, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    struct MHD_Response *resp = text
                                    ? buffer_response(r, strlen(text), text, MHD_RESPMEM_MUST_FREE)
                                    : buffer_response(r, sizeof fallback_500 - 1,
                                                      (void *)fallback_500, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return resp;
}

static struct MHD_Response *detail_response(struct req *r, const char *detail)
{
    return json_response(r, json_pack("{s:s}", "detail", detail));
}

/* An answer to "too much at once" (a full queue, too many commands in
 * flight): the client may retry after http_retry_after_s. */
static struct MHD_Response *busy_response(struct req *r, const char *detail)
{
    struct MHD_Response *resp = detail_response(r, detail);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, hs.retry_after);
    return resp;
}

/* DRF sends no Content-Type with an empty body (204, 304, a nil body). */
static struct MHD_Response *empty_response(struct req *r)
{
    return buffer_response(r, 0, (void *)"", MHD_RESPMEM_PERSISTENT);
}

/* The headers every response carries: the request id, the browser hardening
 * Django's SecurityMiddleware sends, no-store on routes whose answers carry
 * tokens, and CORS as django-cors-headers adds it to actual responses. */
static void decorate(const struct req *r, unsigned status, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Request-ID", r->call.request_id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
    if (r->match.route && (r->match.route->flags & BR_NO_STORE) &&
        !MHD_get_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (hs.origins.n > 0) {
        /* the answer depends on Origin whenever CORS is on: caches must know */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
        if (r->origin[0]) {
            MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
            MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
        }
    }
    if (status == 401 && !MHD_get_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"api\"");
}

static enum MHD_Result send_response(struct req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    decorate(r, status, resp);
    r->status = status;
    enum MHD_Result rc = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Keeps the answer for the final call, dropping the body meanwhile (MHD
 * closes the connection after an answer queued before the request is in).
 * Sends it at once, closing, only to a client waiting for "100 Continue" or
 * announcing a body too big to drain. Not for use while upload data is being
 * processed (MHD forbids queueing then). */
static enum MHD_Result answer_early(struct req *r, unsigned status, struct MHD_Response *resp)
{
    const char *expect = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Expect");
    bool waiting_for_100 = expect && strcasecmp(expect, "100-continue") == 0;
    if (r->has_body && (waiting_for_100 || r->content_length > DISCARD_MAX))
        return send_response(r, status, resp);
    if (!resp)
        return MHD_NO;
    decorate(r, status, resp);
    r->response = resp;
    r->status = status;
    r->phase = PH_DISCARD;
    return MHD_YES;
}

/* Frees what the body parsing holds. */
static void drop_body(struct req *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    if (r->pp) {
        MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
    }
    br_request_free_files(r->parts);
    r->parts = r->last_part = NULL;
    r->n_parts = 0;
}

/* Keeps an answer decided while the body is arriving (413, a multipart
 * error) for the final call, and drops the rest of the body. */
static void answer_after_body(struct req *r, unsigned status, struct MHD_Response *resp)
{
    drop_body(r);
    if (r->response)
        MHD_destroy_response(r->response);
    if (resp)
        decorate(r, status, resp);
    r->response = resp;
    r->status = status;
    r->phase = PH_DISCARD;
}

/* ---- replies (AMQP thread) ------------------------------------------------ */

static bool header_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static bool header_value_ok(const char *s, size_t n)
{
    if (n > 1024)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* Copies the reply's "headers" map (Retry-After...) into resp, leaving out
 * what the bridge owns (framing, Content-Type, X-Request-ID). */
static void copy_reply_headers(struct MHD_Response *resp, const msgpack_object *h)
{
    static const char *const owned[] = {"content-length",
                                        "content-type",
                                        "transfer-encoding",
                                        "connection",
                                        "x-request-id",
                                        "keep-alive",
                                        NULL};
    if (!h || h->type != MSGPACK_OBJECT_MAP)
        return;
    for (uint32_t i = 0; i < h->via.map.size && i < MAX_REPLY_HDRS; i++) {
        const msgpack_object *k = &h->via.map.ptr[i].key, *v = &h->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR ||
            !header_name_ok(k->via.str.ptr, k->via.str.size) ||
            !header_value_ok(v->via.str.ptr, v->via.str.size))
            continue;
        char name[65], value[1025];
        memcpy(name, k->via.str.ptr, k->via.str.size);
        name[k->via.str.size] = '\0';
        memcpy(value, v->via.str.ptr, v->via.str.size);
        value[v->via.str.size] = '\0';
        bool skip = false;
        for (const char *const *o = owned; *o; o++)
            skip |= strcasecmp(name, *o) == 0;
        if (!skip)
            MHD_add_response_header(resp, name, value);
    }
}

/* A BR_RAW reply: {"content_type", "data", "etag"} as the bytes themselves. */
static struct MHD_Response *raw_response(struct req *r, unsigned status, const msgpack_object *body)
{
    const msgpack_object *ct = bk_codec_get(body, "content_type");
    const msgpack_object *data = bk_codec_get(body, "data");
    const msgpack_object *etag = bk_codec_get(body, "etag");
    const char *bytes = "";
    size_t n = 0;
    if (data && data->type == MSGPACK_OBJECT_BIN) {
        bytes = data->via.bin.ptr;
        n = data->via.bin.size;
    } else if (data && data->type == MSGPACK_OBJECT_STR) {
        bytes = data->via.str.ptr;
        n = data->via.str.size;
    } else if (status == 200) {
        return NULL;
    }
    struct MHD_Response *resp = status == 304
                                    ? empty_response(r)
                                    : buffer_response(r, n, (void *)bytes, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return NULL;
    char buf[260];
    if (status == 200) {
        if (ct && ct->type == MSGPACK_OBJECT_STR && ct->via.str.size > 0 &&
            ct->via.str.size < 200 && header_value_ok(ct->via.str.ptr, ct->via.str.size))
            snprintf(buf, sizeof buf, "%.*s", (int)ct->via.str.size, ct->via.str.ptr);
        else
            snprintf(buf, sizeof buf, "application/octet-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, buf);
    }
    if (etag && etag->type == MSGPACK_OBJECT_STR && etag->via.str.size > 0 &&
        etag->via.str.size < 200 && header_value_ok(etag->via.str.ptr, etag->via.str.size)) {
        const char *e = etag->via.str.ptr;
        bool quoted = e[0] == '"' || (etag->via.str.size > 2 && e[0] == 'W' && e[1] == '/');
        snprintf(buf, sizeof buf, quoted ? "%.*s" : "\"%.*s\"", (int)etag->via.str.size, e);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, buf);
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, IMMUTABLE_CACHE);
    return resp;
}

/* Who the worker says the verified token named ("user_id" or "service" of
 * the reply), for the access log. */
static void note_actor(struct req *r, const msgpack_object *reply)
{
    const msgpack_object *uid = bk_codec_get(reply, "user_id");
    const msgpack_object *svc = bk_codec_get(reply, "service");
    if (uid && uid->type == MSGPACK_OBJECT_POSITIVE_INTEGER && uid->via.u64 <= INT64_MAX)
        r->user_id = (int64_t)uid->via.u64;
    else if (svc && svc->type == MSGPACK_OBJECT_STR && svc->via.str.size < sizeof r->service &&
             header_value_ok(svc->via.str.ptr, svc->via.str.size))
        snprintf(r->service, sizeof r->service, "%.*s", (int)svc->via.str.size, svc->via.str.ptr);
}

static struct MHD_Response *reply_response(struct req *r, enum br_rpc_result res,
                                           const msgpack_object *reply, unsigned *status)
{
    switch (res) {
    case BR_RPC_TIMEOUT:
        *status = 504;
        return detail_response(r, "Upstream timeout.");
    case BR_RPC_UNAVAILABLE:
        *status = 503;
        return detail_response(r, "Service unavailable.");
    case BR_RPC_REFUSED:
        *status = 503;
        return busy_response(r, "Service busy: too many commands queued. Try again later.");
    case BR_RPC_BAD_REPLY:
        goto bad;
    case BR_RPC_REPLY:
        break;
    }
    const msgpack_object *st = bk_codec_get(reply, "status");
    const msgpack_object *body = bk_codec_get(reply, "body");
    if (!st || st->type != MSGPACK_OBJECT_POSITIVE_INTEGER || st->via.u64 < 200 ||
        st->via.u64 > 599)
        goto bad;
    *status = (unsigned)st->via.u64;
    note_actor(r, reply);
    struct MHD_Response *resp;
    if ((r->match.route->flags & BR_RAW) &&
        ((*status == 200 && body && body->type == MSGPACK_OBJECT_MAP) || *status == 304)) {
        resp = raw_response(r, *status, body);
    } else if (*status == 204 || *status == 304 || !body || body->type == MSGPACK_OBJECT_NIL) {
        resp = empty_response(r);
    } else {
        json_t *j = bk_json_from_msgpack(body);
        if (!j)
            goto bad;
        br_variant_reply(r->reply_variant, j);
        resp = json_response(r, j);
    }
    if (!resp)
        goto bad;
    copy_reply_headers(resp, bk_codec_get(reply, "headers"));
    return resp;
bad:
    bk_log(BK_WARN, r->call.request_id, "%s: reply without a usable status or body",
           r->call.command);
    *status = 502;
    return detail_response(r, "Bad gateway.");
}

/* The health body, the same shape for 200 and 503: every check named, with
 * what is wrong (django-health-check's idea):
 *   {"status": "ok" | "unavailable",
 *    "checks": {"broker": "ok" | "unavailable",
 *               "database": "ok" | "unavailable: <why>" | "unknown: <why>",
 *               "workers": {"auth": "ok" | "no consumer" | "unknown", ...}},
 *    "queues": {"auth.commands": {"consumers": n or null}, ...}}
 * *up is true only when every check is "ok". */
static json_t *health_body(const char *database, bool *up)
{
    struct br_rpc_health h;
    br_rpc_health(&h);
    json_t *queues = json_object(), *workers = json_object();
    bool all = h.broker_up;
    for (int i = 0; i < h.n_queues; i++) {
        int c = h.consumers[i];
        json_object_set_new(queues, h.queue[i],
                            json_pack("{s:o}", "consumers", c < 0 ? json_null() : json_integer(c)));
        json_object_set_new(workers, h.worker[i],
                            json_string(!h.broker_up || c < 0 ? "unknown"
                                        : c > 0               ? "ok"
                                                              : "no consumer"));
        all &= c > 0;
    }
    all &= strcmp(database, "ok") == 0;
    *up = all;
    return json_pack("{s:s, s:{s:s, s:s, s:o}, s:o}", "status", all ? "ok" : "unavailable",
                     "checks", "broker", h.broker_up ? "ok" : "unavailable", "database", database,
                     "workers", workers, "queues", queues);
}

/* What the probe says of the database: the worker's own words when it could
 * not reach it, or why nobody could tell. */
static struct MHD_Response *health_response(struct req *r, enum br_rpc_result res,
                                            const msgpack_object *reply, unsigned *status)
{
    char database[160];
    int worker_len = (int)strcspn(r->health_cmd, ".");
    if (res == BR_RPC_REPLY) {
        const msgpack_object *st = bk_codec_get(reply, "status");
        const msgpack_object *db = bk_codec_get(bk_codec_get(reply, "body"), "database");
        if (st && st->type == MSGPACK_OBJECT_POSITIVE_INTEGER && st->via.u64 == 200)
            snprintf(database, sizeof database, "ok");
        else if (db && db->type == MSGPACK_OBJECT_STR && db->via.str.size > 0 &&
                 db->via.str.size < 100 && header_value_ok(db->via.str.ptr, db->via.str.size) &&
                 strncmp(db->via.str.ptr, "ok", db->via.str.size) != 0)
            snprintf(database, sizeof database, "%.*s", (int)db->via.str.size, db->via.str.ptr);
        else
            snprintf(database, sizeof database, "unavailable");
    } else if (res == BR_RPC_TIMEOUT) {
        snprintf(database, sizeof database, "unknown: the %.*s worker did not answer within %d ms",
                 worker_len, r->health_cmd, hs.health_timeout_ms);
    } else {
        snprintf(database, sizeof database, "unknown: the probe could not be sent");
    }
    bool up;
    json_t *body = health_body(database, &up);
    *status = up ? 200 : 503;
    return json_response(r, body);
}

/* Runs on the AMQP thread, once per call: builds the answer, then resumes
 * the connection (after which r belongs to the MHD thread again). */
static void on_done(struct br_call *call, enum br_rpc_result res, const msgpack_object *reply)
{
    struct req *r = REQ_OF(call);
    unsigned status = 500;
    if (r->caller_counted) {
        br_guard_caller_put(r->call.client_ip);
        r->caller_counted = false;
    }
    struct MHD_Response *resp = r->health ? health_response(r, res, reply, &status)
                                          : reply_response(r, res, reply, &status);
    if (!resp) {
        status = 500;
        resp = buffer_response(r, sizeof fallback_500 - 1, (void *)fallback_500,
                               MHD_RESPMEM_PERSISTENT);
    }
    if (resp)
        decorate(r, status, resp);
    r->status = status;
    r->response = resp;
    MHD_resume_connection(r->conn);
}

/* Suspends the connection and hands the call to the AMQP thread. Suspending
 * first means the resume can never come before the suspend. */
static enum MHD_Result dispatch(struct req *r)
{
    /* one caller (client address) may not hold every slot: others keep theirs */
    if (!br_guard_caller_take(r->call.client_ip)) {
        char msg[96];
        snprintf(msg, sizeof msg, "Request was throttled. Expected available in %ld second%s.",
                 hs.retry_after_s, hs.retry_after_s == 1 ? "" : "s");
        return send_response(r, 429, busy_response(r, msg));
    }
    r->caller_counted = true;
    r->call.done = on_done;
    r->call.request_url = r->request_url;
    r->phase = PH_WAIT;
    MHD_suspend_connection(r->conn);
    if (br_rpc_submit(&r->call) != 0) {
        br_guard_caller_put(r->call.client_ip);
        r->caller_counted = false;
        static _Atomic int64_t last_log;
        int64_t now = bk_mono_ms(), last = atomic_load(&last_log);
        /* at most one line a second: an overload must not also flood the log */
        if (now - last >= 1000 && atomic_compare_exchange_strong(&last_log, &last, now))
            bk_log(BK_WARN, r->call.request_id, "too many requests in flight: answering 503");
        struct MHD_Response *resp = busy_response(r, "Service unavailable.");
        if (resp)
            decorate(r, 503, resp);
        r->response = resp;
        r->status = 503;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* ---- request → command ---------------------------------------------------- */

struct query_ctx {
    json_t *args;
    bool bad;
};

static enum MHD_Result on_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                size_t key_size, const char *value, size_t value_size)
{
    struct query_ctx *q = cls;
    json_t *v = json_stringn(value ? value : "", value ? value_size : 0);
    /* the last of a repeated key wins, as it is set last */
    if (!v || json_object_setn_new(q->args, key, key_size, v) != 0) {
        q->bad = true;
        return MHD_NO;
    }
    return MHD_YES;
}

/* Whether s is UTF-8 (as jansson, which takes only that, judges it). */
static bool utf8_ok(const char *s)
{
    json_t *v = json_string(s);
    bool ok = v != NULL;
    json_decref(v);
    return ok;
}

/* The multipart fields into args (text) and the file list (bin). Returns 0,
 * or -1 with *err set. A later field of the same name wins. */
static int form_args(struct req *r, json_t *args, struct br_file **files, json_t **err)
{
    struct br_file **tail = files;
    while (r->parts) {
        struct br_file *p = r->parts;
        r->parts = p->next;
        p->next = NULL;
        /* Names become keys of the command and its <name>_filename, and a
         * worker refuses a command whose keys are not UTF-8 as undecodable:
         * such a part is the client's error, not a command to send (found
         * by fuzz_bridge_multipart). 255 bytes keep <name>_content_type
         * whole. */
        if (strlen(p->name) > 255 || !utf8_ok(p->name) || (p->filename && !utf8_ok(p->filename)) ||
            (p->content_type && !utf8_ok(p->content_type))) {
            *err = json_pack("{s:s}", "detail",
                             "Multipart form parse error - Field names, file names and types "
                             "must be UTF-8, names at most 255 bytes.");
            br_request_free_files(p);
            return -1;
        }
        bool later = false;
        for (struct br_file *q = r->parts; q; q = q->next)
            later |= strcmp(q->name, p->name) == 0;
        if (!p->filename) {
            json_t *v = json_stringn(p->data ? p->data : "", p->len);
            if (!v) {
                *err = json_pack("{s:[s]}", p->name, "Not valid UTF-8.");
                br_request_free_files(p);
                return -1;
            }
            json_object_set_new(args, p->name, v);
            br_request_free_files(p);
            continue;
        }
        /* a browser's empty file input: no file */
        if (later || (p->filename[0] == '\0' && p->len == 0)) {
            br_request_free_files(p);
            continue;
        }
        char key[300];
        json_object_del(args, p->name);
        snprintf(key, sizeof key, "%s_filename", p->name);
        json_object_set_new(args, key, json_string(p->filename));
        snprintf(key, sizeof key, "%s_content_type", p->name);
        json_object_set_new(
            args, key, json_string(p->content_type ? p->content_type : "application/octet-stream"));
        *tail = p;
        tail = &p->next;
    }
    r->last_part = NULL;
    r->n_parts = 0;
    return 0;
}

/* message_id: random, or derived from the Idempotency-Key of a write, keyed
 * with the server secret (so nobody can compute another caller's id) and
 * scoped to the caller: the verified token's user or service, else
 * "anon:<client address>" (an anonymous key dedups only for the address that
 * sent it; the address is the TCP peer, which a client cannot choose). The
 * worker's inbox is keyed by caller too; this makes the ids unguessable.
 * -1 for a malformed key, -2 without a server key. */
static int make_message_id(struct req *r, const char *method, const char *url, const char *tok,
                           size_t tok_len)
{
    bool write = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                 strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
    const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (!write || !key) {
        bk_uuid4(r->call.message_id);
        return 0;
    }
    if (!br_request_header_ok(key, 255))
        return -1;
    char scope[128];
    snprintf(scope, sizeof scope, "anon:%s", r->call.client_ip);
    if (tok && tok_len > 0 && tok_len <= BK_JWT_MAX) {
        char t[BK_JWT_MAX + 1];
        struct bk_jwt_claims claims;
        memcpy(t, tok, tok_len);
        t[tok_len] = '\0';
        enum bk_jwt_err e = bk_jwt_verify(hs.key_dir, t, (int64_t)time(NULL), &claims);
        if (e == BK_JWT_OK && strcmp(claims.token_type, "access") == 0) {
            if (claims.user_id)
                snprintf(scope, sizeof scope, "user:%" PRId64, claims.user_id);
            else if (claims.service[0])
                snprintf(scope, sizeof scope, "service:%s", claims.service);
        }
    }
    /* the path without its optional slash, so both spellings are one key */
    size_t ulen = strlen(url);
    if (ulen > 1 && url[ulen - 1] == '/')
        ulen--;
    char name[BR_MAX_PATH + 300];
    int n = snprintf(name, sizeof name, "%s %.*s\n%s", method, (int)ulen, url, key);
    if (n < 0 || (size_t)n >= sizeof name)
        n = (int)sizeof name - 1;
    /* the first key: a rotation must not give a retry in flight a new id */
    struct bk_secret_key sk;
    if (bk_secret_get(hs.key_dir, BK_SECRET_FIRST, NULL, &sk) != 0)
        return -2;
    bk_secret_message_id(&sk, scope, name, (size_t)n, r->call.message_id);
    sodium_memzero(&sk, sizeof sk);
    return 0;
}

/* The raw request target (path?query as the client sent it), which the
 * worker puts after public_base_url in next/previous links. Not the Host
 * header: the client chooses it. */
static int make_request_url(struct req *r, const char *url)
{
    r->request_url = strdup(r->uri ? r->uri : url);
    return r->request_url ? 0 : -1;
}

static enum MHD_Result send_detail(struct req *r, unsigned status, const char *detail)
{
    return send_response(r, status, detail_response(r, detail));
}

/* GET /api/health/: the broker and consumer counts the AMQP thread keeps,
 * plus a "<worker>.health" probe (the worker runtime answers it with a
 * SELECT 1) to report the database; see main.c for the why. The probes take
 * turns over the workers with a consumer, so a frequent poll spreads out. */
static enum MHD_Result health(struct req *r)
{
    struct br_rpc_health h;
    br_rpc_health(&h);
    int probe = -1;
    unsigned first = atomic_fetch_add(&hs.probe_next, 1);
    for (int k = 0; h.broker_up && k < h.n_queues && probe < 0; k++) {
        int i = (int)((first + (unsigned)k) % (unsigned)h.n_queues);
        if (h.consumers[i] > 0)
            probe = i;
    }
    if (probe < 0) {
        bool up;
        json_t *body = health_body(
            h.broker_up ? "unknown: no worker to ask" : "unknown: the broker is unavailable", &up);
        return send_response(r, up ? 200 : 503, json_response(r, body));
    }
    snprintf(r->health_cmd, sizeof r->health_cmd, "%s.health", bk_amqp_queues[probe].worker);
    json_t *args = json_object();
    int rc = br_request_pack(&r->call.body, NULL, 0, args, NULL);
    json_decref(args);
    if (rc != 0)
        return send_detail(r, 500, "A server error occurred.");
    r->health = true;
    r->call.command = r->health_cmd;
    r->call.timeout_ms = hs.health_timeout_ms;
    r->call.retry_read = false; /* health answers now: a lost probe is a finding */
    r->call.attempts = 0;
    bk_uuid4(r->call.message_id);
    return dispatch(r);
}

/* A BR_STATIC row: the file its path names below the row's folder, with
 * an ETag (revalidated at every use: the files change with scripts/setup and
 * our page with a commit), or 304, 301 to the prefix's slash, or 404. */
static enum MHD_Result static_file(struct req *r, const struct br_route *route)
{
    char rel[BR_STATIC_MAX_REL + 1];
    const char *raw = r->uri ? r->uri : "";
    struct MHD_Response *resp;
    switch (br_static_path(route->pattern, route->static_index, raw, strcspn(raw, "?#"), rel,
                           sizeof rel)) {
    case BR_STATIC_REFUSED:
        return send_detail(r, 404, "Not found.");
    case BR_STATIC_REDIRECT:
        resp = empty_response(r);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, route->pattern);
        return send_response(r, 301, resp);
    case BR_STATIC_FILE:
        break;
    }
    struct br_static_file f;
    int rc = br_static_open(route, rel, &f);
    if (rc != 0)
        return rc == -1 ? send_detail(r, 404, "Not found.")
                        : send_detail(r, 500, "A server error occurred.");
    const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
    unsigned status = 200;
    if (inm && bk_etag_list_has(inm, strlen(inm), f.etag)) { /* bounded by MHD's header memory */
        close(f.fd);
        status = 304;
        resp = empty_response(r);
    } else {
        resp = MHD_create_response_from_fd64(f.size, f.fd); /* closes fd when done */
        if (!resp) {
            close(f.fd);
            return send_detail(r, 500, "A server error occurred.");
        }
        r->out_len = (size_t)f.size;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, br_static_content_type(rel));
    }
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, f.etag);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, "Content-Security-Policy", STATIC_CSP);
    }
    return send_response(r, status, resp);
}

static enum MHD_Result local_route(struct req *r, const struct br_route *route)
{
    if (route->flags & BR_STATIC)
        return static_file(r, route);
    if (strcmp(route->command, "health") == 0)
        return health(r);
    if (strcmp(route->command, "live") == 0) /* the process serves: nothing else is asked */
        return send_response(r, 200, json_response(r, json_pack("{s:s}", "status", "ok")));
    if (strcmp(route->command, "actions") == 0) {
        json_t *body = br_variant_actions(route->variant);
        return body ? send_response(r, 200, json_response(r, body))
                    : send_detail(r, 500, "A server error occurred.");
    }
    if (strcmp(route->command, "openapi") == 0 || strcmp(route->command, "asyncapi") == 0) {
        const char *doc = route->command[0] == 'o' ? hs.openapi : hs.asyncapi;
        struct MHD_Response *resp =
            buffer_response(r, strlen(doc), (void *)doc, MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        return send_response(r, 200, resp);
    }
    return send_detail(r, 404, "Not found.");
}

/* The final call: the whole request is in. Builds the command and sends it. */
static enum MHD_Result on_complete(struct req *r, const char *url, const char *method)
{
    const struct br_route *route = r->match.route;
    json_t *args = NULL, *err = NULL;
    struct br_file *files = NULL;
    enum MHD_Result ret;

    if (route->flags & BR_LOCAL)
        return local_route(r, route);

    if (r->has_body && r->kind == BR_BODY_JSON && r->len > 0) {
        if (br_request_parse_json(r->body ? r->body : "", r->len, &args, &err) != 0) {
            ret = send_response(r, 400, json_response(r, err));
            goto out;
        }
    } else {
        args = json_object();
    }
    if (r->pp) {
        enum MHD_Result done = MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
        if (done != MHD_YES || r->form_failed) {
            ret = send_detail(r, 400, "Multipart form parse error - Invalid multipart body.");
            goto out;
        }
        if (form_args(r, args, &files, &err) != 0) {
            ret = send_response(r, 400, json_response(r, err));
            goto out;
        }
    }

    struct query_ctx q = {args, false};
    MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, on_query, &q);
    if (q.bad) {
        ret = send_detail(r, 400, "Query parameters must be UTF-8.");
        goto out;
    }
    for (int i = 0; i < r->match.n_params; i++) {
        const struct br_param *p = &r->match.params[i];
        json_t *v = json_stringn(p->value, p->value_len);
        if (!v || json_object_setn_new(args, p->name, p->name_len, v) != 0) {
            ret = send_detail(r, 404, "Not found.");
            goto out;
        }
    }
    if (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)
        json_object_set_new(args, "partial", json_boolean(strcmp(method, "PATCH") == 0));
    if (route->flags & BR_RAW) {
        const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
        if (inm && br_request_header_ok(inm, 1024))
            json_object_set_new(args, "if_none_match", json_string(inm));
    }
    /* a source system's shapes become ours here, and only here */
    const char *command = route->command;
    int vst = br_variant_request(route->variant, args, files, &command, &r->reply_variant, &err);
    if (vst != 0) {
        ret = send_response(r, (unsigned)vst, json_response(r, err));
        goto out;
    }

    const char *tok = NULL;
    size_t tok_len = 0;
    const char *authz =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!br_request_bearer(authz, &tok, &tok_len))
        tok = NULL;
    int mid = make_message_id(r, method, url, tok, tok_len);
    if (mid != 0) {
        ret = mid == -1 ? send_detail(r, 400, "Invalid Idempotency-Key header.")
                        : send_detail(r, 500, "A server error occurred.");
        goto out;
    }
    if (make_request_url(r, url) != 0 ||
        br_request_pack(&r->call.body, tok, tok_len, args, files) != 0) {
        ret = send_detail(r, 500, "A server error occurred.");
        goto out;
    }
    drop_body(r); /* packed: the copies are no longer needed while waiting */
    if (!br_rpc_ready(command)) {
        ret = send_detail(r, 503, "Service unavailable.");
        goto out;
    }
    r->call.command = command;
    r->call.timeout_ms = hs.timeout_ms;
    /* a GET has no effect: the bridge may publish it twice (rpc.h) */
    r->call.retry_read = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    r->call.attempts = 0;
    ret = dispatch(r);
out:
    json_decref(args);
    br_request_free_files(files);
    return ret;
}

/* ---- body ---------------------------------------------------------------- */

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    struct req *r = cls;
    struct br_file *p = r->last_part;
    if (!key)
        goto fail;
    /* a field arrives in pieces (off > 0); an empty first piece may precede data */
    bool same = p && strcmp(p->name, key) == 0 && (off > 0 || p->len == 0);
    if (!same) {
        if (r->n_parts >= MAX_PARTS)
            goto fail;
        p = calloc(1, sizeof *p);
        if (!p)
            goto fail;
        p->name = strdup(key);
        p->filename = filename ? strdup(filename) : NULL;
        p->content_type = filename && content_type ? strdup(content_type) : NULL;
        if (!p->name || (filename && !p->filename)) {
            br_request_free_files(p);
            goto fail;
        }
        if (r->last_part)
            r->last_part->next = p;
        else
            r->parts = p;
        r->last_part = p;
        r->n_parts++;
    }
    if (size == 0)
        return MHD_YES;
    if (p->len + size > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + size)
            cap *= 2;
        char *d = realloc(p->data, cap);
        if (!d)
            goto fail;
        p->data = d;
        p->cap = cap;
    }
    memcpy(p->data + p->len, data, size);
    p->len += size;
    return MHD_YES;
fail:
    r->form_failed = true;
    return MHD_NO;
}

static void on_data(struct req *r, const char *data, size_t n)
{
    r->received += n;
    if (r->phase == PH_DISCARD)
        return;
    if (r->received > r->limit) {
        answer_after_body(r, 413, detail_response(r, "Request body too large."));
        return;
    }
    if (r->kind == BR_BODY_JSON) {
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap : 1024;
            while (cap < r->len + n)
                cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b) {
                answer_after_body(r, 500, detail_response(r, "A server error occurred."));
                return;
            }
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, data, n);
        r->len += n;
    } else if (r->pp) {
        if (MHD_post_process(r->pp, data, n) != MHD_YES || r->form_failed)
            answer_after_body(
                r, 400,
                detail_response(r, r->n_parts >= MAX_PARTS
                                       ? "Multipart form parse error - Too many fields."
                                       : "Multipart form parse error - Invalid multipart body."));
    }
}

/* ---- the MHD callbacks ----------------------------------------------------- */

/* The deadline watch of a connection (its socket context), or NULL. */
static struct br_guard_conn *conn_guard(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Every connection is watched from its start (it must send its request line
 * and headers within http_header_timeout_s) until libmicrohttpd closes its
 * socket, which it does only after this CLOSED call. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? br_guard_conn_open(ci->connect_fd, hs.header_timeout_ms) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        br_guard_conn_close(*socket_context);
        *socket_context = NULL;
    }
}

/* The client's address, for the x-client-ip header and the access log. */
static void note_client(struct req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->call.client_ip,
                  sizeof r->call.client_ip);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->call.client_ip,
                  sizeof r->call.client_ip);
}

/* OPTIONS on a known path: a CORS preflight (Origin and
 * Access-Control-Request-Method) gets django-cors-headers' empty 200, with
 * the CORS headers only for an allowed origin; any other OPTIONS gets DRF's
 * metadata answer. Both carry Allow. */
static enum MHD_Result options(struct req *r, const char *url)
{
    char allow[160];
    if (br_routes_allow(url, allow, sizeof allow - 9) == 0)
        return answer_early(r, 404, detail_response(r, "Not found."));
    strcat(allow, ", OPTIONS");
    const struct br_route *first = NULL;
    bool multipart = false;
    for (const struct br_route *rt = br_routes; rt->method; rt++) {
        if (!br_routes_row_match(rt, url, NULL))
            continue;
        if (!first)
            first = rt;
        multipart |= (rt->flags & BR_MULTIPART) != 0;
    }
    r->match.route = first; /* the access log names the route */
    bool preflight =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin") &&
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Method");
    struct MHD_Response *resp;
    if (preflight) {
        resp = empty_response(r);
        if (resp && r->origin[0]) {
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", CORS_ALLOW_METHODS);
            MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
            MHD_add_response_header(resp, "Access-Control-Max-Age", CORS_MAX_AGE);
        }
    } else {
        json_t *parses = json_pack("[s]", "application/json");
        if (multipart)
            json_array_append_new(parses, json_string("multipart/form-data"));
        resp = json_response(r, json_pack("{s:s, s:s, s:[s], s:o}", "name", first->summary,
                                          "description", "", "renders", "application/json",
                                          "parses", parses));
    }
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    return answer_early(r, 200, resp);
}

static enum MHD_Result on_framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                         size_t key_size, const char *value, size_t value_size)
{
    br_guard_framing_add(cls, key, key_size, value, value_size);
    return MHD_YES;
}

/* RFC 9112 section 6.3: a body length that another server on the way could
 * read differently is refused, and the connection closed at once, so that
 * bytes smuggled behind the body are never read as a request (libmicrohttpd
 * prefers Transfer-Encoding, reads a non-chunked one until the end and uses
 * the first of two Content-Lengths). True when it answered; *rc is then
 * the callback's result. */
static bool refuse_framing(struct req *r, enum MHD_Result *rc)
{
    struct br_framing f = {0};
    const char *why;
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, on_framing_header, &f);
    unsigned status = br_guard_framing_verdict(&f, &why);
    if (status == 0)
        return false;
    struct MHD_Response *resp = detail_response(r, why);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    *rc = send_response(r, status, resp);
    return true;
}

/* The first call: headers only. Routes, and refuses what can be refused
 * before the body. */
static enum MHD_Result on_headers(struct req *r, const char *url, const char *method)
{
    r->phase = PH_BODY;
    snprintf(r->method, sizeof r->method, "%s", method);
    note_client(r);
    /* the client's id only when it is safe to echo, log and forward */
    const char *rid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-ID");
    if (rid && bk_request_id_valid(rid, strnlen(rid, BK_REQUEST_ID_MAX + 1)))
        snprintf(r->call.request_id, sizeof r->call.request_id, "%s", rid);
    else
        bk_uuid4(r->call.request_id);
    enum MHD_Result framing_rc;
    if (refuse_framing(r, &framing_rc))
        return framing_rc;
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (hs.origins.n > 0 && br_policy_origin_allowed(&hs.origins, origin))
        snprintf(r->origin, sizeof r->origin, "%s", origin);

    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl)
        r->content_length = strtoull(cl, NULL, 10); /* MHD has validated it */
    r->has_body = r->content_length > 0 || (te && !cl);

    enum br_match_result m = br_routes_match(method, url, &r->match);
    /* Django's ALLOWED_HOSTS: refuse a Host we do not serve before anything
     * is sent on (it would end up in links); probes by address may skip it */
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
    if (!(m == BR_MATCH_OK && (r->match.route->flags & BR_ANY_HOST)) &&
        !br_policy_host_allowed(&hs.hosts, host)) {
        r->match.route = NULL;
        return answer_early(r, 400, detail_response(r, "Invalid Host header."));
    }
    if (strcmp(method, "OPTIONS") == 0)
        return options(r, url);
    if (m == BR_MATCH_NO_PATH)
        return answer_early(r, 404, detail_response(r, "Not found."));
    if (m == BR_MATCH_NO_METHOD) {
        char allow[160], msg[96];
        if (br_routes_allow(url, allow, sizeof allow - 9) > 0)
            strcat(allow, ", OPTIONS");
        snprintf(msg, sizeof msg, "Method \"%.32s\" not allowed.", method);
        struct MHD_Response *resp = detail_response(r, msg);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        return answer_early(r, 405, resp);
    }
    if (!r->has_body)
        return MHD_YES;

    const struct br_route *route = r->match.route;
    const char *ct =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    r->kind = br_request_body_kind(ct);
    if (r->kind == BR_BODY_OTHER ||
        (r->kind == BR_BODY_MULTIPART && !(route->flags & BR_MULTIPART))) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unsupported media type \"%.200s\" in request.", ct ? ct : "");
        return answer_early(r, 415, detail_response(r, msg));
    }
    r->limit = route->max_body                ? route->max_body
               : r->kind == BR_BODY_MULTIPART ? hs.max_upload
                                              : hs.max_json;
    if (r->content_length > r->limit)
        return answer_early(r, 413, detail_response(r, "Request body too large."));
    if (r->kind == BR_BODY_MULTIPART) {
        r->pp = MHD_create_post_processor(r->conn, POST_BUFFER, on_part, r);
        if (!r->pp)
            return answer_early(
                r, 400,
                detail_response(
                    r, "Multipart form parse error - Invalid boundary in multipart: None"));
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        msgpack_sbuffer_init(&r->call.body);
        *con_cls = r;
    }
    r->conn = conn;
    if (r->phase == PH_HEADERS) {
        br_guard_conn_deadline(conn_guard(conn), 0); /* the headers are in */
        return on_headers(r, url, method);
    }
    if (*upload_data_size) {
        on_data(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        /* a body we only drop, and longer than we are willing to read */
        return r->phase == PH_DISCARD && r->received > DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (r->response) {
        struct MHD_Response *resp = r->response;
        r->response = NULL;
        enum MHD_Result rc = MHD_queue_response(conn, r->status, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    if (r->phase == PH_DISCARD)
        return MHD_NO; /* the answer could not be built (out of memory): close */
    if (r->phase == PH_WAIT)
        return MHD_YES; /* resumed without an answer: cannot happen, but never answer twice */
    return on_complete(r, url, method);
}

/* Called once per request before its headers are parsed: the request's
 * context starts here, holding the raw target (MHD gives the handler only
 * the decoded path). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    /* the request line is in: its headers have http_header_timeout_s from now */
    br_guard_conn_deadline(conn_guard(conn), hs.header_timeout_ms);
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    msgpack_sbuffer_init(&r->call.body);
    r->uri = strdup(uri);
    r->started_us = bk_mono_us();
    return r;
}

/* One JSON line per request, written when it is over: what a load balancer's
 * access log holds, plus the request id that the workers' lines and the
 * events carry too. The route pattern, not the path: ids stay out of it and
 * lines group by endpoint. Who called comes from the worker's reply (the
 * token it verified anyway), so logging costs no signature check here. */
static void access_log(const struct req *r)
{
    const struct br_route *route = r->match.route;
    bool head = strcmp(r->method, "HEAD") == 0;
    const struct bk_log_field f[] = {
        BK_LOG_STR("method", r->method),
        BK_LOG_STR("route", route ? route->pattern : ""),
        BK_LOG_NUM("status", r->status),
        BK_LOG_NUM("duration_ms", (double)(bk_mono_us() - r->started_us) / 1000.0),
        BK_LOG_NUM("bytes", head ? 0 : r->out_len),
        BK_LOG_STR("command", r->call.command ? r->call.command : ""),
        r->user_id > 0 ? (struct bk_log_field)BK_LOG_NUM("user_id", r->user_id)
                       : (struct bk_log_field)BK_LOG_STR("service", r->service),
        BK_LOG_STR("client", r->call.client_ip),
    };
    bk_log_fields(BK_INFO, r->call.request_id, "access", f, (int)(sizeof f / sizeof f[0]));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    /* a keep-alive connection may wait http_idle_timeout_s for its next
     * request line, silent (libmicrohttpd's timeout) or not (ours) */
    br_guard_conn_deadline(conn_guard(conn), hs.idle_timeout_ms);
    if (!r)
        return;
    *con_cls = NULL;
    if (r->method[0])
        access_log(r);
    drop_body(r);
    if (r->response)
        MHD_destroy_response(r->response);
    msgpack_sbuffer_destroy(&r->call.body);
    free(r->request_url);
    free(r->uri);
    free(r);
}

/* libmicrohttpd's messages; one that repeats (a connection refused by the
 * per-address cap, say) at most once a second, so a flood stays out of the
 * log. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static const char *last_fmt[8];
    static int64_t last_at[8];
    int64_t now = bk_mono_ms();
    bool quiet = false;
    pthread_mutex_lock(&mu);
    int i = 0, oldest = 0;
    for (; i < 8 && last_fmt[i] != fmt; i++)
        if (last_at[i] < last_at[oldest])
            oldest = i;
    if (i < 8 && now - last_at[i] < 1000) {
        quiet = true;
    } else {
        i = i < 8 ? i : oldest;
        last_fmt[i] = fmt;
        last_at[i] = now;
    }
    pthread_mutex_unlock(&mu);
    if (quiet)
        return;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    bk_log(BK_WARN, NULL, "http: %s", buf);
}

/* ---- start and stop -------------------------------------------------------- */

int br_http_start(void)
{
    const char *host = bk_config_str("http_host");
    long port = bk_config_long("http_port");
    long threads = bk_config_long("http_threads");
    long max_conn = bk_config_long("http_max_connections");
    long idle_s = bk_config_long("http_idle_timeout_s");
    long header_bytes = bk_config_long("http_max_header_bytes");
    long per_address = bk_config_long("http_max_connections_per_address");
    long per_caller = bk_config_long("http_max_inflight_per_caller");
    hs.header_timeout_ms = bk_config_long("http_header_timeout_s") * 1000;
    hs.idle_timeout_ms = idle_s * 1000;
    hs.retry_after_s = bk_config_long("http_retry_after_s");
    snprintf(hs.retry_after, sizeof hs.retry_after, "%ld", hs.retry_after_s);
    hs.timeout_ms = (int)bk_config_long("http_timeout_ms");
    hs.health_timeout_ms = (int)bk_config_long("http_health_timeout_ms");
    if (hs.health_timeout_ms > hs.timeout_ms)
        hs.health_timeout_ms = hs.timeout_ms;
    hs.max_json = (size_t)bk_config_long("http_max_json_bytes");
    hs.max_upload = (size_t)bk_config_long("http_max_upload_bytes");
    hs.key_dir = bk_config_str("key_dir");
    struct bk_secret_key sk; /* Idempotency-Key needs it: refuse to start without */
    int have_key = sodium_init() < 0 ? -1 : bk_secret_get(hs.key_dir, BK_SECRET_FIRST, NULL, &sk);
    sodium_memzero(&sk, sizeof sk);
    if (have_key != 0)
        return -1;
    /* Django's ALLOWED_HOSTS; by default the bound address and loopback */
    char default_hosts[400];
    snprintf(default_hosts, sizeof default_hosts,
             strchr(host, ':') ? "[%s] localhost 127.0.0.1 [::1]" : "%s localhost 127.0.0.1 [::1]",
             host);
    const char *hosts = bk_config_str("allowed_hosts");
    if (br_policy_list_parse(*hosts ? hosts : default_hosts, &hs.hosts) < 0 ||
        br_policy_list_parse(bk_config_str("cors_allowed_origins"), &hs.origins) < 0) {
        bk_log(BK_ERROR, NULL,
               "http: allowed_hosts or cors_allowed_origins: at most %d entries of %d characters",
               BR_POLICY_MAX_ENTRIES, BR_POLICY_MAX_LEN);
        return -1;
    }
    if (port <= 0 || port > 65535 || hs.timeout_ms <= 0 || threads < 1 || threads > 64) {
        bk_log(BK_ERROR, NULL, "http: bad http_port, http_timeout_ms or http_threads");
        return -1;
    }
    snprintf(hs.default_host, sizeof hs.default_host, strchr(host, ':') ? "[%s]:%ld" : "%s:%ld",
             host, port);

    if (br_static_init(bk_config_str("web_dir")) != 0)
        return -1;
    hs.openapi = br_openapi_json();
    hs.asyncapi = br_asyncapi_json();
    if (!hs.openapi || !hs.asyncapi) {
        free(hs.openapi);
        free(hs.asyncapi);
        hs.openapi = hs.asyncapi = NULL;
        return -1;
    }
    if (br_guard_callers_init((int)per_caller, (int)bk_config_long("http_max_inflight")) != 0 ||
        br_guard_start() != 0) {
        bk_log(BK_ERROR, NULL, "http: cannot start the connection guard");
        goto fail;
    }

    struct addrinfo hints = {0}, *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%ld", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0) {
        bk_log(BK_ERROR, NULL, "http: cannot resolve %s: %s", host, gai_strerror(gai));
        goto fail;
    }
    struct sockaddr_storage addr;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);

    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)max_conn, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)per_address, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)idle_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)header_bytes, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    hs.d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_ARRAY,
                            opts, MHD_OPTION_END);
    if (!hs.d) {
        bk_log(BK_ERROR, NULL, "http: cannot listen on %s:%ld", host, port);
        goto fail;
    }
    bk_log(BK_INFO, NULL, "listening on http://%s/ (%ld thread%s; %d allowed host%s; CORS %s)",
           hs.default_host, threads, threads > 1 ? "s" : "", hs.hosts.n, hs.hosts.n == 1 ? "" : "s",
           hs.origins.n ? "on" : "off");
    return 0;
fail:
    br_guard_stop();
    br_guard_callers_free();
    free(hs.openapi);
    free(hs.asyncapi);
    hs.openapi = hs.asyncapi = NULL;
    return -1;
}

void br_http_quiesce(void)
{
    if (!hs.d)
        return;
    MHD_socket s = MHD_quiesce_daemon(hs.d);
    if (s != MHD_INVALID_SOCKET)
        close(s);
}

void br_http_stop(void)
{
    if (hs.d)
        MHD_stop_daemon(hs.d);
    hs.d = NULL;
    br_guard_stop(); /* after the daemon: every connection is closed */
    br_guard_callers_free();
    free(hs.openapi);
    free(hs.asyncapi);
    hs.openapi = hs.asyncapi = NULL;
}
