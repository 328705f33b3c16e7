/* bk_arg_money: money as DRF's DecimalField(max_digits, 2) reads it, exactly,
 * in integer cents; what DRF refuses is refused with its message (and a few
 * things it would take, an exponent, are refused too: money is written out). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shared/codec.h"
#include "shared/json.h"
#include "shared/worker.h"

/* A call over args given as JSON text (numbers stay numbers: 19.99 arrives
 * as a float64, as the bridge transcodes it). */
struct fixture {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    struct bk_call *c;
};

static struct bk_call *call_over_sbuffer(struct fixture *f)
{
    const char *why = NULL;
    msgpack_unpacked_init(&f->u);
    assert_int_equal(bk_codec_unpack(f->sb.data, f->sb.size, &f->u, &why), 0);
    f->c = bk_call_new(&f->u.data);
    return f->c;
}

static struct bk_call *call_json(struct fixture *f, const char *json)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&pk, &f->sb, msgpack_sbuffer_write);
    assert_int_equal(bk_json_pack_text(&pk, json, strlen(json)), 0);
    return call_over_sbuffer(f);
}

/* {"price": <double>} packed directly (NaN and infinity have no JSON). */
static struct bk_call *call_double(struct fixture *f, double v)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&pk, &f->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "price", 5);
    msgpack_pack_double(&pk, v);
    return call_over_sbuffer(f);
}

static void fixture_done(struct fixture *f)
{
    bk_call_free(f->c);
    msgpack_unpacked_destroy(&f->u);
    msgpack_sbuffer_destroy(&f->sb);
}

/* The price of an order: DecimalField(max_digits=10, decimal_places=2),
 * at least 0.01. */
static bool price(struct bk_call *c, int64_t *cents)
{
    return bk_arg_money(c, "price", BK_REQUIRED, 10, 1, cents);
}

/* The one message recorded for price. */
static const char *price_error(struct bk_call *c)
{
    assert_true(bk_failed(c));
    json_t *list = bk_errors_of(c, "price");
    assert_int_equal(json_array_size(list), 1);
    return json_string_value(json_array_get(list, 0));
}

static void accepts(const char *json, int64_t want)
{
    struct fixture f;
    int64_t cents = -42;
    struct bk_call *c = call_json(&f, json);
    assert_true(price(c, &cents));
    assert_false(bk_failed(c));
    assert_int_equal(cents, want);
    fixture_done(&f);
}

static void refuses(const char *json, const char *message)
{
    struct fixture f;
    int64_t cents = -42;
    struct bk_call *c = call_json(&f, json);
    assert_false(price(c, &cents));
    assert_string_equal(price_error(c), message);
    assert_int_equal(cents, -42);
    fixture_done(&f);
}

#define INVALID  "A valid number is required."
#define DIGITS   "Ensure that there are no more than 10 digits in total."
#define DECIMALS "Ensure that there are no more than 2 decimal places."
#define WHOLE    "Ensure that there are no more than 8 digits before the decimal point."
#define MINIMUM  "Ensure this value is greater than or equal to 0.01."

static void string_and_number_are_exact_cents(void **state)
{
    accepts("{\"price\": \"19.99\"}", 1999);
    accepts("{\"price\": 19.99}", 1999); /* a float64 read back as 19.99, not 19.98999... */
    accepts("{\"price\": 0.07}", 7);
    accepts("{\"price\": 1.1}", 110);
    accepts("{\"price\": \"0.01\"}", 1);
    accepts("{\"price\": 5}", 500);
    accepts("{\"price\": \"5\"}", 500);
    accepts("{\"price\": \"5.\"}", 500);
    accepts("{\"price\": \".5\"}", 50);
    accepts("{\"price\": \" 12.5 \"}", 1250); /* DRF strips the string */
    accepts("{\"price\": \"12.50\"}", 1250);
    accepts("{\"price\": \"+3.00\"}", 300);
    accepts("{\"price\": \"99999999.99\"}", 9999999999);
    accepts("{\"price\": \"00000001.5\"}", 150); /* leading zeros are not digits */
}

static void exponents_nan_and_infinity_are_not_numbers(void **state)
{
    /* a JSON number reaches us as a float; DRF reads str(float): 1e3 is
     * 1000.0 there, and only the string "1e3" is refused */
    accepts("{\"price\": 1e3}", 100000);
    accepts("{\"price\": 20.0}", 2000);
    refuses("{\"price\": \"1e3\"}", INVALID);
    refuses("{\"price\": \"1E3\"}", INVALID);
    refuses("{\"price\": \"NaN\"}", INVALID);
    refuses("{\"price\": \"nan\"}", INVALID);
    refuses("{\"price\": \"Infinity\"}", INVALID);
    refuses("{\"price\": \"-inf\"}", INVALID);
    refuses("{\"price\": \"0x10\"}", INVALID);
    refuses("{\"price\": \"1,50\"}", INVALID);
    refuses("{\"price\": \"\"}", INVALID);
    refuses("{\"price\": \".\"}", INVALID);
    refuses("{\"price\": \"1.2.3\"}", INVALID);
    refuses("{\"price\": \"--1\"}", INVALID);
    refuses("{\"price\": true}", INVALID);
    refuses("{\"price\": [1]}", INVALID);
    refuses("{\"price\": {\"a\": 1}}", INVALID);

    struct fixture f;
    int64_t cents = 0;
    const double odd[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        struct bk_call *c = call_double(&f, odd[i]);
        assert_false(price(c, &cents));
        assert_string_equal(price_error(c), INVALID);
        fixture_done(&f);
    }
}

