#include "shared/template.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 32

/* The length of the placeholder name at p (just after a "{"), when p holds
 * one closed by "}"; else 0. */
static size_t placeholder(const char *p)
{
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
    return n > 0 && n <= MAX_NAME && p[n] == '}' ? n : 0;
}

static int index_of(const char *const *names, const char *p, size_t n)
{
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == n && strncmp(names[i], p, n) == 0)
            return i;
    return -1;
}

int bk_template_parse(struct bk_template *t, const char *path, const char *text,
                      const char *const *names)
{
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    int line = 1, rc = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            line++;
        size_t n = *p == '{' ? placeholder(p + 1) : 0;
        if (n && index_of(names, p + 1, n) < 0) {
            fprintf(stderr, "template %s:%d: unknown placeholder {%.*s} (known:", path, line,
                    (int)n, p + 1);
            for (int i = 0; names[i]; i++)
                fprintf(stderr, " {%s}", names[i]);
            fprintf(stderr, ")\n");
            rc = -1;
        }
    }
    if (rc != 0)
        return -1;
    t->text = strdup(text);
    return t->text ? 0 : -1;
}

int bk_template_load(struct bk_template *t, const char *path, const char *const *names)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "template %s: cannot read: %s\n", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(BK_TEMPLATE_MAX + 1);
    size_t n = buf ? fread(buf, 1, BK_TEMPLATE_MAX + 1, f) : 0;
    int rc = -1;
    if (!buf || ferror(f))
        fprintf(stderr, "template %s: cannot read\n", path);
    else if (n > BK_TEMPLATE_MAX)
        fprintf(stderr, "template %s: larger than %d bytes\n", path, BK_TEMPLATE_MAX);
    else if (memchr(buf, '\0', n))
        fprintf(stderr, "template %s: holds a NUL byte (not text)\n", path);
    else {
        buf[n] = '\0';
        rc = bk_template_parse(t, path, buf, names);
    }
    fclose(f);
    free(buf);
    return rc;
}

struct out {
    char *p;
    size_t len, cap;
    bool failed;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 1024;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void put_html(struct out *o, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            put(o, "&amp;", 5);
            break;
        case '<':
            put(o, "&lt;", 4);
            break;
        case '>':
            put(o, "&gt;", 4);
            break;
        case '"':
            put(o, "&quot;", 6);
            break;
        case '\'':
            put(o, "&#x27;", 6);
            break;
        default:
            put(o, s, 1);
        }
    }
}

char *bk_template_render(const struct bk_template *t, const char *const *names,
                         const char *const *values, enum bk_template_escape esc)
{
    struct out o = {0};
    const char *p = t->text, *run = p;
    while (*p) {
        size_t n = *p == '{' ? placeholder(p + 1) : 0;
        int i = n ? index_of(names, p + 1, n) : -1;
        if (i < 0) {
            p++;
            continue;
        }
        put(&o, run, (size_t)(p - run));
        const char *v = values[i] ? values[i] : "";
        if (esc == BK_TEMPLATE_HTML)
            put_html(&o, v);
        else
            put(&o, v, strlen(v));
        p += n + 2;
        run = p;
    }
    put(&o, run, (size_t)(p - run));
    put(&o, "", 0);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

void bk_template_free(struct bk_template *t)
{
    free(t->text);
    t->text = NULL;
}
