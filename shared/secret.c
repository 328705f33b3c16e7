/* The server secret (see secret.h): key file, cache, and what is keyed with it. */
#include "shared/secret.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/log.h"
#include "shared/util.h"

#define LINE_LEN (BK_SECRET_KID_LEN + 1 + 2 * BK_SECRET_KEY_LEN + 1) /* "kid hex\n" */
#define FILE_MAX (BK_SECRET_MAX_KEYS * LINE_LEN + 2) /* bk_file_read_small needs 1 spare */
#define CHECK_MS 1000 /* how often a user of the cache looks at the file's mtime */

/* crypto_kdf: one context for the project, one subkey id per purpose */
static const char KDF_CONTEXT[crypto_kdf_CONTEXTBYTES] = {'b', 'k', 's', 'e', 'c', 'r', 'e', 't'};
_Static_assert(BK_SECRET_SEAL_OVERHEAD == crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES,
               "seal overhead");
_Static_assert(BK_SECRET_KEY_LEN == crypto_kdf_KEYBYTES, "server keys are kdf master keys");
enum { SUB_MESSAGE_ID = 1, SUB_FINGERPRINT = 2, SUB_REPLY = 3 };

struct ring {
    size_t n;
    struct bk_secret_key keys[BK_SECRET_MAX_KEYS];
};

