#include "shared/outbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/amqp.h"
#include "shared/config.h"
#include "shared/db.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/util.h"

#define BATCH 200

struct bk_outbox {
    char name[64];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending; /* wake-ups asked for */
    int stop;
    struct bk_db *db;
    amqp_connection_state_t amqp;
    uint64_t next_tag; /* the delivery tag of the next publish (confirm mode) */
    long linger_ms;    /* outbox_linger_ms */
};

static const char SQL_CLAIM[] =
    "SELECT id, event_id, routing_key, body, coalesce(correlation_id, ''), "
    "coalesce(causation_id, '') FROM outbox ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED";
static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_DONE[] = "DELETE FROM outbox WHERE id = ANY($1::bigint[])";

/* The outbox row and, in the same statement (one round trip in the write's
 * pipeline), the audit trail's row derived from the envelope
 * (schema/010_audit.sql). */
static const char SQL_PUT[] =
    "WITH o AS (INSERT INTO outbox (event_id, routing_key, body, correlation_id, causation_id) "
    "VALUES ($1, $2, $3, $4, $5)) SELECT audit_record($6::jsonb)";

static json_t *string_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *bk_event_new(const char *event, json_t *data, const char *correlation_id,
                     const char *causation_id)
{
    if (!data)
        return NULL;
    char id[37], at[32];
    bk_uuid4(id);
    bk_rfc3339(bk_now_ms() * 1000, at);
    return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o, s:o}", "v", 1, "event", event, "id", id,
                     "occurred_at", at, "correlation_id", string_or_null(correlation_id),
                     "causation_id", string_or_null(causation_id), "data", data);
}

int bk_event_actor(json_t *ev, long long user_id, const char *service, const char *channel)
{
    json_t *a =
        json_pack("{s:o, s:o, s:s}", "user_id", user_id > 0 ? json_integer(user_id) : json_null(),
                  "service", string_or_null(service), "channel", channel);
    return a ? json_object_set_new(ev, "actor", a) : -1;
}

int bk_outbox_row(const json_t *ev, struct bk_outbox_row *o, struct bk_db_stmt *st)
{
    msgpack_packer pk;
    o->json = NULL;
    msgpack_sbuffer_init(&o->sb);
    msgpack_packer_init(&pk, &o->sb, msgpack_sbuffer_write);
    if (bk_json_pack(&pk, ev) != 0)
        return -1;
    o->v[0] = json_string_value(json_object_get(ev, "id"));
    o->v[1] = json_string_value(json_object_get(ev, "event"));
    o->v[2] = o->sb.data;
    o->v[3] = json_string_value(json_object_get(ev, "correlation_id"));
    o->v[4] = json_string_value(json_object_get(ev, "causation_id"));
    o->json = json_dumps(ev, JSON_COMPACT);
    if (!o->json)
        return -1;
    o->v[5] = o->json;
    for (int i = 0; i < 6; i++)
        o->len[i] = o->fmt[i] = 0;
    o->len[2] = (int)o->sb.size;
    o->fmt[2] = 1;
    *st = (struct bk_db_stmt){SQL_PUT, 6, o->v, o->len, o->fmt};
    return 0;
}

void bk_outbox_row_free(struct bk_outbox_row *o)
{
    free(o->json);
    o->json = NULL;
    msgpack_sbuffer_destroy(&o->sb);
}

int bk_outbox_put(struct bk_db *db, const json_t *ev)
{
    struct bk_outbox_row o;
    struct bk_db_stmt st;
    int rc = bk_outbox_row(ev, &o, &st);
    if (rc == 0) {
        PGresult *r = bk_db_exec_bin(db, st.sql, st.n, st.values, st.lengths, st.formats);
        if (!bk_db_ok(r)) {
            bk_log(BK_ERROR, o.v[3], "outbox insert failed: %s",
                   r ? PQresultErrorMessage(r) : "connection lost");
            rc = -1;
        }
        PQclear(r);
    }
    bk_outbox_row_free(&o);
    return rc;
}

static int amqp_open(struct bk_outbox *o)
{
    char name[96];
    snprintf(name, sizeof name, "%s-relay-%d", o->name, (int)getpid());
    /* idle between events: no heartbeats, or the broker closes it. The
     * relay's identity is the only one that may publish events. */
    o->amqp = bk_amqp_connect_as(name, 0, BK_AMQP_RELAY);
    if (!o->amqp)
        return -1;
    amqp_confirm_select(o->amqp, 1);
    if (bk_amqp_check(amqp_get_rpc_reply(o->amqp), "confirm.select") != 0) {
        bk_amqp_close(o->amqp);
        o->amqp = NULL;
        return -1;
    }
    o->next_tag = 1;
    return 0;
}

