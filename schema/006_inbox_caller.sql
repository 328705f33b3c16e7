-- The inbox answers only its caller, and stores nothing an attacker can use
-- (issue 10, findings 5 and 6).
--
-- A row is keyed by message id AND caller ("user:<id>", "service:<name>",
-- "anon" or "anon@<broker user>"): the same message_id from another caller is
-- another command, never a window onto this one's reply. fingerprint is a
-- keyed BLAKE2b and reply a crypto_secretbox, both under the server key named
-- key_id (key_dir/server.keys; shared/secret.h).
ALTER TABLE inbox ADD COLUMN caller text NOT NULL DEFAULT '';
ALTER TABLE inbox ADD COLUMN key_id text;

-- Rows written before this hold an unkeyed SHA-256 of the args (a password
-- oracle) and replies with live tokens in clear, and do not know their
-- caller. Only the fact that their message id was used is kept: a redelivery
-- gets 409 and no second effect (key_id NULL marks them; they expire with
-- the 25 h pruning).
UPDATE inbox SET fingerprint = '\x'::bytea, reply = '\x'::bytea;

ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (message_id, caller);
ALTER TABLE inbox ALTER COLUMN caller DROP DEFAULT;
