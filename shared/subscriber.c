/* The event subscriber runtime (see subscriber.h). */
#include "shared/subscriber.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/amqp.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/util.h"

#define HOUSEKEEPING_MS  (3600 * 1000)
#define FIRST_BACKOFF_MS 1000

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

struct runtime {
    const char *name;                        /* "notify" */
    const struct bk_amqp_subscription *sub;  /* its queue and events */
    const struct bk_event_handler *handlers; /* one per event */
    const char *trusted;                     /* the relay's identity, or NULL: no check */
    struct bk_db *db;
    amqp_connection_state_t amqp;
    int64_t backoff_ms; /* the next wait after a failed attempt; reset by a success */
    int64_t backoff_max_ms;
};

/* ---- reading an event ------------------------------------------------------ */

static bool obj_str(const msgpack_object *o, char *out, size_t n)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= n ||
        (o->via.str.size && memchr(o->via.str.ptr, '\0', o->via.str.size)))
        return false;
    if (o->via.str.size)
        memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return true;
}

bool bk_event_str(const struct bk_event *ev, const char *key, char *out, size_t n)
{
    return obj_str(bk_codec_get(ev->data, key), out, n);
}

bool bk_event_int(const struct bk_event *ev, const char *key, int64_t *out)
{
    const msgpack_object *o = bk_codec_get(ev->data, key);
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return true;
    }
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    return false;
}

int64_t bk_rfc3339_parse(const char *s)
{
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n != 19)
        return -1;
    const char *rest = s + n;
    if (*rest == '.')
        rest += 1 + strspn(rest + 1, "0123456789");
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* What the envelope says, checked; the strings live here. */
struct envelope {
    char name[128];
    char id[40];
    char occurred_at[40];
    char correlation_id[BK_REQUEST_ID_MAX + 1];
    char publisher[128];
    const msgpack_object *data;
};

/* Checks the delivery as an event of ours. NULL, or why it is not one. */
static const char *read_envelope(const struct runtime *rt, const amqp_envelope_t *env,
                                 const msgpack_object *body, struct envelope *e)
{
    const amqp_basic_properties_t *p = &env->message.properties;
    char message_id[64] = "";
    bk_amqp_cstr(env->routing_key, e->name, sizeof e->name);
    if ((p->_flags & AMQP_BASIC_USER_ID_FLAG) && p->user_id.len < sizeof e->publisher)
        bk_amqp_cstr(p->user_id, e->publisher, sizeof e->publisher);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        bk_amqp_cstr(p->message_id, message_id, sizeof message_id);
    if (body->type != MSGPACK_OBJECT_MAP)
        return "the body is not a map";
    const msgpack_object *v = bk_codec_get(body, "v");
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != 1)
        return "\"v\" must be 1";
    if (!bk_codec_str_eq(bk_codec_get(body, "event"), e->name))
        return "\"event\" is not the routing key";
    if (!obj_str(bk_codec_get(body, "id"), e->id, sizeof e->id) ||
        !bk_uuid_valid(e->id, strlen(e->id)))
        return "\"id\" is not a UUID";
    if (message_id[0] && strcmp(message_id, e->id) != 0)
        return "message_id is not the event id";
    /* only the relay may publish events (the broker's permissions); a
     * subscriber checks anyway, since it acts on what an event says */
    if (rt->trusted && strcmp(e->publisher, rt->trusted) != 0)
        return "not published by the relay (user_id)";
    if (!obj_str(bk_codec_get(body, "occurred_at"), e->occurred_at, sizeof e->occurred_at))
        return "\"occurred_at\" is missing";
    /* the request id of what caused the event: the logs' thread to follow */
    const msgpack_object *corr = bk_codec_get(body, "correlation_id");
    if (!obj_str(corr, e->correlation_id, sizeof e->correlation_id) ||
        !bk_request_id_valid(e->correlation_id, strlen(e->correlation_id)))
        snprintf(e->correlation_id, sizeof e->correlation_id, "%s", e->id);
    e->data = bk_codec_get(body, "data");
    if (!e->data || e->data->type != MSGPACK_OBJECT_MAP)
        return "\"data\" must be a map";
    return NULL;
}

/* ---- the inbox ------------------------------------------------------------- */

