/* What the bridge refuses to protect itself and other callers (finding 8 of
 * issue 10), kept apart from the request handling in http.c:
 *
 *   framing   a request whose body length is ambiguous (RFC 9112 section
 *             6.3: Content-Length with Transfer-Encoding, Content-Lengths
 *             that differ, a transfer coding other than chunked) gets 400 or
 *             501 and a closed connection, so that no request hidden behind
 *             it is ever read;
 *   callers   commands in flight per client address (http_max_inflight_per_caller);
 *   deadlines a connection's request line and headers must arrive in time
 *             (http_header_timeout_s): libmicrohttpd's own timeout only
 *             counts silence, so a sender of one byte a second would hold a
 *             connection for ever. A watchdog thread shuts such sockets down.
 *
 * The per-address connection cap is libmicrohttpd's (http.c). */
#ifndef BR_GUARD_H
#define BR_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- framing (pure) ------------------------------------------------------- */

struct br_framing {
    int n_length;      /* Content-Length fields */
    int n_coding;      /* Transfer-Encoding fields */
    uint64_t length;   /* the first Content-Length value */
    bool length_seen;  /* length holds it */
    bool length_bad;   /* a value that is not 1*DIGIT, or differs from the first */
    bool coding_other; /* a coding other than chunked, or chunked twice */
    bool chunked_seen;
    bool chunked_last; /* the last coding seen is chunked */
};

/* Feeds one request header field (any; others are ignored). */
void br_guard_framing_add(struct br_framing *f, const char *name, size_t name_len,
                          const char *value, size_t value_len);

/* 0 when the body length is unambiguous; else 400 or 501 with *why set to the
 * detail for the client. Either way the connection must then be closed. */
unsigned br_guard_framing_verdict(const struct br_framing *f, const char **why);

/* ---- commands in flight per caller ----------------------------------------- */

/* At most max_per_caller commands of one caller at once; capacity bounds the
 * callers tracked at once (a full table refuses). 0 or -1. */
int br_guard_callers_init(int max_per_caller, int capacity);
void br_guard_callers_free(void);

/* Counts one more command of caller (a client address, at most 63 bytes).
 * True when it is within the limit; false (nothing counted) when not. Any
 * thread. */
bool br_guard_caller_take(const char *caller);

/* The command of caller counted by a successful take is over. Any thread. */
void br_guard_caller_put(const char *caller);

/* ---- header deadlines -------------------------------------------------------- */

struct br_guard_conn;

/* Starts the watchdog: a connection past its deadline is shut down (its
 * socket, so the HTTP thread sees the end and cleans up as for any client
 * that left). 0 or -1. */
int br_guard_start(void);
void br_guard_stop(void);

/* A connection opened on fd, with the deadline now + ms. NULL when out of
 * memory (the connection is then not watched). */
struct br_guard_conn *br_guard_conn_open(int fd, int64_t ms);

/* Before fd is closed: the watchdog must not touch it again. */
void br_guard_conn_close(struct br_guard_conn *c);

/* The deadline becomes now + ms; 0: none (the headers are in). */
void br_guard_conn_deadline(struct br_guard_conn *c, int64_t ms);

/* Connections shut down by the watchdog so far. */
uint64_t br_guard_timeouts(void);

#endif
