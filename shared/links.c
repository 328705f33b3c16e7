/* Link building: see links.h. Every write is bounded by the caller's buffer;
 * a link that does not fit is refused rather than cut short. */
#include "shared/links.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "shared/util.h"

/* Copies s[0..len) into q->buf decoded as Python's unquote_plus: '+' is a
 * space, %XX a byte, a malformed % stays as it is. NULL when it does not fit
 * or decodes to a NUL byte. */
static const char *decode_into(struct bk_link_query *q, const char *s, size_t len)
{
    char *out = q->buf + q->used;
    size_t room = sizeof q->buf - q->used, o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%' && i + 2 < len && bk_hex_value(s[i + 1]) >= 0 &&
                   bk_hex_value(s[i + 2]) >= 0) {
            ch = (char)(bk_hex_value(s[i + 1]) * 16 + bk_hex_value(s[i + 2]));
            i += 2;
        }
        if (ch == '\0' || o + 1 >= room)
            return NULL;
        out[o++] = ch;
    }
    if (o >= room) /* an empty pair with the buffer full: no room for its NUL */
        return NULL;
    out[o++] = '\0';
    q->used += o;
    return out;
}

static int add_raw(struct bk_link_query *q, const char *k, size_t klen, const char *v, size_t vlen,
                   bool decode)
{
    if (q->n == BK_LINK_MAX_PARAMS)
        return -1;
    size_t mark = q->used;
    const char *key, *value;
    if (decode) {
        key = decode_into(q, k, klen);
        value = key ? decode_into(q, v, vlen) : NULL;
    } else {
        key = value = NULL;
        if (klen + vlen + 2 <= sizeof q->buf - q->used && !memchr(k, '\0', klen) &&
            !memchr(v, '\0', vlen)) {
            char *p = q->buf + q->used;
            memcpy(p, k, klen);
            p[klen] = '\0';
            memcpy(p + klen + 1, v, vlen);
            p[klen + 1 + vlen] = '\0';
            key = p;
            value = p + klen + 1;
            q->used += klen + vlen + 2;
        }
    }
    if (!key || !value) {
        q->used = mark;
        return -1;
    }
    q->p[q->n].key = key;
    q->p[q->n].value = value;
    q->n++;
    return 0;
}

int bk_link_query_parse(struct bk_link_query *q, const char *query, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *s = query + i;
        const char *amp = memchr(s, '&', len - i);
        size_t plen = amp ? (size_t)(amp - s) : len - i;
        i += plen + (amp ? 1 : 0);
        if (plen == 0)
            continue;
        const char *eq = memchr(s, '=', plen);
        size_t klen = eq ? (size_t)(eq - s) : plen;
        const char *v = eq ? eq + 1 : s + plen;
        size_t vlen = eq ? plen - klen - 1 : 0;
        if (add_raw(q, s, klen, v, vlen, true) != 0)
            return -1;
    }
    return 0;
}

int bk_link_query_add(struct bk_link_query *q, const char *key, const char *value, size_t value_len)
{
    return add_raw(q, key, strlen(key), value, value_len, false);
}

int bk_link_query_from_args(struct bk_link_query *q, const char *keys, const msgpack_object *args)
{
    while (keys && *keys) {
        size_t klen = strcspn(keys, ",");
        char key[64];
        if (klen > 0 && klen < sizeof key) {
            memcpy(key, keys, klen);
            key[klen] = '\0';
            const msgpack_object *o = args ? bk_codec_get(args, key) : NULL;
            char num[24];
            const char *v = NULL;
            size_t vlen = 0;
            if (o && o->type == MSGPACK_OBJECT_STR) {
                v = o->via.str.ptr;
                vlen = o->via.str.size;
            } else if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                vlen = (size_t)snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
                v = num;
            } else if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                vlen = (size_t)snprintf(num, sizeof num, "%" PRId64, o->via.i64);
                v = num;
            } else if (o && o->type == MSGPACK_OBJECT_BOOLEAN) {
                v = o->via.boolean ? "true" : "false";
                vlen = strlen(v);
            }
            if (v && add_raw(q, key, klen, v, vlen, false) != 0)
                return -1;
        }
        keys += klen + (keys[klen] == ',' ? 1 : 0);
    }
    return 0;
}

/* Appends s[0..len) to out at *o; those bytes outside keep (as quote()'s
 * always-safe set: letters, digits, "_.-~") become %XX, and a space "+" when
 * plus is set. false when it does not fit. */
