/* The bridge's route table and matcher (path parameters, the optional
 * trailing slash, 404 versus 405 and the Allow header), and the request
 * transcoding helpers (Content-Type, Bearer, JSON body errors, envelope). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "shared/amqp.h"
#include "shared/contract.h"
#include "workers/bridge/request.c"
#include "shared/routes.c"

/* ---- the table ------------------------------------------------------------ */

static void table_is_well_formed(void **state)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
    for (const struct br_route *r = br_routes; r->method; r++) {
        bool known = false;
        for (const char *const *m = methods; *m; m++)
            known |= strcmp(*m, r->method) == 0;
        assert_true(known);
        if (r->system) {
            /* a source system's alias (issue 14): "000".."004", any path */
            assert_int_equal(strlen(r->system), 3);
            assert_true(strcmp(r->system, "000") >= 0 && strcmp(r->system, "004") <= 0);
            assert_int_equal(r->pattern[0], '/');
            const struct br_variant *v = r->variant;
            for (const struct br_dispatch *d = v && v->dispatch ? v->dispatch : NULL; d && d->value;
                 d++)
                if (!bk_amqp_queue_for(d->command))
                    fail_msg("no worker queue for %s", d->command);
        } else {
            /* the API under /api/; files may also be the staff console's */
            assert_true(strncmp(r->pattern, "/api/", 5) == 0 ||
                        ((r->flags & BR_STATIC) && strncmp(r->pattern, "/admin/", 7) == 0));
            assert_null(r->variant); /* the unified rows speak our shapes */
        }
        assert_non_null(r->command);
        assert_non_null(r->summary);
        assert_true(r->status >= 200 && r->status < 300);

        /* braces pair up inside one segment, with a name */
        int params = 0;
        for (const char *p = r->pattern; *p; p++) {
            if (*p == '}')
                fail_msg("stray } in %s", r->pattern);
            if (*p != '{')
                continue;
            assert_true(p[-1] == '/');
            size_t k = strcspn(p + 1, "}/");
            assert_true(k > 0);
            assert_int_equal(p[1 + k], '}');
            assert_true(p[2 + k] == '/' || p[2 + k] == '\0');
            p += k + 1;
            params++;
        }
        assert_true(params <= BR_MAX_PARAMS);

        if (r->flags & BR_LOCAL) {
            assert_string_equal(r->method, "GET");
        } else {
            /* a worker queue is bound for every command */
            if (!bk_amqp_queue_for(r->command))
                fail_msg("no worker queue for %s", r->command);
            assert_non_null(strchr(r->command, '.'));
        }
        if (r->flags & BR_RAW)
            assert_string_equal(r->method, "GET");
        if (r->flags & BR_MULTIPART)
            assert_true(strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                        strcmp(r->method, "PATCH") == 0);
        /* every command is declared (shared/contract.c); multipart exactly
         * where the declaration has a file field */
        if (!(r->flags & BR_LOCAL)) {
            const struct bk_command_decl *d = bk_contract_command(r->command);
            if (!d)
                fail_msg("%s is not declared", r->command);
            assert_int_equal(bk_contract_file(d) != NULL, (r->flags & BR_MULTIPART) != 0);
        }

        /* no two rows for one method and path: the second would never match */
        for (const struct br_route *q = br_routes; q < r; q++) {
            size_t a = trimmed_len(q->pattern, strlen(q->pattern));
            size_t b = trimmed_len(r->pattern, strlen(r->pattern));
            if (strcmp(q->method, r->method) == 0 && a == b &&
                strncmp(q->pattern, r->pattern, a) == 0)
                fail_msg("%s %s twice", r->method, r->pattern);
        }
    }
}

struct expect {
    const char *method, *path, *command;
};

