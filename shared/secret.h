/* The server secret: keys only this deployment holds, shared by the bridge and
 * the workers through key_dir (as the signing key is).
 *
 * key_dir/server.keys, mode 0600 (refused when group or others may read it):
 * one key a line, "<kid> <64 hex digits>", oldest first, at most
 * BK_SECRET_MAX_KEYS. `backendctl keygen` creates it; `keygen --rotate` appends
 * a new key and drops the oldest beyond the limit.
 *
 *   - the last key is current: it keys new inbox fingerprints and encrypts new
 *     stored replies; a row names its key id, so older keys still open and
 *     check the rows they made (24 h of them);
 *   - the first key derives message ids from Idempotency-Key, so a rotation
 *     does not give a retry in flight a new id (it changes only once the
 *     first key is dropped).
 *
 * Each purpose uses its own subkey (crypto_kdf), so no two share key bytes.
 * The pure functions take the key; bk_secret_get reads the file (cached,
 * re-read when it changes or names a kid we do not know). */
#ifndef BK_SECRET_H
#define BK_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define BK_SECRET_FILE     "server.keys"
#define BK_SECRET_KID_LEN  8 /* lowercase hex */
#define BK_SECRET_KEY_LEN  32
#define BK_SECRET_MAX_KEYS 16
#define BK_SECRET_FP_LEN   32
/* bk_secret_seal's output is the plaintext plus this (nonce and MAC). */
#define BK_SECRET_SEAL_OVERHEAD (24 + 16) /* crypto_secretbox NONCEBYTES + MACBYTES */

struct bk_secret_key {
    char kid[BK_SECRET_KID_LEN + 1];
    unsigned char key[BK_SECRET_KEY_LEN];
};

enum bk_secret_which {
    BK_SECRET_CURRENT, /* the last line */
    BK_SECRET_FIRST,   /* the first line (message ids) */
    BK_SECRET_BY_KID,  /* the one named kid */
};

/* Copies the key asked for from dir/server.keys into out (wipe it with
 * sodium_memzero after use). kid only for BK_SECRET_BY_KID. Thread-safe.
 * 0, or -1 (no file, a malformed or readable-by-others file, unknown kid;
 * logged except the unknown kid). */
int bk_secret_get(const char *dir, enum bk_secret_which which, const char *kid,
                  struct bk_secret_key *out);

/* Creates dir/server.keys with one key unless it exists; with rotate, appends
 * a new current key. kid_out gets the current kid. 0 or -1 (logged). */
int bk_secret_keygen(const char *dir, bool rotate, char kid_out[BK_SECRET_KID_LEN + 1]);

/* A message id (UUID text, version 8) keyed with key: the same scope and name
 * give the same id, and nobody without the key can compute or predict it. */
void bk_secret_message_id(const struct bk_secret_key *key, const char *scope, const char *name,
                          size_t name_len, char out[37]);

/* The inbox fingerprint of a command: keyed BLAKE2b over the command name,
 * the caller and the packed args, so a database reader cannot test guesses of
 * a password in the args against it. */
void bk_secret_fingerprint(const struct bk_secret_key *key, const char *command, const char *caller,
                           const void *args, size_t args_len, unsigned char out[BK_SECRET_FP_LEN]);

/* crypto_secretbox of msg under a key bound to context (the inbox row's
 * message id and caller), so a sealed reply opens only in its own row. out
 * must hold len + BK_SECRET_SEAL_OVERHEAD bytes. */
void bk_secret_seal(const struct bk_secret_key *key, const char *context, const void *msg,
                    size_t len, unsigned char *out);

/* The reverse: out (box_len - BK_SECRET_SEAL_OVERHEAD bytes) gets the
 * plaintext. 0, or -1 when the box is short, forged, from another row or
 * sealed with another key. */
int bk_secret_open(const struct bk_secret_key *key, const char *context, const unsigned char *box,
                   size_t box_len, unsigned char *out);

#endif
