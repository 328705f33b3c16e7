#include "shared/amqp.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

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

#define REPLY_TO_PREFIX "amq.rabbitmq.reply-to."

/* An Erlang node name as an atom: host part and all, [A-Za-z0-9@._-] with an
 * '@' in it. */
static bool node_name_ok(const unsigned char *s, size_t n)
{
    bool at = false;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        at = at || c == '@';
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '@' || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return at;
}

/* term_to_binary(Pid), exactly: version 131, NEW_PID_EXT (88) or PID_EXT
 * (103), the node as an atom (any of its four encodings), then ID, Serial and
 * Creation (4 bytes, or 1 for PID_EXT), and nothing after. */
static bool erlang_pid_ok(const unsigned char *b, size_t n)
{
    if (n < 4 || b[0] != 131 || (b[1] != 88 && b[1] != 103))
        return false;
    size_t tail = b[1] == 88 ? 12 : 9, off, len;
    switch (b[2]) {
    case 100: /* ATOM_EXT */
    case 118: /* ATOM_UTF8_EXT */
        if (n < 5)
            return false;
        len = (size_t)b[3] << 8 | b[4];
        off = 5;
        break;
    case 115: /* SMALL_ATOM_EXT */
    case 119: /* SMALL_ATOM_UTF8_EXT */
        len = b[3];
        off = 4;
        break;
    default:
        return false;
    }
    return n == off + len + tail && node_name_ok(b + off, len);
}

/* Strict standard base64 (with padding) of 1..max bytes into out. */
static bool b64_part(const char *s, size_t n, unsigned char *out, size_t max, size_t *out_len)
{
    const char *end = NULL;
    if (n == 0 || n % 4 != 0)
        return false;
    return sodium_base642bin(out, max, s, n, NULL, out_len, &end, sodium_base64_VARIANT_ORIGINAL) ==
               0 &&
           end == s + n && *out_len > 0;
}

static bool direct_reply_to_ok(const char *s, size_t n)
{
    const char *dot = memchr(s, '.', n);
    unsigned char buf[BK_AMQP_REPLY_TO_MAX];
    size_t len = 0;
    if (!dot)
        return false;
    size_t pid_n = (size_t)(dot - s), key_n = n - pid_n - 1;
    return b64_part(s, pid_n, buf, sizeof buf, &len) && erlang_pid_ok(buf, len) &&
           b64_part(dot + 1, key_n, buf, 64, &len);
}

