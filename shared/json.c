#include "shared/json.h"

#include <string.h>

#include "shared/codec.h"

static int pack(msgpack_packer *pk, const json_t *v, int depth)
{
    if (depth > BK_CODEC_MAX_DEPTH)
        return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach((json_t *)v, k, x)
        {
            size_t n = strlen(k);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, k, n);
            if (pack(pk, x, depth + 1) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, x)
        {
            if (pack(pk, x, depth + 1) != 0)
                return -1;
        }
        return 0;
    }
    case JSON_STRING: {
        size_t n = json_string_length(v);
        msgpack_pack_str(pk, n);
        return msgpack_pack_str_body(pk, json_string_value(v), n);
    }
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(v));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v));
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    }
    return -1;
}

int bk_json_pack(msgpack_packer *pk, const json_t *v)
{
    return pack(pk, v, 0);
}

int bk_json_pack_text(msgpack_packer *pk, const char *text, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v)
        return -1;
    int rc = pack(pk, v, 0);
    json_decref(v);
    return rc;
}

static json_t *from(const msgpack_object *o, int depth)
{
    if (depth > BK_CODEC_MAX_DEPTH)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        /* an empty str may come with a NULL pointer */
        return json_stringn_nocheck(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            json_t *x = from(&o->via.array.ptr[i], depth + 1);
            if (!x || json_array_append_new(a, x) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR ||
                (k->via.str.size && memchr(k->via.str.ptr, 0, k->via.str.size))) {
                json_decref(m);
                return NULL;
            }
            json_t *x = from(&o->via.map.ptr[i].val, depth + 1);
            const char *key = k->via.str.size ? k->via.str.ptr : "";
            if (!x || json_object_setn_new_nocheck(m, key, k->via.str.size, x) != 0) {
                json_decref(x);
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default:
        return NULL; /* bin, ext */
    }
}

json_t *bk_json_from_msgpack(const msgpack_object *o)
{
    return from(o, 0);
}
