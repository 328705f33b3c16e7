/* Links in replies (shared/links.h): DRF's next/previous query handling
 * (parse_qsl, replace_query_param / remove_query_param: sorted, quote_plus),
 * route templates filled from args, and the runtime's page links over HTTP
 * (the forwarded request target) and over AMQP (the route table). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "shared/contract.h"
#include "shared/json.h"
#include "shared/links.h"
#include "shared/routes.h"
#include "shared/worker.h"

/* args given as JSON text, unpacked as a worker sees them */
struct args {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
};

static const msgpack_object *args_json(struct args *a, const char *json)
{
    msgpack_packer pk;
    const char *why = NULL;
    msgpack_sbuffer_init(&a->sb);
    msgpack_packer_init(&pk, &a->sb, msgpack_sbuffer_write);
    assert_int_equal(bk_json_pack_text(&pk, json, strlen(json)), 0);
    msgpack_unpacked_init(&a->u);
    assert_int_equal(bk_codec_unpack(a->sb.data, a->sb.size, &a->u, &why), 0);
    return &a->u.data;
}

static void args_done(struct args *a)
{
    msgpack_unpacked_destroy(&a->u);
    msgpack_sbuffer_destroy(&a->sb);
}

/* The page link of prefix + "?" + query for page, as a static string. */
static const char *page_of(const char *prefix, const char *query, int64_t page)
{
    static char out[BK_LINK_MAX];
    static struct bk_link_query q;
    memset(&q, 0, sizeof q);
    assert_int_equal(bk_link_query_parse(&q, query, strlen(query)), 0);
    assert_true(bk_link_page(out, sizeof out, prefix, &q, page) >= 0);
    return out;
}

/* ---- parse_qsl ------------------------------------------------------------ */

static void query_parse_decodes_like_parse_qsl(void **state)
{
    struct bk_link_query q = {0};
    const char *s = "search=a+b%2Fc&&flag&empty=&x=%zz%4&k%3D=v=w";
    assert_int_equal(bk_link_query_parse(&q, s, strlen(s)), 0);
    assert_int_equal(q.n, 5);
    assert_string_equal(q.p[0].key, "search");
    assert_string_equal(q.p[0].value, "a b/c");
    assert_string_equal(q.p[1].key, "flag");
    assert_string_equal(q.p[1].value, "");
    assert_string_equal(q.p[2].key, "empty");
    assert_string_equal(q.p[2].value, "");
    assert_string_equal(q.p[3].value, "%zz%4"); /* malformed escapes stay */
    assert_string_equal(q.p[4].key, "k=");
    assert_string_equal(q.p[4].value, "v=w");
}

/* Found by fuzz_links: an empty pair once the buffer is exactly full wrote
 * its NUL one byte past the end. */
static void query_parse_full_buffer_and_empty_key(void **state)
{
    (void)state;
    static struct bk_link_query q;
    static char value[BK_LINK_MAX];
    memset(&q, 0, sizeof q);
    memset(value, 'v', sizeof value);
    /* "k\0" + value + "\0" fills buf to the last byte */
    assert_int_equal(bk_link_query_add(&q, "k", value, sizeof q.buf - 3), 0);
    assert_int_equal(q.used, sizeof q.buf);
    assert_int_equal(bk_link_query_parse(&q, "=x", 2), -1);
    assert_int_equal(bk_link_query_parse(&q, "&&", 2), 0); /* empty pairs are skipped */
    assert_int_equal(q.n, 1);
}

static void query_parse_is_bounded(void **state)
{
    struct bk_link_query q = {0};
    assert_int_equal(bk_link_query_parse(&q, "a=%00", 5), -1); /* no NUL in a C string */

    char many[BK_LINK_MAX_PARAMS * 4 + 8] = "";
    for (int i = 0; i <= BK_LINK_MAX_PARAMS; i++)
        strcat(many, "a=1&");
    memset(&q, 0, sizeof q);
    assert_int_equal(bk_link_query_parse(&q, many, strlen(many)), -1);

    char *long_value = malloc(BK_LINK_MAX + 16);
    memcpy(long_value, "a=", 2);
    memset(long_value + 2, 'x', BK_LINK_MAX);
    long_value[BK_LINK_MAX + 2] = '\0';
    memset(&q, 0, sizeof q);
    assert_int_equal(bk_link_query_parse(&q, long_value, strlen(long_value)), -1);
    free(long_value);
}

