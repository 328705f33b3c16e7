-- The audit trail: who changed which user, order or payment, and every staff
-- action, whatever the channel (HTTP, AMQP, backendctl). It is derived from
-- the events, not kept beside them: bk_outbox_put (shared/outbox.c) writes
-- each event's outbox row and calls audit_record with the same envelope in
-- the same transaction, so an audit row exists exactly when its event does.
-- The envelope says who (actor: user_id, service, channel), the request id
-- (correlation_id) and the command (causation_id); the data says what,
-- with `changes` {field: [before, after]} or `before` (a deletion).

-- Secrets never reach the audit nor a dead letter's preview: every value
-- under a key that names one is replaced, at any depth.
CREATE FUNCTION mask_secrets(v jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    ELSIF jsonb_typeof(v) = 'object' THEN
        RETURN coalesce((SELECT jsonb_object_agg(k,
                    CASE WHEN k ~* '(password|token|refresh|secret|^access$|^auth$|^uid$|signature)'
                         THEN to_jsonb('********'::text) ELSE mask_secrets(x) END)
                FROM jsonb_each(v) AS e(k, x)), '{}'::jsonb);
    ELSIF jsonb_typeof(v) = 'array' THEN
        RETURN coalesce((SELECT jsonb_agg(mask_secrets(x) ORDER BY i)
                FROM jsonb_array_elements(v) WITH ORDINALITY AS a(x, i)), '[]'::jsonb);
    END IF;
    RETURN v;
END $$;

CREATE TABLE audit (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    event         text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    object_type   text NOT NULL,           -- user, order, payment, dead_letter,
                                           -- education, certificate, achievement
    object_id     text NOT NULL,
    actor_id      bigint,                  -- the user who did it; no foreign key:
                                           -- the trail outlives a deleted user
    actor_service text,                    -- a service token's name, or backendctl
    channel       text NOT NULL,           -- http, amqp, cli
    request_id    text,
    message_id    text,
    before        jsonb,
    after         jsonb,
    data          jsonb NOT NULL
);
CREATE INDEX audit_object ON audit (object_type, object_id, id);
CREATE INDEX audit_actor ON audit (actor_id, id);
CREATE INDEX audit_occurred ON audit (occurred_at);

-- One event envelope (CONTRACT section 1, plus "actor") to its audit row.
-- Events that change no record (logins, follows) are not audited.
CREATE FUNCTION audit_record(ev jsonb) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    d jsonb := ev->'data';
    e text := ev->>'event';
    t text;
    oid text;
    b jsonb;
    a jsonb;
BEGIN
    IF e IN ('user.registered', 'user.updated', 'user.deleted', 'user.role_changed',
             'user.password_changed', 'user.password_reset_requested', 'user.sessions_revoked') THEN
        t := 'user';
        oid := d->>'user_id';
    ELSIF e = 'order.placed' OR e LIKE 'payment.%' THEN
        t := split_part(e, '.', 1);
        oid := d->>'id';
    ELSIF e = 'order.status_changed' THEN
        t := 'order';
        oid := d->>'order_id';
    ELSIF e LIKE 'dead_letter.%' THEN
        t := 'dead_letter';
        oid := d->>'message_id';
    ELSIF split_part(e, '.', 1) IN ('education', 'certificate', 'achievement') THEN
        t := split_part(e, '.', 1);
        oid := d->>'id';
    ELSE
        RETURN;
    END IF;
    IF oid IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(d->'changes') = 'object' THEN
        SELECT jsonb_object_agg(k, v->0), jsonb_object_agg(k, v->1) INTO b, a
            FROM jsonb_each(d->'changes') AS c(k, v);
    ELSIF d ? 'before' THEN
        b := d->'before';
    ELSIF e IN ('user.registered', 'order.placed', 'payment.initiated') THEN
        a := d;
    END IF;
    INSERT INTO audit (event_id, event, occurred_at, object_type, object_id, actor_id,
                       actor_service, channel, request_id, message_id, before, after, data)
    VALUES ((ev->>'id')::uuid, e, (ev->>'occurred_at')::timestamptz, t, oid,
            (ev->'actor'->>'user_id')::bigint, ev->'actor'->>'service',
            coalesce(ev->'actor'->>'channel', 'amqp'), ev->>'correlation_id',
            ev->>'causation_id', mask_secrets(b), mask_secrets(a), mask_secrets(d))
    ON CONFLICT (event_id) DO NOTHING;
END $$;

-- An audit row as GET /api/admin/audit/ shows it; the actor's username is
-- read now (null once the user is gone).
CREATE FUNCTION audit_json(x audit) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', x.id, 'event', x.event, 'occurred_at', rfc3339(x.occurred_at),
        'object_type', x.object_type, 'object_id', x.object_id,
        'actor', json_build_object('user_id', x.actor_id, 'service', x.actor_service,
                                   'username', (SELECT username FROM users WHERE id = x.actor_id)),
        'channel', x.channel, 'request_id', x.request_id, 'message_id', x.message_id,
        'before', x.before, 'after', x.after, 'data', x.data) $$;
