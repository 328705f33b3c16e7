#include "workers/bridge/guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "shared/log.h"
#include "shared/util.h"

/* ---- framing ------------------------------------------------------------------ */

static bool name_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

/* The next element of a comma-separated list (RFC 9110 section 5.6.1), with
 * its optional whitespace trimmed; empty elements count as elements. false at
 * the end. */
static bool next_element(const char **p, const char *end, const char **e, size_t *n)
{
    if (*p > end)
        return false;
    const char *s = *p, *comma = memchr(s, ',', (size_t)(end - s));
    const char *stop = comma ? comma : end;
    *p = stop + 1;
    while (s < stop && (*s == ' ' || *s == '\t'))
        s++;
    while (stop > s && (stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
    *e = s;
    *n = (size_t)(stop - s);
    return true;
}

void br_guard_framing_add(struct br_framing *f, const char *name, size_t name_len,
                          const char *value, size_t value_len)
{
    const char *p = value ? value : "", *end = p + (value ? value_len : 0), *e;
    size_t n;
    if (name_is(name, name_len, "Content-Length")) {
        f->n_length++;
        /* "42, 42" may stand for 42 (RFC 9110 section 8.6); anything else is invalid */
        while (next_element(&p, end, &e, &n)) {
            uint64_t v = 0;
            bool digits = n > 0 && n <= 19;
            for (size_t i = 0; digits && i < n; i++) {
                digits = e[i] >= '0' && e[i] <= '9';
                v = v * 10 + (uint64_t)(e[i] - '0');
            }
            if (!digits)
                f->length_bad = true;
            else if (!f->length_seen)
                f->length = v;
            else if (v != f->length)
                f->length_bad = true;
            f->length_seen = true;
        }
    } else if (name_is(name, name_len, "Transfer-Encoding")) {
        f->n_coding++;
        while (next_element(&p, end, &e, &n)) {
            if (n == 0)
                continue; /* empty list elements are allowed and mean nothing */
            bool chunked = name_is(e, n, "chunked");
            f->coding_other |= !chunked || f->chunked_seen;
            f->chunked_seen |= chunked;
            f->chunked_last = chunked;
        }
    }
}

unsigned br_guard_framing_verdict(const struct br_framing *f, const char **why)
{
    if (f->n_coding > 0 && f->n_length > 0) {
        *why = "Request framing is ambiguous: Content-Length and Transfer-Encoding together.";
        return 400;
    }
    if (f->length_bad) {
        *why = "Request framing is ambiguous: invalid or conflicting Content-Length.";
        return 400;
    }
    if (f->n_coding > 0 && !f->chunked_last) {
        *why = "Request framing is ambiguous: Transfer-Encoding does not end with chunked.";
        return 400;
    }
    if (f->coding_other) {
        *why = "Transfer-Encoding other than chunked is not implemented.";
        return 501;
    }
    *why = NULL;
    return 0;
}

/* ---- commands in flight per caller --------------------------------------------- */

/* An open-addressing table (linear probing, deletion by shifting back), so a
 * caller costs no allocation; n == 0 marks a free slot. */
struct slot {
    uint64_t hash;
    int n;
    char key[52];
};

static struct {
    pthread_mutex_t mu;
    struct slot *t;
    size_t mask, used;
    int max;
} cs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

int br_guard_callers_init(int max_per_caller, int capacity)
{
    size_t size = 64;
    while (size < 2 * (size_t)(capacity > 0 ? capacity : 1) && size < (1u << 16))
        size *= 2;
    cs.t = calloc(size, sizeof *cs.t);
    if (!cs.t)
        return -1;
    cs.mask = size - 1;
    cs.used = 0;
    cs.max = max_per_caller > 0 ? max_per_caller : 1;
    return 0;
}

void br_guard_callers_free(void)
{
    free(cs.t);
    cs.t = NULL;
}

/* The slot holding key, or the free slot where it would go. Under cs.mu. */
static size_t find(const char *key, uint64_t h)
{
    size_t i = h & cs.mask;
    while (cs.t[i].n && (cs.t[i].hash != h || strcmp(cs.t[i].key, key) != 0))
        i = (i + 1) & cs.mask;
    return i;
}

bool br_guard_caller_take(const char *caller)
{
    char key[sizeof cs.t->key];
    snprintf(key, sizeof key, "%s", caller);
    uint64_t h = fnv1a(key);
    bool ok = false;
    pthread_mutex_lock(&cs.mu);
    if (!cs.t)
        goto out;
    size_t i = find(key, h);
    if (cs.t[i].n) {
        ok = cs.t[i].n < cs.max;
        cs.t[i].n += ok;
    } else if (cs.used < (cs.mask + 1) / 4 * 3) { /* a full table refuses: bounded */
        cs.t[i].hash = h;
        cs.t[i].n = 1;
        memcpy(cs.t[i].key, key, sizeof key);
        cs.used++;
        ok = true;
    }
out:
    pthread_mutex_unlock(&cs.mu);
    return ok;
}

void br_guard_caller_put(const char *caller)
{
    char key[sizeof cs.t->key];
    snprintf(key, sizeof key, "%s", caller);
    uint64_t h = fnv1a(key);
    pthread_mutex_lock(&cs.mu);
    if (!cs.t)
        goto out;
    size_t i = find(key, h);
    if (!cs.t[i].n || --cs.t[i].n > 0)
        goto out;
    /* the slot is free now: move back the entries that probed past it */
    for (size_t j = (i + 1) & cs.mask; cs.t[j].n; j = (j + 1) & cs.mask) {
        size_t home = cs.t[j].hash & cs.mask;
        bool between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (between)
            continue; /* it is reachable from its home without crossing i */
        cs.t[i] = cs.t[j];
        cs.t[j].n = 0;
        i = j;
    }
    cs.used--;
out:
    pthread_mutex_unlock(&cs.mu);
}

/* ---- header deadlines ------------------------------------------------------------ */

#define WATCH_MS 200 /* how often the watchdog looks */

struct br_guard_conn {
    int fd;
    _Atomic int64_t deadline; /* bk_mono_ms; 0: none */
    struct br_guard_conn *prev, *next;
};

static struct {
    pthread_mutex_t mu; /* the list, and the sockets while shut down */
    pthread_cond_t cv;
    struct br_guard_conn *head;
    bool stopping, started;
    pthread_t thread;
    atomic_uint_fast64_t timeouts;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *watch(void *arg)
{
    (void)arg;
    int64_t last_log = 0;
    uint64_t logged = 0;
    pthread_mutex_lock(&wd.mu);
    while (!wd.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCH_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
        int64_t now = bk_mono_ms();
        for (struct br_guard_conn *c = wd.head; c; c = c->next) {
            int64_t d = atomic_load(&c->deadline);
            if (d == 0 || d > now)
                continue;
            /* under wd.mu: br_guard_conn_close waits, so fd is still this socket */
            shutdown(c->fd, SHUT_RDWR);
            atomic_store(&c->deadline, 0);
            atomic_fetch_add(&wd.timeouts, 1);
        }
        uint64_t n = atomic_load(&wd.timeouts);
        if (n != logged && now - last_log >= 1000) { /* a slowloris opens many: a line a second */
            bk_log(BK_WARN, NULL, "http: closed %llu connection%s whose request headers were late",
                   (unsigned long long)(n - logged), n - logged == 1 ? "" : "s");
            logged = n;
            last_log = now;
        }
    }
    pthread_mutex_unlock(&wd.mu);
    return NULL;
}

int br_guard_start(void)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0)
        return -1;
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&wd.cv, &a);
    pthread_condattr_destroy(&a);
    if (rc != 0)
        return -1;
    wd.stopping = false;
    if (pthread_create(&wd.thread, NULL, watch, NULL) != 0) {
        pthread_cond_destroy(&wd.cv);
        return -1;
    }
    wd.started = true;
    return 0;
}

void br_guard_stop(void)
{
    if (!wd.started)
        return;
    pthread_mutex_lock(&wd.mu);
    wd.stopping = true;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
    pthread_join(wd.thread, NULL);
    pthread_cond_destroy(&wd.cv);
    wd.started = false;
}

struct br_guard_conn *br_guard_conn_open(int fd, int64_t ms)
{
    struct br_guard_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    atomic_store(&c->deadline, bk_mono_ms() + ms);
    pthread_mutex_lock(&wd.mu);
    c->next = wd.head;
    if (wd.head)
        wd.head->prev = c;
    wd.head = c;
    pthread_mutex_unlock(&wd.mu);
    return c;
}

void br_guard_conn_close(struct br_guard_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&wd.mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        wd.head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&wd.mu);
    free(c);
}

void br_guard_conn_deadline(struct br_guard_conn *c, int64_t ms)
{
    if (c)
        atomic_store(&c->deadline, ms > 0 ? bk_mono_ms() + ms : 0);
}

uint64_t br_guard_timeouts(void)
{
    return atomic_load(&wd.timeouts);
}