static const char SQL_CLAIM[] =
    "INSERT INTO subscriber_inbox (subscriber, event_id, event, outcome, correlation_id) "
    "VALUES ($1, $2, $3, 'done', $4) ON CONFLICT DO NOTHING RETURNING 1";
static const char SQL_OUTCOME[] = "UPDATE subscriber_inbox SET outcome = $3, detail = $4 "
                                  "WHERE subscriber = $1 AND event_id = $2";
/* long enough for a replayed or republished event to find its row */
static const char SQL_PRUNE[] = "DELETE FROM subscriber_inbox WHERE subscriber = $1 "
                                "AND handled_at < now() - interval '30 days'";

enum attempt { HANDLED, ALREADY, AGAIN };

static const char *const OUTCOMES[] = {"done", "skipped", "failed", "retry"};

static enum attempt attempt(struct runtime *rt, const struct bk_event_handler *h,
                            struct bk_event *ev, enum bk_effect *effect)
{
    PGresult *r = NULL;
    enum attempt rc = AGAIN;
    bool open = false;
    if (bk_db_ensure(rt->db) != 0) {
        snprintf(ev->detail, sizeof ev->detail, "the database is unavailable");
        return AGAIN;
    }
    if (bk_db_simple(rt->db, "BEGIN") != 0)
        goto out;
    open = true;
    /* claimed before the effect: a concurrent copy with the same event
     * blocks on this row until we commit (then skips) or roll back */
    const char *claim[] = {rt->name, ev->id, ev->name, ev->request_id};
    r = bk_db_exec(rt->db, SQL_CLAIM, 4, claim);
    if (!bk_db_ok(r)) {
        snprintf(ev->detail, sizeof ev->detail, "inbox: %s",
                 r ? PQresultErrorMessage(r) : "connection lost");
        goto out;
    }
    if (PQntuples(r) == 0) {
        rc = ALREADY;
        goto out;
    }
    PQclear(r);
    r = NULL;
    ev->detail[0] = '\0';
    *effect = h->handler(ev);
    if (*effect == BK_EFFECT_RETRY)
        goto out;
    const char *outcome[] = {rt->name, ev->id, OUTCOMES[*effect], ev->detail};
    r = bk_db_exec(rt->db, SQL_OUTCOME, 4, outcome);
    if (!bk_db_ok(r) || bk_db_simple(rt->db, "COMMIT") != 0) {
        /* the effect happened but is not recorded: it will happen once more */
        bk_log(BK_ERROR, ev->request_id, "%s %s: recording the outcome failed after the effect",
               ev->name, ev->id);
        goto out;
    }
    open = false;
    rc = HANDLED;
out:
    if (open)
        bk_db_simple(rt->db, "ROLLBACK");
    PQclear(r);
    return rc;
}

/* ---- the broker ------------------------------------------------------------- */

