/* JWTs signed with Ed25519. See jwt.h for the contract.
 *
 * Key folder layout (all text, one value a line):
 *   signing.key  mode 0600: line 1 = the 64-byte libsodium secret key (seed ||
 *                public key) in lowercase hex (128 chars), line 2 = its kid.
 *                Loading checks that the seed gives that key pair and that the
 *                kid is its thumbprint, and refuses a file group/other may read.
 *   <kid>.pub    mode 0644: the 32-byte public key in base64url (43 chars).
 *                Loading checks that the file name is the key's thumbprint.
 * A kid is base64url(SHA-256('{"crv":"Ed25519","kty":"OKP","x":"<x>"}')), the
 * RFC 7638 thumbprint of the public JWK, so it is always 43 base64url chars. */
#include "shared/jwt.h"

#include "shared/log.h"
#include "shared/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KID_LEN      43 /* base64url of 32 bytes, no padding */
#define MAX_KEYS     64 /* verification keys kept; more is a misconfigured folder */
#define SIGNING_FILE "signing.key"
#define B64_VARIANT  sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define CHECK_MS     1000 /* how often verifiers look at the folder's mtime */

struct pubkey {
    char kid[KID_LEN + 1];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
};

/* Process-wide verification keys of one folder. */
static struct {
    pthread_mutex_t lock;
    char dir[PATH_MAX];
    bool loaded;
    struct timespec mtime;
    int64_t checked_ms;
    size_t n;
    struct pubkey keys[MAX_KEYS];
    uint64_t version; /* moves whenever the key set may have changed */
} verifier = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The signing key, cached until signing.key is replaced (new inode or mtime). */
static struct {
    pthread_mutex_t lock;
    char dir[PATH_MAX];
    bool loaded;
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    char kid[KID_LEN + 1];
} signer = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Writes the base64url text of bin into out (NUL-terminated). Length or -1. */
static long b64_encode(const unsigned char *bin, size_t len, char *out, size_t n)
{
    if (n < sodium_base64_ENCODED_LEN(len, B64_VARIANT))
        return -1;
    sodium_bin2base64(out, n, bin, len, B64_VARIANT);
    return (long)strlen(out);
}

/* Strict base64url: no padding, no stray characters, zero trailing bits, and
 * the whole of s consumed. 0 or -1. */
static int b64_decode(const char *s, size_t len, unsigned char *out, size_t cap, size_t *out_len)
{
    const char *end = NULL;
    if (len == 0)
        return -1;
    if (sodium_base642bin(out, cap, s, len, NULL, out_len, &end, B64_VARIANT) != 0)
        return -1;
    return end == s + len ? 0 : -1;
}

static bool kid_well_formed(const char *s, size_t len)
{
    if (len != KID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* RFC 7638: members in lexicographic order, no whitespace. */
static void kid_of(const unsigned char pk[crypto_sign_PUBLICKEYBYTES], char kid[KID_LEN + 1])
{
    char x[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, B64_VARIANT)];
    char jwk[128];
    unsigned char h[crypto_hash_sha256_BYTES];
    b64_encode(pk, crypto_sign_PUBLICKEYBYTES, x, sizeof x);
    int n = snprintf(jwk, sizeof jwk, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    crypto_hash_sha256(h, (const unsigned char *)jwk, (size_t)n);
    b64_encode(h, sizeof h, kid, KID_LEN + 1);
}

static int path_join(char *out, size_t n, const char *dir, const char *name, const char *suffix)
{
    int r = snprintf(out, n, "%s/%s%s", dir, name, suffix);
    return r < 0 || (size_t)r >= n ? -1 : 0;
}

/* Loads dir/<kid>.pub, which must hold the key whose thumbprint is kid. */
static int load_pub(const char *dir, const char *kid, unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
    char path[PATH_MAX], text[128], got[KID_LEN + 1];
    struct stat st;
    size_t len, pk_len = 0;
    if (path_join(path, sizeof path, dir, kid, ".pub") != 0 ||
        bk_file_read_small(path, text, sizeof text, &st) != 0)
        return -1;
    len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    if (b64_decode(text, len, pk, crypto_sign_PUBLICKEYBYTES, &pk_len) != 0 ||
        pk_len != crypto_sign_PUBLICKEYBYTES)
        goto bad;
    kid_of(pk, got);
    if (strcmp(got, kid) != 0)
        goto bad;
    return 0;
bad:
    bk_log(BK_WARN, NULL, "jwt: ignoring %s: not a public key matching its name", path);
    return -1;
}

static int pubkey_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pubkey *)a)->kid, ((const struct pubkey *)b)->kid);
}

