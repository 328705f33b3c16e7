/* The broker nodes a process connects to
 * (amqp_nodes, else amqp_host:amqp_port), and which queue serves a command. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shared/amqp.h"
#include "shared/config.h"
#include "tests/unit/unit_env.h"

/* Loads text as the configuration, with no BACKEND_* variable in the way. */
static void load(const char *text)
{
    unit_clear_backend_env();
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

/* A TCP socket listening on a free loopback port, never accepting: a connect
 * to it succeeds and then nothing answers (a hung broker node). */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Neither a closed port nor a node that accepts and never answers holds a
 * connect for longer than amqp_connect_timeout_ms each. */
static void dead_and_hung_nodes_are_skipped_in_bounded_time(void **state)
{
    (void)state;
    int closed_port, hung_port;
    close(listener(&closed_port)); /* nothing listens there any more */
    int hung = listener(&hung_port);
    char conf[256];
    snprintf(conf, sizeof conf,
             "amqp_nodes = 127.0.0.1:%d,127.0.0.1:%d\namqp_connect_timeout_ms = 300\n"
             "log_level = error\n",
             closed_port, hung_port);
    load(conf);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_null(bk_amqp_connect("test", 0));
    assert_null(bk_amqp_connect("test", 0)); /* the next connect starts elsewhere, same end */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* two connects, each refused at once by one node and timed out by the other */
    assert_true(s >= 0.55 && s < 3.0);
    close(hung);
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
        cmocka_unit_test(dead_and_hung_nodes_are_skipped_in_bounded_time),
        cmocka_unit_test(queue_for_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
