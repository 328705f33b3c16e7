/* The bridge's static files (BR_STATIC routes): which request paths name a
 * file, content types, If-None-Match, and opening files in a real folder
 * with a symlink out of it. Served end to end in
 * tests/integration/test_docs.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workers/bridge/static.c"

#define DOCS "/api/docs/"

static enum br_static_verdict map(const char *prefix, const char *index, const char *raw, char *rel)
{
    return br_static_path(prefix, index, raw, strlen(raw), rel, BR_STATIC_MAX_REL + 1);
}

static void names_that_map_to_files(void **state)
{
    char rel[BR_STATIC_MAX_REL + 1];
    assert_int_equal(map(DOCS, "index.html", "/api/docs/", rel), BR_STATIC_FILE);
    assert_string_equal(rel, "index.html");
    assert_int_equal(map(DOCS, "index.html", "/api/docs/init.js", rel), BR_STATIC_FILE);
    assert_string_equal(rel, "init.js");
    assert_int_equal(map(DOCS, NULL, "/api/docs/assets/app-3f2a.min.js", rel), BR_STATIC_FILE);
    assert_string_equal(rel, "assets/app-3f2a.min.js");
    /* escapes are decoded (%41 is A), names keep their dots inside */
    assert_int_equal(map(DOCS, NULL, "/api/docs/%41pp.js", rel), BR_STATIC_FILE);
    assert_string_equal(rel, "App.js");
    assert_int_equal(map(DOCS, NULL, "/api/doc%73/a..b_c~d+e@f-g.css", rel), BR_STATIC_FILE);
    assert_string_equal(rel, "a..b_c~d+e@f-g.css");
    assert_int_equal(
        map("/api/docs/swagger-ui/", NULL, "/api/docs/swagger-ui/swagger-ui-bundle.js", rel),
        BR_STATIC_FILE);
    assert_string_equal(rel, "swagger-ui-bundle.js");
    /* only raw_len bytes count: the query is not part of the path */
    const char *q = "/api/docs/init.js?v=1";
    assert_int_equal(br_static_path(DOCS, NULL, q, strcspn(q, "?"), rel, sizeof rel),
                     BR_STATIC_FILE);
    assert_string_equal(rel, "init.js");
}

static void the_prefix_without_its_slash_redirects(void **state)
{
    char rel[BR_STATIC_MAX_REL + 1];
    assert_int_equal(map(DOCS, "index.html", "/api/docs", rel), BR_STATIC_REDIRECT);
    assert_int_equal(map(DOCS, NULL, "/api/docs", rel), BR_STATIC_REDIRECT);
    assert_int_equal(map(DOCS, NULL, "/api/doc%73", rel), BR_STATIC_REDIRECT);
    /* without an index the prefix itself is nothing */
    assert_int_equal(map(DOCS, NULL, "/api/docs/", rel), BR_STATIC_REFUSED);
}

static void traversal_and_odd_names_are_refused(void **state)
{
    static const char *const refused[] = {
        "/api/docs/..",
        "/api/docs/../api/openapi.json",
        "/api/docs/%2e%2e/x",
        "/api/docs/%2E%2E/x",
        "/api/docs/.%2e/x",
        "/api/docs/a/../../x",
        "/api/docs/a/%2e%2e%2f%2e%2e%2fx",
        "/api/docs/a%2f..%2fb",
        "/api/docs/./init.js",
        "/api/docs/.env",
        "/api/docs/.bk-lock-sha256",
        "/api/docs/a/.git/config",
        "/api/docs//etc/passwd",
        "/api/docs/a//b",
        "/api/docs/a/",
        "/api/docs/init.js%00.png",
        "/api/docs/init.js%00",
        "/api/docs/%",
        "/api/docs/a%4",
        "/api/docs/a%zz",
        "/api/docs/a%g0",
        "/api/docs/a\\..\\b",
        "/api/docs/a%5c..%5cb",
        "/api/docs/a b",
        "/api/docs/a%20b",
        "/api/docs/a\tb",
        "/api/docs/caf\xc3\xa9.js",
        "/api/docs/caf%c3%a9.js",
        "/api/docs/a:b",
        "/api/docs/a;b",
        "/api/docs/a%3fb",
        "/api/docsx",
        "/api/docsx/init.js",
        "/api/doc",
        "/api/",
        "",
        "/",
        "//api/docs/init.js",
        "/API/DOCS/init.js",
        "http://h/api/docs/init.js",
    };
    char rel[BR_STATIC_MAX_REL + 1];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        strcpy(rel, "unchanged");
        if (map(DOCS, "index.html", refused[i], rel) != BR_STATIC_REFUSED)
            fail_msg("\"%s\" was not refused (rel \"%s\")", refused[i], rel);
    }
    /* a NUL inside the bytes, not only as an escape */
    assert_int_equal(br_static_path(DOCS, NULL, "/api/docs/a\0b", 13, rel, sizeof rel),
                     BR_STATIC_REFUSED);
}

