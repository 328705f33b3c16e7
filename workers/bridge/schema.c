#include "workers/bridge/schema.h"

#include <stdio.h>
#include <string.h>

const char *br_schema_ref(char *buf, size_t n, const char *refs, const char *prefix,
                          const char *name, const char *suffix)
{
    snprintf(buf, n, "%s%s%s%s", refs, prefix, name, suffix);
    return buf;
}

/* {"type": t} or, when nullable, {"type": [t, "null"]}. */
static json_t *typed(const char *t, bool nullable)
{
    return nullable ? json_pack("{s:[s,s]}", "type", t, "null") : json_pack("{s:s}", "type", t);
}

static json_t *ref_schema(const struct bk_repr *r, bool nullable, const char *refs)
{
    char buf[160];
    json_t *ref = json_pack("{s:s}", "$ref", br_schema_ref(buf, sizeof buf, refs, "", r->name, ""));
    return nullable ? json_pack("{s:[o,{s:s}]}", "oneOf", ref, "type", "null") : ref;
}

/* DRF's DecimalField as drf-spectacular spells it: a string with at most
 * max_digits - 2 whole digits and 2 decimals. */
static void decimal(json_t *s, const struct bk_field *f)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "^-?\\d{0,%d}(?:\\.\\d{0,2})?$", (int)f->max - 2);
    json_object_set_new(s, "format", json_string("decimal"));
    json_object_set_new(s, "pattern", json_string(pattern));
}

json_t *br_schema_field(const struct bk_field *f, enum br_schema_use use, const char *refs)
{
    bool input = use != BR_OUTPUT;
    bool nullable = (f->flags & BK_F_NULLABLE) != 0;
    json_t *s = NULL;
    switch (f->type) {
    case BK_T_STRING:
        s = typed("string", nullable);
        if (f->max)
            json_object_set_new(s, "maxLength", json_integer(f->max));
        if (input && !(f->flags & BK_F_BLANK) && f->format != BK_FMT_DATE)
            json_object_set_new(s, "minLength", json_integer(1));
        if (bk_contract_format_name(f->format))
            json_object_set_new(s, "format", json_string(bk_contract_format_name(f->format)));
        if (bk_contract_format_pattern(f->format))
            json_object_set_new(s, "pattern", json_string(bk_contract_format_pattern(f->format)));
        break;
    case BK_T_INTEGER:
    case BK_T_PAGE:
        s = typed("integer", nullable);
        if (f->min || f->max) {
            json_object_set_new(s, "minimum", json_integer(f->min));
            if (f->max)
                json_object_set_new(s, "maximum", json_integer(f->max));
        }
        break;
    case BK_T_ID:
    case BK_T_PK:
        s = typed("integer", nullable);
        json_object_set_new(s, "minimum", json_integer(1));
        break;
    case BK_T_BOOLEAN:
        s = typed("boolean", nullable);
        break;
    case BK_T_DECIMAL:
        s = typed("string", nullable);
        decimal(s, f);
        if (input && f->min > 0)
            json_object_set_new(s, "description",
                                json_sprintf("At least %lld.%02lld", (long long)(f->min / 100),
                                             (long long)(f->min % 100)));
        break;
    case BK_T_CHOICE: {
        s = typed("string", nullable);
        json_t *e = json_array();
        for (const char *const *c = f->choices; *c; c++)
            json_array_append_new(e, json_string(*c));
        if (nullable)
            json_array_append_new(e, json_null());
        json_object_set_new(s, "enum", e);
        break;
    }
    case BK_T_BINARY:
        if (use == BR_OUTPUT) { /* the reply gives the stored file's URL */
            s = typed("string", nullable);
            json_object_set_new(s, "format", json_string("uri"));
        } else if (use == BR_ARGS) { /* MessagePack bin */
            s = typed("string", nullable);
            json_object_set_new(s, "contentEncoding", json_string("binary"));
            json_object_set_new(s, "maxLength", json_integer(f->max));
        } else {
            s = typed("string", nullable);
            json_object_set_new(s, "format", json_string("binary"));
        }
        break;
    case BK_T_OBJECT:
        return ref_schema(f->ref, nullable, refs);
    case BK_T_ARRAY:
        s = json_pack("{s:s, s:o}", "type", "array", "items",
                      f->ref ? ref_schema(f->ref, false, refs)
                             : json_pack("{s:s}", "type", "string"));
        break;
    case BK_T_MAP:
        s = json_pack("{s:s}", "type", "object");
        break;
    }
    if ((f->flags & BK_F_READ_ONLY) && use == BR_OUTPUT)
        json_object_set_new(s, "readOnly", json_true());
    if ((f->flags & BK_F_WRITE_ONLY) && input)
        json_object_set_new(s, "writeOnly", json_true());
    if (f->doc && !json_object_get(s, "description"))
        json_object_set_new(s, "description", json_string(f->doc));
    return s;
}

