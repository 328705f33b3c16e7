/* RabbitMQ: connection set-up from the config and the contract's topology
 * (CONTRACT section 1), declared by whoever connects first. */
#ifndef BK_AMQP_H
#define BK_AMQP_H

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdbool.h>

#define BK_EX_COMMANDS "backend.commands"
#define BK_EX_EVENTS   "backend.events"
#define BK_EX_DLX      "backend.dlx"
#define BK_Q_DEAD      "backend.dead"
/* Delayed retries: a headers exchange routing on x-bk-retry-tier to the
 * queues backend.retry.<tier>, whose message TTL dead-letters a command back
 * to backend.commands with its routing key (shared/worker.c retry_later). */
#define BK_EX_RETRY "backend.retry"
/* The alternate exchange of backend.commands (internal, topic): a command no
 * binding of backend.commands takes (every write, and an unknown name under
 * a worker's prefix) goes on here, where each worker queue is bound with its
 * prefixes ("order.#"). backend.commands itself binds only the read
 * commands, each by name, to their worker's <worker>.reads (the worker binds
 * them from its command table: bk_amqp_declare_reads). So a read never
 * lands on a quorum queue while its read queue exists, and falls back to it
 * when that queue is gone (its node died) until a worker declares it again. */
#define BK_EX_WRITES "backend.writes"

/* One worker queue and the command prefixes bound to it. */
struct bk_amqp_queue {
    const char *worker;          /* "auth" */
    const char *queue;           /* "auth.commands" */
    const char *const *prefixes; /* {"auth", NULL}: bound as "auth.#" */
};

/* The worker queues, ending with a zeroed entry. */
extern const struct bk_amqp_queue bk_amqp_queues[];

/* One event subscriber's queue and the events bound to it on backend.events,
 * each by its exact name (never a wildcard: a secret event such as
 * user.password_reset_requested must be asked for by name). */
struct bk_amqp_subscription {
    const char *subscriber;    /* "notify": its process is notify-worker */
    const char *queue;         /* "notify.events" */
    const char *const *events; /* {"user.registered", ..., NULL} */
};

/* The subscribers' queues, ending with a zeroed entry. Not worker queues:
 * the bridge neither routes to them nor counts them in its health. */
extern const struct bk_amqp_subscription bk_amqp_subscriptions[];

/* The subscription of subscriber ("notify"), or NULL. */
const struct bk_amqp_subscription *bk_amqp_subscription_of(const char *subscriber);

/* The queue serving command (by its prefix before the first dot), or NULL. */
const struct bk_amqp_queue *bk_amqp_queue_for(const char *command);

/* The broker identities a process may log in as. Each publish carries its
 * identity as the AMQP user_id property, which RabbitMQ checks against the
 * connection's user, so a consumer knows who published (not who claims to). */
enum bk_amqp_identity {
    BK_AMQP_PROCESS,      /* amqp_user, amqp_password_file (else amqp_password) */
    BK_AMQP_RELAY,        /* relay_amqp_user, relay_amqp_password_file; unset: BK_AMQP_PROCESS */
    BK_AMQP_DEAD_LETTERS, /* dead_letters_amqp_user, dead_letters_amqp_password_file */
};

/* The user name identity logs in as: the user_id its publishes must carry. */
const char *bk_amqp_user(enum bk_amqp_identity identity);

/* One broker node. */
struct bk_amqp_node {
    char host[256]; /* a name or an address; IPv6 without its brackets */
    int port;
};

/* The nodes a process connects to: amqp_nodes when set, else the one node
 * amqp_host:amqp_port. Fills at most max entries of out; returns how many
 * (at least 1 with a valid configuration), or -1 when an item does not parse
 * (config.c refuses such a value at load, so only a bug gets here). */
int bk_amqp_nodes(struct bk_amqp_node *out, int max);

/* bk_amqp_connect as the given identity. */
amqp_connection_state_t bk_amqp_connect_as(const char *name, int heartbeat_s,
                                           enum bk_amqp_identity identity);