/* ---- replace_query_param / remove_query_param -------------------------- */

static void page_link_sorts_and_replaces_page(void **state)
{
    const char *p = "http://127.0.0.1:8000/api/users/";
    /* Django: ?search=x&page_size=3&page=2 -> next ?page=3&page_size=3&search=x */
    assert_string_equal(page_of(p, "search=x&page_size=3&page=2", 3),
                        "http://127.0.0.1:8000/api/users/?page=3&page_size=3&search=x");
    /* previous to page 1 drops page */
    assert_string_equal(page_of(p, "search=x&page_size=3&page=2", 1),
                        "http://127.0.0.1:8000/api/users/?page_size=3&search=x");
    assert_string_equal(page_of(p, "page=2", 1), "http://127.0.0.1:8000/api/users/");
    assert_string_equal(page_of(p, "", 2), "http://127.0.0.1:8000/api/users/?page=2");
    /* "page" without a value and repeated pages are all replaced */
    assert_string_equal(page_of(p, "page&page=7&all=1", 2),
                        "http://127.0.0.1:8000/api/users/?all=1&page=2");
    /* repeated keys keep their order (Python's sort is stable) */
    assert_string_equal(page_of(p, "b=2&a=1&b=1", 2),
                        "http://127.0.0.1:8000/api/users/?a=1&b=2&b=1&page=2");
}

static void page_link_encodes_as_quote_plus(void **state)
{
    assert_string_equal(page_of("/x", "search=a%20b%2Fc%C3%A9~._-&q=%2B", 2),
                        "/x?page=2&q=%2B&search=a+b%2Fc%C3%A9~._-");
    assert_string_equal(page_of("/x", "search=a+b&flag", 2), "/x?flag=&page=2&search=a+b");
}

static void page_link_refuses_what_does_not_fit(void **state)
{
    char out[40];
    struct bk_link_query q = {0};
    assert_int_equal(bk_link_query_parse(&q, "search=abcdefgh", 15), 0);
    assert_int_equal(bk_link_page(out, sizeof out, "http://127.0.0.1:8000/x", &q, 2), -1);
    assert_string_equal(out, "");
    assert_int_equal(bk_link_page(out, sizeof out, "http://h/x", &q, 2),
                     (int)strlen("http://h/x?page=2&search=abcdefgh"));
}

/* ---- route templates and args ------------------------------------------ */

static void fill_puts_args_into_the_pattern(void **state)
{
    struct args a;
    char out[128];
    const msgpack_object *args = args_json(&a, "{\"id\": \"42\", \"n\": 7, \"s\": \"a/b c\"}");
    assert_int_equal(bk_link_fill(out, sizeof out, "http://h", "/api/users/{id}/followers/", args),
                     (int)strlen("http://h/api/users/42/followers/"));
    assert_string_equal(out, "http://h/api/users/42/followers/");
    bk_link_fill(out, sizeof out, "", "/x/{n}/{s}", args);
    assert_string_equal(out, "/x/7/a%2Fb%20c");
    assert_int_equal(bk_link_fill(out, sizeof out, "", "/x/{missing}/", args), -1);
    assert_int_equal(bk_link_fill(out, 12, "http://h", "/api/users/{id}/", args), -1);
    args_done(&a);
}

static void query_from_args_takes_the_documented_keys(void **state)
{
    struct args a;
    struct bk_link_query q = {0};
    const msgpack_object *args =
        args_json(&a, "{\"status\": \"pending\", \"page_size\": 1, \"all\": true, "
                      "\"other\": \"x\", \"page\": \"2\", \"id\": \"3\"}");
    assert_int_equal(bk_link_query_from_args(&q, "status,all,page,page_size", args), 0);
    char out[256];
    bk_link_page(out, sizeof out, "/api/orders/", &q, 3);
    assert_string_equal(out, "/api/orders/?all=true&page=3&page_size=1&status=pending");
    args_done(&a);
}

static void target_ok_takes_only_origin_form(void **state)
{
    assert_true(bk_link_target_ok("/api/users/?search=a%20b&page=2"));
    assert_true(bk_link_target_ok("/"));
    assert_false(bk_link_target_ok(""));
    assert_false(bk_link_target_ok("//evil.example/x"));
    assert_false(bk_link_target_ok("http://evil.example/api/users/"));
    assert_false(bk_link_target_ok("/a b"));
    assert_false(bk_link_target_ok("/a\"b"));
    assert_false(bk_link_target_ok("/a#b"));
}