static struct {
    pthread_mutex_t lock;
    char dir[PATH_MAX];
    bool loaded;
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    int64_t checked_ms;
    struct ring ring;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool kid_ok(const char *s)
{
    for (int i = 0; i < BK_SECRET_KID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Parses the file's text strictly: every line "kid hex", distinct kids. */
static int parse(const char *text, struct ring *r)
{
    memset(r, 0, sizeof *r);
    const char *p = text;
    while (*p) {
        struct bk_secret_key *k = &r->keys[r->n];
        size_t bin_len = 0;
        const char *end = NULL;
        if (r->n == BK_SECRET_MAX_KEYS || strlen(p) < LINE_LEN || !kid_ok(p) ||
            p[BK_SECRET_KID_LEN] != ' ')
            return -1;
        if (sodium_hex2bin(k->key, sizeof k->key, p + BK_SECRET_KID_LEN + 1, 2 * BK_SECRET_KEY_LEN,
                           NULL, &bin_len, &end) != 0 ||
            bin_len != BK_SECRET_KEY_LEN || *end != '\n')
            return -1;
        memcpy(k->kid, p, BK_SECRET_KID_LEN);
        k->kid[BK_SECRET_KID_LEN] = '\0';
        for (size_t i = 0; i < r->n; i++)
            if (strcmp(r->keys[i].kid, k->kid) == 0)
                return -1;
        r->n++;
        p = end + 1;
    }
    return r->n > 0 ? 0 : -1;
}

static int path_of(const char *dir, char path[PATH_MAX])
{
    int n = snprintf(path, PATH_MAX, "%s/%s", dir, BK_SECRET_FILE);
    return n < 0 || n >= PATH_MAX ? -1 : 0;
}

/* Reads dir's file into r. missing_ok: a file that is not there is no error
 * (r->n = 0). 0 or -1 (logged). */
static int load(const char *dir, struct ring *r, struct stat *st, bool missing_ok)
{
    char path[PATH_MAX], text[FILE_MAX];
    int rc = -1;
    memset(r, 0, sizeof *r);
    if (path_of(dir, path) != 0)
        return -1;
    if (bk_file_read_small(path, text, sizeof text, st) != 0) {
        if (missing_ok && errno == ENOENT)
            return 0;
        bk_log(BK_ERROR, NULL, "secret: cannot read %s: %s (backendctl keygen)", path,
               strerror(errno));
        goto out;
    }
    if ((st->st_mode & 077) != 0) {
        bk_log(BK_ERROR, NULL, "secret: %s must not be readable by group or others (chmod 600)",
               path);
        goto out;
    }
    if (parse(text, r) != 0) {
        bk_log(BK_ERROR, NULL, "secret: %s is not a valid key file", path);
        goto out;
    }
    rc = 0;
out:
    sodium_memzero(text, sizeof text);
    if (rc != 0)
        sodium_memzero(r, sizeof *r);
    return rc;
}

/* Makes the cache hold dir's file: looked at once a CHECK_MS, or now when
 * force (a kid we do not know may be a rotation another process made). */
static int refresh(const char *dir, bool force)
{
    char path[PATH_MAX];
    struct stat st;
    bool same_dir = cache.loaded && strcmp(cache.dir, dir) == 0;
    if (same_dir && !force && bk_mono_ms() - cache.checked_ms < CHECK_MS)
        return 0;
    if (strlen(dir) >= sizeof cache.dir || path_of(dir, path) != 0)
        return -1;
    if (same_dir && stat(path, &st) == 0 && st.st_dev == cache.dev && st.st_ino == cache.ino &&
        st.st_mtim.tv_sec == cache.mtime.tv_sec && st.st_mtim.tv_nsec == cache.mtime.tv_nsec) {
        cache.checked_ms = bk_mono_ms();
        return 0;
    }
    struct ring r;
    if (load(dir, &r, &st, false) != 0)
        return same_dir ? 0 : -1; /* a file being replaced: keep what we had */
    cache.ring = r;
    sodium_memzero(&r, sizeof r);
    strcpy(cache.dir, dir);
    cache.dev = st.st_dev;
    cache.ino = st.st_ino;
    cache.mtime = st.st_mtim;
    cache.checked_ms = bk_mono_ms();
    cache.loaded = true;
    return 0;
}

static const struct bk_secret_key *pick(enum bk_secret_which which, const char *kid)
{
    if (which == BK_SECRET_CURRENT)
        return &cache.ring.keys[cache.ring.n - 1];
    if (which == BK_SECRET_FIRST)
        return &cache.ring.keys[0];
    for (size_t i = 0; kid && i < cache.ring.n; i++)
        if (strcmp(cache.ring.keys[i].kid, kid) == 0)
            return &cache.ring.keys[i];
    return NULL;
}

int bk_secret_get(const char *dir, enum bk_secret_which which, const char *kid,
                  struct bk_secret_key *out)
{
    int rc = -1;
    pthread_mutex_lock(&cache.lock);
    if (!dir || refresh(dir, false) != 0)
        goto out;
    const struct bk_secret_key *k = pick(which, kid);
    if (!k && refresh(dir, true) == 0)
        k = pick(which, kid);
    if (k) {
        *out = *k;
        rc = 0;
    }
out:
    pthread_mutex_unlock(&cache.lock);
    return rc;
}

int bk_secret_keygen(const char *dir, bool rotate, char kid_out[BK_SECRET_KID_LEN + 1])
{
    int rc = -1;
    struct ring r;
    struct stat st;
    char text[FILE_MAX + LINE_LEN];
    if (sodium_init() < 0 || !dir || bk_mkdir_p(dir, 0700) != 0) {
        bk_log(BK_ERROR, NULL, "secret: cannot create key folder %s", dir ? dir : "(null)");
        return -1;
    }
    if (load(dir, &r, &st, true) != 0)
        goto out;
    bool existed = r.n > 0;
    if (existed && !rotate) {
        memcpy(kid_out, r.keys[r.n - 1].kid, BK_SECRET_KID_LEN + 1);
        rc = 0;
        goto out;
    }
    if (r.n == BK_SECRET_MAX_KEYS) { /* the oldest goes; its rows expired long ago */
        memmove(&r.keys[0], &r.keys[1], (r.n - 1) * sizeof r.keys[0]);
        r.n--;
    }
    struct bk_secret_key *k = &r.keys[r.n];
    for (bool unique = false; !unique;) {
        unsigned char id[BK_SECRET_KID_LEN / 2];
        randombytes_buf(id, sizeof id);
        sodium_bin2hex(k->kid, sizeof k->kid, id, sizeof id);
        unique = true;
        for (size_t i = 0; i < r.n; i++)
            unique = unique && strcmp(r.keys[i].kid, k->kid) != 0;
    }
    crypto_kdf_keygen(k->key);
    r.n++;
    size_t len = 0;
    for (size_t i = 0; i < r.n; i++) {
        memcpy(text + len, r.keys[i].kid, BK_SECRET_KID_LEN);
        text[len + BK_SECRET_KID_LEN] = ' ';
        sodium_bin2hex(text + len + BK_SECRET_KID_LEN + 1, 2 * BK_SECRET_KEY_LEN + 1, r.keys[i].key,
                       BK_SECRET_KEY_LEN);
        len += LINE_LEN;
        text[len - 1] = '\n';
    }
    /* without rotate, link(2): a concurrent keygen that got there first wins */
    if (bk_file_write_atomic(dir, BK_SECRET_FILE, text, len, 0600, existed) != 0) {
        if (!existed && errno == EEXIST) {
            rc = bk_secret_keygen(dir, false, kid_out);
            goto out;
        }
        bk_log(BK_ERROR, NULL, "secret: cannot write %s/%s: %s", dir, BK_SECRET_FILE,
               strerror(errno));
        goto out;
    }
    bk_log(BK_INFO, NULL, "secret: new server key %s in %s", k->kid, dir);
    memcpy(kid_out, k->kid, BK_SECRET_KID_LEN + 1);
    rc = 0;
out:
    sodium_memzero(&r, sizeof r);
    sodium_memzero(text, sizeof text);
    return rc;
}

static void subkey(const struct bk_secret_key *key, uint64_t id,
                   unsigned char out[crypto_generichash_KEYBYTES])
{
    crypto_kdf_derive_from_key(out, crypto_generichash_KEYBYTES, id, KDF_CONTEXT, key->key);
}

/* Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently. */
static void absorb(crypto_generichash_state *st, const void *p, size_t n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (8 * i));
    crypto_generichash_update(st, len, sizeof len);
    crypto_generichash_update(st, p, n);
}

void bk_secret_message_id(const struct bk_secret_key *key, const char *scope, const char *name,
                          size_t name_len, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char k[crypto_generichash_KEYBYTES], h[16];
    crypto_generichash_state st;
    subkey(key, SUB_MESSAGE_ID, k);
    crypto_generichash_init(&st, k, sizeof k, sizeof h);
    absorb(&st, scope, strlen(scope));
    absorb(&st, name, name_len);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_memzero(k, sizeof k);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8: custom */
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[h[i] >> 4];
        out[o++] = hex[h[i] & 15];
    }
    out[o] = '\0';
}

void bk_secret_fingerprint(const struct bk_secret_key *key, const char *command, const char *caller,
                           const void *args, size_t args_len, unsigned char out[BK_SECRET_FP_LEN])
{
    unsigned char k[crypto_generichash_KEYBYTES];
    crypto_generichash_state st;
    subkey(key, SUB_FINGERPRINT, k);
    crypto_generichash_init(&st, k, sizeof k, BK_SECRET_FP_LEN);
    absorb(&st, command, strlen(command));
    absorb(&st, caller, strlen(caller));
    absorb(&st, args, args_len);
    crypto_generichash_final(&st, out, BK_SECRET_FP_LEN);
    sodium_memzero(k, sizeof k);
}

/* The box key of one row: the reply subkey keyed over the row's context. */
static void box_key(const struct bk_secret_key *key, const char *context,
                    unsigned char out[crypto_secretbox_KEYBYTES])
{
    unsigned char k[crypto_generichash_KEYBYTES];
    subkey(key, SUB_REPLY, k);
    crypto_generichash(out, crypto_secretbox_KEYBYTES, (const unsigned char *)context,
                       strlen(context), k, sizeof k);
    sodium_memzero(k, sizeof k);
}

void bk_secret_seal(const struct bk_secret_key *key, const char *context, const void *msg,
                    size_t len, unsigned char *out)
{
    unsigned char k[crypto_secretbox_KEYBYTES];
    box_key(key, context, k);
    randombytes_buf(out, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, msg, len, out, k);
    sodium_memzero(k, sizeof k);
}

int bk_secret_open(const struct bk_secret_key *key, const char *context, const unsigned char *box,
                   size_t box_len, unsigned char *out)
{
    unsigned char k[crypto_secretbox_KEYBYTES];
    if (box_len < BK_SECRET_SEAL_OVERHEAD)
        return -1;
    box_key(key, context, k);
    int rc = crypto_secretbox_open_easy(out, box + crypto_secretbox_NONCEBYTES,
                                        box_len - crypto_secretbox_NONCEBYTES, box, k);
    sodium_memzero(k, sizeof k);
    return rc == 0 ? 0 : -1;
}