/* Reads every valid <kid>.pub of dir into keys (sorted by kid). 0 or -1. */
static int scan_pubs(const char *dir, struct pubkey *keys, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    *n = 0;
    if (!d) {
        bk_log(BK_ERROR, NULL, "jwt: cannot open key folder %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len != KID_LEN + 4 || strcmp(e->d_name + KID_LEN, ".pub") != 0 ||
            !kid_well_formed(e->d_name, KID_LEN))
            continue;
        if (*n == MAX_KEYS) {
            bk_log(BK_WARN, NULL, "jwt: more than %d keys in %s, ignoring the rest", MAX_KEYS, dir);
            break;
        }
        memcpy(keys[*n].kid, e->d_name, KID_LEN);
        keys[*n].kid[KID_LEN] = '\0';
        if (load_pub(dir, keys[*n].kid, keys[*n].pk) == 0)
            (*n)++;
    }
    closedir(d);
    qsort(keys, *n, sizeof *keys, pubkey_cmp);
    return 0;
}

/* Brings the verifier cache up to date with dir. Caller holds the lock. */
static void verifier_refresh(const char *dir)
{
    struct stat st;
    int64_t now = bk_mono_ms();
    bool same_dir = verifier.loaded && strcmp(verifier.dir, dir) == 0;
    if (same_dir && now - verifier.checked_ms < CHECK_MS)
        return;
    if (strlen(dir) >= sizeof verifier.dir || stat(dir, &st) != 0) {
        verifier.loaded = false;
        verifier.n = 0;
        verifier.version++;
        return;
    }
    verifier.checked_ms = now;
    if (same_dir && same_time(st.st_mtim, verifier.mtime))
        return;
    verifier.version++;
    if (scan_pubs(dir, verifier.keys, &verifier.n) != 0) {
        verifier.loaded = false;
        verifier.n = 0;
        return;
    }
    strcpy(verifier.dir, dir);
    verifier.mtime = st.st_mtim;
    verifier.loaded = true;
}

/* Finds kid's public key. A kid we do not know is looked for as a file at
 * once: a key rotated a moment ago (even within the folder's mtime
 * granularity) must verify; a bogus kid costs one failed open. */
static int verifier_find(const char *dir, const char *kid, size_t kid_len,
                         unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
    int rc = -1;
    char name[KID_LEN + 1];
    if (!kid_well_formed(kid, kid_len))
        return -1;
    memcpy(name, kid, KID_LEN);
    name[KID_LEN] = '\0';
    pthread_mutex_lock(&verifier.lock);
    verifier_refresh(dir);
    if (!verifier.loaded)
        goto out;
    for (size_t i = 0; i < verifier.n; i++) {
        if (strcmp(verifier.keys[i].kid, name) == 0) {
            memcpy(pk, verifier.keys[i].pk, crypto_sign_PUBLICKEYBYTES);
            rc = 0;
            goto out;
        }
    }
    if (verifier.n < MAX_KEYS && load_pub(dir, name, pk) == 0) {
        memcpy(verifier.keys[verifier.n].kid, name, sizeof name);
        memcpy(verifier.keys[verifier.n].pk, pk, crypto_sign_PUBLICKEYBYTES);
        verifier.n++;
        verifier.version++;
        qsort(verifier.keys, verifier.n, sizeof *verifier.keys, pubkey_cmp);
        rc = 0;
    }
out:
    pthread_mutex_unlock(&verifier.lock);
    return rc;
}

