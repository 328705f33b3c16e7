/* The bridge's route table: the only place that names an HTTP route (DESIGN:
 * one source for each fact). One row per method + path pattern; the OpenAPI
 * document and the docs page are generated from it, and later issues only
 * add rows. It lives in libbackend because the workers read it too: a
 * command's path (pagination and media links) comes from its row.
 *
 * Matching rules:
 * - a pattern is literal segments and "{name}" segments; a {name} matches one
 *   non-empty segment and becomes the string arg "name" (numeric ids stay
 *   strings: "42"; the worker validates them);
 * - the trailing slash is optional on both sides: "/api/orders" matches
 *   "/api/orders/" and the other way round (one slash only: "//" is no match);
 * - HEAD is matched as GET (HTTP requires it; the Allow header lists only the
 *   table's methods);
 * - the first matching row wins;
 * - a path that some row matches but not with this method is a 405, with
 *   Allow = the methods of every row whose pattern matches, in table order.
 *
 * Replies: a reply's "status" is the HTTP status and its "body" the JSON body.
 * Rows flagged BR_RAW (GET /api/media/{key}) instead send a 200 or 304 reply
 * whose body is {"content_type": str, "data": bin or str, "etag": str} as the
 * raw bytes of data with that Content-Type, the ETag and an immutable
 * Cache-Control; the If-None-Match request header goes to the worker as the
 * arg "if_none_match". Any other status of a BR_RAW row is JSON as usual.
 *
 * Rows flagged BR_STATIC (with BR_LOCAL) serve files: the pattern is a
 * prefix ("/api/docs/"), and every path under it names a file under
 * static_dir, a folder below the web_dir setting (workers/bridge/static.h
 * says which names are accepted); the prefix itself serves static_index
 * (NULL: 404), and the prefix without its slash redirects to it (relative
 * links in the page must resolve under the prefix). GET and HEAD only; the
 * part after the prefix is the param "path".
 *
 * PUT and PATCH: the bridge sets the arg "partial" (true for PATCH, false for
 * PUT) on every PUT and PATCH row, overriding the client's, so a handler
 * shared by both (*.update) knows which one it serves. */
#ifndef BR_ROUTES_H
#define BR_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

/* Who may call a route. Documentation only: the worker enforces it. */
enum br_auth {
    BR_ANYONE,           /* no token needed */
    BR_USER,             /* a user's access token */
    BR_STAFF,            /* a staff user's access token */
    BR_STAFF_OR_SERVICE, /* a staff user's or a service's access token */
};

enum br_route_flags {
    BR_RAW = 1,      /* the reply is raw bytes (see above), not JSON */
    BR_LOCAL = 2,    /* answered by the bridge itself; command names the local handler */
    BR_NO_STORE = 4, /* the answer may carry tokens: Cache-Control: no-store */
    BR_ANY_HOST = 8, /* answered whatever the Host header: probes connect by address */
    /* multipart/form-data allowed: the command's declared file field
     * (BK_T_BINARY in shared/contract.c) comes as a file part */
    BR_MULTIPART = 0x100,
    BR_STATIC = 16, /* files under static_dir (see above); always with BR_LOCAL */
};

struct br_route {
    const char *method;  /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *pattern; /* "/api/orders/{id}/", written with its slash as in the contract */
    const char *command; /* routing key "order.get"; BR_LOCAL: "health", "live", "openapi",
                            "asyncapi", "docs" */
    enum br_auth auth;
    unsigned flags;
    size_t max_body; /* bytes; 0: http_max_json_bytes, or http_max_upload_bytes for multipart */
    int status;      /* documented success status */
    const char *summary;
    /* A route's body and query fields, their types and limits are its
     * command's declared arguments (shared/contract.h): never listed here. */
    /* BR_STATIC rows only (set them by name: other issues add fields here too) */
    const char *static_dir;   /* folder below web_dir, "node_modules/swagger-ui-dist" */
    const char *static_index; /* file served for the prefix itself, "index.html", or NULL */
};

/* The table, ending with a zeroed row. */
extern const struct br_route br_routes[];

#define BR_MAX_PARAMS 4
#define BR_MAX_PATH   2048 /* longer paths match nothing */

struct br_param {
    const char *name; /* points into the pattern, not NUL-terminated */
    size_t name_len;
    const char *value; /* points into the path, not NUL-terminated */
    size_t value_len;
};

struct br_match {
    const struct br_route *route;
    int n_params;
    struct br_param params[BR_MAX_PARAMS];
};

enum br_match_result {
    BR_MATCH_OK,
    BR_MATCH_NO_PATH,   /* 404 */
    BR_MATCH_NO_METHOD, /* 405 */
};

/* Finds the row for method + path (the decoded path, without the query).
 * On BR_MATCH_OK fills m; its pointers point into path and the table. */
enum br_match_result br_routes_match(const char *method, const char *path, struct br_match *m);

/* Writes the Allow header for path into out ("GET, PUT, PATCH, DELETE"):
 * the methods of the rows matching path, in table order, without repeats.
 * Returns the length written ("" and 0 when no row matches). */
size_t br_routes_allow(const char *path, char *out, size_t n);

/* The first row at or after from (NULL: the table's start) that carries
 * command with method, or NULL. A worker finds its command's path with it
 * ("order.list", "GET" -> "/api/orders/"); resume.get has two rows. */
const struct br_route *br_routes_find(const struct br_route *from, const char *command,
                                      const char *method);

/* True when pattern matches path by the rules above (method aside); params
 * may be NULL. Exposed for the OpenAPI generator and the tests. */
bool br_routes_pattern_match(const char *pattern, const char *path, struct br_match *m);

/* True when row r matches path, method aside: br_routes_pattern_match, or
 * for a BR_STATIC row its prefix rule (the param "path" is what follows the
 * prefix's slash, maybe empty). m may be NULL. */
bool br_routes_row_match(const struct br_route *r, const char *path, struct br_match *m);

#endif
