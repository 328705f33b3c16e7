/* The bridge's guard: the framing verdict (RFC 9112 section 6.3) and the
 * per-caller count of commands in flight. The watchdog is tried end to end
 * in tests/integration/test_bounds.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "workers/bridge/guard.c"

/* The verdict for the header fields given as "Name: value" strings. */
static unsigned verdict(const char *const *fields, const char **why)
{
    struct br_framing f = {0};
    for (; *fields; fields++) {
        const char *colon = strchr(*fields, ':');
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        br_guard_framing_add(&f, *fields, (size_t)(colon - *fields), v, strlen(v));
    }
    return br_guard_framing_verdict(&f, why);
}

#define VERDICT(...) verdict((const char *const[]){__VA_ARGS__, NULL}, &why)

static void framing_accepted(void **state)
{
    const char *why;
    assert_int_equal(verdict((const char *const[]){NULL}, &why), 0);
    assert_int_equal(VERDICT("Content-Length: 42"), 0);
    assert_int_equal(VERDICT("content-length: 42", "Content-Length: 42"), 0);
    assert_int_equal(VERDICT("Content-Length: 42, 42"), 0); /* RFC 9110 section 8.6 */
    assert_int_equal(VERDICT("Transfer-Encoding: chunked"), 0);
    assert_int_equal(VERDICT("TRANSFER-ENCODING: Chunked"), 0);
    assert_int_equal(VERDICT("Transfer-Encoding: , chunked ,"), 0); /* empty elements */
    assert_int_equal(VERDICT("Content-Type: text/plain, chunked", "Host: a"), 0);
    assert_null(why);
}

static void framing_refused(void **state)
{
    const char *why;
    assert_int_equal(VERDICT("Content-Length: 5", "Transfer-Encoding: chunked"), 400);
    assert_non_null(strstr(why, "Content-Length and Transfer-Encoding"));
    assert_int_equal(VERDICT("Transfer-Encoding: chunked", "Content-Length: 0"), 400);
    assert_int_equal(VERDICT("Content-Length: 2", "Content-Length: 60"), 400);
    assert_non_null(strstr(why, "conflicting Content-Length"));
    assert_int_equal(VERDICT("Content-Length: 2, 60"), 400);
    assert_int_equal(VERDICT("Content-Length: 2,"), 400);
    assert_int_equal(VERDICT("Content-Length: -1"), 400);
    assert_int_equal(VERDICT("Content-Length: +2"), 400);
    assert_int_equal(VERDICT("Content-Length: 0x10"), 400);
    assert_int_equal(VERDICT("Content-Length: "), 400);
    assert_int_equal(VERDICT("Content-Length: 12345678901234567890"), 400); /* 20 digits */
    assert_int_equal(VERDICT("Transfer-Encoding: gzip"), 400);
    assert_non_null(strstr(why, "does not end with chunked"));
    assert_int_equal(VERDICT("Transfer-Encoding: chunked, gzip"), 400);
    assert_int_equal(VERDICT("Transfer-Encoding: "), 400);
    assert_int_equal(VERDICT("Transfer-Encoding: gzip, chunked"), 501);
    assert_int_equal(VERDICT("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), 501);
    assert_int_equal(VERDICT("Transfer-Encoding: chunkedx"), 400);
}

static void callers_counted_per_caller(void **state)
{
    assert_int_equal(br_guard_callers_init(2, 100), 0);
    assert_true(br_guard_caller_take("10.0.0.1"));
    assert_true(br_guard_caller_take("10.0.0.1"));
    assert_false(br_guard_caller_take("10.0.0.1")); /* the third */
    assert_true(br_guard_caller_take("10.0.0.2"));  /* another caller */
    br_guard_caller_put("10.0.0.1");
    assert_true(br_guard_caller_take("10.0.0.1"));
    assert_false(br_guard_caller_take("10.0.0.1"));
    br_guard_caller_put("10.0.0.1");
    br_guard_caller_put("10.0.0.1");
    br_guard_caller_put("10.0.0.2");
    assert_int_equal(cs.used, 0);
    br_guard_caller_put("10.0.0.9"); /* never taken: ignored */
    br_guard_callers_free();
}

/* Many callers in a small table: collisions, wrap-around and deletions must
 * keep every count findable; a full table refuses instead of growing. */
static void callers_table_stays_consistent(void **state)
{
    assert_int_equal(br_guard_callers_init(3, 32), 0); /* 64 slots, 48 callers at most */
    char key[32];
    int taken = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "caller-%d", i);
        taken += br_guard_caller_take(key);
    }
    assert_int_equal(taken, 48);
    assert_int_equal(cs.used, 48);
    /* free every other one, then each remaining one must still be found */
    for (int i = 0; i < 48; i += 2) {
        snprintf(key, sizeof key, "caller-%d", i);
        br_guard_caller_put(key);
    }
    assert_int_equal(cs.used, 24);
    for (int i = 1; i < 48; i += 2) {
        snprintf(key, sizeof key, "caller-%d", i);
        assert_true(br_guard_caller_take(key));  /* 2 of 3 */
        assert_true(br_guard_caller_take(key));  /* 3 of 3 */
        assert_false(br_guard_caller_take(key)); /* found, at its limit */
    }
    assert_int_equal(cs.used, 24);
    for (int i = 1; i < 48; i += 2) {
        snprintf(key, sizeof key, "caller-%d", i);
        for (int k = 0; k < 3; k++)
            br_guard_caller_put(key);
    }
    assert_int_equal(cs.used, 0);
    for (size_t i = 0; i <= cs.mask; i++)
        assert_int_equal(cs.t[i].n, 0);
    br_guard_callers_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(framing_accepted),
        cmocka_unit_test(framing_refused),
        cmocka_unit_test(callers_counted_per_caller),
        cmocka_unit_test(callers_table_stays_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