static void bounds(void **state)
{
    char rel[BR_STATIC_MAX_REL + 1], raw[BR_MAX_PATH + 64];
    /* BR_STATIC_MAX_DEPTH segments pass, one more does not */
    strcpy(raw, DOCS);
    for (int i = 0; i < BR_STATIC_MAX_DEPTH - 1; i++)
        strcat(raw, "d/");
    strcat(raw, "f.js");
    assert_int_equal(map(DOCS, NULL, raw, rel), BR_STATIC_FILE);
    strcpy(raw, DOCS "d/");
    for (int i = 0; i < BR_STATIC_MAX_DEPTH - 1; i++)
        strcat(raw, "d/");
    strcat(raw, "f.js");
    assert_int_equal(map(DOCS, NULL, raw, rel), BR_STATIC_REFUSED);
    /* BR_STATIC_MAX_REL bytes below the prefix pass, one more does not */
    strcpy(raw, DOCS);
    memset(raw + strlen(DOCS), 'a', BR_STATIC_MAX_REL);
    raw[strlen(DOCS) + BR_STATIC_MAX_REL] = '\0';
    assert_int_equal(map(DOCS, NULL, raw, rel), BR_STATIC_FILE);
    assert_int_equal(strlen(rel), BR_STATIC_MAX_REL);
    strcat(raw, "a");
    assert_int_equal(map(DOCS, NULL, raw, rel), BR_STATIC_REFUSED);
    /* a path longer than any route matches */
    memset(raw, 'a', sizeof raw - 1);
    memcpy(raw, DOCS, strlen(DOCS));
    raw[sizeof raw - 1] = '\0';
    assert_int_equal(map(DOCS, NULL, raw, rel), BR_STATIC_REFUSED);
    /* the caller's buffer bounds rel: refused, never cut */
    char small[8];
    const char *p = "/api/docs/longer-than-eight.js";
    assert_int_equal(br_static_path(DOCS, NULL, p, strlen(p), small, sizeof small),
                     BR_STATIC_REFUSED);
    assert_int_equal(br_static_path(DOCS, "index.html", DOCS, strlen(DOCS), small, sizeof small),
                     BR_STATIC_REFUSED);
    assert_int_equal(br_static_path(DOCS, NULL, p, strlen(p), small, 0), BR_STATIC_REFUSED);
    /* a prefix must end with its slash */
    assert_int_equal(br_static_path("/api/docs", NULL, p, strlen(p), rel, sizeof rel),
                     BR_STATIC_REFUSED);
}

