/* libFuzzer harness for bk_jwt_verify.
 *
 * The first byte picks a mode: even = the rest is the token as is (splitting,
 * base64url, header checks); odd = the rest is "header JSON\npayload JSON",
 * which the harness encodes and signs with the real key (the first "$kid" in
 * the header becomes the real kid), so that the claim parser behind the
 * signature check is reached too.
 *
 *   clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_jwt.c shared/jwt.c shared/log.c shared/config.c shared/util.c \
 *     $(pkg-config --cflags --libs libsodium jansson) -lpthread -o build/fuzz_jwt
 *   build/fuzz_jwt -max_total_time=60 */
#define _GNU_SOURCE /* memmem */
#include <sodium.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/jwt.h"

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

static char dir[64] = "/tmp/bk_fuzz_jwt_XXXXXX";
static char kid[64];
static unsigned char sk[crypto_sign_SECRETKEYBYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[128], text[512];
    (void)argc;
    (void)argv;
    if (sodium_init() < 0 || !mkdtemp(dir) || bk_jwt_keygen(dir, false, kid) != 0)
        abort();
    snprintf(path, sizeof path, "%s/signing.key", dir);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(text, sizeof text, f) ||
        sodium_hex2bin(sk, sizeof sk, text, 2 * sizeof sk, NULL, NULL, NULL) != 0)
        abort();
    fclose(f);
    atexit(remove_dir);
    return 0;
}

/* base64url(header).base64url(payload).base64url(sig) into out, or -1. */
static int forge(const uint8_t *h, size_t hn, const uint8_t *p, size_t pn, char *out, size_t n)
{
    unsigned char sig[crypto_sign_BYTES];
    size_t need = sodium_base64_ENCODED_LEN(hn, B64) + sodium_base64_ENCODED_LEN(pn, B64) +
                  sodium_base64_ENCODED_LEN(sizeof sig, B64) + 2;
    if (need > n)
        return -1;
    sodium_bin2base64(out, n, h, hn, B64);
    size_t len = strlen(out);
    out[len++] = '.';
    sodium_bin2base64(out + len, n - len, p, pn, B64);
    len += strlen(out + len);
    crypto_sign_detached(sig, NULL, (unsigned char *)out, len, sk);
    out[len++] = '.';
    sodium_bin2base64(out + len, n - len, sig, sizeof sig, B64);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bk_jwt_claims claims;
    char token[4 * BK_JWT_MAX];
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0) {
        size_t n = size - 1 < sizeof token - 1 ? size - 1 : sizeof token - 1;
        memcpy(token, data + 1, n);
        token[n] = '\0';
    } else {
        const uint8_t *rest = data + 1, *nl = memchr(rest, '\n', size - 1);
        uint8_t header[BK_JWT_MAX];
        size_t hn;
        if (!nl || (size_t)(nl - rest) > sizeof header - 64)
            return 0;
        hn = (size_t)(nl - rest);
        memcpy(header, rest, hn);
        uint8_t *at = memmem(header, hn, "$kid", 4);
        if (at) {
            size_t kn = strlen(kid), tail = hn - (size_t)(at + 4 - header);
            memmove(at + kn, at + 4, tail);
            memcpy(at, kid, kn);
            hn += kn - 4;
        }
        if (forge(header, hn, nl + 1, size - 1 - (size_t)(nl + 1 - rest), token, sizeof token) != 0)
            return 0;
    }
    enum bk_jwt_err r = bk_jwt_verify(dir, token, (int64_t)time(NULL), &claims);
    if (r == BK_JWT_OK && (strnlen(claims.jti, sizeof claims.jti) == sizeof claims.jti ||
                           strnlen(claims.role, sizeof claims.role) == sizeof claims.role))
        abort(); /* claims must come out NUL-terminated */
    return 0;
}
