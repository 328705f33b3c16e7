/* The broker nodes a process connects to
 * (amqp_nodes, else amqp_host:amqp_port), and which queue serves a command. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/amqp.h"
#include "shared/config.h"

extern char **environ;

/* Loads text as the configuration, with no BACKEND_* variable in the way. */
static void load(const char *text)
{
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "BACKEND_", 8) == 0) {
                char name[128];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                unsetenv(name);
                again = 1;
                break;
            }
    }
    char path[] = "/tmp/bk-amqp-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    assert_int_equal(bk_config_load(path), 0);
    unlink(path);
}

static void one_node_without_amqp_nodes(void **state)
{
    (void)state;
    struct bk_amqp_node n[BK_CONFIG_MAX_NODES];
    load("amqp_host = rabbit.example.com\namqp_port = 5999\n");
    assert_int_equal(bk_amqp_nodes(n, BK_CONFIG_MAX_NODES), 1);
    assert_string_equal(n[0].host, "rabbit.example.com");
    assert_int_equal(n[0].port, 5999);
}

static void amqp_nodes_replaces_host_and_port(void **state)
{
    (void)state;
    struct bk_amqp_node n[BK_CONFIG_MAX_NODES];
    load("amqp_port = 5999\namqp_nodes = 127.0.0.1:5675, rabbit-2:5672,[::1]:5677\n");
    assert_int_equal(bk_amqp_nodes(n, BK_CONFIG_MAX_NODES), 3);
    assert_string_equal(n[0].host, "127.0.0.1");
    assert_int_equal(n[0].port, 5675);
    assert_string_equal(n[1].host, "rabbit-2");
    assert_int_equal(n[1].port, 5672);
    assert_string_equal(n[2].host, "::1"); /* without its brackets, for getaddrinfo */
    assert_int_equal(n[2].port, 5677);
    assert_int_equal(bk_amqp_nodes(n, 2), -1); /* more than fit */
    bk_config_free();
}

static void queue_for_command(void **state)
{
    (void)state;
    assert_string_equal(bk_amqp_queue_for("order.place")->queue, "order.commands");
    assert_string_equal(bk_amqp_queue_for("education.create")->queue, "profile.commands");
    assert_null(bk_amqp_queue_for("nothing.here"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_node_without_amqp_nodes),
        cmocka_unit_test(amqp_nodes_replaces_host_and_port),
        cmocka_unit_test(queue_for_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
