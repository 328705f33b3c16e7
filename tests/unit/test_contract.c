/* The command declarations (shared/contract.h): their examples pass the
 * runtime's validation, the runtime reads typed values and DRF's messages
 * from them, and the route table and the declarations agree. */
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
#include "shared/password.h"
#include "shared/routes.h"
#include "shared/worker.h"
#include "workers/bridge/schema.c"

struct fixture {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    struct bk_call *c;
};

/* A call of command over args (a JSON object), validated. */
static struct bk_call *validated(struct fixture *f, const char *command, const json_t *args)
{
    msgpack_packer pk;
    const char *why = NULL;
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&pk, &f->sb, msgpack_sbuffer_write);
    assert_int_equal(bk_json_pack(&pk, args), 0);
    msgpack_unpacked_init(&f->u);
    assert_int_equal(bk_codec_unpack(f->sb.data, f->sb.size, &f->u, &why), 0);
    f->c = bk_call_new(&f->u.data);
    f->c->command = command;
    bk_call_validate(f->c);
    return f->c;
}

static struct bk_call *validated_text(struct fixture *f, const char *command, const char *json)
{
    json_t *args = json_loads(json, 0, NULL);
    assert_non_null(args);
    struct bk_call *c = validated(f, command, args);
    json_decref(args);
    return c;
}

static void done(struct fixture *f)
{
    bk_call_free(f->c);
    msgpack_unpacked_destroy(&f->u);
    msgpack_sbuffer_destroy(&f->sb);
}

static char *errors_of(struct bk_call *c)
{
    bk_reply_invalid(c);
    return json_dumps(bk_call_body(c), JSON_COMPACT | JSON_SORT_KEYS);
}

/* Every request body example of the documents passes validation: the docs
 * page's prefilled bodies work. */
static void examples_pass_validation(void **state)
{
    int checked = 0;
    for (const struct bk_command_decl *d = bk_contract_commands; d->name; d++) {
        json_t *ex = br_schema_example(d);
        if (!ex)
            continue;
        if (bk_contract_arg(d, "id"))
            json_object_set_new(ex, "id", json_integer(1));
        struct fixture f;
        struct bk_call *c = validated(&f, d->name, ex);
        if (bk_failed(c)) {
            char *e = errors_of(c);
            fail_msg("the example of %s fails: %s", d->name, e);
        }
        checked++;
        json_decref(ex);
        done(&f);
    }
    assert_true(checked >= 20);
}

/* The register example's password passes Django's validators against the
 * example's own names (the docs page registers with it, then logs in with
 * the login example), and so do the new passwords of the other examples. */
static void example_passwords_pass_the_validators(void **state)
{
    assert_int_equal(bk_password_load_common("data/common-passwords.txt.gz"), 0);
    json_t *reg = br_schema_example(bk_contract_command("auth.register"));
    json_t *login = br_schema_example(bk_contract_command("auth.login"));
    assert_non_null(reg);
    assert_non_null(login);
    const char *pw = json_string_value(json_object_get(reg, "password"));
    assert_string_equal(pw, json_string_value(json_object_get(login, "password")));
    assert_string_equal(json_string_value(json_object_get(reg, "username")),
                        json_string_value(json_object_get(login, "username")));
    const char *names[] = {"username", "email", "first_name", "last_name"};
    const char *v[4];
    for (int i = 0; i < 4; i++)
        v[i] = json_string_value(json_object_get(reg, names[i]));
    assert_int_equal(bk_password_validate(pw, v[0], v[1], v[2], v[3], NULL), 0);
    static const char *const others[] = {"auth.change_password", "auth.reset_password_confirm"};
    for (int i = 0; i < 2; i++) {
        json_t *ex = br_schema_example(bk_contract_command(others[i]));
        const char *npw = json_string_value(json_object_get(ex, "new_password"));
        assert_int_equal(bk_password_validate(npw, v[0], v[1], v[2], v[3], NULL), 0);
        json_decref(ex);
    }
    json_decref(reg);
    json_decref(login);
}

/* Every route's command is declared, and every declared command has a route
 * (a unified one or a source system's alias) or is reachable over AMQP only on
 * purpose (none today). */
static void routes_and_declarations_agree(void **state)
{
    for (const struct br_route *r = br_routes; r->method; r++)
        if (!(r->flags & BR_LOCAL))
            assert_non_null(bk_contract_command(r->command));
    for (const struct bk_command_decl *d = bk_contract_commands; d->name; d++) {
        /* a source system's alias counts (auth.signup has only 004's route) */
        const struct br_route *r = br_routes;
        while (r->method && strcmp(r->command, d->name) != 0)
            r++;
        if (!r->method)
            fail_msg("%s has no route", d->name);
    }
    char q[256];
    assert_int_equal(
        bk_contract_names(bk_contract_command("order.list"), BK_F_QUERY, 0, q, sizeof q), 9);
    assert_string_equal(
        q, "status,all,user,order_date__gte,order_date__lte,search,ordering,page,page_size");
    assert_int_equal(
        bk_contract_names(bk_contract_command("order.place"), 0, BK_F_HEADER, q, sizeof q), 3);
    assert_string_equal(q, "product_name,quantity,price");
}

