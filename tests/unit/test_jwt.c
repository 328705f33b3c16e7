/* shared/jwt.c: signing, verification, RFC 8725 rejections, key rotation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shared/jwt.h"

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

struct fixture {
    char dir[64];
    char kid[64];
};

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f || sodium_init() < 0)
        return -1;
    strcpy(f->dir, "/tmp/bk_test_jwt_XXXXXX");
    if (!mkdtemp(f->dir) || bk_jwt_keygen(f->dir, false, f->kid) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rm_dir(f->dir);
    free(f);
    return 0;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static struct bk_jwt_claims access_claims(int64_t user_id)
{
    struct bk_jwt_claims c;
    memset(&c, 0, sizeof c);
    strcpy(c.token_type, "access");
    strcpy(c.jti, "0f6a1c5ad6e54b0c8a0f3b1d2c3e4f50");
    c.iat = now_s();
    c.exp = c.iat + 300;
    c.user_id = user_id;
    c.is_staff = true;
    strcpy(c.role, "student");
    strcpy(c.family, "fam-1");
    return c;
}

static char *b64(const void *data, size_t len)
{
    size_t n = sodium_base64_ENCODED_LEN(len, B64);
    char *out = malloc(n);
    assert_non_null(out);
    sodium_bin2base64(out, n, data, len, B64);
    return out;
}

/* The JSON of a token's header (caller decrefs). */
static json_t *token_header(const char *token)
{
    unsigned char buf[BK_JWT_MAX];
    size_t len = 0;
    const char *dot = strchr(token, '.');
    assert_non_null(dot);
    assert_int_equal(
        sodium_base642bin(buf, sizeof buf, token, (size_t)(dot - token), NULL, &len, NULL, B64), 0);
    json_t *h = json_loadb((const char *)buf, len, 0, NULL);
    assert_non_null(h);
    return h;
}

/* Builds base64url(header).base64url(payload).<sig>: signed with dir's real
 * signing key when sign, else with the given signature text. */
static char *forge(const char *dir, const char *header, const char *payload, bool sign,
                   const char *sig_text)
{
    char path[256], text[512], *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    unsigned char sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
    char *out = malloc(BK_JWT_MAX * 2);
    assert_non_null(out);
    snprintf(out, BK_JWT_MAX * 2, "%s.%s", h, p);
    if (sign) {
        snprintf(path, sizeof path, "%s/signing.key", dir);
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        assert_non_null(fgets(text, sizeof text, fp));
        fclose(fp);
        assert_int_equal(sodium_hex2bin(sk, sizeof sk, text, 128, NULL, NULL, NULL), 0);
        crypto_sign_detached(sig, NULL, (unsigned char *)out, strlen(out), sk);
        char *s = b64(sig, sizeof sig);
        strcat(out, ".");
        strcat(out, s);
        free(s);
    } else {
        strcat(out, ".");
        strcat(out, sig_text);
    }
    free(h);
    free(p);
    return out;
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims c = access_claims(42), got;
    char token[BK_JWT_MAX + 1];
    assert_int_equal(bk_jwt_sign(f->dir, &c, token, sizeof token), 0);
    assert_int_equal(bk_jwt_verify(f->dir, token, now_s(), &got), BK_JWT_OK);
    assert_string_equal(got.token_type, "access");
    assert_string_equal(got.jti, c.jti);
    assert_int_equal(got.iat, c.iat);
    assert_int_equal(got.exp, c.exp);
    assert_int_equal(got.user_id, 42);
    assert_true(got.is_staff);
    assert_string_equal(got.role, "student");
    assert_string_equal(got.family, "fam-1");
    assert_string_equal(got.service, "");

    json_t *h = token_header(token);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "EdDSA");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(h, "kid")), f->kid);
    json_decref(h);

    /* a refresh token carries no is_staff / role */
    memset(&c, 0, sizeof c);
    strcpy(c.token_type, "refresh");
    strcpy(c.jti, "r1");
    c.iat = now_s();
    c.exp = c.iat + 10;
    c.user_id = 7;
    assert_int_equal(bk_jwt_sign(f->dir, &c, token, sizeof token), 0);
    assert_int_equal(bk_jwt_verify(f->dir, token, now_s(), &got), BK_JWT_OK);
    assert_string_equal(got.token_type, "refresh");
    assert_int_equal(got.user_id, 7);
    assert_false(got.is_staff);
    assert_string_equal(got.role, "");
    assert_string_equal(got.family, "");
}

