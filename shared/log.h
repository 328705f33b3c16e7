/* Logging: one JSON object per line on stderr, with the component, the pid and
 * the correlation id of the command in hand. Never pass a password or a token. */
#ifndef BK_LOG_H
#define BK_LOG_H

enum bk_log_level { BK_DEBUG, BK_INFO, BK_WARN, BK_ERROR };

/* Sets the component name and reads log_level from the config. */
void bk_log_init(const char *component);

/* cid may be NULL. */
void bk_log(enum bk_log_level level, const char *cid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