static void routes_find_names_each_list_path_once(void **state)
{
    static const char *const lists[][2] = {
        {"profile.list", "/api/users/"},
        {"profile.followers", "/api/users/{id}/followers/"},
        {"profile.following", "/api/users/{id}/following/"},
        {"education.list", "/api/educations/"},
        {"certificate.list", "/api/certificates/"},
        {"achievement.list", "/api/achievements/"},
        {"admin.list", "/api/admin/users/"},
        {"order.list", "/api/orders/"},
        {"payment.list", "/api/payments/"},
    };
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        const struct br_route *r = br_routes_find(NULL, lists[i][0], "GET");
        assert_non_null(r);
        assert_string_equal(r->pattern, lists[i][1]);
        char keys[256]; /* their links carry it */
        assert_true(bk_contract_names(bk_contract_command(lists[i][0]), BK_F_QUERY, 0, keys,
                                      sizeof keys) > 0);
        assert_non_null(strstr(keys, "page_size"));
        assert_null(br_routes_find(r + 1, lists[i][0], "GET"));
    }
    const struct br_route *r = br_routes_find(NULL, "resume.get", "GET");
    assert_non_null(r);
    assert_non_null(br_routes_find(r + 1, "resume.get", "GET"));
    assert_null(br_routes_find(NULL, "order.list", "DELETE"));
    assert_null(br_routes_find(NULL, "no.such", "GET"));
}

/* ---- the runtime's page links ------------------------------------------- */

static const char *next_of(const char *command, const char *target, const char *args_text,
                           int64_t count)
{
    static char link[BK_LINK_MAX];
    struct args a;
    struct bk_call *c = bk_call_new(args_json(&a, args_text));
    c->command = command;
    c->request_target = target;
    c->public_base = "https://api.example.org";
    struct bk_page p;
    assert_true(bk_page_args(c, &p));
    assert_int_equal(bk_reply_page(c, &p, count, json_array()), 0);
    assert_int_equal(bk_call_status(c), 200);
    const json_t *next = json_object_get(bk_call_body(c), "next");
    snprintf(link, sizeof link, "%s", json_is_string(next) ? json_string_value(next) : "null");
    bk_call_free(c);
    args_done(&a);
    return link;
}

static void runtime_links_start_with_the_public_base(void **state)
{
    /* over HTTP: the target the client used, Host nowhere */
    assert_string_equal(next_of("profile.list", "/api/users?role=student&page_size=1",
                                "{\"role\": \"student\", \"page_size\": \"1\"}", 3),
                        "https://api.example.org/api/users?page=2&page_size=1&role=student");
    /* over AMQP: the route's path with its parameters, the documented query */
    assert_string_equal(
        next_of("profile.followers", "", "{\"id\": \"42\", \"page_size\": 1, \"junk\": \"x\"}", 3),
        "https://api.example.org/api/users/42/followers/?page=2&page_size=1");
    assert_string_equal(next_of("order.list", "", "{\"status\": \"paid\", \"page_size\": 2}", 3),
                        "https://api.example.org/api/orders/?page=2&page_size=2&status=paid");
    /* a target that is not origin-form is ignored: the route instead */
    assert_string_equal(
        next_of("order.list", "http://evil.example/api/orders/", "{\"page_size\": 1}", 3),
        "https://api.example.org/api/orders/?page=2&page_size=1");
    /* a command without a GET route gets no link rather than a wrong one */
    assert_string_equal(next_of("order.place", "", "{\"page_size\": 1}", 3), "null");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(query_parse_decodes_like_parse_qsl),
        cmocka_unit_test(query_parse_is_bounded),
        cmocka_unit_test(query_parse_full_buffer_and_empty_key),
        cmocka_unit_test(page_link_sorts_and_replaces_page),
        cmocka_unit_test(page_link_encodes_as_quote_plus),
        cmocka_unit_test(page_link_refuses_what_does_not_fit),
        cmocka_unit_test(fill_puts_args_into_the_pattern),
        cmocka_unit_test(query_from_args_takes_the_documented_keys),
        cmocka_unit_test(target_ok_takes_only_origin_form),
        cmocka_unit_test(routes_find_names_each_list_path_once),
        cmocka_unit_test(runtime_links_start_with_the_public_base),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
