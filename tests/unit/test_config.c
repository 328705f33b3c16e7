/* Configuration: declared keys, the file's values, BACKEND_* variables winning
 * over them, and every kind of bad value refused at load. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/config.h"
#include "tests/unit/unit_env.h"

static char path[64];

/* Writes text to a new temporary file whose name goes to out. */
static void write_conf(char *out, size_t n, const char *text)
{
    snprintf(out, n, "/tmp/bk-config-XXXXXX");
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

/* No BACKEND_* variable (scripts/test exports the instance's) may decide
 * what these tests see. */
static int setup(void **state)
{
    unit_clear_backend_env();
    write_conf(path, sizeof path, "# comment\n\namqp_port = 5999\namqp_vhost =  spaced value  \n");
    return bk_config_load(path);
}

static int teardown(void **state)
{
    unit_clear_backend_env();
    bk_config_free();
    unlink(path);
    return 0;
}

static void file_values_and_defaults(void **state)
{
    assert_int_equal(bk_config_long("amqp_port"), 5999);
    assert_string_equal(bk_config_str("amqp_vhost"), "spaced value");
    assert_int_equal(bk_config_long("http_port"), 8000); /* the declared default */
    assert_string_equal(bk_config_str("log_level"), "info");
    assert_false(bk_config_set("auth_copies")); /* no default: unset */
    assert_true(bk_config_set("worker_copies"));
    assert_string_equal(bk_config_str("no_such_key"), ""); /* a bug, logged */
}

static void environment_wins(void **state)
{
    setenv("BACKEND_AMQP_PORT", "6000", 1);
    assert_int_equal(bk_config_load(path), 0);
    assert_int_equal(bk_config_long("amqp_port"), 6000);
    unsetenv("BACKEND_AMQP_PORT");
    assert_int_equal(bk_config_load(path), 0);
    assert_int_equal(bk_config_long("amqp_port"), 5999);
}

/* Loads text as a config file and expects it to be refused. */
static void refused(const char *text)
{
    char bad[64];
    write_conf(bad, sizeof bad, text);
    assert_int_equal(bk_config_load(bad), -1);
    unlink(bad);
}

static void bad_values_are_refused(void **state)
{
    refused("no equals sign here\n");
    refused("http_port = abc\n");
    refused("http_port = 0\n");
    refused("http_port = 65536\n");
    refused("http_port = 80 80\n");
    refused("http_timeout_ms = 5s\n");
    refused("amqp_prefetch = 0\n");
    refused("worker_copies = 99999999999999999999999\n");
    refused("log_level = verbose\n");
    refused("public_base_url = ftp://example.com\n");
    refused("public_base_url = https://example.com/\n");
    refused("public_base_url = https://example.com/?q\n");
    refused("cors_allowed_origins = https://app.example.com/path\n");
    refused("allowed_hosts = evil/example\n");
    refused("http_prot = 8000\n"); /* unknown key */
    refused("amqp_nodes = 127.0.0.1\n");
    refused("amqp_nodes = 127.0.0.1:0\n");
    refused("amqp_nodes = 127.0.0.1:65536\n");
    refused("amqp_nodes = :5672\n");
    refused("amqp_nodes = a:1,b:x\n");
    refused("amqp_nodes = host/x:5672\n");
    refused("amqp_nodes = [::1:5672\n");
    refused("amqp_nodes = a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9,a:10,a:11,a:12,a:13,a:14,a:15,"
            "a:16,a:17\n"); /* more than BK_CONFIG_MAX_NODES */
    refused("amqp_connect_timeout_ms = 10\n");
    refused("amqp_heartbeat_s = 0\n");
    assert_int_equal(bk_config_load("/nonexistent/backend.conf"), -1);

    char ok[64];
    write_conf(ok, sizeof ok,
               "public_base_url = https://api.example.com/v1\n"
               "cors_allowed_origins = https://a.example.com, http://localhost:3000\n"
               "allowed_hosts = api.example.com .example.org *\n"
               "log_level = warning\n"
               "amqp_nodes = 127.0.0.1:5675, rabbit-2.example.com:5672,[::1]:5677\n");
    assert_int_equal(bk_config_load(ok), 0);
    assert_string_equal(bk_config_str("public_base_url"), "https://api.example.com/v1");
    unlink(ok);
}

static void bad_environment_is_refused(void **state)
{
    setenv("BACKEND_HTTP_PORT", "abc", 1);
    assert_int_equal(bk_config_load(path), -1);
    unsetenv("BACKEND_HTTP_PORT");
    setenv("BACKEND_HTTP_PROT", "8000", 1); /* unknown variable */
    assert_int_equal(bk_config_load(path), -1);
    unsetenv("BACKEND_HTTP_PROT");
    setenv("BACKEND_LOG_LEVEL", "loud", 1);
    assert_int_equal(bk_config_load(path), -1);
    unsetenv("BACKEND_LOG_LEVEL");
    assert_int_equal(bk_config_load(path), 0);
}

static void nearest_key(void **state)
{
    assert_string_equal(bk_config_nearest("http_prot"), "http_port");
    assert_string_equal(bk_config_nearest("amqp_pasword"), "amqp_password");
    assert_null(bk_config_nearest("completely_unrelated_thing"));
}

static void print_masks_secrets(void **state)
{
    char out[64];
    write_conf(out, sizeof out,
               "db_conninfo = host=x password=s3cret dbname=y\namqp_password = hunter2\n");
    assert_int_equal(bk_config_load(out), 0);
    char buf[16384] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    bk_config_print(f);
    fclose(f);
    assert_null(strstr(buf, "s3cret"));
    assert_null(strstr(buf, "hunter2"));
    assert_non_null(strstr(buf, "host=x password=*** dbname=y"));
    assert_non_null(strstr(buf, "# file "));
    assert_non_null(strstr(buf, "# default"));
    unlink(out);
    assert_int_equal(bk_config_load(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_values_and_defaults),
        cmocka_unit_test(environment_wins),
        cmocka_unit_test(bad_values_are_refused),
        cmocka_unit_test(bad_environment_is_refused),
        cmocka_unit_test(nearest_key),
        cmocka_unit_test(print_masks_secrets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
