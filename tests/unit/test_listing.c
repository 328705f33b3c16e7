/* shared/listing.c: which requests use the list conventions, how ?search= is
 * split, and the 400s for values that do not parse (django-filter's), all
 * decided before any SQL runs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "shared/json.h"
#include "shared/listing.h"
#include "shared/worker.h"

struct fixture {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    struct bk_call *c;
};

static struct bk_call *call_json(struct fixture *f, const char *json)
{
    msgpack_packer pk;
    const char *why = NULL;
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&pk, &f->sb, msgpack_sbuffer_write);
    assert_int_equal(bk_json_pack_text(&pk, json, strlen(json)), 0);
    msgpack_unpacked_init(&f->u);
    assert_int_equal(bk_codec_unpack(f->sb.data, f->sb.size, &f->u, &why), 0);
    f->c = bk_call_new(&f->u.data);
    return f->c;
}

static void fixture_done(struct fixture *f)
{
    bk_call_free(f->c);
    msgpack_unpacked_destroy(&f->u);
    msgpack_sbuffer_destroy(&f->sb);
}

static const char *const colours[] = {"red", "blue", NULL};
static const struct bk_list_field fields[] = {
    {"id", "t.id", BK_LT_INT, BK_LF_ORDER | BK_LF_EXACT, NULL},
    {"at", "t.at", BK_LT_TIME, BK_LF_ORDER | BK_LF_RANGE, NULL},
    {"day", "t.day", BK_LT_DATE, BK_LF_RANGE, NULL},
    {"on", "t.on", BK_LT_BOOL, BK_LF_EXACT, NULL},
    {"colour", "t.colour", BK_LT_CHOICE, BK_LF_EXACT, colours},
    {"name", "t.name", BK_LT_TEXT, BK_LF_SEARCH, NULL},
    {NULL, NULL, 0, 0, NULL},
};
static const struct bk_list_spec spec = {
    .from = "t",
    .row = "row_to_json(t)",
    .key = "t.id",
    .order = "t.id",
    .tiebreak = "t.id",
    .fast_args = "colour",
    .fields = fields,
};

static void wanted_only_for_the_conventions(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        bool wanted;
    } cases[] = {
        {"{}", false},
        {"{\"page\": \"2\", \"page_size\": \"5\"}", false},
        {"{\"colour\": \"red\"}", false}, /* the fast path's own */
        {"{\"other\": \"x\"}", false},
        {"{\"ordering\": \"-id\"}", true},
        {"{\"search\": \"a\"}", true},
        {"{\"id\": \"3\"}", true},
        {"{\"at__gte\": \"2026-01-01\"}", true},
        {"{\"day__lte\": \"2026-01-01\"}", true},
        {"{\"id__gte\": \"3\"}", false}, /* id has no range */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture f;
        call_json(&f, cases[i].args);
        if (bk_list_wanted(f.c, &spec) != cases[i].wanted)
            fail_msg("%s: expected %d", cases[i].args, cases[i].wanted);
        fixture_done(&f);
    }
}

static void search_terms_split_and_escape(void **state)
{
    (void)state;
    struct bk_call *c = bk_call_new(NULL);
    const char *t[8];
    int n = bk_list_search_terms(c, "  ada, lovelace\t50%_off\\ ", t, 8);
    assert_int_equal(n, 3);
    assert_string_equal(t[0], "%ada%");
    assert_string_equal(t[1], "%lovelace%");
    assert_string_equal(t[2], "%50\\%\\_off\\\\%");
    assert_int_equal(bk_list_search_terms(c, "a b c d", t, 2), 2);
    assert_int_equal(bk_list_search_terms(c, " , ", t, 8), 0);
    bk_call_free(c);
}

/* Every value that does not parse is a 400 naming its parameter, before any
 * statement runs (no database here). */
static void bad_values_are_400_naming_the_parameter(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"id\": \"abc\"}", "id"},
        {"{\"id\": \"1.5\"}", "id"},
        {"{\"at__gte\": \"yesterday\"}", "at__gte"},
        {"{\"at__lte\": \"2026-02-29\"}", "at__lte"}, /* not a leap year */
        {"{\"at__gte\": \"2026-01-01T25:00:00Z\"}", "at__gte"},
        {"{\"at__gte\": \"2026-01-01T10:00:00\"}", "at__gte"}, /* no zone */
        {"{\"at__gte\": \"2026-01-01T10:00:00.1234567Z\"}", "at__gte"},
        {"{\"day__gte\": \"2026-01-01T00:00:00Z\"}", "day__gte"}, /* a date only */
        {"{\"on\": \"perhaps\"}", "on"},
        {"{\"colour\": \"green\"}", "colour"},
        {"{\"id\": {\"a\": 1}}", "id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fixture f;
        call_json(&f, bad[i][0]);
        assert_int_equal(bk_list_reply(f.c, &spec, NULL, 0, NULL), 0);
        if (bk_call_status(f.c) != 400)
            fail_msg("%s: status %d", bad[i][0], bk_call_status(f.c));
        const json_t *body = bk_call_body(f.c);
        if (!json_object_get(body, bad[i][1]))
            fail_msg("%s: no error for %s", bad[i][0], bad[i][1]);
        fixture_done(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wanted_only_for_the_conventions),
        cmocka_unit_test(search_terms_split_and_escape),
        cmocka_unit_test(bad_values_are_400_naming_the_parameter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
