#include "shared/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/util.h"

static char component[32] = "backend";
static enum bk_log_level min_level = BK_INFO;

void bk_log_init(const char *name)
{
    snprintf(component, sizeof component, "%s", name);
    const char *lvl = bk_config_str("log_level");
    min_level = strcmp(lvl, "debug") == 0                                 ? BK_DEBUG
                : strcmp(lvl, "warn") == 0 || strcmp(lvl, "warning") == 0 ? BK_WARN
                : strcmp(lvl, "error") == 0                               ? BK_ERROR
                                                                          : BK_INFO;
}

/* Appends s as a JSON string body (without quotes) to buf at *o. */
static void put_escaped(char *buf, size_t n, size_t *o, const char *s)
{
    for (; *s && *o + 7 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf[(*o)++] = '\\';
            buf[(*o)++] = (char)ch;
        } else if (ch < 0x20) {
            *o += (size_t)snprintf(buf + *o, n - *o, "\\u%04x", ch);
        } else {
            buf[(*o)++] = (char)ch;
        }
    }
}

void bk_log(enum bk_log_level level, const char *cid, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < min_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    char ts[32];
    bk_rfc3339((int64_t)tv.tv_sec * 1000000 + tv.tv_usec, ts);

    char line[2048];
    size_t o = (size_t)snprintf(line, sizeof line,
                                "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"pid\":%d",
                                ts, names[level], component, (int)getpid());
    if (cid && *cid) {
        o += (size_t)snprintf(line + o, sizeof line - o, ",\"cid\":\"");
        put_escaped(line, sizeof line, &o, cid);
        line[o++] = '"';
    }
    o += (size_t)snprintf(line + o, sizeof line - o, ",\"msg\":\"");
    put_escaped(line, sizeof line - 3, &o, msg);
    line[o++] = '"';
    line[o++] = '}';
    line[o++] = '\n';
    /* one write per line so concurrent copies do not interleave */
    ssize_t w = write(STDERR_FILENO, line, o);
    (void)w;
}