/* Reads dir/signing.key into sk and kid; st gets the file's stat. */
static int load_signing(const char *dir, unsigned char sk[crypto_sign_SECRETKEYBYTES],
                        char kid[KID_LEN + 1], struct stat *st)
{
    int rc = -1;
    char path[PATH_MAX], text[512], got[KID_LEN + 1];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], check[crypto_sign_SECRETKEYBYTES];
    size_t bin_len = 0;
    const char *hex_end = NULL;
    if (path_join(path, sizeof path, dir, SIGNING_FILE, "") != 0)
        goto out;
    if (bk_file_read_small(path, text, sizeof text, st) != 0) {
        bk_log(BK_ERROR, NULL, "jwt: cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if ((st->st_mode & 077) != 0) {
        bk_log(BK_ERROR, NULL, "jwt: %s must not be readable by group or others (chmod 600)", path);
        goto out;
    }
    if (sodium_hex2bin(sk, crypto_sign_SECRETKEYBYTES, text, strlen(text), NULL, &bin_len,
                       &hex_end) != 0 ||
        bin_len != crypto_sign_SECRETKEYBYTES || *hex_end != '\n')
        goto bad;
    /* A corrupt public half would make signatures nobody can verify. */
    crypto_sign_seed_keypair(pk, check, sk); /* the seed is the first 32 bytes */
    if (sodium_memcmp(check, sk, sizeof check) != 0)
        goto bad;
    kid_of(pk, got);
    if (strncmp(hex_end + 1, got, KID_LEN) != 0 ||
        (hex_end[1 + KID_LEN] != '\n' && hex_end[1 + KID_LEN] != '\0'))
        goto bad;
    memcpy(kid, got, sizeof got);
    rc = 0;
    goto out;
bad:
    bk_log(BK_ERROR, NULL, "jwt: %s is not a valid signing key file", path);
out:
    sodium_memzero(text, sizeof text);
    sodium_memzero(check, sizeof check);
    if (rc != 0)
        sodium_memzero(sk, crypto_sign_SECRETKEYBYTES);
    return rc;
}

static int write_pub(const char *dir, const char *kid, const unsigned char *pk)
{
    char text[KID_LEN + 2];
    b64_encode(pk, crypto_sign_PUBLICKEYBYTES, text, sizeof text);
    strcat(text, "\n");
    char name[KID_LEN + 5];
    snprintf(name, sizeof name, "%s.pub", kid);
    return bk_file_write_atomic(dir, name, text, strlen(text), 0644, true);
}

int bk_jwt_keygen(const char *dir, bool rotate, char kid_out[64])
{
    int rc = -1;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    char kid[KID_LEN + 1], pub_path[PATH_MAX];
    char text[2 * crypto_sign_SECRETKEYBYTES + KID_LEN + 3];
    struct stat st;
    if (sodium_init() < 0 || !dir || bk_mkdir_p(dir, 0700) != 0) {
        bk_log(BK_ERROR, NULL, "jwt: cannot create key folder %s", dir ? dir : "(null)");
        goto out;
    }
    if (!rotate) {
        char path[PATH_MAX];
        if (path_join(path, sizeof path, dir, SIGNING_FILE, "") != 0)
            goto out;
        if (lstat(path, &st) == 0)
            goto existing;
    }
    crypto_sign_keypair(pk, sk);
    kid_of(pk, kid);
    /* The public half goes first: a token signed with the new key must never
     * meet a verifier that cannot find its kid. */
    if (write_pub(dir, kid, pk) != 0) {
        bk_log(BK_ERROR, NULL, "jwt: cannot write %s/%s.pub: %s", dir, kid, strerror(errno));
        goto out;
    }
    sodium_bin2hex(text, sizeof text, sk, sizeof sk);
    strcat(text, "\n");
    strcat(text, kid);
    strcat(text, "\n");
    if (bk_file_write_atomic(dir, SIGNING_FILE, text, strlen(text), 0600, rotate) == 0) {
        bk_log(BK_INFO, NULL, "jwt: new signing key %s in %s", kid, dir);
        memcpy(kid_out, kid, sizeof kid);
        rc = 0;
        goto out;
    }
    if (rotate || errno != EEXIST) {
        bk_log(BK_ERROR, NULL, "jwt: cannot write %s/%s: %s", dir, SIGNING_FILE, strerror(errno));
        goto out;
    }
    /* Another process created signing.key between our check and our link:
     * theirs wins, and our unused public key must not linger. */
    if (path_join(pub_path, sizeof pub_path, dir, kid, ".pub") == 0)
        unlink(pub_path);
existing:
    if (load_signing(dir, sk, kid, &st) != 0)
        goto out;
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    if (path_join(pub_path, sizeof pub_path, dir, kid, ".pub") != 0)
        goto out;
    if (access(pub_path, F_OK) != 0 && write_pub(dir, kid, pk) != 0) /* repair */
        goto out;
    memcpy(kid_out, kid, sizeof kid);
    rc = 0;
out:
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(text, sizeof text);
    return rc;
}

