/* The bounded MessagePack decoder and the argument readers: hostile or
 * mistyped input is refused with a reason, never a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "shared/json.h"
#include "shared/worker.h"

static int check(const char *bytes, size_t n, const char **why)
{
    *why = NULL;
    return bk_codec_check(bytes, n, why);
}

static void accepts_a_command_envelope(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(
        bk_json_pack_text(&pk, "{\"v\":1,\"auth\":null,\"args\":{\"a\":[1,2.5,\"x\"]}}", 44), 0);
    msgpack_unpacked u;
    const char *why = NULL;
    assert_int_equal(bk_codec_unpack(sb.data, sb.size, &u, &why), 0);
    const msgpack_object *args = bk_codec_get(&u.data, "args");
    assert_non_null(args);
    assert_int_equal(args->type, MSGPACK_OBJECT_MAP);
    assert_null(bk_codec_get(&u.data, "missing"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void refuses_lying_counts(void **state)
{
    const char *why;
    /* array32 claiming 4 billion items in 5 bytes */
    const char arr[] = {(char)0xdd, (char)0xff, (char)0xff, (char)0xff, (char)0xff};
    assert_int_equal(check(arr, sizeof arr, &why), -1);
    assert_string_equal(why, "container too large");
    /* map32 likewise */
    const char map[] = {(char)0xdf, 0, 0x10, 0, 0, 1, 2};
    assert_int_equal(check(map, sizeof map, &why), -1);
    /* str32 longer than the buffer */
    const char str[] = {(char)0xdb, 0, 0, 1, 0, 'a'};
    assert_int_equal(check(str, sizeof str, &why), -1);
    assert_string_equal(why, "truncated MessagePack");
}

static void refuses_deep_nesting(void **state)
{
    char buf[64];
    memset(buf, 0x91, sizeof buf); /* [[[[...]]]] */
    buf[63] = 0x01;
    const char *why;
    assert_int_equal(check(buf, sizeof buf, &why), -1);
    assert_string_equal(why, "nested too deeply");
    /* 16 levels are fine */
    memset(buf, 0x91, 16);
    buf[16] = 0x01;
    assert_int_equal(check(buf, 17, &why), 0);
}

static void refuses_garbage(void **state)
{
    const char *why;
    assert_int_equal(check("", 0, &why), -1);
    const char c1[] = {(char)0xc1};
    assert_int_equal(check(c1, 1, &why), -1);
    const char ext[] = {(char)0xd4, 1, 2};
    assert_int_equal(check(ext, 3, &why), -1);
    assert_string_equal(why, "MessagePack extension types are not accepted");
    const char two[] = {1, 2};
    assert_int_equal(check(two, 2, &why), -1);
    assert_string_equal(why, "trailing bytes after the MessagePack object");
    const char badutf8[] = {(char)0xa2, (char)0xc3, (char)0x28};
    assert_int_equal(check(badutf8, 3, &why), -1);
    assert_string_equal(why, "string is not valid UTF-8");
    /* random bytes never crash */
    srand(7);
    char rnd[256];
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(rand() % 255) + 1;
        for (size_t k = 0; k < n; k++)
            rnd[k] = (char)rand();
        msgpack_unpacked u;
        bk_codec_unpack(rnd, n, &u, &why);
        msgpack_unpacked_destroy(&u);
    }
}

/* Unpacks JSON text as args and returns a call over it. */
static struct bk_call *call_over(const char *json, msgpack_sbuffer *sb, msgpack_unpacked *u)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    assert_int_equal(bk_json_pack_text(&pk, json, strlen(json)), 0);
    const char *why;
    assert_int_equal(bk_codec_unpack(sb->data, sb->size, u, &why), 0);
    return bk_call_new(&u->data);
}

static const char *first_error(struct bk_call *c, const char *field)
{
    bk_reply_invalid(c);
    return json_string_value(json_array_get(json_object_get(bk_call_body(c), field), 0));
}

static void wrong_types_become_field_errors(void **state)
{
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    struct bk_call *c = call_over("{\"name\": [1], \"qty\": \"abc\", \"big\": 10001, \"flag\": "
                                  "\"maybe\", \"blank\": \"  \", \"long\": \"abcdef\"}",
                                  &sb, &u);
    int64_t v;
    bool b;
    assert_null(bk_arg_str(c, "name", BK_REQUIRED, 10));
    assert_false(bk_arg_int(c, "qty", BK_REQUIRED, 1, 10000, &v));
    assert_false(bk_arg_int(c, "big", BK_REQUIRED, 1, 10000, &v));
    assert_false(bk_arg_bool(c, "flag", BK_REQUIRED, &b));
    assert_null(bk_arg_str(c, "blank", BK_REQUIRED, 10));
    assert_null(bk_arg_str(c, "long", BK_REQUIRED, 3));
    assert_null(bk_arg_str(c, "absent", BK_REQUIRED, 3));
    assert_true(bk_failed(c));
    assert_string_equal(first_error(c, "name"), "Not a valid string.");
    assert_string_equal(first_error(c, "qty"), "A valid integer is required.");
    assert_string_equal(first_error(c, "big"), "Ensure this value is less than or equal to 10000.");
    assert_string_equal(first_error(c, "flag"), "Must be a valid boolean.");
    assert_string_equal(first_error(c, "blank"), "This field may not be blank.");
    assert_string_equal(first_error(c, "long"), "Ensure this field has no more than 3 characters.");
    assert_string_equal(first_error(c, "absent"), "This field is required.");
    assert_int_equal(bk_call_status(c), 400);
    bk_call_free(c);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void good_values_are_read(void **state)
{
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    struct bk_call *c = call_over("{\"name\": \"  ada \", \"qty\": \"42\", \"n\": 7, \"flag\": "
                                  "true, \"id\": \"15\", \"bad_id\": \"x1\"}",
                                  &sb, &u);
    int64_t v = 0;
    bool b = false;
    assert_string_equal(bk_arg_str(c, "name", BK_REQUIRED, 10), "ada");
    assert_true(bk_arg_int(c, "qty", BK_REQUIRED, 1, 100, &v));
    assert_int_equal(v, 42);
    assert_true(bk_arg_int(c, "n", BK_REQUIRED, 1, 100, &v));
    assert_int_equal(v, 7);
    assert_true(bk_arg_bool(c, "flag", BK_REQUIRED, &b));
    assert_true(b);
    assert_string_equal(bk_arg_id(c, "id"), "15");
    assert_false(bk_failed(c));
    assert_null(bk_arg_id(c, "bad_id"));
    assert_true(bk_failed(c));
    bk_reply_invalid(c);
    assert_int_equal(bk_call_status(c), 404);
    bk_call_free(c);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void json_round_trip(void **state)
{
    const char *text = "{\"a\":[1,-2,2.5,true,false,null,\"\\u00e9\"],\"b\":{}}";
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    struct bk_call *c = call_over(text, &sb, &u);
    json_t *back = bk_json_from_msgpack(&u.data);
    json_error_t err;
    json_t *want = json_loads(text, 0, &err);
    assert_true(json_equal(back, want));
    json_decref(back);
    json_decref(want);
    bk_call_free(c);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_a_command_envelope),
        cmocka_unit_test(refuses_lying_counts),
        cmocka_unit_test(refuses_deep_nesting),
        cmocka_unit_test(refuses_garbage),
        cmocka_unit_test(wrong_types_become_field_errors),
        cmocka_unit_test(good_values_are_read),
        cmocka_unit_test(json_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
