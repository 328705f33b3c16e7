/* The bridge's AMQP side: one thread owns the broker connection (rabbitmq-c
 * connections are not thread-safe). It consumes direct replies
 * (amq.rabbitmq.reply-to, no_ack) on channel 1 and publishes the commands on
 * that same channel, as direct reply-to requires; it polls the queues'
 * consumer counts on channel 2; it reconnects with backoff when the broker
 * goes away.
 *
 * Channel 1 is in confirm mode and commands are published mandatory, without
 * waiting for either: a command the broker refuses (a worker queue at its
 * max-length with overflow reject-publish nacks it) or cannot route (returns
 * it) is answered at once, while a confirmed one simply waits for its reply,
 * which usually comes after the confirm anyway.
 *
 * HTTP threads hand calls over with br_rpc_submit (a bounded queue and an
 * eventfd wake-up); the AMQP thread runs each call's done callback exactly
 * once: with the reply, or with a timeout or unavailability. */
#ifndef BR_RPC_H
#define BR_RPC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/util.h"

enum br_rpc_result {
    BR_RPC_REPLY,       /* reply is the decoded reply body */
    BR_RPC_TIMEOUT,     /* no reply within timeout_ms: 504 */
    BR_RPC_UNAVAILABLE, /* broker down, unroutable, or stopping: 503 */
    BR_RPC_REFUSED,     /* the broker nacked the publish (a full queue): 503 + Retry-After */
    BR_RPC_BAD_REPLY,   /* the reply was not MessagePack within the limits: 502 */
};

struct br_call;
typedef void (*br_rpc_done_fn)(struct br_call *call, enum br_rpc_result result,
                               const msgpack_object *reply);

/* One command in flight. The caller owns it and fills the first part before
 * br_rpc_submit; from then until done runs, the AMQP thread reads it, and
 * the caller must not touch or free it. */
struct br_call {
    const char *command;  /* routing key; must outlive the call (route table) */
    msgpack_sbuffer body; /* the packed envelope */
    char message_id[37];
    char request_id[BK_REQUEST_ID_MAX + 1]; /* sent as the x-request-id header */
    char client_ip[64];
    const char *request_url; /* path?query, sent as x-request-target (pagination links) */
    int timeout_ms;
    /* An idempotent read (GET, HEAD): published once more, within timeout_ms,
     * when it is lost: no reply by half of timeout_ms (its read queue went
     * with a broker node), a worker's reply "retry": true (the copy holding
     * it died, shared/worker.c), or the broker connection broke under it. */
    bool retry_read;
    br_rpc_done_fn done; /* runs on the AMQP thread; reply is valid only during it */

    /* the AMQP thread's own */
    uint64_t seq;
    int64_t deadline;       /* of this attempt */
    int64_t final_deadline; /* of the call: publish time + timeout_ms */
    int attempts;           /* publishes so far */
    struct br_call *next, *prev;
};

/* Reads amqp_* and http_timeout_ms / http_max_inflight from the config and
 * starts the thread. 0 or -1. */
int br_rpc_start(void);

/* Completes every pending call with BR_RPC_UNAVAILABLE, closes the
 * connection and joins the thread. */
void br_rpc_stop(void);

/* Queues call for publishing. Returns 0 (done will run exactly once), or -1
 * when the bridge holds its maximum of calls in flight (done never runs). */
int br_rpc_submit(struct br_call *call);

/* True when the broker is connected and the command's worker queue had a
 * consumer at the last look (about every second). */
bool br_rpc_ready(const char *command);

/* Calls submitted and not yet done. */
int br_rpc_inflight(void);

/* A snapshot for the health route: broker state and, per entry of
 * bk_amqp_queues, the consumer count (-1 unknown). */
struct br_rpc_health {
    bool broker_up;
    int n_queues;
    const char *queue[8];
    const char *worker[8];
    int consumers[8];
};
void br_rpc_health(struct br_rpc_health *h);

#endif
