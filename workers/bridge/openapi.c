#include "workers/bridge/openapi.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "shared/routes.h"

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

/* Appends one parameter object per comma-separated name in list. */
static void add_params(json_t *params, const char *list, const char *in, bool required)
{
    while (list && *list) {
        size_t k = strcspn(list, ",");
        json_array_append_new(params,
                              json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", list, k, "in", in,
                                        "required", required, "schema", "type", "string"));
        list += k;
        if (*list == ',')
            list++;
    }
}

static json_t *field_schema(const char *fields, const char *upload)
{
    json_t *props = json_object();
    for (const char *f = fields; f && *f;) {
        size_t k = strcspn(f, ",");
        json_object_setn_new(props, f, k, json_object());
        f += k;
        if (*f == ',')
            f++;
    }
    if (upload)
        json_object_set_new(props, upload,
                            json_pack("{s:s, s:s}", "type", "string", "format", "binary"));
    return json_pack("{s:s, s:o}", "type", "object", "properties", props);
}

/* Request bodies that pass validation, prefilled by the docs page's "Try it
 * out" (issue 12 part 4). Parts 1-3 declare an example for every body and
 * replace this list. */
static const struct {
    const char *command, *json;
} examples[] = {
    {"auth.register", "{\"username\": \"ada\", \"email\": \"ada@example.com\", "
                      "\"password\": \"Analytical-Engine-1843\", "
                      "\"password2\": \"Analytical-Engine-1843\"}"},
    {"auth.login", "{\"username\": \"ada\", \"password\": \"Analytical-Engine-1843\"}"},
    {"order.place", "{\"product_name\": \"Notebook\", \"quantity\": 2, \"price\": \"19.99\"}"},
};

static json_t *json_body(const struct br_route *r)
{
    json_t *media = json_pack("{s:o}", "schema", field_schema(r->body, NULL));
    for (size_t i = 0; media && i < sizeof examples / sizeof examples[0]; i++)
        if (strcmp(examples[i].command, r->command) == 0)
            json_object_set_new(media, "example", json_loads(examples[i].json, 0, NULL));
    return media;
}

static json_t *operation(const struct br_route *r)
{
    char id[96];
    operation_id(r, id, sizeof id);
    bool local = r->flags & BR_LOCAL;
    const char *dot = strchr(r->command, '.');
    json_t *op = json_pack("{s:s, s:s, s:[s%]}", "operationId", id, "summary", r->summary, "tags",
                           local ? "bridge" : r->command,
                           local ? strlen("bridge") : (size_t)(dot - r->command));
    if (!local)
        json_object_set_new(op, "x-command", json_string(r->command));
    json_object_set_new(op, "x-auth", json_string(auth_name(r->auth)));
    json_object_set_new(op, "security",
                        r->auth == BR_ANYONE ? json_array() : json_pack("[{s:[]}]", "bearerAuth"));

    json_t *params = json_array();
    for (const char *p = strchr(r->pattern, '{'); p; p = strchr(p + 1, '{')) {
        size_t k = strcspn(p + 1, "}");
        json_array_append_new(params, json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", p + 1, k, "in",
                                                "path", "required", 1, "schema", "type", "string"));
    }
    add_params(params, r->query, "query", false);
    if (r->flags & BR_RAW)
        add_params(params, "If-None-Match", "header", false);
    if (strcmp(r->method, "GET") != 0)
        add_params(params, "Idempotency-Key", "header", false);
    json_object_set_new(op, "parameters", params);

    bool writes = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                  strcmp(r->method, "PATCH") == 0;
    if (writes || r->body || r->upload) {
        json_t *content = json_object();
        json_object_set_new(content, "application/json", json_body(r));
        if (r->upload)
            json_object_set_new(content, "multipart/form-data",
                                json_pack("{s:o}", "schema", field_schema(r->body, r->upload)));
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b, s:o}", "required", 0, "content", content));
    }

    json_t *responses = json_object();
    char code[8];
    snprintf(code, sizeof code, "%d", r->status);
    if (r->flags & BR_RAW) {
        json_object_set_new(responses, code,
                            json_pack("{s:s, s:{s:{s:{s:s, s:s}}}}", "description",
                                      "The file's bytes", "content", "*/*", "schema", "type",
                                      "string", "format", "binary"));
        json_object_set_new(responses, "304", json_pack("{s:s}", "description", "Not modified"));
    } else {
        json_object_set_new(responses, code, json_pack("{s:s}", "description", "Success"));
    }
    if (!local) {
        if (writes || r->body)
            json_object_set_new(responses, "400",
                                json_pack("{s:s}", "description", "Invalid input"));
        if (r->auth != BR_ANYONE)
            json_object_set_new(responses, "401",
                                json_pack("{s:s}", "description", "Not authenticated"));
        if (r->auth == BR_STAFF || r->auth == BR_STAFF_OR_SERVICE)
            json_object_set_new(responses, "403",
                                json_pack("{s:s}", "description", "Not permitted"));
        json_object_set_new(responses, "503",
                            json_pack("{s:s}", "description", "No worker for the command"));
        json_object_set_new(responses, "504",
                            json_pack("{s:s}", "description", "No reply in time"));
    }
    json_object_set_new(op, "responses", responses);
    return op;
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
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:{s:{s:{s:s, s:s, s:s}}}}", "openapi", "3.0.3",
        "info", "title", "Backend API", "version", "1.0.0", "description",
        "HTTP bridge to the backend's workers. Each operation is a command on RabbitMQ "
        "(x-command). Paths work with or without their trailing slash. POST, PUT, PATCH and "
        "DELETE accept an Idempotency-Key header (1-255 printable characters). Every response "
        "carries X-Request-ID.",
        "servers", "url", "/", "paths", paths, "components", "securitySchemes", "bearerAuth",
        "type", "http", "scheme", "bearer", "bearerFormat", "JWT");
    if (!doc)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}
