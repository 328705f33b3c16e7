/* Passwords: argon2id hashing through libsodium, and Django's four default
 * validators with their exact messages. */
#ifndef BK_PASSWORD_H
#define BK_PASSWORD_H

#include <jansson.h>
#include <sodium.h>

/* Hashes with the config's argon2_opslimit / argon2_memlimit_kib (never below
 * t = 2, m = 19 MiB). out gets the encoded $argon2id$ string. 0 or -1. */
int bk_password_hash(const char *password, char out[crypto_pwhash_STRBYTES]);

/* 0 when password matches hash, -1 otherwise. */
int bk_password_verify(const char *hash, const char *password);

/* Loads the common-password list (gzip, one lowercase password a line) from
 * the config's common_passwords path. Call once at start-up. 0 or -1. */
int bk_password_load_common(const char *path);

/* Runs Django's default validators in Django's order (similarity with the
 * user attributes, minimum length 8, common, numeric) and appends each failing
 * validator's message to errors (a JSON array). Attributes may be NULL.
 * Returns the number of failures. */
int bk_password_validate(const char *password, const char *username, const char *email,
                         const char *first_name, const char *last_name, json_t *errors);

#endif