static int consumer_open(struct runtime *rt)
{
    char name[96];
    snprintf(name, sizeof name, "%s-worker-%d", rt->name, (int)getpid());
    /* heartbeats: the loop calls into rabbitmq-c at least every second, and
     * wait_connection keeps doing so while an event waits for a retry */
    rt->amqp = bk_amqp_connect(name, 30);
    if (!rt->amqp)
        return -1;
    /* one event at a time: the one in hand is the one that waits when the
     * mail server is down; the others stay in the queue, in order */
    amqp_basic_qos(rt->amqp, 1, 0, 1, 0);
    if (bk_amqp_check(amqp_get_rpc_reply(rt->amqp), "basic.qos") != 0)
        goto fail;
    amqp_basic_consume(rt->amqp, 1, amqp_cstring_bytes(rt->sub->queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if (bk_amqp_check(amqp_get_rpc_reply(rt->amqp), "basic.consume") != 0) {
        bk_log(BK_ERROR, NULL,
               "cannot consume %s as \"%s\": does the queue exist (backendctl broker-setup) and "
               "may this identity read it?",
               rt->sub->queue, bk_amqp_user(BK_AMQP_PROCESS));
        goto fail;
    }
    bk_log(BK_INFO, NULL, "consuming %s", rt->sub->queue);
    return 0;
fail:
    bk_amqp_close(rt->amqp);
    rt->amqp = NULL;
    return -1;
}

static void consumer_lost(struct runtime *rt)
{
    bk_log(BK_WARN, NULL,
           "broker connection lost, reconnecting (an unacked event is delivered "
           "again)");
    amqp_destroy_connection(rt->amqp);
    rt->amqp = NULL;
}

/* Waits ms while serving the connection (heartbeats both ways), holding the
 * unacked event. 0, or -1 when the broker closed the channel or connection
 * (its consumer timeout, a restart): the event goes back to the queue. */
static int wait_connection(struct runtime *rt, int64_t ms)
{
    int64_t deadline = bk_mono_ms() + ms;
    while (!stopping) {
        int64_t left = deadline - bk_mono_ms();
        if (left <= 0)
            return 0;
        struct timeval tv = {left >= 1000 ? 1 : 0, left >= 1000 ? 0 : (suseconds_t)(left * 1000)};
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(rt->amqp, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        /* with one unacked event and a prefetch of one, no delivery can
         * come: any frame is the broker ending the channel or connection */
        return -1;
    }
    return 0;
}

/* Handles one delivery to the end: acked, or left to the broker (stop, lost
 * connection). 0, or -1 when the connection is lost. */
static int process(struct runtime *rt, const amqp_envelope_t *env)
{
    msgpack_unpacked msg;
    struct envelope e = {0};
    const char *why = NULL;
    int rc = 0;
    int64_t t0 = bk_mono_us();
    if (bk_codec_unpack(env->message.body.bytes, env->message.body.len, &msg, &why) == 0)
        why = read_envelope(rt, env, &msg.data, &e);
    else
        bk_amqp_cstr(env->routing_key, e.name, sizeof e.name);
    const struct bk_event_handler *h = NULL;
    for (const struct bk_event_handler *k = rt->handlers; !why && k->event; k++)
        if (strcmp(k->event, e.name) == 0)
            h = k;
    if (!why && !h)
        why = "no handler for this event";
    if (why) {
        /* not an event we can act on, now or later: say so and let it go */
        bk_log(BK_ERROR, e.id[0] ? e.id : NULL, "refused %.100s from \"%s\": %s", e.name,
               e.publisher, why);
        goto ack;
    }
    struct bk_event ev = {
        .name = e.name,
        .id = e.id,
        .occurred_at = e.occurred_at,
        .occurred_s = bk_rfc3339_parse(e.occurred_at),
        .request_id = e.correlation_id,
        .data = e.data,
        .db = rt->db,
    };
    if (ev.occurred_s < 0)
        ev.occurred_s = bk_now_ms() / 1000;
    enum bk_effect effect = BK_EFFECT_RETRY;
    for (int tries = 1;; tries++) {
        enum attempt a = attempt(rt, h, &ev, &effect);
        if (a == ALREADY) {
            bk_log(BK_INFO, ev.request_id, "%s %s was handled before: not again", ev.name, ev.id);
            goto ack;
        }
        if (a == HANDLED)
            break;
        if (stopping) { /* unacked: the broker hands it to the next consumer */
            rc = 0;
            goto out;
        }
        int64_t wait = rt->backoff_ms + (int64_t)randombytes_uniform(250); /* no herd */
        bk_log(BK_WARN, ev.request_id, "%s %s not handled yet (try %d: %s); again in %.1fs",
               ev.name, ev.id, tries, ev.detail[0] ? ev.detail : "database", (double)wait / 1000);
        rt->backoff_ms =
            rt->backoff_ms * 2 > rt->backoff_max_ms ? rt->backoff_max_ms : rt->backoff_ms * 2;
        if (wait_connection(rt, wait) != 0) {
            rc = -1;
            goto out;
        }
        if (stopping)
            goto out;
    }
    rt->backoff_ms = FIRST_BACKOFF_MS;
    const struct bk_log_field f[] = {
        BK_LOG_STR("event", ev.name),
        BK_LOG_STR("event_id", ev.id),
        BK_LOG_STR("outcome", OUTCOMES[effect]),
        BK_LOG_STR("detail", ev.detail),
        BK_LOG_NUM("duration_ms", (double)(bk_mono_us() - t0) / 1000.0),
    };
    bk_log_fields(effect == BK_EFFECT_FAILED ? BK_ERROR : BK_INFO, ev.request_id, "event", f,
                  (int)(sizeof f / sizeof f[0]));
ack:
    if (amqp_basic_ack(rt->amqp, 1, env->delivery_tag, 0) != AMQP_STATUS_OK)
        rc = -1;
out:
    msgpack_unpacked_destroy(&msg);
    return rc;
}

/* Every bound event has a handler and every handler's event is bound: a
 * handler nobody feeds, or an event that would be acked unhandled, is a bug
 * found at start. */
static int check_handlers(const struct runtime *rt)
{
    int rc = 0;
    for (const char *const *e = rt->sub->events; *e; e++) {
        bool found = false;
        for (const struct bk_event_handler *h = rt->handlers; h->event; h++)
            found = found || strcmp(h->event, *e) == 0;
        if (!found) {
            fprintf(stderr, "%s: %s is bound to %s but has no handler\n", rt->name, *e,
                    rt->sub->queue);
            rc = -1;
        }
    }
    for (const struct bk_event_handler *h = rt->handlers; h->event; h++) {
        bool found = false;
        for (const char *const *e = rt->sub->events; *e; e++)
            found = found || strcmp(h->event, *e) == 0;
        if (!found) {
            fprintf(stderr, "%s: a handler for %s, which is not bound to %s (shared/amqp.c)\n",
                    rt->name, h->event, rt->sub->queue);
            rc = -1;
        }
    }
    return rc;
}

int bk_subscriber_main(const char *name, const struct bk_event_handler *handlers, int (*init)(void),
                       int argc, char **argv)
{
    (void)argc, (void)argv;
    struct runtime rt = {.name = name, .handlers = handlers, .backoff_ms = FIRST_BACKOFF_MS};
    int status = 2;
    if (bk_config_load(NULL) != 0)
        return 2;
    bk_log_init(name);
    if (sodium_init() < 0)
        goto out;
    rt.sub = bk_amqp_subscription_of(name);
    if (!rt.sub) {
        fprintf(stderr, "%s: no subscription of that name in shared/amqp.c\n", name);
        goto out;
    }
    if (check_handlers(&rt) != 0)
        goto out;
    rt.backoff_max_ms = bk_config_long("mail_retry_max_s") * 1000;
    if (bk_config_set("relay_amqp_user"))
        rt.trusted = bk_config_str("relay_amqp_user");
    else
        bk_log(BK_WARN, NULL,
               "relay_amqp_user is unset: events are not checked for their "
               "publisher");
    struct sigaction sa = {0};
    sa.sa_handler = on_stop; /* no SA_RESTART: waits wake up */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (init && init() != 0)
        goto out;
    status = 1;
    rt.db = bk_db_open(30000);
    if (!rt.db)
        goto out;
    bk_log(BK_INFO, NULL, "%s subscriber started", name);

    int backoff = 100;
    int64_t next_housekeeping = bk_mono_ms();
    while (!stopping) {
        if (bk_mono_ms() >= next_housekeeping) {
            const char *p[] = {name};
            PGresult *r = bk_db_ensure(rt.db) == 0 ? bk_db_exec(rt.db, SQL_PRUNE, 1, p) : NULL;
            if (!bk_db_ok(r))
                bk_log(BK_WARN, NULL, "housekeeping failed, will try again");
            PQclear(r);
            next_housekeeping = bk_mono_ms() + HOUSEKEEPING_MS;
        }
        if (!rt.amqp) {
            if (consumer_open(&rt) != 0) {
                usleep((useconds_t)backoff * 1000);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            backoff = 100;
        }
        amqp_envelope_t env;
        struct timeval tv = {1, 0};
        enum bk_amqp_next next = bk_amqp_next_delivery(rt.amqp, &env, &tv);
        if (next == BK_AMQP_DELIVERY) {
            int lost = process(&rt, &env);
            amqp_destroy_envelope(&env);
            if (lost)
                consumer_lost(&rt);
            continue;
        }
        if (next == BK_AMQP_IDLE)
            continue;
        consumer_lost(&rt);
    }
    status = 0;
    bk_log(BK_INFO, NULL, "%s subscriber stopped", name);
out:
    bk_amqp_close(rt.amqp);
    bk_db_close(rt.db);
    bk_config_free();
    return status;
}
