#include "shared/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/util.h"

#define LINE_MAX_BYTES 2048

static char component[32] = "backend";
static enum bk_log_level min_level = BK_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void bk_log_init(const char *name)
{
    snprintf(component, sizeof component, "%s", name);
    const char *lvl = bk_config_str("log_level");
    min_level = strcmp(lvl, "debug") == 0                                 ? BK_DEBUG
                : strcmp(lvl, "warn") == 0 || strcmp(lvl, "warning") == 0 ? BK_WARN
                : strcmp(lvl, "error") == 0                               ? BK_ERROR
                                                                          : BK_INFO;
}

/* Appends s as a JSON string body (without quotes) to buf at *o, leaving
 * room for what closes the line. */
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

/* {"ts","level","component","pid"[,"request_id"] into line; returns the length. */
static size_t put_head(char *line, size_t n, enum bk_log_level level, const char *request_id)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char ts[32];
    bk_rfc3339((int64_t)tv.tv_sec * 1000000 + tv.tv_usec, ts);
    size_t o =
        (size_t)snprintf(line, n, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"pid\":%d",
                         ts, level_names[level], component, (int)getpid());
    if (request_id && *request_id) {
        o += (size_t)snprintf(line + o, n - o, ",\"request_id\":\"");
        put_escaped(line, n - 64, &o, request_id);
        line[o++] = '"';
    }
    return o;
}

/* one write per line so concurrent copies and threads do not interleave */
static void put_line(char *line, size_t o)
{
    line[o++] = '}';
    line[o++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, o);
    (void)w;
}

void bk_log(enum bk_log_level level, const char *request_id, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char line[LINE_MAX_BYTES];
    size_t o = put_head(line, sizeof line, level, request_id);
    o += (size_t)snprintf(line + o, sizeof line - o, ",\"msg\":\"");
    put_escaped(line, sizeof line - 3, &o, msg);
    line[o++] = '"';
    put_line(line, o);
}

void bk_log_fields(enum bk_log_level level, const char *request_id, const char *msg,
                   const struct bk_log_field *fields, int n)
{
    if (level < min_level)
        return;
    char line[LINE_MAX_BYTES];
    size_t o = put_head(line, sizeof line, level, request_id);
    o += (size_t)snprintf(line + o, sizeof line - o, ",\"msg\":\"");
    put_escaped(line, sizeof line - 3, &o, msg);
    line[o++] = '"';
    for (int i = 0; i < n; i++) {
        const struct bk_log_field *f = &fields[i];
        char field[600];
        size_t k;
        if (f->str) {
            if (!*f->str)
                continue;
            k = (size_t)snprintf(field, sizeof field, ",\"%s\":\"", f->key);
            put_escaped(field, sizeof field - 2, &k, f->str);
            field[k++] = '"';
        } else if (isfinite(f->num) && f->num == (double)(long long)f->num) {
            k = (size_t)snprintf(field, sizeof field, ",\"%s\":%lld", f->key, (long long)f->num);
        } else if (isfinite(f->num)) {
            k = (size_t)snprintf(field, sizeof field, ",\"%s\":%.3f", f->key, f->num);
        } else {
            continue;
        }
        if (k >= sizeof field || o + k + 2 >= sizeof line)
            break; /* cut at a field boundary: the line stays JSON */
        memcpy(line + o, field, k);
        o += k;
    }
    put_line(line, o);
}
