#include "workers/bridge/rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shared/amqp.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/log.h"
#include "shared/util.h"

#define MAX_QUEUES      8
#define REPLY_TO        "amq.rabbitmq.reply-to"
#define CH_RPC          1 /* replies consumed and commands published: one channel */
#define CH_POLL         2 /* passive queue.declare for the consumer counts */
#define REFRESH_MS      1000
#define REFRESH_ZERO_MS 250 /* sooner while a queue has no consumer: a worker may be starting */
#define BACKOFF_MIN_MS  100
#define BACKOFF_MAX_MS  5000

static struct {
    /* shared with the HTTP threads */
    pthread_mutex_t mu;
    struct br_call *q_head, *q_tail; /* submitted, not yet taken (under mu) */
    bool closed;                     /* the thread has drained for good (under mu) */
    int wake_fd;
    atomic_bool stopping;
    atomic_bool broker_up;
    atomic_int inflight;
    atomic_int consumers[MAX_QUEUES];
    int max_inflight;
    int n_queues;

    /* the AMQP thread's own */
    pthread_t thread;
    bool started;
    amqp_connection_state_t conn;
    char prefix[9]; /* correlation ids are "<prefix>.<seq>": unique per process */
    struct br_call **ring;
    uint64_t mask;
    uint64_t next_seq;
    /* publisher confirms on CH_RPC: tags[tag & mask] is the seq of the call
     * that publish carried, 0 once settled; every tag below tag_low is
     * settled, tag_next is the next publish's (the broker counts from 1). At
     * most mask + 1 publishes are unsettled: the slots are never reused early. */
    uint64_t *tags;
    uint64_t tag_low, tag_next;
    struct br_call *p_head, *p_tail; /* pending, sorted by deadline */
    int64_t next_refresh;
} rt = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1};

/* ---- the pending list and the correlation ring (AMQP thread only) ------- */

static void pending_insert(struct br_call *c)
{
    /* Deadlines mostly arrive in order: scan back from the tail. */
    struct br_call *after = rt.p_tail;
    while (after && after->deadline > c->deadline)
        after = after->prev;
    c->prev = after;
    c->next = after ? after->next : rt.p_head;
    if (c->next)
        c->next->prev = c;
    else
        rt.p_tail = c;
    if (after)
        after->next = c;
    else
        rt.p_head = c;
}

static void pending_remove(struct br_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        rt.p_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        rt.p_tail = c->prev;
    c->next = c->prev = NULL;
    rt.ring[c->seq & rt.mask] = NULL;
}

/* Assigns a sequence number whose ring slot is free. The ring has at least
 * twice as many slots as calls can be in flight, so this ends at once. */
static void pending_add(struct br_call *c, int64_t now)
{
    uint64_t seq;
    do
        seq = rt.next_seq++;
    while (rt.ring[seq & rt.mask]);
    c->seq = seq;
    if (c->attempts++ == 0)
        c->final_deadline = now + c->timeout_ms;
    /* a read's first attempt waits half the time: the other half is its retry's */
    c->deadline = c->retry_read && c->attempts == 1 ? now + c->timeout_ms / 2 : c->final_deadline;
    rt.ring[seq & rt.mask] = c;
    pending_insert(c);
}

/* The pending call with correlation id cid, removed from the books; NULL
 * for an unknown id (a reply after its timeout, or not ours). */
static struct br_call *pending_take(amqp_bytes_t cid)
{
    const char *s = cid.bytes;
    size_t n = cid.len;
    if (n < 10 || n > 30 || memcmp(s, rt.prefix, 8) != 0 || s[8] != '.')
        return NULL;
    uint64_t seq = 0;
    for (size_t i = 9; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return NULL;
        seq = seq * 10 + (uint64_t)(s[i] - '0');
    }
    struct br_call *c = rt.ring[seq & rt.mask];
    if (!c || c->seq != seq)
        return NULL;
    pending_remove(c);
    return c;
}

static void finish(struct br_call *c, enum br_rpc_result r, const msgpack_object *reply)
{
    c->done(c, r, reply); /* c may be gone after this */
    atomic_fetch_sub(&rt.inflight, 1);
}

