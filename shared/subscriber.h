/* The event subscriber runtime: what a subscriber of backend.events needs
 * that is not business logic (the notify worker is one; a search indexer or
 * a webhook sender would be the next).
 *
 * bk_subscriber_main consumes the subscriber's own queue (declared and bound
 * by `backendctl broker-setup`, see bk_amqp_subscriptions) as its own broker
 * identity, one event at a time, and for each:
 *
 *   - decodes the envelope with the bounded codec and checks it (v 1, an id
 *     that is a UUID, the event named as the routing key, data a map) and
 *     that the relay published it (the AMQP user_id the broker vouches for);
 *     an event that fails is logged and acked: it is no event of ours;
 *   - records the event id in subscriber_inbox in a transaction, runs the
 *     handler, records its outcome and commits: a redelivered or republished
 *     event finds its row and has no second effect, and a copy handed the
 *     same event at the same time waits on the row instead of acting too;
 *   - acks only after the commit. A handler whose dependency is down (the mail
 *     server) returns BK_EFFECT_RETRY: the transaction is rolled back and the
 *     event stays unacked in hand, tried again with exponential back-off up to
 *     mail_retry_max_s apart, never dropped; while it waits the connection is
 *     kept alive, and if the broker takes the event back (a lost connection, a
 *     stop) it is delivered again.
 *
 * The one gap left is the one every mailer has: a crash after the effect and
 * before the commit repeats the effect once (at least once, never lost).
 *
 * Log lines about an event carry the envelope's correlation_id (the request
 * id of the HTTP request that caused it) as their request id, so one grep
 * follows a request from the bridge to the mail. */
#ifndef BK_SUBSCRIBER_H
#define BK_SUBSCRIBER_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/db.h"

struct bk_event {
    const char *name;           /* "user.registered" (the routing key) */
    const char *id;             /* the event id, a UUID */
    const char *occurred_at;    /* RFC 3339, as published */
    int64_t occurred_s;         /* the same in seconds since the epoch (now, if unreadable) */
    const char *request_id;     /* correlation_id when it is a valid request id, else id */
    const msgpack_object *data; /* a map */
    struct bk_db *db;           /* in the transaction that records the event as handled */
    char detail[512];           /* what the handler did, for the inbox row and the log */
};

enum bk_effect {
    BK_EFFECT_DONE,    /* the effect happened */
    BK_EFFECT_SKIPPED, /* nothing to do (the user is gone) */
    BK_EFFECT_FAILED,  /* refused for good; detail says why (logged as an error) */
    BK_EFFECT_RETRY,   /* a dependency is down (or the database): try again later */
};

struct bk_event_handler {
    const char *event; /* exactly the events bound to the subscriber's queue */
    enum bk_effect (*handler)(struct bk_event *ev);
};

/* Runs the subscriber named name ("notify": queue and events from
 * bk_amqp_subscription_of(name)) with its handlers (ended by a zeroed entry;
 * one per bound event, checked at start). init, if not NULL, runs once
 * before consuming (templates, the mail backend) and returns 0 or -1.
 * Returns the exit status. */
int bk_subscriber_main(const char *name, const struct bk_event_handler *handlers, int (*init)(void),
                       int argc, char **argv);

/* data[key] when it is a string of fewer than n bytes without a NUL, copied
 * NUL-terminated into out; else false (absent, another type, too long). */
bool bk_event_str(const struct bk_event *ev, const char *key, char *out, size_t n);

/* data[key] when it is an integer. */
bool bk_event_int(const struct bk_event *ev, const char *key, int64_t *out);

/* RFC 3339 UTC ("2024-05-01T12:00:00.123456Z") in seconds since the epoch;
 * -1 when s is not one. */
int64_t bk_rfc3339_parse(const char *s);

#endif
