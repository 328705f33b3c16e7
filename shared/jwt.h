/* JSON Web Tokens signed with Ed25519 (RFC 7519, RFC 8037: alg "EdDSA",
 * crv "Ed25519"), kid = the RFC 7638 thumbprint of the public JWK.
 *
 * Keys live in key_dir: signing.key (the private key of the current kid, read
 * only by the auth worker) and one <kid>.pub per verification key. Verifiers
 * reload the folder when it changes, so a rotated key is picked up without a
 * restart. */
#ifndef BK_JWT_H
#define BK_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_JWT_MAX 2048 /* longest token we sign or accept */

struct bk_jwt_claims {
    char token_type[16]; /* "access" or "refresh" */
    char jti[40];
    int64_t iat, exp;
    int64_t user_id;  /* 0 when absent (service tokens) */
    bool is_staff;    /* access tokens */
    char role[16];    /* access tokens */
    char service[64]; /* service tokens: the service name, else "" */
    char family[40];  /* refresh tokens (and their access tokens): the login's family id, or "" */
};

enum bk_jwt_err {
    BK_JWT_OK = 0,
    BK_JWT_MALFORMED = -1, /* not three base64url parts, bad JSON, too long */
    BK_JWT_BAD_ALG = -2,   /* alg not EdDSA (none, HS256...) or typ wrong */
    BK_JWT_UNKNOWN_KID = -3,
    BK_JWT_BAD_SIG = -4,
    BK_JWT_EXPIRED = -5,
    BK_JWT_BAD_CLAIMS = -6, /* a required claim missing or of the wrong type */
};

/* Generates a key pair into dir (created if missing) unless signing.key is
 * there already; with rotate, always makes a new one (old .pub files stay).
 * Writes the kid into kid_out. 0 or -1. */
int bk_jwt_keygen(const char *dir, bool rotate, char kid_out[64]);

/* Signs claims with dir/signing.key. token_out gets the compact JWT. 0 or -1. */
int bk_jwt_sign(const char *dir, const struct bk_jwt_claims *claims, char *token_out, size_t n);

/* Verifies token with the public keys of dir (reloaded when the folder's
 * mtime changed, at most once a second) at time now (seconds). */
enum bk_jwt_err bk_jwt_verify(const char *dir, const char *token, int64_t now,
                              struct bk_jwt_claims *out);

/* A number that changes whenever dir's verification keys are (re)loaded
 * (checked as bk_jwt_verify does, at most once a second): a cache of
 * verified tokens is emptied when it moves. */
uint64_t bk_jwt_keys_version(const char *dir);

/* The JWKS document of dir's public keys as JSON text (caller frees). */
char *bk_jwt_jwks(const char *dir);

#endif
