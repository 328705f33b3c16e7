/* shared/password.c: Django 3.2's four default validators (expected messages
 * checked against Django 3.2.25's own validators) and argon2id hashing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/password.h"

#define SIMILAR_USERNAME "The password is too similar to the username."
#define SIMILAR_FIRST    "The password is too similar to the first name."
#define SIMILAR_LAST     "The password is too similar to the last name."
#define SIMILAR_EMAIL    "The password is too similar to the email address."
#define SHORT            "This password is too short. It must contain at least 8 characters."
#define COMMON           "This password is too common."
#define NUMERIC          "This password is entirely numeric."

struct vcase {
    const char *password, *username, *email, *first_name, *last_name;
    const char *want[5]; /* NULL-terminated, in Django's order */
};

static const struct vcase cases[] = {
    /* similarity: the first matching attribute only, in Django's attribute order */
    {"johnsmith1", "johnsmith", "john.smith@example.com", "John", "Smith", {SIMILAR_USERNAME}},
    {"johnsmith1", "johnsmith", NULL, NULL, NULL, {SIMILAR_USERNAME}},
    {"cooperalice", "ac", "alice.cooper@example.com", NULL, NULL, {SIMILAR_EMAIL}},
    {"Bartholomew9", "zz", "z@example.com", "Bartholomew", "Q", {SIMILAR_FIRST}},
    {"vanderwaals7", "zz", "z@example.com", "Q", "Van der Waals", {SIMILAR_LAST}},
    {"correct-horse-battery", "johnsmith", "john.smith@example.com", "John", "Smith", {NULL}},
    {"johnsmithjohnsmithjohnsmith", "johnsmith", NULL, NULL, NULL, {NULL}},
    {"qwertyuiopasdfghjklz", "q", NULL, NULL, NULL, {NULL}},
    /* case-insensitive, also beyond ASCII: "ÉMILIE2024" vs "émilie" */
    {"\xc3\x89MILIE2024", "\xc3\xa9milie", NULL, NULL, NULL, {SIMILAR_USERNAME}},
    /* Django's quirk: an empty part ("john." splits into "john", "") matches "" */
    {"", "john.", NULL, NULL, NULL, {SIMILAR_USERNAME, SHORT}},
    /* length */
    {"ab1!xz", "johnsmith", NULL, NULL, NULL, {SHORT}},
    {"", NULL, NULL, NULL, NULL, {SHORT}},
    {"\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4",
     NULL,
     NULL,
     NULL,
     NULL,
     {NULL}}, /* 8 code points, 16 bytes */
    {"\xc3\xa4\xc3\xb6\xc3\xbc", NULL, NULL, NULL, NULL, {SHORT}},
    /* common: lowercased and stripped first */
    {"password123", NULL, NULL, NULL, NULL, {COMMON}},
    {"PassWord123", NULL, NULL, NULL, NULL, {COMMON}},
    {"  password123\t", NULL, NULL, NULL, NULL, {COMMON}},
    {"Tr0ub4dor&3x!", NULL, NULL, NULL, NULL, {NULL}},
    /* numeric: str.isdigit(), superscripts and other scripts' digits too */
    {"83729461052", NULL, NULL, NULL, NULL, {NUMERIC}},
    {"\xc2\xb2\xc2\xb3\xc2\xb9\xc2\xb2\xc2\xb3\xc2\xb9\xc2\xb2\xc2\xb3\xc2\xb9",
     NULL,
     NULL,
     NULL,
     NULL,
     {NUMERIC}},
    {"\xd9\xa3\xd9\xa4\xd9\xa3\xd9\xa4\xd9\xa3\xd9\xa4\xd9\xa3\xd9\xa4",
     NULL,
     NULL,
     NULL,
     NULL,
     {NUMERIC}},
    /* several at once, in Django's validator order */
    {"12345", NULL, NULL, NULL, NULL, {SHORT, COMMON, NUMERIC}},
    {"12345", "12345", NULL, NULL, NULL, {SIMILAR_USERNAME, SHORT, COMMON, NUMERIC}},
};

