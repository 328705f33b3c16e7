#include "shared/amqp.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "shared/config.h"
#include "shared/log.h"

static const char *const auth_prefixes[] = {"auth", NULL};
static const char *const profile_prefixes[] = {"profile", "education", "certificate", "achievement",
                                               "resume",  "media",     "admin",       NULL};
static const char *const order_prefixes[] = {"order", NULL};
static const char *const payment_prefixes[] = {"payment", NULL};

const struct bk_amqp_queue bk_amqp_queues[] = {
    {"auth", "auth.commands", auth_prefixes},
    {"profile", "profile.commands", profile_prefixes},
    {"order", "order.commands", order_prefixes},
    {"payment", "payment.commands", payment_prefixes},
    {NULL, NULL, NULL},
};

/* The notify worker mails these (workers/notify/main.c handles exactly
 * them; scripts/lib.sh grants its identity the same names). */
static const char *const notify_events[] = {"user.password_reset_requested",
                                            "user.password_changed", "user.registered", NULL};

const struct bk_amqp_subscription bk_amqp_subscriptions[] = {
    {"notify", "notify.events", notify_events},
    {NULL, NULL, NULL},
};

const struct bk_amqp_subscription *bk_amqp_subscription_of(const char *subscriber)
{
    for (const struct bk_amqp_subscription *s = bk_amqp_subscriptions; s->subscriber; s++)
        if (strcmp(s->subscriber, subscriber) == 0)
            return s;
    return NULL;
}

const struct bk_amqp_queue *bk_amqp_queue_for(const char *command)
{
    const char *dot = strchr(command, '.');
    size_t n = dot ? (size_t)(dot - command) : strlen(command);
    for (const struct bk_amqp_queue *q = bk_amqp_queues; q->worker; q++)
        for (const char *const *p = q->prefixes; *p; p++)
            if (strlen(*p) == n && strncmp(*p, command, n) == 0)
                return q;
    return NULL;
}

void bk_amqp_cstr(amqp_bytes_t b, char *out, size_t n)
{
    size_t k = b.len < n - 1 ? b.len : n - 1;
    if (k)
        memcpy(out, b.bytes, k);
    out[k] = '\0';
}

