#include "shared/codec.h"

#include <stdint.h>
#include <string.h>

static uint32_t be(const unsigned char *p, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* An iterative walk: stack[d] counts the objects still expected at depth d. */
int bk_codec_check(const char *buf, size_t len, const char **why)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint64_t stack[BK_CODEC_MAX_DEPTH + 1];
    int depth = 0;
    size_t off = 0, total = 0;
    stack[0] = 1;

    if (len == 0) {
        *why = "empty message";
        return -1;
    }
    if (len > BK_CODEC_MAX_BYTES) {
        *why = "message too large";
        return -1;
    }
    while (depth >= 0) {
        if (stack[depth] == 0) {
            depth--;
            continue;
        }
        stack[depth]--;
        if (off >= len) {
            *why = "truncated MessagePack";
            return -1;
        }
        if (++total > BK_CODEC_MAX_TOTAL) {
            *why = "too many objects";
            return -1;
        }
        unsigned char t = p[off++];
        size_t need = 0;    /* payload bytes after the header */
        uint64_t items = 0; /* children of a container */
        int lenbytes = 0, is_str = 0, container = 0;

        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            need = 0;
        } else if (t >= 0x80 && t <= 0x8f) {
            items = 2u * (t & 0x0f), container = 1;
        } else if (t >= 0x90 && t <= 0x9f) {
            items = t & 0x0f, container = 1;
        } else if (t >= 0xa0 && t <= 0xbf) {
            need = t & 0x1f, is_str = 1;
        } else {
            switch (t) {
            case 0xc4:
                lenbytes = 1;
                break;
            case 0xc5:
                lenbytes = 2;
                break;
            case 0xc6:
                lenbytes = 4;
                break;
            case 0xca:
                need = 4;
                break;
            case 0xcb:
                need = 8;
                break;
            case 0xcc:
            case 0xd0:
                need = 1;
                break;
            case 0xcd:
            case 0xd1:
                need = 2;
                break;
            case 0xce:
            case 0xd2:
                need = 4;
                break;
            case 0xcf:
            case 0xd3:
                need = 8;
                break;
            case 0xd9:
                lenbytes = 1, is_str = 1;
                break;
            case 0xda:
                lenbytes = 2, is_str = 1;
                break;
            case 0xdb:
                lenbytes = 4, is_str = 1;
                break;
            case 0xdc:
                lenbytes = 2, container = 1;
                break;
            case 0xdd:
                lenbytes = 4, container = 1;
                break;
            case 0xde:
                lenbytes = 2, container = 2;
                break;
            case 0xdf:
                lenbytes = 4, container = 2;
                break;
            default:
                *why = t == 0xc1 ? "invalid MessagePack byte 0xc1"
                                 : "MessagePack extension types are not accepted";
                return -1;
            }
        }
        if (lenbytes) {
            if (len - off < (size_t)lenbytes) {
                *why = "truncated MessagePack";
                return -1;
            }
            uint32_t n = be(p + off, lenbytes);
            off += (size_t)lenbytes;
            if (container)
                items = container == 2 ? 2ull * n : n;
            else
                need = n;
        }
        if (need) {
            if (len - off < need) {
                *why = "truncated MessagePack";
                return -1;
            }
            if (is_str && !utf8_valid(p + off, need)) {
                *why = "string is not valid UTF-8";
                return -1;
            }
            off += need;
        }
        if (container && items) {
            /* every child takes at least one byte: a count beyond the bytes
             * left is a lie, refused before msgpack-c allocates for it */
            if (items > 2ull * BK_CODEC_MAX_ITEMS || items > len - off) {
                *why = "container too large";
                return -1;
            }
            if (depth + 1 > BK_CODEC_MAX_DEPTH) {
                *why = "nested too deeply";
                return -1;
            }
            stack[++depth] = items;
        }
    }
    if (off != len) {
        *why = "trailing bytes after the MessagePack object";
        return -1;
    }
    return 0;
}

int bk_codec_unpack(const char *buf, size_t len, msgpack_unpacked *out, const char **why)
{
    msgpack_unpacked_init(out);
    if (bk_codec_check(buf, len, why) != 0)
        return -1;
    size_t off = 0;
    if (msgpack_unpack_next(out, buf, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        *why = "malformed MessagePack";
        return -1;
    }
    return 0;
}

bool bk_codec_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}

const msgpack_object *bk_codec_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (bk_codec_str_eq(&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}
