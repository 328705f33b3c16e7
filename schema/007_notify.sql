-- The inbox of event subscribers (the notify worker, shared/subscriber.c):
-- one row per event a subscriber has handled, keyed by the event id (the
-- envelope's id, also the AMQP message_id). The row is inserted before the
-- effect, in a transaction that commits only after it, so a redelivered or
-- republished event finds the row and has no second effect, and a copy that
-- gets the same event concurrently waits on the row's lock instead of
-- mailing twice. Separate from the command inbox: an event id is not a
-- command's message_id, and each subscriber de-duplicates for itself.
CREATE TABLE subscriber_inbox (
    subscriber     text NOT NULL,
    event_id       uuid NOT NULL,
    event          text NOT NULL,
    -- done: the effect happened (mail handed over); skipped: nothing to do
    -- (the user is gone, the link expired); failed: refused for good (the
    -- mail server rejected the recipient), with the reason in detail
    outcome        text NOT NULL CHECK (outcome IN ('done', 'skipped', 'failed')),
    detail         text NOT NULL DEFAULT '',
    correlation_id text,
    handled_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscriber, event_id)
);
CREATE INDEX subscriber_inbox_handled_at ON subscriber_inbox (handled_at);