int bk_amqp_check(amqp_rpc_reply_t r, const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        bk_log(BK_ERROR, NULL, "amqp %s: missing reply", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        bk_log(BK_ERROR, NULL, "amqp %s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            bk_log(BK_ERROR, NULL, "amqp %s: connection closed %u %.*s", what, m->reply_code,
                   (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            bk_log(BK_ERROR, NULL, "amqp %s: channel closed %u %.*s", what, m->reply_code,
                   (int)m->reply_text.len, (char *)m->reply_text.bytes);
        } else {
            bk_log(BK_ERROR, NULL, "amqp %s: server exception 0x%08x", what, r.reply.id);
        }
        break;
    }
    return -1;
}

#define MAX_PASSWORD 256

const char *bk_amqp_user(enum bk_amqp_identity identity)
{
    if (identity == BK_AMQP_RELAY && bk_config_set("relay_amqp_user"))
        return bk_config_str("relay_amqp_user");
    return bk_config_str("amqp_user");
}

/* The password of identity: the first line of its password file, read at
 * every connect (so a rotated password needs no restart), else
 * amqp_password. 0, or -1 (logged) when the file cannot be read. */
static int password_of(enum bk_amqp_identity identity, char *out, size_t n)
{
    bool relay = identity == BK_AMQP_RELAY && bk_config_set("relay_amqp_user");
    const char *key = relay ? "relay_amqp_password_file" : "amqp_password_file";
    if (!bk_config_set(key)) {
        if (relay) {
            bk_log(BK_ERROR, NULL, "config: relay_amqp_user is set but not %s", key);
            return -1;
        }
        snprintf(out, n, "%s", bk_config_str("amqp_password"));
        return 0;
    }
    const char *path = bk_config_str(key);
    FILE *f = fopen(path, "r");
    if (!f) {
        bk_log(BK_ERROR, NULL, "amqp: cannot read the password file %s (%s): %s", path, key,
               strerror(errno));
        return -1;
    }
    int rc = fgets(out, (int)n, f) ? 0 : -1;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (rc != 0 || !*out) {
        bk_log(BK_ERROR, NULL, "amqp: the password file %s (%s) is empty", path, key);
        return -1;
    }
    return 0;
}

amqp_connection_state_t bk_amqp_connect(const char *name, int heartbeat_s)
{
    return bk_amqp_connect_as(name, heartbeat_s, BK_AMQP_PROCESS);
}

amqp_connection_state_t bk_amqp_connect_as(const char *name, int heartbeat_s,
                                           enum bk_amqp_identity identity)
{
    char password[MAX_PASSWORD];
    if (password_of(identity, password, sizeof password) != 0)
        return NULL;
    const char *host = bk_config_str("amqp_host");
    int port = (int)bk_config_long("amqp_port");
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (!s) {
        amqp_destroy_connection(c);
        return NULL;
    }
    struct timeval tv = {5, 0};
    int rc = amqp_socket_open_noblock(s, host, port, &tv);
    if (rc != AMQP_STATUS_OK) {
        bk_log(BK_WARN, NULL, "amqp: cannot connect to %s:%d: %s", host, port,
               amqp_error_string2(rc));
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_table_entry_t props[1];
    props[0].key = amqp_cstring_bytes("connection_name");
    props[0].value.kind = AMQP_FIELD_KIND_UTF8;
    props[0].value.value.bytes = amqp_cstring_bytes(name);
    amqp_table_t client_props = {1, props};
    amqp_rpc_reply_t r = amqp_login_with_properties(
        c, bk_config_str("amqp_vhost"), 0, 131072, heartbeat_s, &client_props,
        AMQP_SASL_METHOD_PLAIN, bk_amqp_user(identity), password);
    sodium_memzero(password, sizeof password);
    if (bk_amqp_check(r, "login") != 0) {
        bk_log(BK_ERROR, NULL, "amqp: login as \"%s\" failed", bk_amqp_user(identity));
        amqp_destroy_connection(c);
        return NULL;
    }
    amqp_channel_open(c, 1);
    if (bk_amqp_check(amqp_get_rpc_reply(c), "channel.open") != 0) {
        bk_amqp_close(c);
        return NULL;
    }
    return c;
}

void bk_amqp_close(amqp_connection_state_t c)
{
    if (!c)
        return;
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static int declare_exchange(amqp_connection_state_t c, amqp_channel_t ch, const char *name)
{
    amqp_exchange_declare(c, ch, amqp_cstring_bytes(name), amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    return bk_amqp_check(amqp_get_rpc_reply(c), name);
}

static int declare_queue(amqp_connection_state_t c, amqp_channel_t ch, const char *name,
                         bool dead_letter)
{
    amqp_table_entry_t e[2];
    int n = 0;
    e[n].key = amqp_cstring_bytes("x-queue-type");
    e[n].value.kind = AMQP_FIELD_KIND_UTF8;
    e[n++].value.value.bytes = amqp_cstring_bytes("quorum");
    if (dead_letter) {
        e[n].key = amqp_cstring_bytes("x-dead-letter-exchange");
        e[n].value.kind = AMQP_FIELD_KIND_UTF8;
        e[n++].value.value.bytes = amqp_cstring_bytes(BK_EX_DLX);
    }
    amqp_table_t args = {n, e};
    amqp_queue_declare(c, ch, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    return bk_amqp_check(amqp_get_rpc_reply(c), name);
}

static int bind(amqp_connection_state_t c, amqp_channel_t ch, const char *queue, const char *ex,
                const char *key)
{
    amqp_queue_bind(c, ch, amqp_cstring_bytes(queue), amqp_cstring_bytes(ex),
                    amqp_cstring_bytes(key), amqp_empty_table);
    return bk_amqp_check(amqp_get_rpc_reply(c), "queue.bind");
}

int bk_amqp_declare_topology(amqp_connection_state_t c, amqp_channel_t ch)
{
    if (declare_exchange(c, ch, BK_EX_COMMANDS) || declare_exchange(c, ch, BK_EX_EVENTS) ||
        declare_exchange(c, ch, BK_EX_DLX) || declare_queue(c, ch, BK_Q_DEAD, false) ||
        bind(c, ch, BK_Q_DEAD, BK_EX_DLX, "#"))
        return -1;
    for (const struct bk_amqp_queue *q = bk_amqp_queues; q->worker; q++) {
        if (declare_queue(c, ch, q->queue, true))
            return -1;
        for (const char *const *p = q->prefixes; *p; p++) {
            char key[64];
            snprintf(key, sizeof key, "%s.#", *p);
            if (bind(c, ch, q->queue, BK_EX_COMMANDS, key))
                return -1;
        }
    }
    /* no dead-lettering for events: backend.dead holds commands, and
     * replaying an event onto backend.commands would be a category error; a
     * subscriber keeps what it cannot handle yet and logs what it refuses */
    for (const struct bk_amqp_subscription *s = bk_amqp_subscriptions; s->subscriber; s++) {
        if (declare_queue(c, ch, s->queue, false))
            return -1;
        for (const char *const *e = s->events; *e; e++)
            if (bind(c, ch, s->queue, BK_EX_EVENTS, *e))
                return -1;
    }
    return 0;
}

int bk_amqp_wait_confirms(amqp_connection_state_t c, amqp_channel_t ch, uint64_t last,
                          int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    for (;;) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (rc != AMQP_STATUS_OK) {
            bk_log(BK_WARN, NULL, "amqp: waiting for confirms: %s", amqp_error_string2(rc));
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD || f.channel != ch)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->delivery_tag >= last)
                return 0;
            break;
        }
        case AMQP_BASIC_NACK_METHOD:
            bk_log(BK_WARN, NULL, "amqp: broker nacked a publish");
            return -1;
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_message_t m;
            if (amqp_read_message(c, ch, &m, 0).reply_type == AMQP_RESPONSE_NORMAL)
                amqp_destroy_message(&m);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            bk_log(BK_WARN, NULL, "amqp: closed by the broker while waiting for confirms");
            return -1;
        default:
            break;
        }
    }
}
