#include "shared/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t bk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bk_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bk_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void uuid_format(unsigned char b[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void bk_uuid4(char out[37])
{
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

/* RFC 4122 name-based UUIDs use SHA-1 (v5); libsodium has SHA-256, which is
 * as good for "same input, same id" and we mark it v8 (custom). */
void bk_uuid_name(const char *ns, const char *name, size_t name_len, char out[37])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)ns, strlen(ns));
    crypto_hash_sha256_update(&st, (const unsigned char *)"\0", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)name, name_len);
    crypto_hash_sha256_final(&st, h);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80);
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
    uuid_format(h, out);
}

bool bk_uuid_valid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                     (ch >= 'A' && ch <= 'F'))) {
            return false;
        }
    }
    return true;
}

void bk_rfc3339(int64_t us, char out[32])
{
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06dZ", (int)(us % 1000000));
}

int bk_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool bk_etag_list_has(const char *list, size_t len, const char *etag)
{
    if (!list || !etag)
        return false;
    const char *p = list, *end = list + len;
    size_t elen = strlen(etag);
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *t = p;
        while (p < end && *p != ',')
            p++;
        const char *te = p;
        while (te > t && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if (te - t == 1 && *t == '*')
            return true;
        if (te - t > 2 && t[0] == 'W' && t[1] == '/')
            t += 2;
        if ((size_t)(te - t) == elen && memcmp(t, etag, elen) == 0)
            return true;
    }
    return false;
}

bool bk_request_id_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > BK_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

static int join3(char *out, size_t n, const char *dir, const char *name, const char *suffix)
{
    int r = snprintf(out, n, "%s/%s%s", dir, name, suffix);
    return r < 0 || (size_t)r >= n ? -1 : 0;
}

/* Reads a whole small regular file into buf (NUL-terminated); st gets its
 * stat. Larger than cap - 1 bytes is an error: our key files are tiny. */
int bk_file_read_small(const char *path, char *buf, size_t cap, struct stat *st)
{
    int rc = -1;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        goto out;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))
        goto out;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap - 1)
            goto out; /* too big to be ours */
    }
    buf[len] = '\0';
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Writes data to dir/<tmp>, fsyncs, then puts it in place as dir/name: with
 * replace by rename(2) (atomic swap), else by link(2), which fails with
 * EEXIST when another process created name first. 0, or -1 with errno. */
int bk_file_write_atomic(const char *dir, const char *name, const char *data, size_t len,
                         unsigned mode, bool replace)
{
    int rc = -1, fd = -1, saved = 0;
    char tmp[PATH_MAX], path[PATH_MAX], suffix[48];
    unsigned char rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    snprintf(suffix, sizeof suffix, ".tmp.%ld.%02x%02x%02x%02x", (long)getpid(), rnd[0], rnd[1],
             rnd[2], rnd[3]);
    if (join3(tmp, sizeof tmp, dir, name, suffix) != 0 ||
        join3(path, sizeof path, dir, name, "") != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        goto out;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto out;
        off += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0)
        goto out;
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (replace ? rename(tmp, path) != 0 : link(tmp, path) != 0)
        goto out;
    rc = 0;
out:
    saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp); /* after rename it is gone already; after link it is a second name */
    if (rc == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    errno = saved;
    return rc;
}

/* mkdir -p with mode for every folder it creates. */
int bk_mkdir_p(const char *dir, unsigned mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        buf[i] = c;
    }
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}