/* CONTRACT section 3, every row, with a concrete path. */
static const struct expect contract[] = {
    {"POST", "/api/auth/register/", "auth.register"},
    {"POST", "/api/auth/login/", "auth.login"},
    {"POST", "/api/auth/token/refresh/", "auth.refresh"},
    {"POST", "/api/auth/token/verify/", "auth.verify"},
    {"POST", "/api/auth/logout/", "auth.logout"},
    {"POST", "/api/auth/logout/all/", "auth.logout_all"},
    {"POST", "/api/auth/password/change/", "auth.change_password"},
    {"GET", "/api/auth/jwks.json", "auth.jwks"},
    {"POST", "/api/auth/password/reset/", "auth.reset_password"},
    {"POST", "/api/auth/password/reset/confirm/", "auth.reset_password_confirm"},
    {"GET", "/api/users/", "profile.list"},
    {"GET", "/api/users/7/", "profile.get"},
    {"GET", "/api/profile/", "profile.me"},
    {"PUT", "/api/profile/", "profile.update"},
    {"PATCH", "/api/profile/", "profile.update"},
    {"DELETE", "/api/profile/", "profile.delete"},
    {"PUT", "/api/profile/picture/", "profile.set_picture"},
    {"DELETE", "/api/profile/picture/", "profile.clear_picture"},
    {"GET", "/api/educations/", "education.list"},
    {"POST", "/api/educations/", "education.create"},
    {"GET", "/api/educations/3/", "education.get"},
    {"PUT", "/api/educations/3/", "education.update"},
    {"PATCH", "/api/educations/3/", "education.update"},
    {"DELETE", "/api/educations/3/", "education.delete"},
    {"GET", "/api/certificates/", "certificate.list"},
    {"POST", "/api/certificates/", "certificate.create"},
    {"GET", "/api/certificates/3/", "certificate.get"},
    {"PUT", "/api/certificates/3/", "certificate.update"},
    {"PATCH", "/api/certificates/3/", "certificate.update"},
    {"DELETE", "/api/certificates/3/", "certificate.delete"},
    {"GET", "/api/achievements/", "achievement.list"},
    {"POST", "/api/achievements/", "achievement.create"},
    {"GET", "/api/achievements/3/", "achievement.get"},
    {"PUT", "/api/achievements/3/", "achievement.update"},
    {"PATCH", "/api/achievements/3/", "achievement.update"},
    {"DELETE", "/api/achievements/3/", "achievement.delete"},
    {"GET", "/api/resume/", "resume.get"},
    {"PUT", "/api/resume/", "resume.update"},
    {"DELETE", "/api/resume/", "resume.delete"},
    {"GET", "/api/users/7/resume/", "resume.get"},
    {"POST", "/api/users/7/follow/", "profile.follow"},
    {"DELETE", "/api/users/7/follow/", "profile.unfollow"},
    {"GET", "/api/users/7/followers/", "profile.followers"},
    {"GET", "/api/users/7/following/", "profile.following"},
    {"GET", "/api/media/0a1b2c", "media.get"},
    {"GET", "/api/admin/users/", "admin.list"},
    {"GET", "/api/admin/users/7/", "admin.get"},
    {"PATCH", "/api/admin/users/7/", "admin.update"},
    {"DELETE", "/api/admin/users/7/", "admin.delete"},
    {"POST", "/api/admin/users/7/logout/", "admin.logout_all"},
    {"GET", "/api/admin/audit/", "admin.audit"},
    {"GET", "/api/admin/dead-letters/", "admin.dead_letters"},
    {"POST", "/api/admin/dead-letters/replay/", "admin.replay_dead_letters"},
    {"POST", "/api/admin/dead-letters/discard/", "admin.discard_dead_letters"},
    {"POST", "/api/orders/", "order.place"},
    {"GET", "/api/orders/", "order.list"},
    {"GET", "/api/orders/9/", "order.get"},
    {"PATCH", "/api/orders/9/", "order.set_status"},
    {"POST", "/api/payments/", "payment.initiate"},
    {"GET", "/api/payments/", "payment.list"},
    {"GET", "/api/payments/9/", "payment.get"},
    {"PUT", "/api/payments/9/", "payment.set_status"},
    {"PATCH", "/api/payments/9/", "payment.set_status"},
    {"GET", "/api/health/", "health"},
    {"GET", "/api/health/live", "live"},
    {"GET", "/api/openapi.json", "openapi"},
    {"GET", "/api/asyncapi.json", "asyncapi"},
    {"GET", "/api/docs/swagger-ui/swagger-ui.css", "docs.swagger_ui"},
    {"GET", "/api/docs/", "docs"},
    {"GET", "/admin/", "console"},
    {"GET", "/admin/vendor/preact/preact.umd.js", "console.preact"},
    {"GET", "/admin/vendor/preact-hooks/hooks.umd.js", "console.preact_hooks"},
    {"GET", "/admin/vendor/htm/htm.umd.js", "console.htm"},
    {"GET", "/admin/vendor/pico/pico.min.css", "console.pico"},
    {NULL, NULL, NULL},
};

