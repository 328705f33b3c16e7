/* libFuzzer harness: any bytes as a multipart upload through the bridge's
 * own HTTP code (workers/bridge/http.c, compiled in whole: on_uri,
 * on_request, on_headers, on_data with libmicrohttpd's post processor,
 * on_part, form_args, on_complete, br_request_pack, dispatch, the answer
 * and on_completed), served by an in-process libmicrohttpd daemon without a
 * listening socket, fed one connection per input over a socketpair and run
 * from this thread (MHD_run), so every input is one whole request and its
 * answer.
 *
 * The input: its first line is the Content-Type header's value, the rest
 * the body of a POST to /api/certificates/ (an upload route; Content-Length
 * exact, Connection: close). The AMQP side is stubbed: br_rpc_submit checks
 * that the envelope the bridge would publish decodes with the workers'
 * bounded decoder, then answers "unavailable" (503), so nothing is
 * published. Checked: the bridge answers every request, with 400, 413, 415
 * or (forwarded) 503 and never a 5xx of its own; what it forwards decodes;
 * ASan/UBSan and LeakSanitizer over all of it. */
#include <errno.h>
#include <poll.h>

#include "workers/bridge/http.c"

/* ---- the AMQP side, stubbed ------------------------------------------------ */

static int forwarded;

int br_rpc_submit(struct br_call *call)
{
    msgpack_unpacked u;
    const char *why;
    if (bk_codec_unpack(call->body.data, call->body.size, &u, &why) != 0) {
        fprintf(stderr, "the bridge forwarded what a worker cannot read: %s\n", why);
        abort();
    }
    msgpack_unpacked_destroy(&u);
    forwarded++;
    call->done(call, BR_RPC_UNAVAILABLE, NULL);
    return 0;
}

bool br_rpc_ready(const char *command)
{
    (void)command;
    return true;
}

void br_rpc_health(struct br_rpc_health *h)
{
    memset(h, 0, sizeof *h);
}

int br_rpc_inflight(void)
{
    return 0;
}

/* ---- the daemon -------------------------------------------------------------- */

#define ROUTE      "/api/certificates/"
#define MAX_CT     512
#define MAX_ANSWER (64 * 1024)

static struct MHD_Daemon *daemon_init(void)
{
    /* quiet: an access line per input would cost more than the request */
    setenv("BACKEND_LOG_LEVEL", "error", 1);
    if (bk_config_load("/dev/null") == 0)
        bk_log_init("fuzz");
    hs.timeout_ms = 1000;
    hs.health_timeout_ms = 1000;
    hs.max_json = 64 * 1024;
    hs.max_upload = 2048; /* below -max_len: the 413 path is reached too */
    hs.retry_after_s = 1;
    snprintf(hs.retry_after, sizeof hs.retry_after, "1");
    snprintf(hs.default_host, sizeof hs.default_host, "localhost:8000");
    if (br_policy_list_parse("localhost", &hs.hosts) < 0 || br_guard_callers_init(4, 16) != 0)
        abort();
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024), MHD_OPTION_END);
    if (!d)
        abort();
    return d;
}

/* Writes all of buf to the non-blocking fd while running the daemon (a
 * request larger than the socket buffer needs the daemon to read). */
static void put(struct MHD_Daemon *d, int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w > 0) {
            buf += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return; /* the bridge closed early (an answer before the body): fine */
        }
        MHD_run(d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct MHD_Daemon *d;
    if (!d)
        d = daemon_init();

    const char *nl = memchr(data, '\n', size < MAX_CT ? size : MAX_CT);
    if (!nl)
        return 0;
    size_t ct_len = (size_t)(nl - (const char *)data);
    const char *body = nl + 1;
    size_t body_len = size - ct_len - 1;

    char head[MAX_CT + 256];
    int hn = snprintf(head, sizeof head,
                      "POST " ROUTE " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                      "Content-Type: %.*s\r\nContent-Length: %zu\r\n\r\n",
                      (int)ct_len, (const char *)data, body_len);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
    /* the bridge reads the peer's address: a client on loopback */
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (MHD_add_connection(d, sv[1], (const struct sockaddr *)&peer, sizeof peer) != MHD_YES)
        abort();
    forwarded = 0;
    put(d, sv[0], head, (size_t)hn);
    put(d, sv[0], body, body_len);

    static char answer[MAX_ANSWER];
    size_t got = 0;
    bool eof = false;
    /* Connection: close: the answer ends when the bridge closes its end */
    for (int spins = 0; !eof && spins < 100000; spins++) {
        MHD_run(d);
        ssize_t n = read(sv[0], answer + got, sizeof answer - 1 - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EINTR) || got == sizeof answer - 1)
            eof = true;
        else if (spins > 1000)
            poll(NULL, 0, 1); /* something slow: stop spinning */
    }
    close(sv[0]);
    MHD_run(d); /* let the daemon see the close and free the connection */
    if (!eof) {
        fprintf(stderr, "the bridge did not answer\n");
        abort();
    }
    answer[got] = '\0';
    unsigned status = 0;
    if (sscanf(answer, "HTTP/1.1 %u", &status) != 1) {
        fprintf(stderr, "not an HTTP answer: %.80s\n", answer);
        abort();
    }
    /* 503 only for what was forwarded (the stub's answer); a 5xx of the
     * bridge's own on a client's bytes is a bug */
    bool ok = forwarded ? status == 503 : (status == 400 || status == 413 || status == 415);
    if (!ok) {
        fprintf(stderr, "status %u (forwarded %d)\n", status, forwarded);
        abort();
    }
    return 0;
}
