#include "workers/bridge/openapi.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "shared/contract.h"
#include "shared/routes.h"
#include "workers/bridge/schema.h"

static const char *auth_name(enum br_auth a)
{
    switch (a) {
    case BR_ANYONE:
        return "anyone";
    case BR_USER:
        return "user";
    case BR_STAFF:
        return "staff";
    case BR_STAFF_OR_SERVICE:
        return "staff_or_service";
    }
    return "anyone";
}

static void lower(const char *s, char *out, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

/* The command when no other row has it; else "<command>.<method>" when the
 * methods tell the rows apart (PUT/PATCH of one *.update); else the first
 * row keeps the command and later ones get ".2", ".3"... */
static void operation_id(const struct br_route *r, char *out, size_t n)
{
    int same = 0, same_method = 0, earlier = 0;
    for (const struct br_route *q = br_routes; q->method; q++) {
        if (q == r || strcmp(q->command, r->command) != 0)
            continue;
        same++;
        if (strcmp(q->method, r->method) == 0) {
            same_method++;
            if (q < r)
                earlier++;
        }
    }
    if (same == 0) {
        snprintf(out, n, "%s", r->command);
    } else if (same_method == 0) {
        char m[16];
        lower(r->method, m, sizeof m);
        snprintf(out, n, "%s.%s", r->command, m);
    } else if (earlier == 0) {
        snprintf(out, n, "%s", r->command);
    } else {
        snprintf(out, n, "%s.%d", r->command, earlier + 1);
    }
}

#define REFS "#/components/schemas/"

/* A schema reference to name (with prefix/suffix) as a new JSON object. */
static json_t *ref(const char *prefix, const char *name, const char *suffix)
{
    char buf[160];
    return json_pack("{s:s}", "$ref", br_schema_ref(buf, sizeof buf, REFS, prefix, name, suffix));
}

/* The parameters of r: its {path} segments and its command's declared query
 * fields, typed; headers the bridge reads. */
static json_t *parameters(const struct br_route *r, const struct bk_command_decl *d)
{
    json_t *params = json_array();
    for (const char *p = strchr(r->pattern, '{'); p; p = strchr(p + 1, '{')) {
        size_t k = strcspn(p + 1, "}");
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)k, p + 1);
        const struct bk_field *f = d ? bk_contract_arg(d, name) : NULL;
        json_t *schema =
            f ? br_schema_field(f, BR_INPUT, REFS) : json_pack("{s:s}", "type", "string");
        json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:o}", "name", name, "in", "path",
                                                "required", 1, "schema", schema));
    }
    for (const struct bk_field *f = d ? d->args : NULL; f && f->name; f++) {
        if (!(f->flags & BK_F_QUERY))
            continue;
        json_t *p = json_pack("{s:s, s:s, s:b, s:o}", "name", f->name, "in", "query", "required", 0,
                              "schema", br_schema_field(f, BR_INPUT, REFS));
        if (f->doc)
            json_object_set_new(p, "description", json_string(f->doc));
        json_array_append_new(params, p);
    }
    if (r->flags & BR_RAW)
        json_array_append_new(params,
                              json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", "If-None-Match", "in",
                                        "header", "required", 0, "schema", "type", "string"));
    if (strcmp(r->method, "GET") != 0)
        json_array_append_new(
            params, json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:i, s:i}}", "name", "Idempotency-Key",
                              "in", "header", "required", 0, "description",
                              "Retries with the same key have their effect once", "schema", "type",
                              "string", "minLength", 1, "maxLength", 255));
    return params;
}

/* The request body of r: <Repr>Request, Patched<Repr>Request for a PATCH
 * of a partial update, multipart where the command takes a file. */
static json_t *request_body(const struct br_route *r, const struct bk_command_decl *d)
{
    if (!d || !d->input)
        return NULL;
    bool patch = strcmp(r->method, "PATCH") == 0 && (d->flags & BK_C_PARTIAL);
    const char *name = d->input->name, *prefix = patch ? "Patched" : "";
    json_t *content = json_object();
    json_t *json = json_pack("{s:o}", "schema", ref(prefix, name, "Request"));
    json_t *example = br_schema_example(d);
    if (example)
        json_object_set_new(json, "example", example);
    /* a body that is a file alone (a picture, a resume) is multipart only */
    json_t *fields = br_schema_args(d, BR_INPUT, false, REFS);
    if (json_object_size(json_object_get(fields, "properties")) > 0 || !(r->flags & BR_MULTIPART))
        json_object_set_new(content, "application/json", json);
    else
        json_decref(json);
    json_decref(fields);
    if (r->flags & BR_MULTIPART)
        json_object_set_new(content, "multipart/form-data",
                            json_pack("{s:o}", "schema", ref(prefix, name, "MultipartRequest")));
    return json_pack("{s:b, s:o}", "required", !patch, "content", content);
}

