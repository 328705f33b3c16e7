/* Logging: one JSON object per line on stderr, with the component, the pid and
 * the request id of the request or command in hand ("request_id"), so that
 * one grep follows a request from the bridge through the workers. Never pass
 * a password or a token. */
#ifndef BK_LOG_H
#define BK_LOG_H

#include <stdbool.h>

enum bk_log_level { BK_DEBUG, BK_INFO, BK_WARN, BK_ERROR };

/* Sets the component name and reads log_level from the config. */
void bk_log_init(const char *component);

/* request_id may be NULL or "". */
void bk_log(enum bk_log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One field of a structured line: a string (str set; NULL or "" leaves the
 * field out) or a number (str NULL, num). */
struct bk_log_field {
    const char *key; /* a JSON-safe literal */
    const char *str;
    double num;
};
#define BK_LOG_STR(k, v)                                                                           \
    {                                                                                              \
        (k), (v), 0                                                                                \
    }
#define BK_LOG_NUM(k, v)                                                                           \
    {                                                                                              \
        (k), NULL, (double)(v)                                                                     \
    }

/* A line with msg and the given fields after the common ones (an access log
 * line, a command's summary). Bounded like bk_log: an over-long line is cut
 * at a field boundary, never left as broken JSON. */
void bk_log_fields(enum bk_log_level level, const char *request_id, const char *msg,
                   const struct bk_log_field *fields, int n);

#endif