static void test_kid_is_rfc7638_thumbprint(void **state)
{
    struct fixture *f = *state;
    char path[256], text[128], jwk[200];
    unsigned char h[crypto_hash_sha256_BYTES];
    snprintf(path, sizeof path, "%s/%s.pub", f->dir, f->kid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(text, sizeof text, fp));
    fclose(fp);
    text[strcspn(text, "\n")] = '\0';
    snprintf(jwk, sizeof jwk, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", text);
    crypto_hash_sha256(h, (unsigned char *)jwk, strlen(jwk));
    char *kid = b64(h, sizeof h);
    assert_string_equal(kid, f->kid);
    free(kid);
}

static void test_keygen_idempotent_and_private(void **state)
{
    struct fixture *f = *state;
    char kid[64], path[256];
    struct stat st;
    assert_int_equal(bk_jwt_keygen(f->dir, false, kid), 0);
    assert_string_equal(kid, f->kid);
    snprintf(path, sizeof path, "%s/signing.key", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* a signing key others may read is refused */
    char dir2[64] = "/tmp/bk_test_jwt_XXXXXX";
    assert_non_null(mkdtemp(dir2));
    assert_int_equal(bk_jwt_keygen(dir2, false, kid), 0);
    snprintf(path, sizeof path, "%s/signing.key", dir2);
    assert_int_equal(chmod(path, 0644), 0);
    struct bk_jwt_claims c = access_claims(1);
    char token[BK_JWT_MAX + 1];
    assert_int_equal(bk_jwt_sign(dir2, &c, token, sizeof token), -1);
    rm_dir(dir2);
}

static void test_keygen_creates_nested_dir(void **state)
{
    (void)state;
    char base[64] = "/tmp/bk_test_jwt_XXXXXX", dir[128], kid[64], kid2[64];
    assert_non_null(mkdtemp(base));
    snprintf(dir, sizeof dir, "%s/a/keys", base);
    assert_int_equal(bk_jwt_keygen(dir, false, kid), 0);
    assert_int_equal(strlen(kid), 43);
    assert_int_equal(bk_jwt_keygen(dir, false, kid2), 0);
    assert_string_equal(kid, kid2);
    rm_dir(dir);
    snprintf(dir, sizeof dir, "%s/a", base);
    rmdir(dir);
    rmdir(base);
}

static void test_tampered_payload(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims c1 = access_claims(1), c2 = access_claims(2), got;
    char t1[BK_JWT_MAX + 1], t2[BK_JWT_MAX + 1], mixed[2 * BK_JWT_MAX];
    assert_int_equal(bk_jwt_sign(f->dir, &c1, t1, sizeof t1), 0);
    assert_int_equal(bk_jwt_sign(f->dir, &c2, t2, sizeof t2), 0);
    /* header and signature of t1, payload (user 2) of t2 */
    const char *p1 = strchr(t1, '.'), *s1 = strrchr(t1, '.');
    const char *p2 = strchr(t2, '.'), *s2 = strrchr(t2, '.');
    snprintf(mixed, sizeof mixed, "%.*s%.*s%s", (int)(p1 - t1), t1, (int)(s2 - p2), p2, s1);
    assert_int_equal(bk_jwt_verify(f->dir, mixed, now_s(), &got), BK_JWT_BAD_SIG);
    assert_int_equal(got.user_id, 0);

    /* a well-formed payload signed by nobody */
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", f->kid);
    unsigned char zero[64] = {0};
    char *zsig = b64(zero, sizeof zero);
    char *forged = forge(f->dir, header,
                         "{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\","
                         "\"user_id\":1,\"is_staff\":true}",
                         false, zsig);
    assert_int_equal(bk_jwt_verify(f->dir, forged, now_s(), &got), BK_JWT_BAD_SIG);
    free(forged);
    free(zsig);
}

static void test_bad_alg(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims got;
    char header[256];
    const char *payload = "{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\","
                          "\"user_id\":1,\"is_staff\":true}";
    const char *algs[] = {"\"none\"",  "\"HS256\"", "\"RS256\"", "\"eddsa\"",  "\"EdDSA \"",
                          "\"ES256\"", "null",      "1",         "[\"EdDSA\"]"};
    unsigned char mac[32];
    randombytes_buf(mac, sizeof mac);
    char *mac_text = b64(mac, sizeof mac);
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        snprintf(header, sizeof header, "{\"alg\":%s,\"typ\":\"JWT\",\"kid\":\"%s\"}", algs[i],
                 f->kid);
        /* unsigned ("none": empty signature), MAC-like, and really signed */
        char *t = forge(f->dir, header, payload, false, "");
        assert_int_equal(bk_jwt_verify(f->dir, t, now_s(), &got), BK_JWT_BAD_ALG);
        free(t);
        t = forge(f->dir, header, payload, false, mac_text);
        assert_int_equal(bk_jwt_verify(f->dir, t, now_s(), &got), BK_JWT_BAD_ALG);
        free(t);
        t = forge(f->dir, header, payload, true, NULL);
        assert_int_equal(bk_jwt_verify(f->dir, t, now_s(), &got), BK_JWT_BAD_ALG);
        free(t);
    }
    free(mac_text);

    /* no alg; a typ other than JWT; a crit extension we do not know */
    const char *headers[] = {
        "{\"typ\":\"JWT\",\"kid\":", "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":",
        "{\"alg\":\"EdDSA\",\"crit\":[\"b64\"],\"b64\":false,\"kid\":"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        snprintf(header, sizeof header, "%s\"%s\"}", headers[i], f->kid);
        char *t = forge(f->dir, header, payload, true, NULL);
        assert_int_equal(bk_jwt_verify(f->dir, t, now_s(), &got), BK_JWT_BAD_ALG);
        free(t);
    }

    /* the forging helper itself makes acceptable tokens when alg is right */
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", f->kid);
    char *t = forge(f->dir, header, payload, true, NULL);
    assert_int_equal(bk_jwt_verify(f->dir, t, now_s(), &got), BK_JWT_OK);
    assert_int_equal(got.user_id, 1);
    free(t);
}

static void test_unknown_kid(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims c = access_claims(5), got;
    char other[64] = "/tmp/bk_test_jwt_XXXXXX", kid[64], token[BK_JWT_MAX + 1];
    assert_non_null(mkdtemp(other));
    assert_int_equal(bk_jwt_keygen(other, false, kid), 0);
    assert_int_equal(bk_jwt_sign(other, &c, token, sizeof token), 0);
    assert_int_equal(bk_jwt_verify(other, token, now_s(), &got), BK_JWT_OK);
    assert_int_equal(bk_jwt_verify(f->dir, token, now_s(), &got), BK_JWT_UNKNOWN_KID);
    rm_dir(other);

    const char *payload = "{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\","
                          "\"user_id\":1}";
    const char *headers[] = {
        "{\"alg\":\"EdDSA\"}", "{\"alg\":\"EdDSA\",\"kid\":7}",
        "{\"alg\":\"EdDSA\",\"kid\":\"../signing.key\"}",
        "{\"alg\":\"EdDSA\",\"kid\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *t = forge(f->dir, headers[i], payload, true, NULL);
        assert_int_equal(bk_jwt_verify(f->dir, t, now_s(), &got), BK_JWT_UNKNOWN_KID);
        free(t);
    }
}

static void test_expired(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims c = access_claims(9), got;
    char token[BK_JWT_MAX + 1];
    c.exp = now_s() - 1;
    assert_int_equal(bk_jwt_sign(f->dir, &c, token, sizeof token), 0);
    assert_int_equal(bk_jwt_verify(f->dir, token, now_s(), &got), BK_JWT_EXPIRED);
    c.exp = 1000;
    assert_int_equal(bk_jwt_sign(f->dir, &c, token, sizeof token), 0);
    assert_int_equal(bk_jwt_verify(f->dir, token, 999, &got), BK_JWT_OK);
    assert_int_equal(bk_jwt_verify(f->dir, token, 1000, &got), BK_JWT_EXPIRED);
}

static void test_bad_claims(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims got;
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", f->kid);
    static const struct {
        const char *payload;
        enum bk_jwt_err want;
    } cases[] = {
        {"{\"exp\":9999999999,\"iat\":1,\"jti\":\"j\",\"user_id\":1}", BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"id\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\",\"user_id\":1}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"iat\":1,\"jti\":\"j\",\"user_id\":1}", BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":\"9999999999\",\"iat\":1,\"jti\":\"j\",\"user_id\":1}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999.5,\"iat\":1,\"jti\":\"j\",\"user_id\":1}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"jti\":\"j\",\"user_id\":1}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"user_id\":1}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":5,\"user_id\":1}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\",\"user_id\":\"1\"}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\"}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\",\"user_id\":1,"
         "\"is_staff\":1}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\",\"user_id\":1,"
         "\"role\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         BK_JWT_BAD_CLAIMS},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\",\"user_id\":1,"
         "\"user_id\":2}",
         BK_JWT_MALFORMED},
        {"[1,2,3]", BK_JWT_MALFORMED},
        {"not json", BK_JWT_MALFORMED},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\",\"user_id\":1} x",
         BK_JWT_MALFORMED},
        {"{\"token_type\":\"access\",\"exp\":9999999999,\"iat\":1,\"jti\":\"j\",\"service\":"
         "\"payments\"}",
         BK_JWT_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = forge(f->dir, header, cases[i].payload, true, NULL);
        enum bk_jwt_err r = bk_jwt_verify(f->dir, t, now_s(), &got);
        if (r != cases[i].want)
            fail_msg("case %zu (%s): got %d, want %d", i, cases[i].payload, r, cases[i].want);
        free(t);
    }
    assert_string_equal(got.service, "payments");
    assert_int_equal(got.user_id, 0);
}

static void test_service_token(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims c, got;
    char token[BK_JWT_MAX + 1];
    memset(&c, 0, sizeof c);
    strcpy(c.token_type, "access");
    c.iat = now_s();
    c.exp = c.iat + 60;
    strcpy(c.service, "payment-gateway");
    assert_int_equal(bk_jwt_sign(f->dir, &c, token, sizeof token), 0);
    assert_int_equal(bk_jwt_verify(f->dir, token, now_s(), &got), BK_JWT_OK);
    assert_int_equal(got.user_id, 0);
    assert_string_equal(got.service, "payment-gateway");
    assert_int_equal(strlen(got.jti), 36); /* generated when the caller gave none */

    /* neither user nor service: refused; bad token_type: refused; small buffer */
    c.service[0] = '\0';
    assert_int_equal(bk_jwt_sign(f->dir, &c, token, sizeof token), -1);
    c = access_claims(3);
    strcpy(c.token_type, "id");
    assert_int_equal(bk_jwt_sign(f->dir, &c, token, sizeof token), -1);
    c = access_claims(3);
    assert_int_equal(bk_jwt_sign(f->dir, &c, token, 64), -1);
    assert_int_equal(bk_jwt_sign("/nonexistent/bk", &c, token, sizeof token), -1);
}

static void test_garbage(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims got;
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", f->kid);
    char *h = b64(header, strlen(header));
    char buf[BK_JWT_MAX * 3];
    const char *inputs[] = {"",
                            ".",
                            "..",
                            "...",
                            "abc",
                            "a.b",
                            "a.b.c.d",
                            "!!!.###.$$$",
                            "eyJhbGciOiJFZERTQSJ9",
                            "eyJhbGciOiJFZERTQSJ9..",
                            "W10.e30.AA",
                            "AA==.AA==.AA==",
                            "eyJ.eyJ.eyJ",
                            " a.b.c",
                            "a.b.c\n"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        enum bk_jwt_err r = bk_jwt_verify(f->dir, inputs[i], now_s(), &got);
        if (r != BK_JWT_MALFORMED)
            fail_msg("input %zu (%s): got %d", i, inputs[i], r);
    }
    assert_int_equal(bk_jwt_verify(f->dir, "e30.e30.e30", now_s(), &got), BK_JWT_BAD_ALG);
    assert_int_equal(bk_jwt_verify(f->dir, NULL, now_s(), &got), BK_JWT_MALFORMED);
    assert_int_equal(bk_jwt_verify(f->dir, "a.b.c", now_s(), NULL), BK_JWT_MALFORMED);

    /* good header, broken rest: non-canonical base64, padding, short signature */
    const char *tails[] = {".e30.", ".e30.AB", ".e30=.AA", ".e3+.AA", ".e30.AAAA"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", h, tails[i]);
        assert_int_equal(bk_jwt_verify(f->dir, buf, now_s(), &got), BK_JWT_MALFORMED);
    }

    /* too long: a valid-looking token of BK_JWT_MAX + 1 characters */
    memset(buf, 'A', BK_JWT_MAX + 1);
    buf[100] = '.';
    buf[200] = '.';
    buf[BK_JWT_MAX + 1] = '\0';
    assert_int_equal(bk_jwt_verify(f->dir, buf, now_s(), &got), BK_JWT_MALFORMED);
    memset(buf, 'x', sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    assert_int_equal(bk_jwt_verify(f->dir, buf, now_s(), &got), BK_JWT_MALFORMED);

    /* random bytes and random base64url-ish tokens never crash */
    static const char alphabet[] = "ABCDEFabcdef0123456789-_.=+/ {}\"";
    for (int round = 0; round < 2000; round++) {
        size_t len = randombytes_uniform(300);
        for (size_t i = 0; i < len; i++)
            buf[i] = round % 2 ? (char)(randombytes_uniform(255) + 1)
                               : alphabet[randombytes_uniform(sizeof alphabet - 1)];
        buf[len] = '\0';
        enum bk_jwt_err r = bk_jwt_verify(f->dir, buf, now_s(), &got);
        assert_true(r != BK_JWT_OK);
    }
    /* a real header with random tails */
    for (int round = 0; round < 2000; round++) {
        size_t len = strlen(h);
        memcpy(buf, h, len);
        size_t extra = randombytes_uniform(200);
        for (size_t i = 0; i < extra; i++)
            buf[len + i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
        buf[len + extra] = '\0';
        assert_true(bk_jwt_verify(f->dir, buf, now_s(), &got) != BK_JWT_OK);
    }
    free(h);
}

static void test_rotation_and_jwks(void **state)
{
    struct fixture *f = *state;
    struct bk_jwt_claims c = access_claims(11), got;
    char before[BK_JWT_MAX + 1], after[BK_JWT_MAX + 1], kid2[64];
    assert_int_equal(bk_jwt_sign(f->dir, &c, before, sizeof before), 0);
    assert_int_equal(bk_jwt_verify(f->dir, before, now_s(), &got), BK_JWT_OK);

    assert_int_equal(bk_jwt_keygen(f->dir, true, kid2), 0);
    assert_string_not_equal(kid2, f->kid);

    /* at once, without waiting for the once-a-second folder check */
    assert_int_equal(bk_jwt_verify(f->dir, before, now_s(), &got), BK_JWT_OK);
    assert_int_equal(bk_jwt_sign(f->dir, &c, after, sizeof after), 0);
    json_t *h = token_header(after);
    assert_string_equal(json_string_value(json_object_get(h, "kid")), kid2);
    json_decref(h);
    assert_int_equal(bk_jwt_verify(f->dir, after, now_s(), &got), BK_JWT_OK);
    assert_int_equal(got.user_id, 11);

    /* keygen without --rotate now reports the new key */
    char kid3[64];
    assert_int_equal(bk_jwt_keygen(f->dir, false, kid3), 0);
    assert_string_equal(kid3, kid2);

    char *text = bk_jwt_jwks(f->dir);
    assert_non_null(text);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    json_t *keys = json_object_get(doc, "keys");
    assert_true(json_is_array(keys));
    assert_int_equal(json_array_size(keys), 2);
    bool seen1 = false, seen2 = false;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *kid = json_string_value(json_object_get(k, "kid"));
        assert_non_null(kid);
        seen1 |= strcmp(kid, f->kid) == 0;
        seen2 |= strcmp(kid, kid2) == 0;
        assert_string_equal(json_string_value(json_object_get(k, "kty")), "OKP");
        assert_string_equal(json_string_value(json_object_get(k, "crv")), "Ed25519");
        assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
        assert_string_equal(json_string_value(json_object_get(k, "alg")), "EdDSA");
        unsigned char pk[64];
        size_t pk_len = 0;
        const char *x = json_string_value(json_object_get(k, "x"));
        assert_non_null(x);
        assert_int_equal(sodium_base642bin(pk, sizeof pk, x, strlen(x), NULL, &pk_len, NULL, B64),
                         0);
        assert_int_equal(pk_len, 32);
    }
    assert_true(seen1);
    assert_true(seen2);
    json_decref(doc);
    free(text);

    /* a deleted public key stops verifying once the folder check runs */
    char path[256];
    snprintf(path, sizeof path, "%s/%s.pub", f->dir, f->kid);
    assert_int_equal(unlink(path), 0);
    sleep(2);
    assert_int_equal(bk_jwt_verify(f->dir, before, now_s(), &got), BK_JWT_UNKNOWN_KID);
    assert_int_equal(bk_jwt_verify(f->dir, after, now_s(), &got), BK_JWT_OK);
}

static void test_jwks_missing_dir(void **state)
{
    (void)state;
    assert_null(bk_jwt_jwks("/nonexistent/bk-keys"));
    struct bk_jwt_claims got;
    assert_int_equal(bk_jwt_verify("/nonexistent/bk-keys", "a.b.c", now_s(), &got),
                     BK_JWT_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kid_is_rfc7638_thumbprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keygen_idempotent_and_private, setup, teardown),
        cmocka_unit_test(test_keygen_creates_nested_dir),
        cmocka_unit_test_setup_teardown(test_tampered_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_alg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_and_jwks, setup, teardown),
        cmocka_unit_test(test_jwks_missing_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