static void every_contract_route_is_there(void **state)
{
    size_t rows = 0;
    for (const struct expect *e = contract; e->method; e++) {
        struct br_match m;
        if (br_routes_match(e->method, e->path, &m) != BR_MATCH_OK)
            fail_msg("%s %s does not match", e->method, e->path);
        if (strcmp(m.route->command, e->command) != 0)
            fail_msg("%s %s: %s, expected %s", e->method, e->path, m.route->command, e->command);
        rows++;
    }
    /* and nothing beyond it that the list above forgot */
    size_t table = 0;
    for (const struct br_route *r = br_routes; r->method; r++)
        table += r->system == NULL;
    assert_int_equal(rows, table);
}

/* The declared file field of route's command, or NULL. */
static const char *upload_field(const struct br_route *route)
{
    const struct bk_command_decl *d = bk_contract_command(route->command);
    assert_non_null(d);
    const struct bk_field *f = bk_contract_file(d);
    return f ? f->name : NULL;
}

static void upload_routes(void **state)
{
    struct br_match m;
    assert_int_equal(br_routes_match("PUT", "/api/profile/picture/", &m), BR_MATCH_OK);
    assert_true(m.route->flags & BR_MULTIPART);
    assert_string_equal(upload_field(m.route), "file");
    assert_int_equal(br_routes_match("PUT", "/api/resume", &m), BR_MATCH_OK);
    assert_string_equal(upload_field(m.route), "file");
    assert_int_equal(br_routes_match("POST", "/api/certificates/", &m), BR_MATCH_OK);
    assert_string_equal(upload_field(m.route), "image");
    assert_int_equal(br_routes_match("PATCH", "/api/achievements/1/", &m), BR_MATCH_OK);
    assert_true(m.route->flags & BR_MULTIPART);
    assert_string_equal(upload_field(m.route), "image");
    assert_int_equal(br_routes_match("POST", "/api/educations/", &m), BR_MATCH_OK);
    assert_false(m.route->flags & BR_MULTIPART);
    assert_null(upload_field(m.route));
    assert_int_equal(br_routes_match("GET", "/api/media/abc", &m), BR_MATCH_OK);
    assert_true(m.route->flags & BR_RAW);
}

/* ---- matching -------------------------------------------------------------- */

