/* Files for the BR_STATIC routes (shared/routes.h): a prefix, a folder below
 * the web_dir setting, an index file. Today Swagger UI at /api/docs/, later
 * the staff console at /admin/: a new mount is a row in the route table.
 *
 * What a client may name is decided on the raw request path, before any
 * file system call (br_static_path): percent escapes decoded strictly, then
 * segments of [A-Za-z0-9._~+@-] that do not start with a dot (no "..", no
 * hidden files), no empty segment, no NUL or control byte, at most
 * BR_STATIC_MAX_DEPTH segments and BR_STATIC_MAX_REL bytes. The file is then
 * opened through its real path, which must lie inside the mount's real
 * folder (a symlink out of it is refused), and must be a regular file of at
 * most BR_STATIC_MAX_FILE bytes. Everything refused is a plain 404. */
#ifndef BR_STATIC_H
#define BR_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/routes.h"

#define BR_STATIC_MAX_REL   255         /* a file's path below its folder */
#define BR_STATIC_MAX_DEPTH 8           /* its segments */
#define BR_STATIC_MAX_FILE  (32u << 20) /* Swagger UI's bundle is 1.4 MB */
#define BR_STATIC_MAX_ETAG  64

enum br_static_verdict {
    BR_STATIC_FILE,     /* rel names a file to open */
    BR_STATIC_REDIRECT, /* the prefix without its slash: redirect to the prefix */
    BR_STATIC_REFUSED,  /* not a name we serve: 404 */
};

/* Maps raw (the request path as the client sent it, without the query; raw_len
 * bytes, not NUL-terminated, untrusted) under prefix ("/api/docs/") to the
 * file's path below the mount in rel (NUL-terminated, rel_n bytes at most):
 * the prefix itself gives index (NULL: refused). Pure; fuzzed. */
enum br_static_verdict br_static_path(const char *prefix, const char *index, const char *raw,
                                      size_t raw_len, char *rel, size_t rel_n);

/* The Content-Type for a file name, by its extension (text types with
 * charset=utf-8); application/octet-stream when unknown. */
const char *br_static_content_type(const char *name);

/* Resolves the folder of every BR_STATIC row below web_dir, once, before
 * serving. -1, having logged which folder is missing (run scripts/setup),
 * when one is not there. */
int br_static_init(const char *web_dir);

struct br_static_file {
    int fd; /* the caller owns it (MHD_create_response_from_fd closes it) */
    uint64_t size;
    char etag[BR_STATIC_MAX_ETAG]; /* "\"<size>-<mtime>\"" in hex, quoted */
};

/* Opens rel (from br_static_path) in route's folder. 0 with f filled; -1
 * when there is no such file for the client (missing, a folder, a symlink
 * out of the mount, too big): 404; -2 when the server cannot read it (it is
 * logged): 500. */
int br_static_open(const struct br_route *route, const char *rel, struct br_static_file *f);

#endif
