/* The bridge's Host and Origin policies (Django's ALLOWED_HOSTS and
 * django-cors-headers' CORS_ALLOWED_ORIGINS) and the request id rule shared
 * by the bridge and the workers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "shared/util.h"
#include "workers/bridge/policy.c"

static void list_parsing(void **state)
{
    struct br_policy_list l;
    assert_int_equal(br_policy_list_parse(NULL, &l), 0);
    assert_int_equal(br_policy_list_parse("  , ,", &l), 0);
    assert_int_equal(br_policy_list_parse("a.example, b.example c\t.d.example,", &l), 4);
    assert_string_equal(l.item[0], "a.example");
    assert_string_equal(l.item[1], "b.example");
    assert_string_equal(l.item[2], "c");
    assert_string_equal(l.item[3], ".d.example");

    char many[BR_POLICY_MAX_ENTRIES * 3 + 8] = "";
    for (int i = 0; i <= BR_POLICY_MAX_ENTRIES; i++)
        strcat(many, "h ");
    assert_int_equal(br_policy_list_parse(many, &l), -1); /* one too many */
    char longest[BR_POLICY_MAX_LEN + 2];
    memset(longest, 'a', BR_POLICY_MAX_LEN);
    longest[BR_POLICY_MAX_LEN] = '\0';
    assert_int_equal(br_policy_list_parse(longest, &l), 1);
    longest[BR_POLICY_MAX_LEN] = 'a';
    longest[BR_POLICY_MAX_LEN + 1] = '\0';
    assert_int_equal(br_policy_list_parse(longest, &l), -1);
}

static void hosts_exact_and_port_ignored(void **state)
{
    struct br_policy_list l;
    br_policy_list_parse("127.0.0.1 localhost api.example.com [::1]", &l);
    assert_true(br_policy_host_allowed(&l, "127.0.0.1"));
    assert_true(br_policy_host_allowed(&l, "127.0.0.1:8001"));
    assert_true(br_policy_host_allowed(&l, "LOCALHOST:80"));
    assert_true(br_policy_host_allowed(&l, "api.example.com."));
    assert_true(br_policy_host_allowed(&l, "[::1]:8000"));
    assert_true(br_policy_host_allowed(&l, "[::1]"));
    assert_true(br_policy_host_allowed(&l, NULL)); /* HTTP/1.0: no Host */
    assert_false(br_policy_host_allowed(&l, "evil.example"));
    assert_false(br_policy_host_allowed(&l, "sub.api.example.com"));
    assert_false(br_policy_host_allowed(&l, "127.0.0.2"));
    assert_false(br_policy_host_allowed(&l, "api.example.com.evil"));
    assert_false(br_policy_host_allowed(&l, "[::2]"));
}

static void hosts_subdomains_and_wildcard(void **state)
{
    struct br_policy_list l;
    br_policy_list_parse(".example.com", &l);
    assert_true(br_policy_host_allowed(&l, "example.com"));
    assert_true(br_policy_host_allowed(&l, "a.example.com:443"));
    assert_true(br_policy_host_allowed(&l, "a.b.Example.COM"));
    assert_false(br_policy_host_allowed(&l, "badexample.com"));
    assert_false(br_policy_host_allowed(&l, "example.org"));

    br_policy_list_parse("*", &l);
    assert_true(br_policy_host_allowed(&l, "anything.example"));
    assert_true(br_policy_host_allowed(&l, "10.0.0.1:9"));
    /* not a host[:port] at all: refused even by "*" (Django does the same) */
    assert_false(br_policy_host_allowed(&l, ""));
    assert_false(br_policy_host_allowed(&l, "a b"));
    assert_false(br_policy_host_allowed(&l, "user@host"));
    assert_false(br_policy_host_allowed(&l, "host:"));
    assert_false(br_policy_host_allowed(&l, "host:80x"));
    assert_false(br_policy_host_allowed(&l, "host/path"));
    assert_false(br_policy_host_allowed(&l, "[::1"));
    assert_false(br_policy_host_allowed(&l, "[zz::1]"));
    assert_false(br_policy_host_allowed(&l, "."));

    br_policy_list_parse("", &l);
    assert_false(br_policy_host_allowed(&l, "localhost")); /* an empty list allows nothing */
}

static void origins_are_exact(void **state)
{
    struct br_policy_list l;
    br_policy_list_parse("http://frontend.test,https://app.example.com:8443", &l);
    assert_true(br_policy_origin_allowed(&l, "http://frontend.test"));
    assert_true(br_policy_origin_allowed(&l, "https://app.example.com:8443"));
    assert_false(br_policy_origin_allowed(&l, "https://frontend.test"));     /* scheme */
    assert_false(br_policy_origin_allowed(&l, "http://frontend.test:80"));   /* port */
    assert_false(br_policy_origin_allowed(&l, "http://frontend.test/"));     /* not an origin */
    assert_false(br_policy_origin_allowed(&l, "http://evil.frontend.test")); /* subdomain */
    assert_false(br_policy_origin_allowed(&l, "null"));
    assert_false(br_policy_origin_allowed(&l, ""));
    assert_false(br_policy_origin_allowed(&l, NULL));
}

static void request_id_rule(void **state)
{
    assert_true(bk_request_id_valid("abc", 3));
    assert_true(bk_request_id_valid("it-0123.x_y:Z", 13));
    assert_true(bk_request_id_valid("123e4567-e89b-12d3-a456-426614174000", 36));
    char max[BK_REQUEST_ID_MAX + 2];
    memset(max, 'a', sizeof max);
    assert_true(bk_request_id_valid(max, BK_REQUEST_ID_MAX));
    assert_false(bk_request_id_valid(max, BK_REQUEST_ID_MAX + 1));
    assert_false(bk_request_id_valid("", 0));
    assert_false(bk_request_id_valid(NULL, 3));
    assert_false(bk_request_id_valid("a b", 3));
    assert_false(bk_request_id_valid("a\"b", 3));
    assert_false(bk_request_id_valid("a\nb", 3));
    assert_false(bk_request_id_valid("caf\xc3\xa9", 5));
    assert_false(bk_request_id_valid("a/b", 3));
    assert_false(bk_request_id_valid("a\0b", 3)); /* the length counts, not the NUL */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(list_parsing),
        cmocka_unit_test(hosts_exact_and_port_ignored),
        cmocka_unit_test(hosts_subdomains_and_wildcard),
        cmocka_unit_test(origins_are_exact),
        cmocka_unit_test(request_id_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