static json_t *reply_content(const struct bk_reply_decl *rd)
{
    char buf[160];
    switch (rd->shape) {
    case BK_R_ONE:
        return json_pack("{s:{s:o}}", "application/json", "schema", ref("", rd->body->name, ""));
    case BK_R_PAGE:
        return json_pack("{s:{s:{s:s}}}", "application/json", "schema", "$ref",
                         br_schema_ref(buf, sizeof buf, REFS, "Paginated", rd->body->name, "List"));
    case BK_R_RAW:
        return json_pack("{s:{s:{s:s, s:s}}}", "*/*", "schema", "type", "string", "format",
                         "binary");
    case BK_R_EMPTY:
        break;
    }
    return NULL;
}

static void response(json_t *responses, int status, const char *description, json_t *content)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    if (json_object_get(responses, code)) {
        json_decref(content);
        return;
    }
    json_t *r = json_pack("{s:s}", "description", description);
    if (content)
        json_object_set_new(r, "content", content);
    json_object_set_new(responses, code, r);
}

static json_t *detail_content(void)
{
    return json_pack("{s:{s:o}}", "application/json", "schema", ref("", "Detail", ""));
}

/* The bridge's own answers. */
static json_t *local_responses(const struct br_route *r)
{
    json_t *responses = json_object();
    json_t *obj = json_pack("{s:s}", "type", "object");
    if (r->flags & BR_STATIC) { /* files: the page, its scripts and styles */
        response(
            responses, 200, "The file (the prefix itself: its index page)",
            json_pack("{s:{s:{s:s, s:s}}}", "*/*", "schema", "type", "string", "format", "binary"));
        response(responses, 404, "No such file", detail_content());
    } else if (strcmp(r->command, "health") == 0 || strcmp(r->command, "live") == 0)
        response(responses, 200, "Up",
                 json_pack("{s:{s:{s:s, s:[s], s:{s:{s:s}}}}}", "application/json", "schema",
                           "type", "object", "required", "status", "properties", "status", "type",
                           "string"));
    else
        response(responses, 200, "The document",
                 json_pack("{s:{s:O}}", "application/json", "schema", obj));
    if (strcmp(r->command, "health") == 0)
        response(responses, 503, "Something is down (the same body, naming it)",
                 json_pack("{s:{s:O}}", "application/json", "schema", obj));
    json_decref(obj);
    return responses;
}

static json_t *responses_of(const struct br_route *r, const struct bk_command_decl *d)
{
    if (r->flags & BR_LOCAL)
        return local_responses(r);
    json_t *responses = json_object();
    for (const struct bk_reply_decl *rd = d ? d->replies : NULL; rd && rd->status; rd++)
        response(responses, rd->status, rd->doc, reply_content(rd));
    if (r->auth != BR_ANYONE) {
        response(responses, 401, "Not authenticated, or a bad token", detail_content());
        response(responses, 403, "Not permitted", detail_content());
    }
    if (strchr(r->pattern, '{'))
        response(responses, 404, "Not found", detail_content());
    if (strcmp(r->method, "GET") != 0) {
        response(responses, 413, "Body too large", detail_content());
        response(responses, 415, "Unsupported media type", detail_content());
    }
    response(responses, 503, "No worker for the command", detail_content());
    response(responses, 504, "No reply in time", detail_content());
    return responses;
}