static void path_params_are_strings_from_the_path(void **state)
{
    struct br_match m;
    assert_int_equal(br_routes_match("GET", "/api/users/42/followers/", &m), BR_MATCH_OK);
    assert_string_equal(m.route->command, "profile.followers");
    assert_int_equal(m.n_params, 1);
    assert_int_equal(m.params[0].name_len, 2);
    assert_memory_equal(m.params[0].name, "id", 2);
    assert_int_equal(m.params[0].value_len, 2);
    assert_memory_equal(m.params[0].value, "42", 2);

    /* not validated here: the worker answers 404 for a bad id */
    assert_int_equal(br_routes_match("GET", "/api/orders/abc", &m), BR_MATCH_OK);
    assert_int_equal(m.params[0].value_len, 3);
    assert_memory_equal(m.params[0].value, "abc", 3);

    assert_int_equal(br_routes_match("GET", "/api/media/deadbeef", &m), BR_MATCH_OK);
    assert_memory_equal(m.params[0].name, "key", 3);
    assert_memory_equal(m.params[0].value, "deadbeef", 8);

    /* a route without parameters has none */
    assert_int_equal(br_routes_match("GET", "/api/orders/", &m), BR_MATCH_OK);
    assert_int_equal(m.n_params, 0);
}

static void trailing_slash_is_optional(void **state)
{
    static const char *const pairs[][2] = {
        {"/api/auth/login/", "/api/auth/login"},
        {"/api/orders/5/", "/api/orders/5"},
        {"/api/media/abc/", "/api/media/abc"},
        {"/api/auth/jwks.json/", "/api/auth/jwks.json"},
        {"/api/docs/", "/api/docs"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *method = strstr(pairs[i][0], "login") ? "POST" : "GET";
        struct br_match a, b;
        assert_int_equal(br_routes_match(method, pairs[i][0], &a), BR_MATCH_OK);
        assert_int_equal(br_routes_match(method, pairs[i][1], &b), BR_MATCH_OK);
        assert_ptr_equal(a.route, b.route);
        assert_int_equal(a.n_params, b.n_params);
    }
}

static void not_found(void **state)
{
    static const char *const paths[] = {
        "/",
        "/api",
        "/api/",
        "/api/nope/",
        "/api/orders//",       /* one slash is optional, not two */
        "/api//orders/",       /* an empty segment */
        "/api/orders/5/x/",    /* too long */
        "/api/users//follow/", /* an empty parameter */
        "/API/orders/",        /* case matters */
        "/api/ordersx/",
        "api/orders/", /* not absolute */
        "",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct br_match m;
        if (br_routes_match("GET", paths[i], &m) != BR_MATCH_NO_PATH)
            fail_msg("%s should be a 404", paths[i]);
        char allow[64];
        assert_int_equal(br_routes_allow(paths[i], allow, sizeof allow), 0);
        assert_string_equal(allow, "");
    }
    char longpath[BR_MAX_PATH + 16];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    struct br_match m;
    assert_int_equal(br_routes_match("GET", longpath, &m), BR_MATCH_NO_PATH);
}

static void wrong_method_and_allow(void **state)
{
    static const char *const cases[][3] = {
        {"PUT", "/api/orders/", "POST, GET"},
        {"DELETE", "/api/orders/5", "GET, PATCH"},
        {"PUT", "/api/orders/5/", "GET, PATCH"},
        {"POST", "/api/profile", "GET, PUT, PATCH, DELETE"},
        {"DELETE", "/api/payments/1/", "GET, PUT, PATCH"},
        {"GET", "/api/auth/login/", "POST"},
        {"GET", "/api/users/1/follow/", "POST, DELETE"},
        {"POST", "/api/resume/", "GET, PUT, DELETE"},
        {"OPTIONS", "/api/health/", "GET"},
        {"BREW", "/api/media/x", "GET"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct br_match m;
        if (br_routes_match(cases[i][0], cases[i][1], &m) != BR_MATCH_NO_METHOD)
            fail_msg("%s %s should be a 405", cases[i][0], cases[i][1]);
        char allow[128];
        size_t n = br_routes_allow(cases[i][1], allow, sizeof allow);
        assert_string_equal(allow, cases[i][2]);
        assert_int_equal(n, strlen(cases[i][2]));
    }
    /* truncation keeps whole methods */
    char small[10];
    br_routes_allow("/api/profile/", small, sizeof small);
    assert_string_equal(small, "GET, PUT");
}

static void head_is_get(void **state)
{
    struct br_match m;
    assert_int_equal(br_routes_match("HEAD", "/api/orders/1/", &m), BR_MATCH_OK);
    assert_string_equal(m.route->command, "order.get");
    assert_int_equal(br_routes_match("HEAD", "/api/auth/login/", &m), BR_MATCH_NO_METHOD);
}

/* ---- request transcoding ---------------------------------------------------- */

static void content_types(void **state)
{
    assert_int_equal(br_request_body_kind("application/json"), BR_BODY_JSON);
    assert_int_equal(br_request_body_kind("application/json; charset=utf-8"), BR_BODY_JSON);
    assert_int_equal(br_request_body_kind(" Application/JSON ;charset=latin1"), BR_BODY_JSON);
    assert_int_equal(br_request_body_kind("multipart/form-data; boundary=x"), BR_BODY_MULTIPART);
    assert_int_equal(br_request_body_kind("application/jsonx"), BR_BODY_OTHER);
    assert_int_equal(br_request_body_kind("text/plain"), BR_BODY_OTHER);
    assert_int_equal(br_request_body_kind("application/x-www-form-urlencoded"), BR_BODY_OTHER);
    assert_int_equal(br_request_body_kind(""), BR_BODY_OTHER);
    assert_int_equal(br_request_body_kind(NULL), BR_BODY_OTHER);
}

static void header_values(void **state)
{
    char s[300];
    assert_true(br_request_header_ok("abc-123", 128));
    assert_true(br_request_header_ok("with space ~!", 128));
    assert_false(br_request_header_ok("", 128));
    assert_false(br_request_header_ok(NULL, 128));
    assert_false(br_request_header_ok("tab\there", 128));
    assert_false(br_request_header_ok("caf\xc3\xa9", 128));
    memset(s, 'k', 255);
    s[255] = '\0';
    assert_true(br_request_header_ok(s, 255));
    assert_false(br_request_header_ok(s, 128));
    s[255] = 'k';
    s[256] = '\0';
    assert_false(br_request_header_ok(s, 255));
}

static void bearer(void **state)
{
    const char *t;
    size_t n;
    assert_true(br_request_bearer("Bearer abc.def.ghi", &t, &n));
    assert_int_equal(n, 11);
    assert_memory_equal(t, "abc.def.ghi", 11);
    assert_true(br_request_bearer("  Bearer   tok  ", &t, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(t, "tok", 3);
    /* simplejwt: another scheme is somebody else's business */
    assert_false(br_request_bearer("Basic dXNlcjpwdw==", &t, &n));
    assert_false(br_request_bearer("bearer tok", &t, &n));
    assert_false(br_request_bearer("", &t, &n));
    assert_false(br_request_bearer(NULL, &t, &n));
    /* "Bearer" with the wrong number of parts: what follows, an invalid token */
    assert_true(br_request_bearer("Bearer", &t, &n));
    assert_int_equal(n, 0);
    assert_true(br_request_bearer("Bearer not a  token ", &t, &n));
    assert_int_equal(n, 12);
    assert_memory_equal(t, "not a  token", 12);
}

static void expect_error(const char *body, const char *key, const char *message)
{
    json_t *out = NULL, *err = NULL;
    assert_int_equal(br_request_parse_json(body, strlen(body), &out, &err), 400);
    assert_null(out);
    assert_non_null(err);
    json_t *v = json_object_get(err, key);
    assert_non_null(v);
    const char *text =
        json_is_array(v) ? json_string_value(json_array_get(v, 0)) : json_string_value(v);
    assert_non_null(text);
    if (strncmp(text, message, strlen(message)) != 0)
        fail_msg("%s: got \"%s\"", body, text);
    json_decref(err);
}

static void json_bodies(void **state)
{
    json_t *out = NULL, *err = NULL;
    const char *ok = "{\"a\": 1, \"b\": [true, null], \"a\": 2}";
    assert_int_equal(br_request_parse_json(ok, strlen(ok), &out, &err), 0);
    assert_null(err);
    assert_int_equal(json_integer_value(json_object_get(out, "a")), 2); /* the last wins */
    json_decref(out);

    const char *nf = "non_field_errors";
    expect_error("[1, 2]", nf, "Invalid data. Expected a dictionary, but got list.");
    expect_error("\"x\"", nf, "Invalid data. Expected a dictionary, but got str.");
    expect_error("3", nf, "Invalid data. Expected a dictionary, but got int.");
    expect_error("3.5", nf, "Invalid data. Expected a dictionary, but got float.");
    expect_error("true", nf, "Invalid data. Expected a dictionary, but got bool.");
    expect_error("null", nf, "No data provided");
    expect_error("{\"a\":", "detail", "JSON parse error - ");
    expect_error("{'a': 1}", "detail", "JSON parse error - ");
    expect_error("{} x", "detail", "JSON parse error - ");
    expect_error(" ", "detail", "JSON parse error - ");
    expect_error("{\"a\": \"\xff\"}", "detail", "JSON parse error - ");

    /* deeper than the workers' decoder takes */
    char deep[128] = "";
    for (int i = 0; i < 20; i++)
        strcat(deep, "{\"a\":");
    strcat(deep, "1");
    for (int i = 0; i < 20; i++)
        strcat(deep, "}");
    expect_error(deep, "detail", "JSON parse error - nesting too deep");
}

static void envelope(void **state)
{
    json_t *args = json_pack("{s:s, s:i, s:s}", "id", "42", "n", 7, "image", "query wins");
    struct br_file f2 = {.name = "image", .data = "zz", .len = 2};
    struct br_file f1 = {.name = "file", .data = "\x00\x01\x02", .len = 3, .next = &f2};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(br_request_pack(&sb, "tok", 3, args, &f1), 0);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const char *why = NULL;
    assert_int_equal(bk_codec_unpack(sb.data, sb.size, &u, &why), 0);
    const msgpack_object *v = bk_codec_get(&u.data, "v");
    assert_int_equal(v->via.u64, 1);
    assert_true(bk_codec_str_eq(bk_codec_get(&u.data, "auth"), "tok"));
    const msgpack_object *a = bk_codec_get(&u.data, "args");
    assert_int_equal(a->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(a->via.map.size, 4);
    assert_true(bk_codec_str_eq(bk_codec_get(a, "id"), "42"));
    assert_true(bk_codec_str_eq(bk_codec_get(a, "image"), "query wins"));
    const msgpack_object *bin = bk_codec_get(a, "file");
    assert_int_equal(bin->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(bin->via.bin.size, 3);
    assert_memory_equal(bin->via.bin.ptr, "\x00\x01\x02", 3);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);

    /* no token: nil */
    msgpack_sbuffer_init(&sb);
    assert_int_equal(br_request_pack(&sb, NULL, 0, args, NULL), 0);
    msgpack_unpacked_init(&u);
    assert_int_equal(bk_codec_unpack(sb.data, sb.size, &u, &why), 0);
    assert_int_equal(bk_codec_get(&u.data, "auth")->type, MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    json_decref(args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_is_well_formed),
        cmocka_unit_test(every_contract_route_is_there),
        cmocka_unit_test(upload_routes),
        cmocka_unit_test(path_params_are_strings_from_the_path),
        cmocka_unit_test(trailing_slash_is_optional),
        cmocka_unit_test(not_found),
        cmocka_unit_test(wrong_method_and_allow),
        cmocka_unit_test(head_is_get),
        cmocka_unit_test(content_types),
        cmocka_unit_test(header_values),
        cmocka_unit_test(bearer),
        cmocka_unit_test(json_bodies),
        cmocka_unit_test(envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