/* Makes the signer cache hold dir's current signing key. Caller holds the lock. */
static int signer_refresh(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    if (strlen(dir) >= sizeof signer.dir ||
        path_join(path, sizeof path, dir, SIGNING_FILE, "") != 0 || stat(path, &st) != 0) {
        bk_log(BK_ERROR, NULL, "jwt: no signing key in %s", dir);
        return -1;
    }
    if (signer.loaded && strcmp(signer.dir, dir) == 0 && signer.dev == st.st_dev &&
        signer.ino == st.st_ino && same_time(signer.mtime, st.st_mtim))
        return 0;
    signer.loaded = false;
    if (load_signing(dir, signer.sk, signer.kid, &st) != 0)
        return -1;
    strcpy(signer.dir, dir);
    signer.dev = st.st_dev;
    signer.ino = st.st_ino;
    signer.mtime = st.st_mtim;
    signer.loaded = true;
    return 0;
}

static bool str_fits(const char *s, size_t cap)
{
    return strnlen(s, cap) < cap;
}

/* The payload JSON of claims (caller frees), or NULL. */
static char *payload_json(const struct bk_jwt_claims *c)
{
    char *text = NULL;
    char jti[37] = "";
    bool access_token = strcmp(c->token_type, "access") == 0;
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (c->jti[0] == '\0')
        bk_uuid4(jti); /* a token without a caller's jti still gets a unique one */
    if (json_object_set_new(o, "token_type", json_string(c->token_type)) != 0 ||
        json_object_set_new(o, "exp", json_integer(c->exp)) != 0 ||
        json_object_set_new(o, "iat", json_integer(c->iat)) != 0 ||
        json_object_set_new(o, "jti", json_string(c->jti[0] ? c->jti : jti)) != 0)
        goto out;
    if (c->user_id != 0 && json_object_set_new(o, "user_id", json_integer(c->user_id)) != 0)
        goto out;
    if (access_token && json_object_set_new(o, "is_staff", json_boolean(c->is_staff)) != 0)
        goto out;
    if (access_token && c->role[0] && json_object_set_new(o, "role", json_string(c->role)) != 0)
        goto out;
    if (c->service[0] && json_object_set_new(o, "service", json_string(c->service)) != 0)
        goto out;
    if (c->family[0] && json_object_set_new(o, "fam", json_string(c->family)) != 0)
        goto out;
    text = json_dumps(o, JSON_COMPACT);
out:
    json_decref(o);
    return text;
}