static void put_back(struct br_call *list);

/* A lost read gets its second publish (ahead of what waits to be published)
 * when it has one left and time for it; true when it was put back. The
 * first attempt's reply, should it still come, finds no call and is dropped. */
static bool retry_lost_read(struct br_call *c, int64_t now, const char *why)
{
    static int64_t last_log;
    if (!c->retry_read || c->attempts != 1 || now >= c->final_deadline)
        return false;
    if (now - last_log >= 1000) { /* a node's loss may lose many: one line a second */
        bk_log(BK_WARN, c->request_id, "%s: %s: published again", c->command, why);
        last_log = now;
    }
    put_back(c);
    uint64_t one = 1; /* the loop publishes it after its next wake-up */
    ssize_t w = write(rt.wake_fd, &one, sizeof one);
    (void)w;
    return true;
}

/* The broker connection broke: reads are put back for the next connection
 * (answered 503 by wait_down if there is none), the rest answered 503. */
static void fail_pending(void)
{
    int64_t now = bk_mono_ms();
    while (rt.p_head) {
        struct br_call *c = rt.p_head;
        pending_remove(c);
        if (!atomic_load(&rt.stopping) && retry_lost_read(c, now, "the broker connection broke"))
            continue;
        finish(c, BR_RPC_UNAVAILABLE, NULL);
    }
}

/* Answers calls past their deadline (504); a read past its first attempt's
 * is published again. True when one was (it waits to be published). */
static bool expire(int64_t now)
{
    static int64_t last_log; /* one line a second at most: a stuck worker times out many */
    bool again = false;
    while (rt.p_head && rt.p_head->deadline <= now) {
        struct br_call *c = rt.p_head;
        pending_remove(c);
        if (retry_lost_read(c, now, "no reply within half its time")) {
            again = true;
            continue;
        }
        if (now - last_log >= 1000) {
            bk_log(BK_WARN, c->request_id, "%s: no reply within %d ms", c->command, c->timeout_ms);
            last_log = now;
        }
        finish(c, BR_RPC_TIMEOUT, NULL);
    }
    return again;
}

/* A publish the broker refused (basic.nack): a worker queue at its
 * max-length with overflow reject-publish. The call is answered at once
 * unless its reply or timeout came first. */
static void refuse(uint64_t seq)
{
    static int64_t last_log;
    struct br_call *c = rt.ring[seq & rt.mask];
    if (!c || c->seq != seq)
        return;
    int64_t now = bk_mono_ms();
    if (now - last_log >= 1000) { /* a full queue refuses many: one line a second */
        bk_log(BK_WARN, c->request_id, "%s: refused by the broker (queue full?)", c->command);
        last_log = now;
    }
    pending_remove(c);
    finish(c, BR_RPC_REFUSED, NULL);
}

/* basic.ack / basic.nack for tag (and every earlier one when multiple).
 * Confirms of different queues may come out of order, hence a slot per tag. */
static void settle(uint64_t tag, bool multiple, bool refused)
{
    if (tag < rt.tag_low || tag >= rt.tag_next)
        return; /* settled already, or not a tag we sent */
    for (uint64_t t = multiple ? rt.tag_low : tag; t <= tag; t++) {
        uint64_t seq = rt.tags[t & rt.mask];
        rt.tags[t & rt.mask] = 0;
        if (refused && seq)
            refuse(seq);
    }
    while (rt.tag_low < rt.tag_next && rt.tags[rt.tag_low & rt.mask] == 0)
        rt.tag_low++;
}

/* ---- the submit queue ---------------------------------------------------- */

int br_rpc_submit(struct br_call *call)
{
    if (atomic_fetch_add(&rt.inflight, 1) >= rt.max_inflight)
        goto full;
    call->next = call->prev = NULL;
    pthread_mutex_lock(&rt.mu);
    if (rt.closed) {
        pthread_mutex_unlock(&rt.mu);
        goto full;
    }
    bool was_empty = rt.q_head == NULL;
    if (rt.q_tail)
        rt.q_tail->next = call;
    else
        rt.q_head = call;
    rt.q_tail = call;
    pthread_mutex_unlock(&rt.mu);
    /* The thread drains the whole queue per wake-up: one write per batch. */
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(rt.wake_fd, &one, sizeof one);
        (void)w;
    }
    return 0;
