/* The source systems' aliases (issue 14): every documented route of each
 * system reaches its command, and the variants reshape requests and replies
 * as declared (workers/bridge/variant.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "workers/bridge/request.c"
#include "workers/bridge/variant.c"
#include "shared/routes.c"

struct alias {
    const char *system, *method, *path, *command;
};

/* The routes issue 14 lists, with concrete paths. */
static const struct alias documented[] = {
    {"000", "POST", "/api/token/", "auth.login"},
    {"000", "PUT", "/api/users/7/", "profile.update_user"},
    {"000", "PATCH", "/api/users/7/", "profile.update_user"},
    {"000", "DELETE", "/api/users/7/", "profile.delete_user"},
    {"000", "GET", "/api/users/7/", "profile.get"},
    {"000", "GET", "/api/educations/", "education.list"},
    {"000", "GET", "/api/resumes/", "resume.list"},
    {"000", "PUT", "/api/resumes/7/", "resume.update_user"},
    {"000", "DELETE", "/api/resumes/7/", "resume.delete_user"},
    {"001", "GET", "/user/", "actions"},
    {"001", "POST", "/user/", "auth.register_email"},
    {"001", "POST", "/api/user", "auth.register_email"},
    {"001", "GET", "/user/3/", "profile.get"},
    {"001", "PUT", "/user/3/", "profile.update_user"},
    {"001", "PATCH", "/api/user/3/", "profile.update_user"},
    {"001", "DELETE", "/user/3/", "profile.delete_user"},
    {"001", "GET", "/AdminUser/", "admin.list"},
    {"001", "PATCH", "/AdminUser/", "admin.set_role"},
    {"001", "DELETE", "/api/AdminUser/", "admin.delete"},
    {"002", "POST", "/api/v1/accounts/register/", "auth.register_email"},
    {"002", "POST", "/api/v1/accounts/token/", "auth.login"},
    {"002", "POST", "/api/v1/accounts/token/refresh/", "auth.refresh_access"},
    {"002", "POST", "/api/v1/accounts/logout/", "auth.logout"},
    {"003", "PUT", "/api/auth/profile/", "profile.update_user"},
    {"003", "GET", "/api/users/", "profile.list"},
    {"004", "GET", "/profile/", "profile.me"},
    {"004", "PUT", "/profile/", "profile.update_user"},
    {"004", "POST", "/orders/", "order.place"},
    {"004", "GET", "/orders/", "order.list"},
    {"004", "GET", "/orders/5/", "order.get"},
    {"004", "POST", "/payments/", "payment.initiate"},
    {"004", "PUT", "/payments/5/", "payment.set_status"},
    {"004", "POST", "/auth/registration/", "auth.signup"},
    {"004", "POST", "/auth/login/", "auth.login"},
    {"004", "POST", "/auth/logout/", "auth.logout"},
    {"004", "GET", "/auth/user/", "profile.me"},
    {"004", "PUT", "/auth/user/", "profile.update_user"},
    {"004", "POST", "/auth/password/change/", "auth.change_password"},
    {"004", "POST", "/auth/token/refresh/", "auth.refresh"},
};

static void every_documented_route_is_there(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof documented / sizeof *documented; i++) {
        const struct alias *a = &documented[i];
        struct br_match m;
        if (br_routes_match(a->method, a->path, &m) != BR_MATCH_OK)
            fail_msg("%s: %s %s does not match", a->system, a->method, a->path);
        if (strcmp(m.route->command, a->command) != 0)
            fail_msg("%s %s: %s, expected %s", a->method, a->path, m.route->command, a->command);
    }
}

/* A unified row's command path stays the one workers link to. */
static void aliases_are_never_the_canonical_path(void **state)
{
    (void)state;
    assert_string_equal(br_routes_find(NULL, "order.list", "GET")->pattern, "/api/orders/");
    assert_string_equal(br_routes_find(NULL, "admin.list", "GET")->pattern, "/api/admin/users/");
    assert_null(br_routes_find(NULL, "profile.update_user", "PUT"));
}

static const struct br_variant *variant_of(const char *method, const char *path)
{
    struct br_match m;
    assert_int_equal(br_routes_match(method, path, &m), BR_MATCH_OK);
    return m.route->variant;
}