int bk_jwt_sign(const char *dir, const struct bk_jwt_claims *claims, char *token_out, size_t n)
{
    int rc = -1;
    char header[128], *payload = NULL;
    char buf[BK_JWT_MAX + 1];
    unsigned char sig[crypto_sign_BYTES];
    long len, part;
    bool locked = false;
    if (sodium_init() < 0 || !dir || !claims || !token_out || n == 0)
        goto out;
    if (!str_fits(claims->token_type, sizeof claims->token_type) ||
        !str_fits(claims->jti, sizeof claims->jti) ||
        !str_fits(claims->role, sizeof claims->role) ||
        !str_fits(claims->service, sizeof claims->service) ||
        !str_fits(claims->family, sizeof claims->family))
        goto out;
    if (strcmp(claims->token_type, "access") != 0 && strcmp(claims->token_type, "refresh") != 0)
        goto out;
    if (claims->user_id == 0 && claims->service[0] == '\0')
        goto out; /* a token must name a user or a service */
    payload = payload_json(claims);
    if (!payload)
        goto out;
    pthread_mutex_lock(&signer.lock);
    locked = true;
    if (signer_refresh(dir) != 0)
        goto out;
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
             signer.kid);
    len = b64_encode((const unsigned char *)header, strlen(header), buf, sizeof buf);
    if (len < 0 || (size_t)len + 1 >= sizeof buf)
        goto out;
    buf[len++] = '.';
    part = b64_encode((const unsigned char *)payload, strlen(payload), buf + len,
                      sizeof buf - (size_t)len);
    if (part < 0)
        goto out;
    len += part;
    crypto_sign_detached(sig, NULL, (const unsigned char *)buf, (size_t)len, signer.sk);
    if ((size_t)len + 1 >= sizeof buf)
        goto out;
    buf[len++] = '.';
    part = b64_encode(sig, sizeof sig, buf + len, sizeof buf - (size_t)len);
    if (part < 0)
        goto out;
    len += part;
    if ((size_t)len >= n)
        goto out;
    memcpy(token_out, buf, (size_t)len + 1);
    rc = 0;
out:
    if (locked)
        pthread_mutex_unlock(&signer.lock);
    if (rc != 0)
        bk_log(BK_ERROR, NULL, "jwt: cannot sign a token");
    free(payload);
    return rc;
}

/* Copies the JSON string member key of o into out (cap bytes with the NUL).
 * Absent: leaves out empty and returns 0 unless required. Wrong type or too
 * long: -1. */
static int claim_str(json_t *o, const char *key, char *out, size_t cap, bool required)
{
    json_t *v = json_object_get(o, key);
    out[0] = '\0';
    if (!v)
        return required ? -1 : 0;
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int claim_int(json_t *o, const char *key, int64_t *out, bool required)
{
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v)
        return required ? -1 : 0;
    if (!json_is_integer(v))
        return -1;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static enum bk_jwt_err parse_claims(const unsigned char *text, size_t len, struct bk_jwt_claims *c)
{
    enum bk_jwt_err rc = BK_JWT_BAD_CLAIMS;
    json_t *staff;
    json_t *o = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!o || !json_is_object(o)) {
        rc = BK_JWT_MALFORMED;
        goto out;
    }
    if (claim_str(o, "token_type", c->token_type, sizeof c->token_type, true) != 0 ||
        (strcmp(c->token_type, "access") != 0 && strcmp(c->token_type, "refresh") != 0))
        goto out;
    if (claim_int(o, "exp", &c->exp, true) != 0 || claim_int(o, "iat", &c->iat, true) != 0 ||
        claim_str(o, "jti", c->jti, sizeof c->jti, true) != 0 || c->jti[0] == '\0')
        goto out;
    if (claim_int(o, "user_id", &c->user_id, false) != 0 || c->user_id < 0 ||
        (json_object_get(o, "user_id") && c->user_id == 0))
        goto out;
    staff = json_object_get(o, "is_staff");
    if (staff && !json_is_boolean(staff))
        goto out;
    c->is_staff = staff && json_is_true(staff);
    if (claim_str(o, "role", c->role, sizeof c->role, false) != 0 ||
        claim_str(o, "service", c->service, sizeof c->service, false) != 0 ||
        claim_str(o, "fam", c->family, sizeof c->family, false) != 0)
        goto out;
    if (c->user_id == 0 && c->service[0] == '\0')
        goto out;
    rc = BK_JWT_OK;
out:
    json_decref(o);
    return rc;
}

/* Checks the protected header: alg exactly EdDSA, typ JWT when present, no
 * crit (we understand no extension). Fills kid, or leaves it empty when it is
 * missing or cannot be one of ours. */