/* Opens a connection (amqp_* keys of the config), logs in and opens channel 1.
 * With several nodes (amqp_nodes) it tries them in turn, each for at most
 * amqp_connect_timeout_ms, and returns the first that works: the first
 * connect of a process starts at a node chosen by its pid (so copies spread
 * over the cluster), every later one at the node after the last it reached
 * (so a reconnect after a node died tries the others first). Every component
 * connects and reconnects through here. RPCs on the connection time out too
 * (a node that hangs fails the call; the caller drops the connection and
 * connects again). name shows in the management UI. heartbeat_s is the AMQP
 * heartbeat, at most amqp_heartbeat_s: only for a connection whose owner
 * calls into rabbitmq-c at least that often (rabbitmq-c sends heartbeats only
 * from inside its calls); 0 turns them off, for a connection that may sit
 * idle (the outbox relay's). Returns NULL on failure (logged). */
amqp_connection_state_t bk_amqp_connect(const char *name, int heartbeat_s);

/* Closes and destroys; c may be NULL. */
void bk_amqp_close(amqp_connection_state_t c);

/* Declares <worker>.reads, the worker's queue for its read commands, and binds
 * each name of reads (NULL-terminated) to it on backend.commands. A classic
 * queue, non-durable: no Raft log write per enqueue and per ack (a quorum
 * queue's cost), no disk; it lives on the node of the connection that
 * declares it (client-local) and is gone when that node dies, so every worker
 * copy declares it again at each (re)connect. Dead-letters to backend.dlx
 * like the worker queue (a malformed read goes to backend.dead). The worker's
 * identity may configure this queue only, and bind only its own read
 * commands (a topic read permission on backend.commands, scripts/lib.sh); a
 * name it may not bind (added since the permissions were imported) is left
 * unbound, logged, and reaches the worker queue instead. 0 when the queue is
 * declared, or -1 (logged; the channel may be closed then). */
int bk_amqp_declare_reads(amqp_connection_state_t c, amqp_channel_t ch, const char *worker,
                          const char *const *reads);

/* Declares exchanges, worker queues (quorum, dead-lettering to backend.dlx),
 * backend.dead and the subscribers' queues (quorum, bound to their events on
 * backend.events) with their bindings on channel ch. Idempotent. 0 or -1.
 * Needs configure permission: only the admin identity has it (backendctl
 * broker-setup); the components find the topology in place. */
int bk_amqp_declare_topology(amqp_connection_state_t c, amqp_channel_t ch);

/* 0 when r is a normal reply, else -1 after logging what failed. */
int bk_amqp_check(amqp_rpc_reply_t r, const char *what);

/* Publisher confirms on a connection of its own (rabbitmq-c 0.11 has no
 * amqp_publisher_confirm_wait): waits until every tag up to last is acked.
 * Returns 0, 1 when the broker returned a mandatory publish (basic.return:
 * no queue serves its routing key; the broker still acks it), or -1 on a
 * nack, a timeout or a broken connection. */
int bk_amqp_wait_confirms(amqp_connection_state_t c, amqp_channel_t ch, uint64_t last,
                          int timeout_ms);

/* Longest reply_to we answer: an AMQP short string. */
#define BK_AMQP_REPLY_TO_MAX 255

/* Whether a command's reply_to (len bytes, not NUL-terminated) is an address
 * we publish to: a direct reply-to name as RabbitMQ issues it,
 * "amq.rabbitmq.reply-to.<base64 of an Erlang pid term>.<base64 key>" (the
 * pid term is checked byte by byte: RabbitMQ 3.10 kills the publishing
 * connection on one it cannot decode), or a plain queue name of
 * [A-Za-z0-9._:-] that does not start with "amq." (server-named "amq.gen-"
 * queues excepted). Anything else, or more than BK_AMQP_REPLY_TO_MAX bytes, is
 * refused; the worker dead-letters such a command without running it. */
bool bk_amqp_reply_to_valid(const char *s, size_t len);

/* What waiting for the next delivery gave. */
enum bk_amqp_next {
    BK_AMQP_DELIVERY, /* env is filled: amqp_destroy_envelope it */
    BK_AMQP_IDLE,     /* nothing within tv, or a frame that needs nothing */
    BK_AMQP_LOST,     /* the channel or the connection is gone: reconnect */
};

/* Waits up to tv for the next delivery of a consumer on c (channel 1), the
 * one loop every consumer (worker, subscriber) runs. Waiting inside
 * rabbitmq-c also keeps the connection's heartbeats going. */
enum bk_amqp_next bk_amqp_next_delivery(amqp_connection_state_t c, amqp_envelope_t *env,
                                        struct timeval *tv);

/* Copies the bytes of b into a NUL-terminated buffer of size n (truncating). */
void bk_amqp_cstr(amqp_bytes_t b, char *out, size_t n);

#endif