static void renames_both_ways(void **state)
{
    (void)state;
    const struct br_variant *v = variant_of("PUT", "/profile/");
    json_t *args = json_pack("{s:s, s:s, s:s, s:s}", "profile_img", "x", "profile_img_filename",
                             "a.png", "profile_img_content_type", "image/png", "email", "e@x.io");
    struct br_file *f = calloc(1, sizeof *f);
    f->name = strdup("profile_img");
    const char *cmd = "profile.update_user";
    const struct br_variant *rv;
    json_t *err;
    assert_int_equal(br_variant_request(v, args, f, &cmd, &rv, &err), 0);
    assert_string_equal(cmd, "profile.update_user");
    assert_ptr_equal(rv, v);
    assert_null(json_object_get(args, "profile_img"));
    assert_string_equal(json_string_value(json_object_get(args, "profile_picture_filename")),
                        "a.png");
    assert_non_null(json_object_get(args, "profile_picture_content_type"));
    assert_string_equal(f->name, "profile_picture");
    br_request_free_files(f);
    json_decref(args);

    /* the reply: top level and one level down, errors included */
    json_t *body = json_pack("{s:s, s:{s:s}, s:[s]}", "profile_picture", "http://m/1", "inner",
                             "profile_picture", "u", "list", "profile_picture");
    br_variant_reply(v, body);
    assert_string_equal(json_string_value(json_object_get(body, "profile_img")), "http://m/1");
    assert_null(json_object_get(body, "profile_picture"));
    assert_non_null(json_object_get(json_object_get(body, "inner"), "profile_img"));
    json_decref(body);

    /* theirs wins when both are sent */
    v = variant_of("PUT", "/api/auth/profile/");
    args = json_pack("{s:s, s:s}", "bio", "theirs", "about", "ours");
    assert_int_equal(br_variant_request(v, args, NULL, &cmd, &rv, &err), 0);
    assert_string_equal(json_string_value(json_object_get(args, "about")), "theirs");
    assert_null(json_object_get(args, "bio"));
    json_decref(args);
}

static void lift(void **state)
{
    (void)state;
    const struct br_variant *v = variant_of("POST", "/api/v1/accounts/token/");
    json_t *body = json_pack("{s:s, s:s, s:{s:i, s:s, s:s, s:b, s:b, s:s}}", "access", "a",
                             "refresh", "r", "user", "id", 1, "email", "a@b.io", "full_name",
                             "Ada L", "is_staff", 0, "is_superuser", 0, "username", "ada");
    br_variant_reply(v, body);
    assert_null(json_object_get(body, "user"));
    assert_int_equal(json_object_size(body), 6);
    assert_string_equal(json_string_value(json_object_get(body, "full_name")), "Ada L");
    json_decref(body);

    /* simplejwt's pair alone */
    v = variant_of("POST", "/api/token/");
    body = json_pack("{s:s, s:s, s:{s:i}}", "access", "a", "refresh", "r", "user", "id", 1);
    br_variant_reply(v, body);
    assert_int_equal(json_object_size(body), 2);
    json_decref(body);
}

static void dispatch(void **state)
{
    (void)state;
    const struct br_variant *v = variant_of("POST", "/user/");
    const char *cmd = "auth.register";
    const struct br_variant *rv;
    json_t *err;
    json_t *args =
        json_pack("{s:s, s:s, s:s}", "action", "login", "email", "a@b.io", "password", "pw");
    assert_int_equal(br_variant_request(v, args, NULL, &cmd, &rv, &err), 0);
    assert_string_equal(cmd, "auth.login");
    assert_non_null(rv);
    json_decref(args);

    args = json_pack("{s:s, s:s}", "action", "register", "password", "pw");
    assert_int_equal(br_variant_request(v, args, NULL, &cmd, &rv, &err), 0);
    assert_string_equal(cmd, "auth.register_email");
    assert_null(rv); /* our reply as it is */
    json_decref(args);

    args = json_pack("{s:s}", "action", "dance");
    assert_int_equal(br_variant_request(v, args, NULL, &cmd, &rv, &err), 400);
    assert_string_equal(json_string_value(json_array_get(json_object_get(err, "action"), 0)),
                        "\"dance\" is not a valid choice.");
    json_decref(err);
    json_decref(args);

    args = json_object();
    assert_int_equal(br_variant_request(v, args, NULL, &cmd, &rv, &err), 400);
    assert_non_null(json_object_get(err, "action"));
    json_decref(err);
    json_decref(args);

    json_t *actions = br_variant_actions(variant_of("GET", "/user/"));
    assert_string_equal(json_string_value(json_object_get(actions, "register")), "action=register");
    assert_string_equal(json_string_value(json_object_get(actions, "login")), "action=login");
    json_decref(actions);
    assert_null(br_variant_actions(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_documented_route_is_there),
        cmocka_unit_test(aliases_are_never_the_canonical_path),
        cmocka_unit_test(renames_both_ways),
        cmocka_unit_test(lift),
        cmocka_unit_test(dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