json_t *br_schema_repr(const struct bk_repr *r, const char *refs)
{
    json_t *props = json_object(), *req = json_array();
    for (const struct bk_field *f = r->fields; f->name; f++) {
        if (f->flags & BK_F_WRITE_ONLY)
            continue;
        json_object_set_new(props, f->name, br_schema_field(f, BR_OUTPUT, refs));
        if (!(f->flags & BK_F_OMITTED))
            json_array_append_new(req, json_string(f->name));
    }
    json_t *s = json_pack("{s:s, s:o}", "type", "object", "properties", props);
    if (json_array_size(req))
        json_object_set_new(s, "required", req);
    else
        json_decref(req);
    if (r->doc)
        json_object_set_new(s, "description", json_string(r->doc));
    if (r == &bk_repr_validation_error) /* every other key is a field with its messages */
        json_object_set_new(
            s, "additionalProperties",
            json_pack("{s:s, s:{s:s}}", "type", "array", "items", "type", "string"));
    return s;
}

struct args_ctx {
    enum br_schema_use use;
    bool multipart;
    const char *refs;
    json_t *props, *req;
};

static int add_arg(const struct bk_field *f, void *ctx)
{
    struct args_ctx *x = ctx;
    if (x->use != BR_ARGS && !bk_contract_in_body(f))
        return 0;
    if (f->type == BK_T_BINARY && x->use != BR_ARGS && !x->multipart)
        return 0;
    json_object_set_new(x->props, f->name, br_schema_field(f, x->use, x->refs));
    if ((f->flags & BK_F_REQUIRED) && x->use != BR_PATCH)
        json_array_append_new(x->req, json_string(f->name));
    return 0;
}

json_t *br_schema_args(const struct bk_command_decl *d, enum br_schema_use use, bool multipart,
                       const char *refs)
{
    struct args_ctx x = {use, multipart, refs, json_object(), json_array()};
    bk_contract_each_arg(d, add_arg, &x);
    json_t *s = json_pack("{s:s, s:o}", "type", "object", "properties", x.props);
    if (json_array_size(x.req))
        json_object_set_new(s, "required", x.req);
    else
        json_decref(x.req);
    return s;
}

json_t *br_schema_page(const char *item_ref)
{
    return json_pack("{s:s, s:[s,s,s,s], s:{s:{s:s, s:i}, s:{s:[s,s], s:s}, s:{s:[s,s], s:s}, "
                     "s:{s:s, s:{s:s}}}}",
                     "type", "object", "required", "count", "next", "previous", "results",
                     "properties", "count", "type", "integer", "minimum", 0, "next", "type",
                     "string", "null", "format", "uri", "previous", "type", "string", "null",
                     "format", "uri", "results", "type", "array", "items", "$ref", item_ref);
}

struct example_ctx {
    json_t *body;
};

static int add_example(const struct bk_field *f, void *ctx)
{
    struct example_ctx *x = ctx;
    if (!bk_contract_in_body(f) || f->type == BK_T_BINARY || !f->example)
        return 0;
    json_error_t err;
    json_t *v = json_loads(f->example, JSON_DECODE_ANY, &err);
    if (v)
        json_object_set_new(x->body, f->name, v);
    return 0;
}

json_t *br_schema_example(const struct bk_command_decl *d)
{
    struct example_ctx x = {json_object()};
    bk_contract_each_arg(d, add_example, &x);
    if (json_object_size(x.body) == 0) {
        json_decref(x.body);
        return NULL;
    }
    return x.body;
}