/* The messages are DRF's, and the values come typed. */
static void order_place_reads_typed_values(void **state)
{
    struct fixture f;
    struct bk_call *c = validated_text(&f, "order.place",
                                       "{\"product_name\": \"  Mug \", \"quantity\": \"3\", "
                                       "\"price\": 12.5}");
    assert_false(bk_failed(c));
    int64_t q = 0, cents = 0;
    assert_string_equal(bk_in_str(c, "product_name"), "Mug");
    assert_true(bk_in_int(c, "quantity", &q));
    assert_int_equal(q, 3);
    assert_true(bk_in_money(c, "price", &cents));
    assert_int_equal(cents, 1250);
    done(&f);

    c = validated_text(&f, "order.place", "{\"quantity\": 0, \"price\": \"0.001\"}");
    char *e = errors_of(c);
    assert_string_equal(e, "{\"price\":[\"Ensure that there are no more than 2 decimal places.\"],"
                           "\"product_name\":[\"This field is required.\"],"
                           "\"quantity\":[\"Ensure this value is greater than or equal to 1.\"]}");
    free(e);
    done(&f);
}

static void formats_nulls_and_partial_updates(void **state)
{
    struct fixture f;
    struct bk_call *c = validated_text(&f, "auth.register",
                                       "{\"username\": \"a b\", \"email\": \"nope\", \"password\": "
                                       "\" x \", \"password2\": \" x \","
                                       " \"role\": \"admin\"}");
    char *e = errors_of(c);
    assert_string_equal(e, "{\"email\":[\"Enter a valid email address.\"],"
                           "\"role\":[\"\\\"admin\\\" is not a valid choice.\"],"
                           "\"username\":[\"Enter a valid username. This value may contain only "
                           "letters, numbers, and @/./+/-/_ characters.\"]}");
    free(e);
    assert_string_equal(bk_in_str(c, "password"), " x "); /* passwords are not trimmed */
    done(&f);

    /* PATCH: nothing required; null is refused where DRF refuses it */
    c = validated_text(&f, "profile.update",
                       "{\"partial\": true, \"is_student\": \"yes\", \"about\": null, "
                       "\"phone_no\": \"12a\", \"linkedin\": \"\"}");
    e = errors_of(c);
    assert_string_equal(e, "{\"about\":[\"This field may not be null.\"],"
                           "\"phone_no\":[\"Enter a valid phone number.\"]}");
    free(e);
    bool b = false;
    assert_true(bk_in_bool(c, "is_student", &b));
    assert_true(b);
    assert_string_equal(bk_in_str(c, "linkedin"), "");
    assert_true(bk_in_partial(c));
    done(&f);

    /* PUT: email required; a nullable year and a date read as null */
    c = validated_text(&f, "education.update",
                       "{\"id\": \"7\", \"partial\": false, \"degree\": \"BSc\", "
                       "\"institution\": \"X\", \"start_year\": 2020, \"end_year\": \"\"}");
    assert_false(bk_failed(c));
    assert_string_equal(bk_in_str(c, "id"), "7");
    assert_true(bk_in_set(c, "end_year"));
    assert_true(bk_in_null(c, "end_year"));
    done(&f);

    c = validated_text(&f, "certificate.create",
                       "{\"title\": \"T\", \"issuer\": \"I\", \"date\": \"2024-2-30\"}");
    e = errors_of(c);
    assert_string_equal(e, "{\"date\":[\"Date has wrong format. Use one of these formats "
                           "instead: YYYY-MM-DD.\"]}");
    free(e);
    done(&f);

    c = validated_text(&f, "resume.update", "{}");
    e = errors_of(c);
    assert_string_equal(e, "{\"file\":[\"No file was submitted.\"]}");
    free(e);
    done(&f);

    /* a malformed path id is a 404, not a field error */
    c = validated_text(&f, "order.get", "{\"id\": \"x\"}");
    assert_true(bk_not_found(c));
    bk_reply_invalid(c);
    assert_int_equal(bk_call_status(c), 404);
    done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(examples_pass_validation),
        cmocka_unit_test(example_passwords_pass_the_validators),
        cmocka_unit_test(routes_and_declarations_agree),
        cmocka_unit_test(order_place_reads_typed_values),
        cmocka_unit_test(formats_nulls_and_partial_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
