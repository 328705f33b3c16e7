/* The outbox relay: a thread that publishes committed events (rows of the
 * outbox table) to backend.events with publisher confirms, and deletes a row
 * only after the broker confirmed it. A crash between the two republishes the
 * event with the same message_id (its event id): at least once, never lost.
 * Copies of the relay in several processes share the table with
 * FOR UPDATE SKIP LOCKED. */
#ifndef BK_OUTBOX_H
#define BK_OUTBOX_H

struct bk_outbox;

/* Starts the relay thread with its own database and broker connections.
 * NULL on failure. */
struct bk_outbox *bk_outbox_start(const char *name);

/* Asks the relay to look at the table now (after a commit with events). */
void bk_outbox_wake(struct bk_outbox *o);

/* Publishes what is left, stops the thread and frees o (may be NULL). */
void bk_outbox_stop(struct bk_outbox *o);

#endif