static bool put_encoded(char *out, size_t n, size_t *o, const char *s, size_t len, bool plus)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool safe = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-' || ch == '~';
        size_t need = safe || (plus && ch == ' ') ? 1 : 3;
        if (*o + need >= n)
            return false;
        if (safe) {
            out[(*o)++] = (char)ch;
        } else if (plus && ch == ' ') {
            out[(*o)++] = '+';
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[ch >> 4];
            out[(*o)++] = hex[ch & 15];
        }
    }
    out[*o] = '\0';
    return true;
}

static bool put(char *out, size_t n, size_t *o, const char *s, size_t len)
{
    if (*o + len >= n)
        return false;
    memcpy(out + *o, s, len);
    *o += len;
    out[*o] = '\0';
    return true;
}

int bk_link_fill(char *out, size_t n, const char *base, const char *pattern,
                 const msgpack_object *args)
{
    size_t o = 0;
    if (n == 0)
        return -1;
    out[0] = '\0';
    if (!put(out, n, &o, base, strlen(base)))
        goto fail;
    for (const char *s = pattern; *s;) {
        const char *open = strchr(s, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        if (!open || !close) {
            if (!put(out, n, &o, s, strlen(s)))
                goto fail;
            break;
        }
        char name[64];
        size_t nlen = (size_t)(close - open - 1);
        if (!put(out, n, &o, s, (size_t)(open - s)) || nlen == 0 || nlen >= sizeof name)
            goto fail;
        memcpy(name, open + 1, nlen);
        name[nlen] = '\0';
        const msgpack_object *v = args ? bk_codec_get(args, name) : NULL;
        char num[24];
        if (v && v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0) {
            if (!put_encoded(out, n, &o, v->via.str.ptr, v->via.str.size, false))
                goto fail;
        } else if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            int k = snprintf(num, sizeof num, "%" PRIu64, v->via.u64);
            if (!put(out, n, &o, num, (size_t)k))
                goto fail;
        } else {
            goto fail;
        }
        s = close + 1;
    }
    return (int)o;
fail:
    out[0] = '\0';
    return -1;
}

/* Indices of q's parameters other than "page", sorted by key; insertion sort
 * keeps equal keys in their order, as Python's sorted() does. */
static int sorted_without_page(const struct bk_link_query *q, int idx[BK_LINK_MAX_PARAMS])
{
    int m = 0;
    for (int i = 0; i < q->n; i++) {
        if (strcmp(q->p[i].key, "page") == 0)
            continue;
        int j = m++;
        while (j > 0 && strcmp(q->p[idx[j - 1]].key, q->p[i].key) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return m;
}

int bk_link_page(char *out, size_t n, const char *prefix, const struct bk_link_query *q,
                 int64_t page)
{
    int idx[BK_LINK_MAX_PARAMS];
    int m = q ? sorted_without_page(q, idx) : 0;
    size_t o = 0;
    bool page_done = page <= 1;
    char sep = '?';
    if (n == 0)
        return -1;
    out[0] = '\0';
    if (!put(out, n, &o, prefix, strlen(prefix)))
        goto fail;
    for (int i = 0; i <= m; i++) {
        const char *key = i < m ? q->p[idx[i]].key : NULL;
        /* "page" goes where sorting puts it, before the first greater key */
        if (!page_done && (!key || strcmp(key, "page") > 0)) {
            char kv[32];
            int k = snprintf(kv, sizeof kv, "%cpage=%" PRId64, sep, page);
            if (!put(out, n, &o, kv, (size_t)k))
                goto fail;
            sep = '&';
            page_done = true;
        }
        if (!key)
            break;
        const char *value = q->p[idx[i]].value;
        if (!put(out, n, &o, &sep, 1) || !put_encoded(out, n, &o, key, strlen(key), true) ||
            !put(out, n, &o, "=", 1) || !put_encoded(out, n, &o, value, strlen(value), true))
            goto fail;
        sep = '&';
    }
    return (int)o;
fail:
    out[0] = '\0';
    return -1;
}

bool bk_link_target_ok(const char *target)
{
    if (!target || target[0] != '/' || target[1] == '/')
        return false;
    for (const char *s = target; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || strchr("\"<>\\^`{|}#", *s))
            return false;
    return strlen(target) < BK_LINK_MAX;
}