static void content_types(void **state)
{
    assert_string_equal(br_static_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(br_static_content_type("a/swagger-ui-bundle.js"),
                        "text/javascript; charset=utf-8");
    assert_string_equal(br_static_content_type("swagger-ui.CSS"), "text/css; charset=utf-8");
    assert_string_equal(br_static_content_type("favicon-32x32.png"), "image/png");
    assert_string_equal(br_static_content_type("x.js.map"), "application/json");
    assert_string_equal(br_static_content_type("x.svg"), "image/svg+xml");
    assert_string_equal(br_static_content_type("LICENSE"), "application/octet-stream");
    assert_string_equal(br_static_content_type("a.b/LICENSE"), "application/octet-stream");
    assert_string_equal(br_static_content_type("x.exe"), "application/octet-stream");
}

static bool has(const char *list, const char *etag)
{
    return list && bk_etag_list_has(list, strlen(list), etag);
}

/* shared/util.c's If-None-Match rule, as the bridge applies it */
static void if_none_match(void **state)
{
    const char *tag = "\"1a-5f-0\"";
    assert_true(has("\"1a-5f-0\"", tag));
    assert_true(has("W/\"1a-5f-0\"", tag));
    assert_true(has("\"x\", \"1a-5f-0\"", tag));
    assert_true(has(" \"x\" ,W/\"1a-5f-0\" ", tag));
    assert_true(has("*", tag));
    assert_false(has(NULL, tag));
    assert_false(has("", tag));
    assert_false(has("\"1a-5f-1\"", tag));
    assert_false(has("1a-5f-0", tag));
    assert_false(has("\"1a-5f-0\"x", tag));
    assert_false(has("**", tag));
    /* only len bytes count */
    assert_false(bk_etag_list_has("\"1a-5f-0\"", 8, tag));
    assert_true(bk_etag_list_has("\"1a-5f-0\", \"x\"", 9, tag));
}

/* A web_dir with every folder of the table, a file, a folder, a symlink
 * inside and one out of it. */
static char web[64];

static void put(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", web, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int make_web(void **state)
{
    char p[256];
    strcpy(web, "/tmp/bk-static-XXXXXX");
    assert_non_null(mkdtemp(web));
    snprintf(p, sizeof p, "%s/docs", web);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/docs/sub", web);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/node_modules", web);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/node_modules/swagger-ui-dist", web);
    assert_int_equal(mkdir(p, 0700), 0);
    /* the staff console's (every mount's folder must exist at start) */
    static const char *const console[] = {"admin",
                                          "node_modules/preact",
                                          "node_modules/preact/dist",
                                          "node_modules/preact/hooks",
                                          "node_modules/preact/hooks/dist",
                                          "node_modules/htm",
                                          "node_modules/htm/dist",
                                          "node_modules/@picocss",
                                          "node_modules/@picocss/pico",
                                          "node_modules/@picocss/pico/css",
                                          NULL};
    for (int i = 0; console[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", web, console[i]);
        assert_int_equal(mkdir(p, 0700), 0);
    }
    put("docs/index.html", "<!doctype html>");
    put("docs/sub/a.js", "1;");
    put("secret.txt", "outside");
    snprintf(p, sizeof p, "%s/docs/out.txt", web);
    assert_int_equal(symlink("../secret.txt", p), 0);
    snprintf(p, sizeof p, "%s/docs/in.js", web);
    assert_int_equal(symlink("sub/a.js", p), 0);
    snprintf(p, sizeof p, "%s/docs/etc", web);
    assert_int_equal(symlink("/etc", p), 0);
    return 0;
}

static int remove_web(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", web);
    return system(cmd) == 0 ? 0 : -1;
}

static const struct br_route *docs_route(void)
{
    struct br_match m;
    assert_int_equal(br_routes_match("GET", "/api/docs/", &m), BR_MATCH_OK);
    assert_true(m.route->flags & BR_STATIC);
    return m.route;
}

static void opening_files(void **state)
{
    assert_int_equal(br_static_init(web), 0);
    const struct br_route *r = docs_route();
    struct br_static_file f, g;

    assert_int_equal(br_static_open(r, "index.html", &f), 0);
    assert_int_equal(f.size, 15);
    char buf[32] = "";
    assert_int_equal(read(f.fd, buf, sizeof buf), 15);
    assert_string_equal(buf, "<!doctype html>");
    close(f.fd);
    assert_int_equal(f.etag[0], '"');
    assert_int_equal(f.etag[strlen(f.etag) - 1], '"');
    assert_true(has(f.etag, f.etag));

    assert_int_equal(br_static_open(r, "sub/a.js", &g), 0);
    close(g.fd);
    assert_string_not_equal(f.etag, g.etag); /* another size */

    /* a symlink that stays inside is followed; one that leaves is not */
    assert_int_equal(br_static_open(r, "in.js", &f), 0);
    close(f.fd);
    assert_int_equal(br_static_open(r, "out.txt", &f), -1);
    assert_int_equal(br_static_open(r, "etc/hostname", &f), -1);
    assert_int_equal(br_static_open(r, "etc/passwd", &f), -1);
    /* missing, and a folder */
    assert_int_equal(br_static_open(r, "missing.js", &f), -1);
    assert_int_equal(br_static_open(r, "sub", &f), -1);
    assert_int_equal(br_static_open(r, "index.html/x", &f), -1);
    /* a row that is not a mount */
    struct br_match m;
    assert_int_equal(br_routes_match("GET", "/api/orders/", &m), BR_MATCH_OK);
    assert_int_equal(br_static_open(m.route, "index.html", &f), -1);
}

static void a_missing_folder_stops_the_start(void **state)
{
    char p[256];
    assert_int_equal(br_static_init("/nonexistent/web"), -1);
    snprintf(p, sizeof p, "%s/docs/index.html", web); /* a file where a folder must be */
    assert_int_equal(br_static_init(p), -1);
    assert_int_equal(br_static_init(web), 0);
}

static void static_rows_match_by_prefix(void **state)
{
    struct br_match m;
    assert_int_equal(br_routes_match("GET", "/api/docs/swagger-ui/swagger-ui.css", &m),
                     BR_MATCH_OK);
    assert_string_equal(m.route->static_dir, "node_modules/swagger-ui-dist");
    assert_int_equal(m.n_params, 1);
    assert_int_equal(m.params[0].value_len, strlen("swagger-ui.css"));
    assert_int_equal(br_routes_match("HEAD", "/api/docs/a/b/c.js", &m), BR_MATCH_OK);
    assert_string_equal(m.route->static_dir, "docs");
    assert_string_equal(m.route->static_index, "index.html");
    assert_int_equal(br_routes_match("GET", "/api/docs", &m), BR_MATCH_OK);
    assert_int_equal(m.params[0].value_len, 0);
    assert_int_equal(br_routes_match("POST", "/api/docs/init.js", &m), BR_MATCH_NO_METHOD);
    assert_int_equal(br_routes_match("GET", "/api/docsx", &m), BR_MATCH_NO_PATH);
    char allow[64];
    br_routes_allow("/api/docs/init.js", allow, sizeof allow);
    assert_string_equal(allow, "GET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_that_map_to_files),
        cmocka_unit_test(the_prefix_without_its_slash_redirects),
        cmocka_unit_test(traversal_and_odd_names_are_refused),
        cmocka_unit_test(bounds),
        cmocka_unit_test(content_types),
        cmocka_unit_test(if_none_match),
        cmocka_unit_test(opening_files),
        cmocka_unit_test(a_missing_folder_stops_the_start),
        cmocka_unit_test(static_rows_match_by_prefix),
    };
    return cmocka_run_group_tests(tests, make_web, remove_web);
}
