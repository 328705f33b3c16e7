/* The outbox relay: a thread that publishes committed events (rows of the
 * outbox table) to backend.events with publisher confirms, and deletes a row
 * only after the broker confirmed it. A crash between the two republishes the
 * event with the same message_id (its event id): at least once, never lost.
 * Copies of the relay in several processes share the table with
 * FOR UPDATE SKIP LOCKED. */
#ifndef BK_OUTBOX_H
#define BK_OUTBOX_H

#include <jansson.h>
#include <msgpack.h>

#include "shared/db.h"

struct bk_outbox;
struct bk_db;

/* An event's envelope (CONTRACT section 1): {v, event, id (a new UUID),
 * occurred_at, correlation_id, causation_id, data}; the caller adds "actor"
 * (bk_event_actor). correlation_id is the request id of what caused it (one
 * grep over logs and events), causation_id the message_id of the command; either may be NULL or ""
 * (null). data is stolen. NULL on failure. */
json_t *bk_event_new(const char *event, json_t *data, const char *correlation_id,
                     const char *causation_id);

/* Sets ev's "actor": who caused it, {user_id (or null), service (or null),
 * channel: "http" (published by the bridge), "amqp" (another publisher) or
 * "cli" (backendctl)}. The audit trail reads it. 0 or -1. */
int bk_event_actor(json_t *ev, long long user_id, const char *service, const char *channel);

/* Writes the event as an outbox row on db, inside the caller's transaction,
 * and its audit row (schema/010_audit.sql: audit_record, derived from the
 * envelope's data and "actor"); the relay publishes it after the commit.
 * 0 or -1 (logged). */
int bk_outbox_put(struct bk_db *db, const json_t *ev);

/* An event's outbox row, with its audit row, as one statement for
 * bk_db_pipeline: st points into o, which must live until the statement
 * ran; bk_outbox_row_free(o) after (also when this fails). 0 or -1. */
struct bk_outbox_row {
    msgpack_sbuffer sb;
    char *json; /* the envelope as JSON text, for audit_record; owned */
    const char *v[6];
    int len[6], fmt[6];
};
int bk_outbox_row(const json_t *ev, struct bk_outbox_row *o, struct bk_db_stmt *st);
void bk_outbox_row_free(struct bk_outbox_row *o);

/* Starts the relay thread with its own database and broker connections.
 * NULL on failure. */
struct bk_outbox *bk_outbox_start(const char *name);

/* Asks the relay to look at the table now (after a commit with events). */
void bk_outbox_wake(struct bk_outbox *o);

/* Publishes what is left, stops the thread and frees o (may be NULL). */
void bk_outbox_stop(struct bk_outbox *o);

#endif
