#include "workers/bridge/request.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shared/codec.h"
#include "shared/json.h"

/* The envelope map and args map sit above the body's own nesting. */
#define BODY_MAX_DEPTH (BK_CODEC_MAX_DEPTH - 2)
/* Room left in BK_CODEC_MAX_TOTAL for the envelope and bridge-set args. */
#define BODY_MAX_TOTAL (BK_CODEC_MAX_TOTAL - 64)

/* The media type of a Content-Type value: leading space trimmed, up to ';'
 * or trailing space; compared case-insensitively. */
static bool media_type_is(const char *ct, const char *want)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(ct, want, n) == 0;
}

enum br_body_kind br_request_body_kind(const char *content_type)
{
    if (!content_type)
        return BR_BODY_OTHER;
    if (media_type_is(content_type, "application/json"))
        return BR_BODY_JSON;
    if (media_type_is(content_type, "multipart/form-data"))
        return BR_BODY_MULTIPART;
    return BR_BODY_OTHER;
}

bool br_request_header_ok(const char *s, size_t max)
{
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return false;
    return true;
}

bool br_request_bearer(const char *value, const char **tok, size_t *len)
{
    const char *parts[3];
    size_t lens[3];
    const char *end = NULL; /* the end of the last part */
    int n = 0;
    if (!value)
        return false;
    /* Python's str.split(): runs of whitespace separate, ends trimmed. */
    for (const char *p = value; *p;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *b = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (n < 3) {
            parts[n] = b;
            lens[n] = (size_t)(p - b);
        }
        end = p;
        n++;
    }
    if (n == 0 || lens[0] != 6 || strncmp(parts[0], "Bearer", 6) != 0)
        return false;
    if (n == 1) {
        *tok = "";
        *len = 0;
        return true;
    }
    if (n > 2) {
        *tok = parts[1];
        *len = (size_t)(end - parts[1]);
        return true;
    }
    *tok = parts[1];
    *len = lens[1];
    return true;
}

const char *br_request_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "dict";
    case JSON_ARRAY:
        return "list";
    case JSON_STRING:
        return "str";
    case JSON_INTEGER:
        return "int";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_NULL:
        return "NoneType";
    }
    return "object";
}

/* Walks v within the workers' decoder limits; *total counts msgpack objects
 * (a map pair is two). 0 or -1 with *why. */
static int within_limits(const json_t *v, int depth, size_t *total, const char **why)
{
    if (json_is_object(v) || json_is_array(v)) {
        if (depth > BODY_MAX_DEPTH) {
            *why = "nesting too deep";
            return -1;
        }
        size_t n = json_is_object(v) ? json_object_size(v) : json_array_size(v);
        if (n > BK_CODEC_MAX_ITEMS) {
            *why = "too many items in one object or array";
            return -1;
        }
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            *total += 2;
            if (*total > BODY_MAX_TOTAL) {
                *why = "too many values";
                return -1;
            }
            if (within_limits(x, depth + 1, total, why) != 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            *total += 1;
            if (*total > BODY_MAX_TOTAL) {
                *why = "too many values";
                return -1;
            }
            if (within_limits(x, depth + 1, total, why) != 0)
                return -1;
        }
    }
    return 0;
}

static json_t *parse_error(const char *reason)
{
    char buf[320];
    snprintf(buf, sizeof buf, "JSON parse error - %s", reason);
    return json_pack("{s:s}", "detail", buf);
}

int br_request_parse_json(const char *body, size_t len, json_t **out, json_t **err)
{
    json_error_t e;
    *out = NULL;
    *err = NULL;
    /* JSON_DECODE_ANY: a scalar body gets DRF's "expected a dictionary" error,
     * not a parse error. Duplicate keys: the last wins, as in Python. */
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &e);
    if (!v) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s: line %d column %d (char %d)", e.text, e.line, e.column,
                 e.position);
        *err = parse_error(reason);
        return 400;
    }
    if (json_is_null(v)) {
        *err = json_pack("{s:[s]}", "non_field_errors", "No data provided");
        goto fail;
    }
    if (!json_is_object(v)) {
        char msg[96];
        snprintf(msg, sizeof msg, "Invalid data. Expected a dictionary, but got %s.",
                 br_request_type_name(v));
        *err = json_pack("{s:[s]}", "non_field_errors", msg);
        goto fail;
    }
    const char *why = NULL;
    size_t total = 0;
    if (within_limits(v, 1, &total, &why) != 0) {
        *err = parse_error(why);
        goto fail;
    }
    *out = v;
    return 0;
fail:
    json_decref(v);
    return 400;
}

void br_request_free_files(struct br_file *f)
{
    while (f) {
        struct br_file *next = f->next;
        free(f->name);
        free(f->filename);
        free(f->content_type);
        free(f->data);
        free(f);
        f = next;
    }
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int br_request_pack(msgpack_sbuffer *sb, const char *token, size_t token_len, const json_t *args,
                    const struct br_file *files)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t n = json_object_size(args);
    for (const struct br_file *f = files; f; f = f->next)
        if (!json_object_get(args, f->name))
            n++;

    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "v", 1);
    msgpack_pack_int(&pk, 1);
    pack_str(&pk, "auth", 4);
    if (token)
        pack_str(&pk, token, token_len);
    else
        msgpack_pack_nil(&pk);
    pack_str(&pk, "args", 4);
    msgpack_pack_map(&pk, n);
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)args, k, x)
    {
        pack_str(&pk, k, strlen(k));
        if (bk_json_pack(&pk, x) != 0)
            return -1;
    }
    for (const struct br_file *f = files; f; f = f->next) {
        if (json_object_get(args, f->name))
            continue;
        pack_str(&pk, f->name, strlen(f->name));
        msgpack_pack_bin(&pk, f->len);
        msgpack_pack_bin_body(&pk, f->data, f->len);
    }
    return 0;
}
