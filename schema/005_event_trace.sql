-- Tracing an event back to its cause: the request id of the request that led
-- to it (the x-request-id of the command, else its message_id) and the
-- message_id of the command itself. The relay publishes them as the event's
-- AMQP correlation_id and x-causation-id header; the body's envelope carries
-- them too. NULL for rows written before this migration.
ALTER TABLE outbox ADD COLUMN correlation_id text, ADD COLUMN causation_id text;
