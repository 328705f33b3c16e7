-- Refresh token families (one per login), the refresh tokens issued in each,
-- password reset tokens and login throttling counters.

-- A login's refresh tokens form a family: rotating hands out the next one, and
-- presenting a used one again revokes the family (the thief's successors too).
CREATE TABLE token_families (
    id             uuid PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX token_families_user ON token_families (user_id) WHERE revoked_at IS NULL;
CREATE INDEX token_families_expires ON token_families (expires_at);

CREATE TABLE refresh_tokens (
    jti        uuid PRIMARY KEY,
    family_id  uuid NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Only the SHA-256 of a reset token is stored: a leaked table resets nothing.
-- user_id is NULL for the decoy rows written when the address is unknown, so
-- both answers cost the same work.
CREATE TABLE password_resets (
    token_hash bytea PRIMARY KEY,
    user_id    bigint REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX password_resets_expires ON password_resets (expires_at);

-- Failed logins per account ("user:<id>" or "name:<identifier>") and per
-- client address ("ip:<address>"), in a window; shared by every auth copy.
CREATE TABLE login_throttle (
    key          text PRIMARY KEY,
    failures     int NOT NULL,
    window_start timestamptz NOT NULL
);
CREATE INDEX login_throttle_window ON login_throttle (window_start);