static void more_than_two_decimals_is_refused(void **state)
{
    refuses("{\"price\": 19.999}", DECIMALS);
    refuses("{\"price\": \"19.999\"}", DECIMALS);
    refuses("{\"price\": \"19.990\"}", DECIMALS); /* trailing zeros count, as in Decimal */
    refuses("{\"price\": \"0.001\"}", DECIMALS);
}

static void too_many_digits_is_refused(void **state)
{
    refuses("{\"price\": 12345678901}", DIGITS);
    refuses("{\"price\": \"12345678901\"}", DIGITS);
    refuses("{\"price\": \"123456789.01\"}", DIGITS);
    refuses("{\"price\": \"123456789.0\"}", WHOLE);
    refuses("{\"price\": 123456789}", WHOLE);
    refuses("{\"price\": \"99999999999999999999\"}", DIGITS);
}

static void below_the_minimum_is_refused(void **state)
{
    refuses("{\"price\": -1}", MINIMUM);
    refuses("{\"price\": \"-1\"}", MINIMUM);
    refuses("{\"price\": -19.99}", MINIMUM);
    refuses("{\"price\": 0}", MINIMUM);
    refuses("{\"price\": \"0.00\"}", MINIMUM);
    refuses("{\"price\": \"-0.01\"}", MINIMUM);
}

static void over_long_strings_are_refused(void **state)
{
    char json[1100];
    int n = snprintf(json, sizeof json, "{\"price\": \"");
    memset(json + n, '1', 1001);
    snprintf(json + n + 1001, sizeof json - (size_t)n - 1001, "\"}");
    refuses(json, "String value too large.");

    /* 1000 characters is not too large, only too many digits */
    memset(json + n, '1', 1000);
    snprintf(json + n + 1000, sizeof json - (size_t)n - 1000, "\"}");
    refuses(json, DIGITS);
}

static void missing_and_null(void **state)
{
    struct fixture f;
    int64_t cents = 0;
    struct bk_call *c = call_json(&f, "{}");
    assert_false(price(c, &cents));
    assert_string_equal(price_error(c), "This field is required.");
    fixture_done(&f);

    c = call_json(&f, "{\"price\": null}");
    assert_false(price(c, &cents));
    assert_string_equal(price_error(c), "This field may not be null.");
    fixture_done(&f);

    /* optional and absent: no value, no error */
    c = call_json(&f, "{}");
    assert_false(bk_arg_money(c, "price", BK_OPTIONAL, 10, 1, &cents));
    assert_false(bk_failed(c));
    fixture_done(&f);
}

static void wider_fields_and_no_minimum(void **state)
{
    /* Payment.amount: DecimalField(15, 2), no bounds of its own */
    struct fixture f;
    int64_t cents = 0;
    struct bk_call *c = call_json(&f, "{\"amount\": \"9999999999999.99\", \"neg\": -5}");
    assert_true(bk_arg_money(c, "amount", BK_REQUIRED, 15, INT64_MIN, &cents));
    assert_int_equal(cents, 999999999999999LL);
    assert_true(bk_arg_money(c, "neg", BK_REQUIRED, 15, INT64_MIN, &cents));
    assert_int_equal(cents, -500);
    assert_false(bk_failed(c));
    fixture_done(&f);

    c = call_json(&f, "{\"amount\": \"10000000000000.00\"}");
    assert_false(bk_arg_money(c, "amount", BK_REQUIRED, 15, INT64_MIN, &cents));
    json_t *list = bk_errors_of(c, "amount");
    assert_string_equal(json_string_value(json_array_get(list, 0)),
                        "Ensure that there are no more than 15 digits in total.");
    fixture_done(&f);
}

static void money_str_has_two_places(void **state)
{
    struct bk_call *c = bk_call_new(NULL);
    assert_string_equal(bk_money_str(c, 1999), "19.99");
    assert_string_equal(bk_money_str(c, 7), "0.07");
    assert_string_equal(bk_money_str(c, 500), "5.00");
    assert_string_equal(bk_money_str(c, 0), "0.00");
    assert_string_equal(bk_money_str(c, -1250), "-12.50");
    assert_string_equal(bk_money_str(c, 999999999999999LL), "9999999999999.99");
    bk_call_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(string_and_number_are_exact_cents),
        cmocka_unit_test(exponents_nan_and_infinity_are_not_numbers),
        cmocka_unit_test(more_than_two_decimals_is_refused),
        cmocka_unit_test(too_many_digits_is_refused),
        cmocka_unit_test(below_the_minimum_is_refused),
        cmocka_unit_test(over_long_strings_are_refused),
        cmocka_unit_test(missing_and_null),
        cmocka_unit_test(wider_fields_and_no_minimum),
        cmocka_unit_test(money_str_has_two_places),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
