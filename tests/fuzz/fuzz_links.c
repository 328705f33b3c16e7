/* libFuzzer harness: any bytes as the request target a client chose (the
 * bridge forwards it as x-request-target) through the link builder the
 * worker runtime applies to it. A link is either refused or fits its buffer
 * and is printable ASCII after the prefix. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/links.h"

static void check(const char *out, int len, size_t n)
{
    if (len < 0)
        return;
    if ((size_t)len >= n || strlen(out) != (size_t)len)
        abort();
    for (const char *s = out; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct bk_link_query q;
    static char out[BK_LINK_MAX];
    char *target = malloc(size + 1);
    if (!target)
        return 0;
    memcpy(target, data, size);
    target[size] = '\0';
    memset(&q, 0, sizeof q);
    /* the query is parsed whether or not the target passes, to reach more */
    const char *qm = strchr(target, '?');
    if (bk_link_query_parse(&q, qm ? qm + 1 : target, strlen(qm ? qm + 1 : target)) == 0) {
        int64_t page = size ? (int64_t)data[0] - 8 : 2;
        check(out, bk_link_page(out, sizeof out, "http://h", &q, page), sizeof out);
        check(out, bk_link_page(out, 48, "http://h", &q, page), 48);
    }
    bk_link_target_ok(target);
    free(target);
    return 0;
}
