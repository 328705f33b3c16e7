#include "workers/bridge/static.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/log.h"
#include "shared/util.h"

#define MAX_MOUNTS 8

/* The real folder of each BR_STATIC row, resolved once at start (read-only
 * afterwards, so the HTTP threads share it without a lock). */
static struct {
    const struct br_route *route;
    char root[PATH_MAX];
} mounts[MAX_MOUNTS];
static int n_mounts;

/* The bytes a file name may hold: what npm packages and bundlers produce. */
static bool name_byte_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '@';
}

enum br_static_verdict br_static_path(const char *prefix, const char *index, const char *raw,
                                      size_t raw_len, char *rel, size_t rel_n)
{
    char path[BR_MAX_PATH + 1];
    size_t n = 0, plen = strlen(prefix);
    if (rel_n == 0 || raw_len > BR_MAX_PATH || plen < 2 || prefix[plen - 1] != '/')
        return BR_STATIC_REFUSED;
    rel[0] = '\0';
    /* strict percent-decoding: a bad escape or a NUL is refused, never mended */
    for (size_t i = 0; i < raw_len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '%') {
            if (raw_len - i < 3)
                return BR_STATIC_REFUSED;
            int hi = bk_hex_value(raw[i + 1]), lo = bk_hex_value(raw[i + 2]);
            if (hi < 0 || lo < 0)
                return BR_STATIC_REFUSED;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c <= 0x20 || c >= 0x7f)
            return BR_STATIC_REFUSED; /* NUL, controls, space, non-ASCII */
        path[n++] = (char)c;
    }
    path[n] = '\0';

    if (n == plen - 1 && memcmp(path, prefix, n) == 0)
        return BR_STATIC_REDIRECT;
    if (n < plen || memcmp(path, prefix, plen) != 0)
        return BR_STATIC_REFUSED;
    const char *rest = path + plen;
    size_t rest_len = n - plen;
    if (rest_len == 0) {
        if (!index || strlen(index) >= rel_n)
            return BR_STATIC_REFUSED;
        snprintf(rel, rel_n, "%s", index);
        return BR_STATIC_FILE;
    }
    if (rest_len > BR_STATIC_MAX_REL || rest_len >= rel_n)
        return BR_STATIC_REFUSED;
    int depth = 0;
    for (size_t s = 0; s < rest_len;) {
        size_t e = s;
        while (e < rest_len && rest[e] != '/')
            e++;
        /* empty ("//", a trailing slash: no folder listings), or hidden ("..", ".env") */
        if (e == s || rest[s] == '.' || ++depth > BR_STATIC_MAX_DEPTH)
            return BR_STATIC_REFUSED;
        for (size_t k = s; k < e; k++)
            if (!name_byte_ok((unsigned char)rest[k]))
                return BR_STATIC_REFUSED;
        if (e == rest_len)
            break;
        s = e + 1;
        if (s == rest_len)
            return BR_STATIC_REFUSED; /* ends with a slash */
    }
    memcpy(rel, rest, rest_len);
    rel[rest_len] = '\0';
    return BR_STATIC_FILE;
}

const char *br_static_content_type(const char *name)
{
    static const char *const types[][2] = {
        {"html", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"ico", "image/vnd.microsoft.icon"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i][0]) == 0)
                return types[i][1];
    return "application/octet-stream";
}

int br_static_init(const char *web_dir)
{
    n_mounts = 0;
    for (const struct br_route *r = br_routes; r->method; r++) {
        if (!(r->flags & BR_STATIC))
            continue;
        char want[PATH_MAX];
        struct stat st;
        if (n_mounts == MAX_MOUNTS || !r->static_dir) {
            bk_log(BK_ERROR, NULL, "static files: %s: no folder, or more than %d mounts",
                   r->pattern, MAX_MOUNTS);
            return -1;
        }
        int k = snprintf(want, sizeof want, "%s/%s", web_dir, r->static_dir);
        if (k < 0 || (size_t)k >= sizeof want || !realpath(want, mounts[n_mounts].root) ||
            stat(mounts[n_mounts].root, &st) != 0 || !S_ISDIR(st.st_mode)) {
            bk_log(BK_ERROR, NULL,
                   "static files: the folder %s for %s is missing (%s): run scripts/setup, "
                   "or set web_dir to the folder holding %s",
                   want, r->pattern, strerror(errno ? errno : ENOTDIR), r->static_dir);
            return -1;
        }
        mounts[n_mounts++].route = r;
    }
    return 0;
}

int br_static_open(const struct br_route *route, const char *rel, struct br_static_file *f)
{
    const char *root = NULL;
    for (int i = 0; i < n_mounts; i++)
        if (mounts[i].route == route)
            root = mounts[i].root;
    if (!root)
        return -1;
    char want[PATH_MAX], real[PATH_MAX];
    int k = snprintf(want, sizeof want, "%s/%s", root, rel);
    if (k < 0 || (size_t)k >= sizeof want)
        return -1;
    /* the real path, symlinks followed, must still be inside the mount */
    if (!realpath(want, real)) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == ENAMETOOLONG)
            return -1;
        bk_log(BK_WARN, NULL, "static files: %s: %s", want, strerror(errno));
        return -2;
    }
    size_t rlen = strlen(root);
    if (strncmp(real, root, rlen) != 0 || real[rlen] != '/')
        return -1;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT || errno == ELOOP)
            return -1;
        bk_log(BK_WARN, NULL, "static files: %s: %s", real, strerror(errno));
        return -2;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > BR_STATIC_MAX_FILE) {
        close(fd);
        return -1;
    }
    f->fd = fd;
    f->size = (uint64_t)st.st_size;
    /* size and modification time, as nginx does: a changed file gets a new tag */
    snprintf(f->etag, sizeof f->etag, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"", f->size,
             (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec);
    return 0;
}