static void test_validators(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct vcase *c = &cases[i];
        json_t *errors = json_array();
        assert_non_null(errors);
        int n = bk_password_validate(c->password, c->username, c->email, c->first_name,
                                     c->last_name, errors);
        size_t want = 0;
        while (want < 5 && c->want[want])
            want++;
        if (n != (int)want || json_array_size(errors) != want)
            fail_msg("case %zu (%s): %d failures, want %zu", i, c->password, n, want);
        for (size_t k = 0; k < want; k++) {
            const char *got = json_string_value(json_array_get(errors, k));
            if (!got || strcmp(got, c->want[k]) != 0)
                fail_msg("case %zu (%s) message %zu: got \"%s\", want \"%s\"", i, c->password, k,
                         got ? got : "(none)", c->want[k]);
        }
        json_decref(errors);
    }
}

static void test_validate_appends_and_counts(void **state)
{
    (void)state;
    json_t *errors = json_pack("[s]", "already here");
    assert_int_equal(bk_password_validate("12345", NULL, NULL, NULL, NULL, errors), 3);
    assert_int_equal(json_array_size(errors), 4);
    assert_string_equal(json_string_value(json_array_get(errors, 0)), "already here");
    json_decref(errors);
    /* no array: only the count */
    assert_int_equal(bk_password_validate("12345", "", "", "", "", NULL), 3);
    assert_int_equal(bk_password_validate("a sound passphrase", NULL, NULL, NULL, NULL, NULL), 0);
    /* bytes that are not UTF-8 do not crash and count one each */
    assert_int_equal(bk_password_validate("\xff\xfe\xc3", "\xc3", NULL, NULL, NULL, NULL), 1);
}

static void test_common_list(void **state)
{
    (void)state;
    assert_int_equal(bk_password_load_common("/nonexistent/list.gz"), 0); /* already loaded */
    json_t *errors = json_array();
    /* entries checked to be in data/common-passwords.txt.gz */
    const char *listed[] = {"qwerty123", "letmein1", "iloveyou", "abcdefgh"};
    for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++) {
        json_array_clear(errors);
        assert_int_equal(bk_password_validate(listed[i], NULL, NULL, NULL, NULL, errors), 1);
        assert_string_equal(json_string_value(json_array_get(errors, 0)), COMMON);
    }
    json_decref(errors);
}

static void test_hash_verify(void **state)
{
    (void)state;
    char hash[crypto_pwhash_STRBYTES];
    /* no configuration (or one below the floor, which bk_config_load refuses
     * anyway): t = 2, m = 19 MiB */
    bk_config_free();
    assert_int_equal(bk_password_hash("correct horse battery staple", hash), 0);
    assert_true(strncmp(hash, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_int_equal(bk_password_verify(hash, "correct horse battery staple"), 0);
    assert_int_equal(bk_password_verify(hash, "correct horse battery stapl"), -1);
    assert_int_equal(bk_password_verify(hash, ""), -1);

    char hash2[crypto_pwhash_STRBYTES];
    assert_int_equal(bk_password_hash("correct horse battery staple", hash2), 0);
    assert_string_not_equal(hash, hash2); /* salted */

    setenv("BACKEND_ARGON2_OPSLIMIT", "3", 1);
    assert_int_equal(bk_config_load(NULL), 0);
    assert_int_equal(bk_password_hash("p\xc3\xa4ss", hash), 0);
    assert_true(strncmp(hash, "$argon2id$v=19$m=19456,t=3,p=1$", 31) == 0);
    assert_int_equal(bk_password_verify(hash, "p\xc3\xa4ss"), 0);
    unsetenv("BACKEND_ARGON2_OPSLIMIT");
    bk_config_free();

    assert_int_equal(bk_password_verify("", "x"), -1);
    assert_int_equal(bk_password_verify("pbkdf2_sha256$260000$salt$hash", "x"), -1);
    assert_int_equal(bk_password_verify(NULL, "x"), -1);
    assert_int_equal(bk_password_hash(NULL, hash), -1);
}

static int setup(void **state)
{
    (void)state;
    return bk_password_load_common("data/common-passwords.txt.gz");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validators),
        cmocka_unit_test(test_validate_appends_and_counts),
        cmocka_unit_test(test_common_list),
        cmocka_unit_test(test_hash_verify),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
