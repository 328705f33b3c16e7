/* Absolute links in replies: pagination next/previous and media URLs.
 *
 * A link starts with the configured public_base_url, never with the client's
 * Host header (which the client chooses). Its path and query come from the
 * request target the bridge forwards (path?query as the client sent it), or,
 * for a command published over AMQP without one, from the command's row in
 * the route table (shared/routes.h) with its {params} and its declared query
 * parameters (shared/contract.h) filled from args. The functions here are pure: no config, no
 * call state, so that the unit tests pin the exact strings.
 */
#ifndef BK_LINKS_H
#define BK_LINKS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_LINK_MAX        4096 /* bytes of a link, its NUL included; longer: no link */
#define BK_LINK_MAX_PARAMS 32   /* query parameters kept in a link */

/* A query string's parameters, decoded, in their order. */
struct bk_link_query {
    int n;
    struct bk_link_param {
        const char *key, *value; /* NUL-terminated, in buf */
    } p[BK_LINK_MAX_PARAMS];
    size_t used;
    char buf[BK_LINK_MAX];
};

/* Reads query ("a=1&b=x+y", without the '?') as Python's
 * parse_qsl(keep_blank_values=True) does, which DRF's links use: pairs split
 * on '&', "+" and %XX decoded, empty pairs skipped, "k" read as k="".
 * Returns 0, or -1 when it does not fit (too many or too long pairs) or a
 * key or value decodes to a NUL byte. */
int bk_link_query_parse(struct bk_link_query *q, const char *query, size_t len);

/* Appends key=value (not encoded). 0, or -1 when q is full. */
int bk_link_query_add(struct bk_link_query *q, const char *key, const char *value,
                      size_t value_len);

/* Appends, for each name of keys (comma-separated: a route's documented query
 * parameters, "status,all,page,page_size"), args[name] when it is a string,
 * an integer or a boolean ("true"/"false"). 0, or -1 when q is full. */
int bk_link_query_from_args(struct bk_link_query *q, const char *keys, const msgpack_object *args);

/* Writes base + pattern into out (n bytes) with each "{name}" segment
 * replaced by args[name] (a non-empty string or an integer), percent-encoded
 * as a path segment. Returns the length, or -1 when a parameter is missing or
 * out is too small. */
int bk_link_fill(char *out, size_t n, const char *base, const char *pattern,
                 const msgpack_object *args);

/* A page link as DRF's PageNumberPagination makes it (replace_query_param,
 * remove_query_param): prefix (base + path), then q with "page" set to page,
 * or removed when page is 1, the parameters sorted by key (stable) and
 * encoded as urlencode's quote_plus. Returns the length, or -1 when out (n
 * bytes) is too small. */
int bk_link_page(char *out, size_t n, const char *prefix, const struct bk_link_query *q,
                 int64_t page);

/* True when target is a request target the bridge could have forwarded: an
 * origin-form "/path?query" of printable ASCII, not starting with "//". */
bool bk_link_target_ok(const char *target);

#endif
