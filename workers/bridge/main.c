/* The HTTP bridge: HTTP/JSON in, MessagePack commands out, replies back.
 * It knows routes (routes.c), not rules, and never touches PostgreSQL.
 *
 *   routes.c   the route table and matcher (the only place naming a route)
 *   request.c  header checks, JSON body, command envelope (pure functions)
 *   http.c     libmicrohttpd: epoll thread(s), suspend while a command is out
 *   rpc.c      the AMQP thread: publish (confirmed, mandatory), direct
 *              reply-to demux, timeouts, consumer counts, reconnect with backoff
 *   guard.c    what one client cannot do to the others: ambiguous framing,
 *              commands in flight per caller, late headers (a watchdog)
 *   openapi.c  /api/openapi.json, generated from the table
 *   static.c   files of the BR_STATIC routes (Swagger UI at /api/docs/): path
 *              checks, content types, ETags
 *
 * Health: GET /api/health/ (readiness) reports the broker and the consumer
 * count of each worker queue, both kept by the AMQP thread, and "database"
 * from a "<worker>.health" probe sent to a queue with a consumer (the worker
 * runtime answers it with SELECT 1), so the bridge reports the database
 * without a connection of its own. 200 {"status": "ok", "checks": {...}}
 * only when the broker, the database and every worker queue are up; else 503
 * with the same body naming what is down (see health_body in http.c). The
 * probe waits at most http_health_timeout_ms. GET /api/health/live
 * (liveness) answers 200 while this process serves, asking nobody.
 *
 * Every request ends with one JSON access line in the log (method, route
 * pattern, status, duration, bytes, request id, caller, command, client);
 * the request id (X-Request-ID, validated, else minted) goes to the worker
 * as the x-request-id header and comes back on the response.
 *
 * Shutdown (SIGTERM, SIGINT): stop accepting, let the commands in flight get
 * their replies (up to http_timeout_ms), answer what is left with 503, stop. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/util.h"
#include "workers/bridge/http.h"
#include "workers/bridge/rpc.h"

/* Connections need descriptors: use the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    int status = 1;
    if (bk_config_load(NULL) != 0)
        return 1;
    bk_log_init("bridge");
    raise_fd_limit();

    /* Every thread inherits this mask, so the signals reach sigwait below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* All config reads happen here, before the threads: bk_config_str caches
     * environment values and is not thread-safe. The HTTP side starts first;
     * it answers 503 until the AMQP thread has connected. */
    long drain_ms = bk_config_long("http_timeout_ms") + 500;
    if (br_http_start() != 0)
        goto out;
    if (br_rpc_start() != 0) {
        br_http_stop();
        goto out;
    }

    int sig = 0;
    sigwait(&stop, &sig);
    bk_log(BK_INFO, NULL, "signal %d: stopping", sig);
    br_http_quiesce();
    int64_t until = bk_mono_ms() + drain_ms;
    while (br_rpc_inflight() > 0 && bk_mono_ms() < until)
        usleep(10 * 1000);
    br_rpc_stop();
    usleep(50 * 1000); /* let the last resumed connections send their answers */
    br_http_stop();
    bk_log(BK_INFO, NULL, "stopped");
    status = 0;
out:
    bk_config_free();
    return status;
}
