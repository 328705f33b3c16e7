/* Small helpers shared by everyone: time, UUIDs, hex. */
#ifndef BK_UTIL_H
#define BK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int64_t bk_now_ms(void);  /* wall clock, ms since the epoch */
int64_t bk_mono_ms(void); /* monotonic clock, ms */
int64_t bk_mono_us(void); /* monotonic clock, µs (durations in logs) */

/* A random (v4) UUID in canonical text form, 36 chars + NUL. */
void bk_uuid4(char out[37]);

/* A name-based UUID (v5-style, SHA-256 truncated) of ns and name: the same
 * inputs always give the same UUID. */
void bk_uuid_name(const char *ns, const char *name, size_t name_len, char out[37]);

/* True when s is a canonical UUID (8-4-4-4-12 hex). */
bool bk_uuid_valid(const char *s, size_t len);

/* A request id (X-Request-ID over HTTP, the x-request-id AMQP header) is
 * 1 to BK_REQUEST_ID_MAX characters of [A-Za-z0-9._:-]: safe to echo in a
 * header, to log without escaping and to grep for. Anything else is
 * replaced, never trusted. */
#define BK_REQUEST_ID_MAX 64
bool bk_request_id_valid(const char *s, size_t len);

/* The value of a hex digit (0-15), or -1. */
int bk_hex_value(char c);

/* Whether an If-None-Match value (list[0..len): entity tags separated by
 * commas, or "*") names etag (quoted, "\"abc\""); weak tags compare weakly,
 * as RFC 9110 asks for GET and HEAD. */
bool bk_etag_list_has(const char *list, size_t len, const char *etag);

/* RFC 3339 UTC with microseconds of a wall clock time in µs, 27 chars + NUL. */
void bk_rfc3339(int64_t us, char out[32]);

/* Small key files (shared/jwt.c, shared/secret.c). */
struct stat;
/* Reads a regular file (not through a symlink) of less than cap bytes into
 * buf, NUL-terminated; st gets its stat. 0, or -1 with errno. */
int bk_file_read_small(const char *path, char *buf, size_t cap, struct stat *st);
/* Writes data to dir/<tmp>, fsyncs, then puts it in place as dir/name: with
 * replace by rename(2) (atomic swap), else by link(2), which fails with EEXIST
 * when another process created name first. 0, or -1 with errno. */
int bk_file_write_atomic(const char *dir, const char *name, const char *data, size_t len,
                         unsigned mode, bool replace);
/* mkdir -p with mode for every folder it creates. 0 or -1. */
int bk_mkdir_p(const char *dir, unsigned mode);

#endif
