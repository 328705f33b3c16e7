/* Configuration: the file's values, and BACKEND_* variables winning over them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shared/config.h"

static char path[64];

static int setup(void **state)
{
    snprintf(path, sizeof path, "/tmp/bk-config-XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\n\namqp_port = 5999\nname =  spaced value  \nnum = 12x\n");
    fclose(f);
    unsetenv("BACKEND_AMQP_PORT");
    return bk_config_load(path);
}

static int teardown(void **state)
{
    bk_config_free();
    unlink(path);
    return 0;
}

static void file_values_and_defaults(void **state)
{
    assert_int_equal(bk_config_long("amqp_port", 1), 5999);
    assert_string_equal(bk_config_str("name", NULL), "spaced value");
    assert_string_equal(bk_config_str("missing", "dflt"), "dflt");
    assert_int_equal(bk_config_long("num", 3), 3); /* not a number: the default */
}

static void environment_wins(void **state)
{
    setenv("BACKEND_AMQP_PORT", "6000", 1);
    assert_int_equal(bk_config_long("amqp_port", 1), 6000);
    setenv("BACKEND_NEW_KEY", "x", 1);
    assert_string_equal(bk_config_str("new_key", NULL), "x");
    unsetenv("BACKEND_AMQP_PORT");
    unsetenv("BACKEND_NEW_KEY");
    assert_int_equal(bk_config_long("amqp_port", 1), 5999);
}

static void malformed_file_is_refused(void **state)
{
    char bad[64];
    snprintf(bad, sizeof bad, "/tmp/bk-config-XXXXXX");
    int fd = mkstemp(bad);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "no equals sign here\n");
    fclose(f);
    assert_int_equal(bk_config_load(bad), -1);
    assert_int_equal(bk_config_load("/nonexistent/backend.conf"), -1);
    unlink(bad);
    assert_int_equal(bk_config_load(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_values_and_defaults),
        cmocka_unit_test(environment_wins),
        cmocka_unit_test(malformed_file_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