full:
    atomic_fetch_sub(&rt.inflight, 1);
    return -1;
}

static struct br_call *take_submitted(void)
{
    pthread_mutex_lock(&rt.mu);
    struct br_call *list = rt.q_head;
    rt.q_head = rt.q_tail = NULL;
    pthread_mutex_unlock(&rt.mu);
    return list;
}

static void drain_wake(void)
{
    uint64_t v;
    ssize_t r = read(rt.wake_fd, &v, sizeof v);
    (void)r;
}

/* Puts list (linked by next) back in front of what was submitted since. */
static void put_back(struct br_call *list)
{
    if (!list)
        return;
    pthread_mutex_lock(&rt.mu);
    struct br_call *last = list;
    while (last->next)
        last = last->next;
    last->next = rt.q_head;
    if (!rt.q_head)
        rt.q_tail = last;
    rt.q_head = list;
    pthread_mutex_unlock(&rt.mu);
}

static void fail_submitted(void)
{
    for (struct br_call *c = take_submitted(), *next; c; c = next) {
        next = c->next;
        finish(c, BR_RPC_UNAVAILABLE, NULL);
    }
}

/* ---- the connection -------------------------------------------------------- */

/* Reads the consumer count of every worker queue. A queue that does not
 * exist closes the channel (404): it counts as 0 and the channel reopens. */