static json_t *operation(const struct br_route *r)
{
    char id[96];
    operation_id(r, id, sizeof id);
    bool local = r->flags & BR_LOCAL;
    const struct bk_command_decl *d = local ? NULL : bk_contract_command(r->command);
    const char *dot = strchr(r->command, '.');
    json_t *op = json_pack("{s:s, s:s, s:[s%]}", "operationId", id, "summary", r->summary, "tags",
                           local ? "bridge" : r->command,
                           local ? strlen("bridge") : (size_t)(dot - r->command));
    if (!local)
        json_object_set_new(op, "x-command", json_string(r->command));
    json_object_set_new(op, "x-auth", json_string(auth_name(r->auth)));
    json_object_set_new(op, "security",
                        r->auth == BR_ANYONE ? json_array() : json_pack("[{s:[]}]", "bearerAuth"));
    json_object_set_new(op, "parameters", parameters(r, d));
    json_t *body = request_body(r, d);
    if (body)
        json_object_set_new(op, "requestBody", body);
    json_object_set_new(op, "responses", responses_of(r, d));
    return op;
}

/* components.schemas: every representation a reply names, the request
 * shapes of every command with a body, and a page of each listed one. */
static json_t *schemas(void)
{
    json_t *out = json_object();
    for (const struct bk_repr *const *r = bk_contract_reprs; *r; r++) {
        bool used = false;
        for (const struct bk_command_decl *d = bk_contract_commands; d->name; d++)
            for (const struct bk_reply_decl *rd = d->replies; rd->status; rd++)
                used |= rd->body == *r;
        for (const struct bk_repr *const *q = bk_contract_reprs; *q; q++)
            for (const struct bk_field *f = (*q)->fields; f->name; f++)
                used |= f->ref == *r;
        if (used)
            json_object_set_new(out, (*r)->name, br_schema_repr(*r, REFS));
    }
    char name[160];
    for (const struct bk_command_decl *d = bk_contract_commands; d->name; d++) {
        for (const struct bk_reply_decl *rd = d->replies; rd->status; rd++)
            if (rd->shape == BK_R_PAGE) {
                snprintf(name, sizeof name, "Paginated%sList", rd->body->name);
                char item[160];
                json_object_set_new(
                    out, name,
                    br_schema_page(br_schema_ref(item, sizeof item, REFS, "", rd->body->name, "")));
            }
        if (!d->input)
            continue;
        json_t *json = br_schema_args(d, BR_INPUT, false, REFS);
        snprintf(name, sizeof name, "%sRequest", d->input->name);
        if (json_object_size(json_object_get(json, "properties")) > 0)
            json_object_set_new(out, name, json);
        else
            json_decref(json); /* a file alone: only the multipart shape */
        if (bk_contract_file(d)) {
            snprintf(name, sizeof name, "%sMultipartRequest", d->input->name);
            json_object_set_new(out, name, br_schema_args(d, BR_INPUT, true, REFS));
        }
        if (d->flags & BK_C_PARTIAL) {
            snprintf(name, sizeof name, "Patched%sRequest", d->input->name);
            json_object_set_new(out, name, br_schema_args(d, BR_PATCH, false, REFS));
            if (bk_contract_file(d)) {
                snprintf(name, sizeof name, "Patched%sMultipartRequest", d->input->name);
                json_object_set_new(out, name, br_schema_args(d, BR_PATCH, true, REFS));
            }
        }
    }
    return out;
}

char *br_openapi_json(void)
{
    json_t *paths = json_object();
    for (const struct br_route *r = br_routes; r->method; r++) {
        json_t *item = json_object_get(paths, r->pattern);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, r->pattern, item);
        }
        char m[16];
        lower(r->method, m, sizeof m);
        json_object_set_new(item, m, operation(r));
    }
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:{s:o, s:{s:{s:s, s:s, s:s, s:s}}}}", "openapi",
        "3.1.0", "info", "title", "Backend API", "version", "1.0.0", "description",
        "HTTP bridge to the backend's workers. Each operation is a command on RabbitMQ "
        "(x-command; the same commands over AMQP: /api/asyncapi.json). Every field, type and "
        "limit here is generated from the command declarations the workers validate with "
        "(shared/contract.c). Paths work with or without their trailing slash. POST, PUT, PATCH "
        "and DELETE accept an Idempotency-Key header (1-255 printable characters). Every "
        "response carries X-Request-ID. Decimals are strings with 2 places; times are RFC 3339 "
        "UTC.",
        "servers", "url", "/", "paths", paths, "components", "schemas", schemas(),
        "securitySchemes", "bearerAuth", "type", "http", "scheme", "bearer", "bearerFormat", "JWT",
        "description",
        "An access token from POST /api/auth/login/ (Authorize: paste it without "
        "'Bearer ')");
    if (!doc)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}