/* One batch: claim rows, publish, wait for the confirms, delete, commit. */
static int relay_batch(struct bk_outbox *o)
{
    int n = -1;
    char *ids = NULL;
    PGresult *r = NULL;
    if (bk_db_ensure(o->db) != 0 || (!o->amqp && amqp_open(o) != 0))
        return -1;
    /* BEGIN and the claim in one round trip, the delete and COMMIT in one */
    const struct bk_db_stmt open[] = {{SQL_BEGIN, 0, NULL, NULL, NULL},
                                      {SQL_CLAIM, 0, NULL, NULL, NULL}};
    PGresult *res[2];
    if (bk_db_pipeline(o->db, 2, open, res) != 0)
        return -1;
    bool begun = bk_db_ok(res[0]);
    PQclear(res[0]);
    r = res[1];
    if (!begun || !bk_db_ok(r))
        goto out;
    int rows = PQntuples(r);
    if (rows == 0) {
        n = 0;
        goto out;
    }
    ids = malloc((size_t)rows * 21 + 3);
    size_t w = 0;
    ids[w++] = '{';
    uint64_t last = 0;
    for (int i = 0; i < rows; i++) {
        size_t len = 0;
        unsigned char *body = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 3), &len);
        amqp_basic_properties_t p;
        /* user_id: subscribers can check that the relay published it */
        p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                   AMQP_BASIC_USER_ID_FLAG;
        p.user_id = amqp_cstring_bytes(bk_amqp_user(BK_AMQP_RELAY));
        /* what caused the event, for subscribers that do not decode the body */
        const char *corr = PQgetvalue(r, i, 4), *cause = PQgetvalue(r, i, 5);
        amqp_table_entry_t h[2];
        int nh = 0;
        if (*corr) {
            p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
            p.correlation_id = amqp_cstring_bytes(corr);
            h[nh].key = amqp_cstring_bytes("x-request-id");
            h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
            h[nh++].value.value.bytes = amqp_cstring_bytes(corr);
        }
        if (*cause) {
            h[nh].key = amqp_cstring_bytes("x-causation-id");
            h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
            h[nh++].value.value.bytes = amqp_cstring_bytes(cause);
        }
        if (nh) {
            p._flags |= AMQP_BASIC_HEADERS_FLAG;
            p.headers.num_entries = nh;
            p.headers.entries = h;
        }
        p.content_type = amqp_cstring_bytes("application/msgpack");
        p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        p.message_id = amqp_cstring_bytes(PQgetvalue(r, i, 1));
        p.type = amqp_cstring_bytes(PQgetvalue(r, i, 2));
        p.timestamp = (uint64_t)time(NULL);
        amqp_bytes_t b = {len, body};
        int rc = body ? amqp_basic_publish(o->amqp, 1, amqp_cstring_bytes(BK_EX_EVENTS),
                                           amqp_cstring_bytes(PQgetvalue(r, i, 2)), 0, 0, &p, b)
                      : -1;
        PQfreemem(body);
        if (rc != AMQP_STATUS_OK)
            goto broken;
        last = o->next_tag++;
        w += (size_t)snprintf(ids + w, 22, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
    }
    ids[w++] = '}';
    ids[w] = '\0';
    if (bk_amqp_wait_confirms(o->amqp, 1, last, 5000) != 0)
        goto broken;
    PQclear(r);
    r = NULL;
    const char *params[] = {ids};
    const struct bk_db_stmt close[] = {{SQL_DONE, 1, params, NULL, NULL},
                                       {SQL_COMMIT, 0, NULL, NULL, NULL}};
    if (bk_db_pipeline(o->db, 2, close, res) != 0)
        goto out;
    bool done = bk_db_ok(res[0]) && bk_db_ok(res[1]);
    PQclear(res[0]);
    PQclear(res[1]);
    free(ids);
    if (done)
        return rows;
    bk_db_simple(o->db, "ROLLBACK");
    return -1;
broken:
    bk_log(BK_WARN, NULL, "outbox: publishing failed, reconnecting to the broker");
    bk_amqp_close(o->amqp);
    o->amqp = NULL;
out:
    PQclear(r);
    free(ids);
    if (n >= 0 && bk_db_simple(o->db, "COMMIT") == 0)
        return n;
    bk_db_simple(o->db, "ROLLBACK");
    return -1;
}

static void *relay_main(void *arg)
{
    struct bk_outbox *o = arg;
    int backoff = 100;
    for (;;) {
        pthread_mutex_lock(&o->mu);
        if (!o->pending && !o->stop) {
            /* also look now and then without being asked: rows left by a
             * copy that died between commit and publish */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&o->cv, &o->mu, &ts);
        }
        int stop = o->stop;
        bool woken = o->pending;
        o->pending = 0;
        pthread_mutex_unlock(&o->mu);
        /* a short wait after a commit woke us: the events other commits add
         * meanwhile go out in the same batch (one transaction, one confirm
         * wait) instead of one batch each */
        if (woken && !stop && o->linger_ms > 0)
            usleep((useconds_t)o->linger_ms * 1000);

        int n;
        while ((n = relay_batch(o)) == BATCH)
            ;
        if (n < 0) {
            if (stop)
                break;
            usleep((useconds_t)backoff * 1000);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        backoff = 100;
        if (stop)
            break;
    }
    return NULL;
}

struct bk_outbox *bk_outbox_start(const char *name)
{
    struct bk_outbox *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    snprintf(o->name, sizeof o->name, "%s", name);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    o->linger_ms = bk_config_long("outbox_linger_ms");
    o->db = bk_db_open(30000);
    if (!o->db || pthread_create(&o->thread, NULL, relay_main, o) != 0) {
        bk_db_close(o->db);
        free(o);
        return NULL;
    }
    return o;
}

void bk_outbox_wake(struct bk_outbox *o)
{
    pthread_mutex_lock(&o->mu);
    o->pending = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

void bk_outbox_stop(struct bk_outbox *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->stop = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    bk_amqp_close(o->amqp);
    bk_db_close(o->db);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}