bool bk_amqp_reply_to_valid(const char *s, size_t len)
{
    const size_t plen = sizeof REPLY_TO_PREFIX - 1;
    if (!s || len == 0 || len > BK_AMQP_REPLY_TO_MAX)
        return false;
    if (len > plen && memcmp(s, REPLY_TO_PREFIX, plen) == 0)
        return direct_reply_to_ok(s + plen, len - plen);
    /* "amq." names are the broker's own: only its server-named queues reply */
    if (len >= 4 && memcmp(s, "amq.", 4) == 0 && !(len > 8 && memcmp(s, "amq.gen-", 8) == 0))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
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

/* RPCs on a connection wait at most this long (amqp_set_rpc_timeout). */
#define BK_AMQP_RPC_TIMEOUT_S 10

const char *bk_amqp_user(enum bk_amqp_identity identity)
{
    if (identity == BK_AMQP_RELAY && bk_config_set("relay_amqp_user"))
        return bk_config_str("relay_amqp_user");
    if (identity == BK_AMQP_DEAD_LETTERS)
        return bk_config_str("dead_letters_amqp_user");
    return bk_config_str("amqp_user");
}

/* The password of identity: the first line of its password file, read at
 * every connect (so a rotated password needs no restart), else
 * amqp_password. 0, or -1 (logged) when the file cannot be read. */
static int password_of(enum bk_amqp_identity identity, char *out, size_t n)
{
    bool relay = identity == BK_AMQP_RELAY && bk_config_set("relay_amqp_user");
    bool dead = identity == BK_AMQP_DEAD_LETTERS;
    const char *key = relay  ? "relay_amqp_password_file"
                      : dead ? "dead_letters_amqp_password_file"
                             : "amqp_password_file";
    if (!bk_config_set(key)) {
        if (relay || dead) {
            bk_log(BK_ERROR, NULL, "config: %s is unset", key);
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

int bk_amqp_nodes(struct bk_amqp_node *out, int max)
{
    if (!bk_config_set("amqp_nodes")) {
        if (max < 1)
            return -1;
        snprintf(out[0].host, sizeof out[0].host, "%s", bk_config_str("amqp_host"));
        out[0].port = (int)bk_config_long("amqp_port");
        return 1;
    }
    const char *s = bk_config_str("amqp_nodes");
    int n = 0;
    for (;;) {
        s += strspn(s, " ,\t");
        size_t len = strcspn(s, " ,\t");
        if (len == 0)
            break;
        const char *colon = s + len;
        while (colon > s && colon[-1] != ':')
            colon--;
        size_t hlen = colon > s ? (size_t)(colon - s) - 1 : 0;
        const char *host = s;
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']')
            host++, hlen -= 2; /* [::1]:5672 */
        if (n >= max || hlen == 0 || hlen >= sizeof out[n].host)
            return -1;
        memcpy(out[n].host, host, hlen);
        out[n].host[hlen] = '\0';
        out[n].port = atoi(colon);
        if (out[n].port < 1 || out[n].port > 65535)
            return -1;
        n++;
        s += len;
    }
    return n > 0 ? n : -1;
}

/* A table entry "key": "value" (both NUL-terminated, borrowed). */
static amqp_table_entry_t utf8_entry(const char *key, const char *value)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(key)};
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

/* The node the next connect of this process tries first (-1: not chosen
 * yet). Shared by the threads of a process (a worker's consumer and relay). */
static atomic_int next_node = -1;

/* Opens a TCP connection to one node and logs in; NULL on failure (logged). */
static amqp_connection_state_t open_node(const struct bk_amqp_node *node, const char *name,
                                         int heartbeat_s, enum bk_amqp_identity identity,
                                         const char *password)
{
    long ms = bk_config_long("amqp_connect_timeout_ms");
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    if (!s)
        goto fail;
    int rc = amqp_socket_open_noblock(s, node->host, node->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        bk_log(BK_WARN, NULL, "amqp: cannot connect to %s:%d: %s", node->host, node->port,
               amqp_error_string2(rc));
        goto fail;
    }
    /* a node that accepts but does not answer (overloaded, partitioned) must
     * not hold the connect forever: the next node may work */
    if (amqp_set_handshake_timeout(c, &tv) != AMQP_STATUS_OK)
        goto fail;
    /* consumer_cancel_notify: the broker tells a consumer whose queue was
     * deleted (basic.cancel) instead of leaving it silently idle; a worker
     * then reconnects and declares its <name>.reads again (rabbitmq-c merges
     * this into its own capabilities) */
    amqp_table_entry_t cap[1];
    cap[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    cap[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    cap[0].value.value.boolean = 1;
    amqp_table_entry_t props[2];
    props[0] = utf8_entry("connection_name", name);
    props[1].key = amqp_cstring_bytes("capabilities");
    props[1].value.kind = AMQP_FIELD_KIND_TABLE;
    props[1].value.value.table = (amqp_table_t){1, cap};
    amqp_table_t client_props = {2, props};
    amqp_rpc_reply_t r = amqp_login_with_properties(
        c, bk_config_str("amqp_vhost"), 0, 131072, heartbeat_s, &client_props,
        AMQP_SASL_METHOD_PLAIN, bk_amqp_user(identity), password);
    if (bk_amqp_check(r, "login") != 0) {
        bk_log(BK_ERROR, NULL, "amqp: login as \"%s\" at %s:%d failed", bk_amqp_user(identity),
               node->host, node->port);
        goto fail;
    }
    /* RPCs (declare, consume, qos) wait at most this long: a queue whose
     * leader is being elected answers within it, a hung node does not */
    struct timeval rpc = {BK_AMQP_RPC_TIMEOUT_S, 0};
    if (amqp_set_rpc_timeout(c, &rpc) != AMQP_STATUS_OK)
        goto fail_open;
    amqp_channel_open(c, 1);
    if (bk_amqp_check(amqp_get_rpc_reply(c), "channel.open") != 0)
        goto fail_open;
    return c;
fail_open:
    bk_amqp_close(c);
    return NULL;
fail:
    if (c)
        amqp_destroy_connection(c);
    return NULL;
}

amqp_connection_state_t bk_amqp_connect(const char *name, int heartbeat_s)
{
    return bk_amqp_connect_as(name, heartbeat_s, BK_AMQP_PROCESS);
}

amqp_connection_state_t bk_amqp_connect_as(const char *name, int heartbeat_s,
                                           enum bk_amqp_identity identity)
{
    struct bk_amqp_node nodes[BK_CONFIG_MAX_NODES];
    char password[MAX_PASSWORD];
    amqp_connection_state_t c = NULL;
    int n = bk_amqp_nodes(nodes, BK_CONFIG_MAX_NODES);
    if (n < 1) {
        bk_log(BK_ERROR, NULL, "config: amqp_nodes: cannot parse \"%s\"",
               bk_config_str("amqp_nodes"));
        return NULL;
    }
    if (password_of(identity, password, sizeof password) != 0)
        return NULL;
    /* the caller says whether it can keep heartbeats (0: it may sit idle);
     * the configuration may ask for them more often */
    if (heartbeat_s > bk_config_long("amqp_heartbeat_s"))
        heartbeat_s = (int)bk_config_long("amqp_heartbeat_s");
    int first = atomic_load(&next_node);
    if (first < 0)
        first = (int)(getpid() % n);
    for (int i = 0; i < n && !c; i++) {
        int k = (first + i) % n;
        c = open_node(&nodes[k], name, heartbeat_s, identity, password);
        if (c) {
            atomic_store(&next_node, (k + 1) % n);
            /* with several nodes, which one a connection landed on matters */
            bk_log(n > 1 ? BK_INFO : BK_DEBUG, NULL, "amqp: %s connected to %s:%d%s", name,
                   nodes[k].host, nodes[k].port, i > 0 ? " (skipped a node that failed)" : "");
        }
    }
    sodium_memzero(password, sizeof password);
    if (!c && n > 1)
        bk_log(BK_WARN, NULL, "amqp: none of the %d broker nodes (amqp_nodes) answered", n);
    return c;
}

void bk_amqp_close(amqp_connection_state_t c)
{
    if (!c)
        return;
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

static int declare_exchange_of(amqp_connection_state_t c, amqp_channel_t ch, const char *name,
                               const char *type)
{
    /* backend.writes is only ever reached through backend.commands (internal:
     * nobody publishes to it directly, around the read queues' bindings) */
    amqp_boolean_t internal = strcmp(name, BK_EX_WRITES) == 0;
    amqp_exchange_declare(c, ch, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1, 0,
                          internal, amqp_empty_table);
    return bk_amqp_check(amqp_get_rpc_reply(c), name);
}

static int declare_exchange(amqp_connection_state_t c, amqp_channel_t ch, const char *name)
{
    return declare_exchange_of(c, ch, name, "topic");
}

/* backend.retry.<tier>: a command waits there ttl_ms, then its TTL
 * dead-letters it back to backend.commands under its own routing key. */
static int declare_retry_tier(amqp_connection_state_t c, amqp_channel_t ch, const char *tier,
                              int ttl_ms)
{
    char queue[64];
    snprintf(queue, sizeof queue, "%s.%s", BK_EX_RETRY, tier);
    amqp_table_entry_t e[3];
    e[0].key = amqp_cstring_bytes("x-message-ttl");
    e[0].value.kind = AMQP_FIELD_KIND_I32;
    e[0].value.value.i32 = ttl_ms;
    e[1] = utf8_entry("x-dead-letter-exchange", BK_EX_COMMANDS);
    e[2] = utf8_entry("x-queue-type", "classic");
    amqp_table_t args = {3, e};
    amqp_queue_declare(c, ch, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    if (bk_amqp_check(amqp_get_rpc_reply(c), queue) != 0)
        return -1;
    amqp_table_entry_t m[2];
    m[0] = utf8_entry("x-match", "all");
    m[1] = utf8_entry("x-bk-retry-tier", tier);
    amqp_table_t match = {2, m};
    amqp_queue_bind(c, ch, amqp_cstring_bytes(queue), amqp_cstring_bytes(BK_EX_RETRY),
                    amqp_empty_bytes, match);
    return bk_amqp_check(amqp_get_rpc_reply(c), "queue.bind (retry tier)");
}

static int declare_queue(amqp_connection_state_t c, amqp_channel_t ch, const char *name,
                         bool dead_letter)
{
    amqp_table_entry_t e[2];
    int n = 0;
    e[n++] = utf8_entry("x-queue-type", "quorum");
    if (dead_letter) {
        e[n++] = utf8_entry("x-dead-letter-exchange", BK_EX_DLX);
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

/* backend.commands with its alternate exchange. A broker set up before the
 * read queues has it without one: RabbitMQ refuses to change an exchange's
 * arguments (406), so it is deleted and declared again (its bindings were
 * only the worker queues' "prefix.#", which now live on backend.writes). */
static int declare_commands_exchange(amqp_connection_state_t c, amqp_channel_t ch)
{
    amqp_table_entry_t e[1];
    e[0] = utf8_entry("alternate-exchange", BK_EX_WRITES);
    amqp_table_t args = {1, e};
    for (int attempt = 0;; attempt++) {
        amqp_exchange_declare(c, ch, amqp_cstring_bytes(BK_EX_COMMANDS),
                              amqp_cstring_bytes("topic"), 0, 1, 0, 0, args);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
        if (r.reply_type == AMQP_RESPONSE_NORMAL)
            return 0;
        if (attempt > 0 || r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
            r.reply.id != AMQP_CHANNEL_CLOSE_METHOD ||
            ((amqp_channel_close_t *)r.reply.decoded)->reply_code != AMQP_PRECONDITION_FAILED)
            return bk_amqp_check(r, BK_EX_COMMANDS);
        bk_log(BK_WARN, NULL,
               "amqp: %s has no alternate exchange (set up before the read queues): declaring "
               "it again",
               BK_EX_COMMANDS);
        amqp_channel_close_ok_t ok = {0};
        if (amqp_send_method(c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != 0)
            return -1;
        amqp_channel_open(c, ch);
        if (bk_amqp_check(amqp_get_rpc_reply(c), "channel.open") != 0)
            return -1;
        amqp_exchange_delete(c, ch, amqp_cstring_bytes(BK_EX_COMMANDS), 0);
        if (bk_amqp_check(amqp_get_rpc_reply(c), "exchange.delete") != 0)
            return -1;
    }
}

int bk_amqp_declare_reads(amqp_connection_state_t c, amqp_channel_t ch, const char *worker,
                          const char *const *reads)
{
    char queue[64];
    snprintf(queue, sizeof queue, "%s.reads", worker);
    amqp_table_entry_t e[3];
    e[0] = utf8_entry("x-queue-type", "classic");
    e[1] = utf8_entry("x-dead-letter-exchange", BK_EX_DLX);
    e[2] = utf8_entry("x-queue-master-locator", "client-local");
    amqp_table_t args = {3, e};
    /* durable 0, exclusive 0, auto_delete 0: shared by the copies, kept
     * while none consumes (a copy restarting finds its reads waiting) */
    amqp_queue_declare(c, ch, amqp_cstring_bytes(queue), 0, 0, 0, 0, args);
    if (bk_amqp_check(amqp_get_rpc_reply(c), queue) != 0)
        return -1;
    for (const char *const *r = reads; *r; r++) {
        amqp_queue_bind(c, ch, amqp_cstring_bytes(queue), amqp_cstring_bytes(BK_EX_COMMANDS),
                        amqp_cstring_bytes(*r), amqp_empty_table);
        amqp_rpc_reply_t rr = amqp_get_rpc_reply(c);
        if (rr.reply_type == AMQP_RESPONSE_NORMAL)
            continue;
        /* a read command added since the identity's permissions were last
         * imported (scripts/lib.sh bk_broker_setup): refused (403), it stays
         * unbound and is served from the worker queue; the others are bound */
        if (rr.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
            rr.reply.id != AMQP_CHANNEL_CLOSE_METHOD ||
            ((amqp_channel_close_t *)rr.reply.decoded)->reply_code != AMQP_ACCESS_REFUSED)
            return bk_amqp_check(rr, "queue.bind");
        bk_log(BK_WARN, NULL,
               "amqp: may not bind %s to %s (import the broker identities again): it is served "
               "from the worker queue",
               *r, queue);
        amqp_channel_close_ok_t ok = {0};
        if (amqp_send_method(c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != 0)
            return -1;
        amqp_channel_open(c, ch);
        if (bk_amqp_check(amqp_get_rpc_reply(c), "channel.open") != 0)
            return -1;
    }
    return 0;
}

int bk_amqp_declare_topology(amqp_connection_state_t c, amqp_channel_t ch)
{
    if (declare_exchange_of(c, ch, BK_EX_WRITES, "topic") || declare_commands_exchange(c, ch) ||
        declare_exchange(c, ch, BK_EX_EVENTS) || declare_exchange(c, ch, BK_EX_DLX) ||
        declare_queue(c, ch, BK_Q_DEAD, false) || bind(c, ch, BK_Q_DEAD, BK_EX_DLX, "#") ||
        declare_exchange_of(c, ch, BK_EX_RETRY, "headers") ||
        declare_retry_tier(c, ch, "1s", 1000) || declare_retry_tier(c, ch, "5s", 5000) ||
        declare_retry_tier(c, ch, "30s", 30000))
        return -1;
    for (const struct bk_amqp_queue *q = bk_amqp_queues; q->worker; q++) {
        if (declare_queue(c, ch, q->queue, true))
            return -1;
        for (const char *const *p = q->prefixes; *p; p++) {
            char key[64];
            snprintf(key, sizeof key, "%s.#", *p);
            if (bind(c, ch, q->queue, BK_EX_WRITES, key))
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

enum bk_amqp_next bk_amqp_next_delivery(amqp_connection_state_t c, amqp_envelope_t *env,
                                        struct timeval *tv)
{
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, env, tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return BK_AMQP_DELIVERY;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        return BK_AMQP_IDLE;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        /* a frame that is not a delivery: a close means reconnect, and so
         * does the broker cancelling a consumer (its queue was deleted: a
         * worker's <name>.reads whose node died), so that the queue is
         * declared again and consumed */
        amqp_frame_t f;
        if (amqp_simple_wait_frame(c, &f) == AMQP_STATUS_OK && f.frame_type == AMQP_FRAME_METHOD &&
            f.payload.method.id != AMQP_CHANNEL_CLOSE_METHOD &&
            f.payload.method.id != AMQP_CONNECTION_CLOSE_METHOD &&
            f.payload.method.id != AMQP_BASIC_CANCEL_METHOD)
            return BK_AMQP_IDLE;
    }
    return BK_AMQP_LOST;
}

int bk_amqp_wait_confirms(amqp_connection_state_t c, amqp_channel_t ch, uint64_t last,
                          int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    bool returned = false; /* the broker sends basic.return before the ack */
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
                return returned ? 1 : 0;
            break;
        }
        case AMQP_BASIC_NACK_METHOD:
            bk_log(BK_WARN, NULL, "amqp: broker nacked a publish");
            return -1;
        case AMQP_BASIC_RETURN_METHOD: {
            returned = true;
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