static int refresh_consumers(void)
{
    amqp_connection_state_t c = rt.conn;
    bool any_zero = false;
    for (int i = 0; i < rt.n_queues; i++) {
        const char *name = bk_amqp_queues[i].queue;
        amqp_queue_declare_ok_t *ok =
            amqp_queue_declare(c, CH_POLL, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
        if (ok) {
            atomic_store(&rt.consumers[i], (int)ok->consumer_count);
            any_zero |= ok->consumer_count == 0;
            continue;
        }
        amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
        if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
            r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
            return bk_amqp_check(r, "queue.declare (passive)");
        bk_log(BK_WARN, NULL, "queue %s does not exist", name);
        atomic_store(&rt.consumers[i], 0);
        any_zero = true;
        amqp_channel_close_ok_t close_ok = {0};
        if (amqp_send_method(c, CH_POLL, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok) != 0)
            return -1;
        amqp_channel_open(c, CH_POLL);
        if (bk_amqp_check(amqp_get_rpc_reply(c), "channel.open") != 0)
            return -1;
    }
    amqp_maybe_release_buffers_on_channel(c, CH_POLL);
    rt.next_refresh = bk_mono_ms() + (any_zero ? REFRESH_ZERO_MS : REFRESH_MS);
    return 0;
}

static int connect_broker(void)
{
    amqp_connection_state_t c = bk_amqp_connect("bridge", 30);
    if (!c)
        return -1;
    rt.conn = c;
    /* the topology is the admin's (backendctl broker-setup): the bridge may
     * only publish commands and read its replies */
    /* confirms, so that a full queue's refusal reaches the caller (publish) */
    amqp_confirm_select(c, CH_RPC);
    if (bk_amqp_check(amqp_get_rpc_reply(c), "confirm.select") != 0)
        goto fail;
    memset(rt.tags, 0, (rt.mask + 1) * sizeof *rt.tags);
    rt.tag_low = rt.tag_next = 1;
    amqp_channel_open(c, CH_POLL);
    if (bk_amqp_check(amqp_get_rpc_reply(c), "channel.open") != 0)
        goto fail;
    /* Direct reply-to: no_ack must be 1, and commands go out on this channel. */
    amqp_basic_consume(c, CH_RPC, amqp_cstring_bytes(REPLY_TO), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    if (bk_amqp_check(amqp_get_rpc_reply(c), "basic.consume reply-to") != 0)
        goto fail;
    if (refresh_consumers() != 0)
        goto fail;
    atomic_store(&rt.broker_up, true);
    bk_log(BK_INFO, NULL, "connected to the broker");
    return 0;
fail:
    amqp_destroy_connection(c); /* no close handshake: the connection may be broken */
    rt.conn = NULL;
    return -1;
}

static void disconnect(void)
{
    atomic_store(&rt.broker_up, false);
    for (int i = 0; i < rt.n_queues; i++)
        atomic_store(&rt.consumers[i], -1);
    fail_pending();
    if (rt.conn) {
        if (atomic_load(&rt.stopping))
            bk_amqp_close(rt.conn);
        else
            amqp_destroy_connection(rt.conn);
        rt.conn = NULL;
    }
}

static int publish(struct br_call *call, int64_t now)
{
    char cid[32], expiration[24];
    pending_add(call, now);
    snprintf(cid, sizeof cid, "%s.%" PRIu64, rt.prefix, call->seq);
    /* the time the call has left: a retried read's is shorter */
    int64_t left = call->final_deadline - now;
    snprintf(expiration, sizeof expiration, "%lld", (long long)(left > 0 ? left : 1));

    amqp_table_entry_t h[4];
    int nh = 0;
    h[nh].key = amqp_cstring_bytes("x-client-ip");
    h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
    h[nh++].value.value.bytes = amqp_cstring_bytes(call->client_ip);
    h[nh].key = amqp_cstring_bytes("x-request-id");
    h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
    h[nh++].value.value.bytes = amqp_cstring_bytes(call->request_id);
    if (call->request_url) {
        h[nh].key = amqp_cstring_bytes("x-request-target");
        h[nh].value.kind = AMQP_FIELD_KIND_UTF8;
        h[nh++].value.value.bytes = amqp_cstring_bytes(call->request_url);
    }
    int64_t now_ms = bk_now_ms();
    h[nh].key = amqp_cstring_bytes("timestamp_in_ms");
    h[nh].value.kind = AMQP_FIELD_KIND_I64;
    h[nh++].value.value.i64 = now_ms;

    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
               AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
               AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_USER_ID_FLAG;
    /* checked by the broker: workers trust x-client-ip only from this identity */
    p.user_id = amqp_cstring_bytes(bk_amqp_user(BK_AMQP_PROCESS));
    p.content_type = amqp_cstring_bytes("application/msgpack");
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p.message_id = amqp_cstring_bytes(call->message_id);
    p.correlation_id = amqp_cstring_bytes(cid);
    p.reply_to = amqp_cstring_bytes(REPLY_TO);
    p.expiration = amqp_cstring_bytes(expiration);
    p.timestamp = (uint64_t)(now_ms / 1000);
    p.headers.num_entries = nh;
    p.headers.entries = h;

    amqp_bytes_t body = {call->body.size, call->body.data};
    int rc = amqp_basic_publish(rt.conn, CH_RPC, amqp_cstring_bytes(BK_EX_COMMANDS),
                                amqp_cstring_bytes(call->command), 1, 0, &p, body);
    if (rc != AMQP_STATUS_OK) {
        bk_log(BK_WARN, call->request_id, "publish %s failed: %s", call->command,
               amqp_error_string2(rc));
        return -1; /* the call is pending: disconnect() answers it */
    }
    rt.tags[rt.tag_next++ & rt.mask] = call->seq;
    return 0;
}

/* Publishes what was submitted while the confirm window has room, and puts
 * the rest back for when confirms have come. -1 when the connection failed
 * (the call that failed is pending: disconnect() answers it). */
static int publish_submitted(int64_t now)
{
    struct br_call *c = take_submitted(), *next;
    int rc = 0;
    for (; c; c = next) {
        next = c->next;
        if (rt.tag_next - rt.tag_low > rt.mask)
            break; /* every slot holds an unsettled publish */
        if (publish(c, now) != 0) {
            rc = -1;
            c = next;
            break;
        }
    }
    put_back(c);
    return rc;
}

/* Reads the message whose method frame (deliver or return) just arrived on
 * channel and completes its call. */
static int on_message(amqp_channel_t channel, bool returned)
{
    amqp_message_t m;
    amqp_rpc_reply_t r = amqp_read_message(rt.conn, channel, &m, 0);
    if (bk_amqp_check(r, "read message") != 0)
        return -1;
    struct br_call *call = NULL;
    if (m.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        call = pending_take(m.properties.correlation_id);
    if (!call) {
        bk_log(BK_DEBUG, NULL, "dropped a %s for an unknown correlation id",
               returned ? "returned command" : "reply");
    } else if (returned) {
        bk_log(BK_WARN, call->request_id, "%s: unroutable, returned by the broker", call->command);
        finish(call, BR_RPC_UNAVAILABLE, NULL);
    } else {
        msgpack_unpacked u;
        const char *why = NULL;
        msgpack_unpacked_init(&u);
        const msgpack_object *retry = NULL;
        bool ok = bk_codec_unpack(m.body.bytes, m.body.len, &u, &why) == 0 &&
                  u.data.type == MSGPACK_OBJECT_MAP;
        if (ok)
            retry = bk_codec_get(&u.data, "retry");
        if (ok && retry && retry->type == MSGPACK_OBJECT_BOOLEAN && retry->via.boolean &&
            retry_lost_read(call, bk_mono_ms(), "its worker copy lost it")) {
            /* published again by the loop */
        } else if (ok) {
            finish(call, BR_RPC_REPLY, &u.data);
        } else {
            bk_log(BK_WARN, call->request_id, "%s: undecodable reply: %s", call->command,
                   why ? why : "not a map");
            finish(call, BR_RPC_BAD_REPLY, NULL);
        }
        msgpack_unpacked_destroy(&u);
    }
    amqp_destroy_message(&m);
    return 0;
}

/* Handles every frame rabbitmq-c has buffered or the socket holds now,
 * without blocking (a zero timeout). */
static int pump(void)
{
    for (;;) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(rt.conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            return 0;
        if (rc != AMQP_STATUS_OK) {
            bk_log(BK_WARN, NULL, "broker connection lost: %s", amqp_error_string2(rc));
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD:
        case AMQP_BASIC_RETURN_METHOD:
            if (on_message(f.channel, f.payload.method.id == AMQP_BASIC_RETURN_METHOD) != 0)
                return -1;
            break;
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *m = f.payload.method.decoded;
            if (f.channel == CH_RPC)
                settle(m->delivery_tag, m->multiple, false);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *m = f.payload.method.decoded;
            if (f.channel == CH_RPC)
                settle(m->delivery_tag, m->multiple, true);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            amqp_channel_close_t *m = f.payload.method.decoded;
            bk_log(BK_WARN, NULL, "broker closed channel %u: %u %.*s", f.channel, m->reply_code,
                   (int)m->reply_text.len, (char *)m->reply_text.bytes);
            return -1;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            amqp_connection_close_t *m = f.payload.method.decoded;
            bk_log(BK_WARN, NULL, "broker closed the connection: %u %.*s", m->reply_code,
                   (int)m->reply_text.len, (char *)m->reply_text.bytes);
            return -1;
        }
        default:
            break;
        }
        /* frames queued by a synchronous call live in the pools: keep them */
        if (!amqp_frames_enqueued(rt.conn))
            amqp_maybe_release_buffers(rt.conn);
    }
}

static void run_connected(void)
{
    int fd = amqp_get_sockfd(rt.conn);
    while (!atomic_load(&rt.stopping)) {
        int64_t now = bk_mono_ms();
        if (publish_submitted(now) != 0)
            return;
        if (pump() != 0)
            return;
        now = bk_mono_ms();
        if (expire(now))
            continue; /* a read to publish again */
        if (now >= rt.next_refresh && refresh_consumers() != 0)
            return;
        /* refresh_consumers may have queued frames of channel 1 */
        if (amqp_frames_enqueued(rt.conn) || amqp_data_in_buffer(rt.conn))
            continue;

        int64_t wait = rt.next_refresh - now;
        if (rt.p_head && rt.p_head->deadline - now < wait)
            wait = rt.p_head->deadline - now;
        if (wait < 0)
            wait = 0;
        struct pollfd pfd[2] = {{fd, POLLIN, 0}, {rt.wake_fd, POLLIN, 0}};
        int n = poll(pfd, 2, (int)wait);
        if (n < 0 && errno != EINTR) {
            bk_log(BK_ERROR, NULL, "poll: %s", strerror(errno));
            return;
        }
        if (n > 0 && (pfd[1].revents & POLLIN))
            drain_wake();
    }
}

/* While the broker is away: answer what arrives with 503 and sleep ms. */
static void wait_down(int ms)
{
    int64_t until = bk_mono_ms() + ms;
    for (;;) {
        fail_submitted();
        int64_t left = until - bk_mono_ms();
        if (left <= 0 || atomic_load(&rt.stopping))
            return;
        struct pollfd pfd = {rt.wake_fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) > 0)
            drain_wake();
    }
}

static void *rpc_main(void *arg)
{
    int backoff = BACKOFF_MIN_MS;
    while (!atomic_load(&rt.stopping)) {
        if (connect_broker() != 0) {
            bk_log(BK_WARN, NULL, "broker unavailable: retrying in %d ms", backoff);
            wait_down(backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        backoff = BACKOFF_MIN_MS;
        run_connected();
        disconnect();
    }
    pthread_mutex_lock(&rt.mu);
    rt.closed = true;
    pthread_mutex_unlock(&rt.mu);
    fail_submitted();
    return NULL;
}

/* ---- the public side ------------------------------------------------------- */

int br_rpc_start(void)
{
    char uuid[37];
    rt.max_inflight = (int)bk_config_long("http_max_inflight");
    if (rt.max_inflight < 1)
        rt.max_inflight = 1;
    uint64_t size = 1024;
    while (size < 2 * (uint64_t)rt.max_inflight)
        size *= 2;
    rt.ring = calloc(size, sizeof *rt.ring);
    rt.tags = calloc(size, sizeof *rt.tags);
    if (!rt.ring || !rt.tags)
        goto fail;
    rt.mask = size - 1;
    bk_uuid4(uuid);
    memcpy(rt.prefix, uuid, 8);
    rt.prefix[8] = '\0';
    rt.next_seq = 1;
    for (rt.n_queues = 0; bk_amqp_queues[rt.n_queues].worker && rt.n_queues < MAX_QUEUES;)
        atomic_store(&rt.consumers[rt.n_queues++], -1);
    rt.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rt.wake_fd < 0) {
        bk_log(BK_ERROR, NULL, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&rt.thread, NULL, rpc_main, NULL) != 0) {
        bk_log(BK_ERROR, NULL, "cannot start the AMQP thread");
        goto fail;
    }
    rt.started = true;
    return 0;
fail:
    if (rt.wake_fd >= 0)
        close(rt.wake_fd);
    rt.wake_fd = -1;
    free(rt.ring);
    free(rt.tags);
    rt.ring = NULL;
    rt.tags = NULL;
    return -1;
}

void br_rpc_stop(void)
{
    if (!rt.started)
        return;
    atomic_store(&rt.stopping, true);
    uint64_t one = 1;
    ssize_t w = write(rt.wake_fd, &one, sizeof one);
    (void)w;
    pthread_join(rt.thread, NULL);
    rt.started = false;
    close(rt.wake_fd);
    rt.wake_fd = -1;
    free(rt.ring);
    free(rt.tags);
    rt.ring = NULL;
    rt.tags = NULL;
}

bool br_rpc_ready(const char *command)
{
    const struct bk_amqp_queue *q = bk_amqp_queue_for(command);
    if (!q || !atomic_load(&rt.broker_up))
        return false;
    int i = (int)(q - bk_amqp_queues);
    return i < rt.n_queues && atomic_load(&rt.consumers[i]) > 0;
}

int br_rpc_inflight(void)
{
    return atomic_load(&rt.inflight);
}

void br_rpc_health(struct br_rpc_health *h)
{
    memset(h, 0, sizeof *h);
    h->broker_up = atomic_load(&rt.broker_up);
    h->n_queues = rt.n_queues;
    for (int i = 0; i < rt.n_queues; i++) {
        h->queue[i] = bk_amqp_queues[i].queue;
        h->worker[i] = bk_amqp_queues[i].worker;
        h->consumers[i] = atomic_load(&rt.consumers[i]);
    }
}
