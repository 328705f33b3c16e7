-- Users, and the runtime's inbox (idempotency) and outbox (events).

CREATE TABLE users (
    id           bigserial PRIMARY KEY,
    username     varchar(150) NOT NULL UNIQUE,
    email        varchar(254) NOT NULL,
    password     text NOT NULL,
    first_name   varchar(150) NOT NULL DEFAULT '',
    last_name    varchar(150) NOT NULL DEFAULT '',
    role         text NOT NULL DEFAULT 'member'
                 CHECK (role IN ('member', 'student', 'alumni', 'faculty', 'teacher')),
    is_staff     boolean NOT NULL DEFAULT false,
    is_superuser boolean NOT NULL DEFAULT false,
    is_active    boolean NOT NULL DEFAULT true,
    date_joined  timestamptz NOT NULL DEFAULT now(),
    last_login   timestamptz
);
-- emails are unique whatever their case (Django checks this only in forms)
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

-- One row per executed write command: its reply, stored in the transaction of
-- its effect, so a repeated message_id gets the same reply and no second effect.
CREATE TABLE inbox (
    message_id  uuid PRIMARY KEY,
    command     text NOT NULL,
    fingerprint bytea NOT NULL,
    status      int NOT NULL,
    reply       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_created_at ON inbox (created_at);

-- Events committed with their cause, published by the relay, deleted once the
-- broker confirmed them.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    event_id    uuid NOT NULL,
    routing_key text NOT NULL,
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Times as clients see them: RFC 3339 UTC with microseconds, as DRF prints them.
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- The contract's Me representation, in one place for every worker.
CREATE FUNCTION user_me(u users) RETURNS json
    LANGUAGE sql STABLE
    AS $$ SELECT json_build_object(
        'id', u.id, 'username', u.username, 'email', u.email,
        'first_name', u.first_name, 'last_name', u.last_name, 'role', u.role,
        'is_staff', u.is_staff, 'is_superuser', u.is_superuser,
        'date_joined', rfc3339(u.date_joined)) $$;