static enum bk_jwt_err check_header(const unsigned char *text, size_t len, char kid[KID_LEN + 1])
{
    enum bk_jwt_err rc = BK_JWT_BAD_ALG;
    json_t *alg, *typ, *k;
    json_t *h = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!h || !json_is_object(h)) {
        rc = BK_JWT_MALFORMED;
        goto out;
    }
    alg = json_object_get(h, "alg");
    if (!json_is_string(alg) || json_string_length(alg) != 5 ||
        strcmp(json_string_value(alg), "EdDSA") != 0)
        goto out;
    typ = json_object_get(h, "typ");
    if (typ && (!json_is_string(typ) || json_string_length(typ) != 3 ||
                strcmp(json_string_value(typ), "JWT") != 0))
        goto out;
    if (json_object_get(h, "crit"))
        goto out;
    k = json_object_get(h, "kid");
    kid[0] = '\0';
    if (json_is_string(k) && kid_well_formed(json_string_value(k), json_string_length(k)))
        memcpy(kid, json_string_value(k), KID_LEN + 1);
    rc = BK_JWT_OK;
out:
    json_decref(h);
    return rc;
}

enum bk_jwt_err bk_jwt_verify(const char *dir, const char *token, int64_t now,
                              struct bk_jwt_claims *out)
{
    enum bk_jwt_err rc = BK_JWT_MALFORMED;
    unsigned char header[BK_JWT_MAX], payload[BK_JWT_MAX], sig[crypto_sign_BYTES + 1];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    char kid[KID_LEN + 1];
    size_t len, header_len = 0, payload_len = 0, sig_len = 0;
    const char *dot1, *dot2;
    struct bk_jwt_claims c;
    memset(&c, 0, sizeof c);
    if (out)
        memset(out, 0, sizeof *out);
    if (!dir || !token || !out || sodium_init() < 0)
        goto out;
    len = strnlen(token, BK_JWT_MAX + 1);
    if (len > BK_JWT_MAX)
        goto out;
    dot1 = memchr(token, '.', len);
    if (!dot1)
        goto out;
    dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        goto out;
    /* The header first, so that "alg":"none" with its empty signature is
     * reported as the wrong algorithm it is. */
    if (b64_decode(token, (size_t)(dot1 - token), header, sizeof header, &header_len) != 0)
        goto out;
    rc = check_header(header, header_len, kid);
    if (rc != BK_JWT_OK)
        goto out;
    rc = BK_JWT_MALFORMED;
    if (b64_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof payload, &payload_len) !=
            0 ||
        b64_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof sig, &sig_len) != 0 ||
        sig_len != crypto_sign_BYTES)
        goto out;
    if (kid[0] == '\0' || verifier_find(dir, kid, strlen(kid), pk) != 0) {
        rc = BK_JWT_UNKNOWN_KID;
        goto out;
    }
    if (crypto_sign_verify_detached(sig, (const unsigned char *)token, (size_t)(dot2 - token),
                                    pk) != 0) {
        rc = BK_JWT_BAD_SIG;
        goto out;
    }
    rc = parse_claims(payload, payload_len, &c);
    if (rc != BK_JWT_OK)
        goto out;
    if (c.exp <= now) {
        rc = BK_JWT_EXPIRED;
        goto out;
    }
    *out = c;
out:
    return rc;
}

uint64_t bk_jwt_keys_version(const char *dir)
{
    pthread_mutex_lock(&verifier.lock);
    verifier_refresh(dir);
    uint64_t v = verifier.version;
    pthread_mutex_unlock(&verifier.lock);
    return v;
}

char *bk_jwt_jwks(const char *dir)
{
    char *text = NULL;
    struct pubkey *keys = NULL;
    size_t n = 0;
    json_t *doc = NULL, *arr = NULL;
    if (!dir || sodium_init() < 0)
        goto out;
    keys = calloc(MAX_KEYS, sizeof *keys);
    if (!keys || scan_pubs(dir, keys, &n) != 0)
        goto out;
    doc = json_object();
    arr = json_array();
    if (!doc || !arr || json_object_set(doc, "keys", arr) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char x[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, B64_VARIANT)];
        b64_encode(keys[i].pk, sizeof keys[i].pk, x, sizeof x);
        json_t *k = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x",
                              x, "kid", keys[i].kid, "use", "sig", "alg", "EdDSA");
        if (!k || json_array_append_new(arr, k) != 0)
            goto out;
    }
    text = json_dumps(doc, JSON_COMPACT);
out:
    json_decref(arr);
    json_decref(doc);
    free(keys);
    return text;
}
