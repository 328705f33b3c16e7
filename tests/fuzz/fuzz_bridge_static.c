/* libFuzzer harness: any bytes as the raw request path of a BR_STATIC route
 * (workers/bridge/static.c). A path is refused, redirects, or names a file
 * below the mount that fits its buffer and has no way out: printable ASCII,
 * no empty, "." or ".." segment, no leading or trailing slash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/util.h"
#include "workers/bridge/static.h"

static void check(const char *rel, size_t n)
{
    size_t len = strnlen(rel, n);
    if (len == 0 || len >= n || rel[0] == '/' || rel[len - 1] == '/')
        abort();
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)rel[i] <= 0x20 || (unsigned char)rel[i] >= 0x7f || rel[i] == '\\' ||
            rel[i] == '%')
            abort();
        /* every segment starts with something else than a dot */
        if ((i == 0 || rel[i - 1] == '/') && (rel[i] == '.' || rel[i] == '/'))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char rel[BR_STATIC_MAX_REL + 1];
    static char small[16];
    const char *raw = (const char *)data; /* not NUL-terminated: the length counts */
    const char *index = size && (data[0] & 1) ? "index.html" : NULL;
    if (br_static_path("/api/docs/", index, raw, size, rel, sizeof rel) == BR_STATIC_FILE)
        check(rel, sizeof rel);
    if (br_static_path("/api/docs/", index, raw, size, small, sizeof small) == BR_STATIC_FILE)
        check(small, sizeof small);
    /* the bytes as the prefix too: a broken table must not crash it either */
    char *prefix = malloc(size + 1);
    if (!prefix)
        return 0;
    memcpy(prefix, data, size);
    prefix[size] = '\0';
    if (br_static_path(prefix, index, raw, size, rel, sizeof rel) == BR_STATIC_FILE)
        check(rel, sizeof rel);
    br_static_content_type(prefix);
    bk_etag_list_has(raw, size, "\"1a-5f-0\"");
    free(prefix);
    return 0;
}
