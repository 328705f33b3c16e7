/* backendctl broker-setup and service-account: the broker side an operator
 * owns. The components have no configure permission, so the topology is
 * declared here, by the admin identity; an outside service or subscriber
 * gets a broker user of its own whose permissions say exactly which commands
 * it may publish and which events it may bind (RabbitMQ's permissions and
 * topic permissions), so that no client can read another's commands, forge
 * events or bind secrets it was not granted. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/amqp.h"
#include "shared/config.h"
#include "workers/ctl/ctl.h"

#define MAX_NAME     64
#define MAX_PATTERNS 32
#define MAX_PATTERN  128
#define MAX_REGEX    (MAX_PATTERNS * (MAX_PATTERN * 2 + 64) + 64)

extern char **environ;

/* Events that carry a secret (a reset token): a wildcard never grants them,
 * only their name given to --subscribe does. */
static const char *const SECRET_EVENTS[] = {"user.password_reset_requested", NULL};

/* Names the scripts give the components: a service account may not take one. */
static const char *const RESERVED[] = {"admin", "bridge", "relay", "guest", NULL};

/* A service account owns the queues NAME.<anything>, so NAME may not be the
 * first part of a queue or exchange of ours: "auth" would own auth.commands
 * (passwords), "notify" notify.events (reset tokens), "backend" the
 * exchanges; nor a component's identity, <worker>-worker. */
static bool reserved(const char *s)
{
    char own[MAX_NAME + 8];
    static const char *const prefixes[] = {"backend", "amq", NULL};
    for (int i = 0; RESERVED[i]; i++)
        if (strcmp(s, RESERVED[i]) == 0)
            return true;
    for (int i = 0; prefixes[i]; i++)
        if (strcmp(s, prefixes[i]) == 0)
            return true;
    for (const struct bk_amqp_queue *q = bk_amqp_queues; q->worker; q++) {
        snprintf(own, sizeof own, "%s-worker", q->worker);
        if (strcmp(s, q->worker) == 0 || strcmp(s, own) == 0)
            return true;
    }
    for (const struct bk_amqp_subscription *q = bk_amqp_subscriptions; q->subscriber; q++) {
        snprintf(own, sizeof own, "%s-worker", q->subscriber);
        if (strcmp(s, q->subscriber) == 0 || strcmp(s, own) == 0)
            return true;
    }
    return false;
}

int ctl_broker_setup(const struct ctl_args *a)
{
    (void)a;
    amqp_connection_state_t c = bk_amqp_connect("backendctl-broker-setup", 0);
    if (!c) {
        fprintf(stderr,
                "broker-setup: cannot log in to the broker as \"%s\" (is it running? "
                "amqp_user, amqp_password_file)\n",
                bk_amqp_user(BK_AMQP_PROCESS));
        return 1;
    }
    int rc = bk_amqp_declare_topology(c, 1);
    bk_amqp_close(c);
    if (rc != 0) {
        fprintf(stderr,
                "broker-setup: declaring the topology failed (above); does \"%s\" have "
                "configure permission?\n",
                bk_amqp_user(BK_AMQP_PROCESS));
        return 1;
    }
    printf("broker-setup: exchanges %s %s %s, queue %s, the worker queues and the subscriber "
           "queues are in place\n",
           BK_EX_COMMANDS, BK_EX_EVENTS, BK_EX_DLX, BK_Q_DEAD);
    return 0;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= MAX_NAME || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '_'))
            return false;
    return !reserved(s);
}

/* Appends s to the regex being built; -1 when it does not fit. */
static int put(char *out, size_t n, size_t *w, const char *s)
{
    size_t k = strlen(s);
    if (*w + k >= n)
        return -1;
    memcpy(out + *w, s, k + 1);
    *w += k;
    return 0;
}

/* One pattern ("order.*", "payment.get", "user.#", "#") as a regex for
 * routing keys. A segment is a name ([a-z0-9_]+), "*" (one name) or, last,
 * "#" (any names). Wildcards match concrete names only, never a binding
 * key that is itself a wildcard: RabbitMQ checks the binding key, so a
 * subscriber granted "user.*" binding "user.*" would receive every user
 * event, secrets included. A pattern with a wildcard excludes the secret
 * events. 0, or -1 with why set. */
static int pattern_regex(const char *p, size_t len, char *out, size_t n, size_t *w,
                         const char **why)
{
    char seg[MAX_PATTERN + 1];
    if (len == 0 || len > MAX_PATTERN) {
        *why = "a pattern is empty or longer than 128 characters";
        return -1;
    }
    int bad = 0;
    if (memchr(p, '*', len) || memchr(p, '#', len)) {
        bad |= put(out, n, w, "(?!(");
        for (int i = 0; SECRET_EVENTS[i]; i++) {
            bad |= put(out, n, w, i ? "|" : "");
            for (const char *c = SECRET_EVENTS[i]; *c; c++)
                bad |= put(out, n, w, *c == '.' ? "\\." : (char[2]){*c, '\0'});
        }
        bad |= put(out, n, w, ")$)");
    }
    for (size_t i = 0, k = 0; i <= len; k++) {
        size_t sl = 0;
        while (i + sl < len && p[i + sl] != '.')
            sl++;
        memcpy(seg, p + i, sl);
        seg[sl] = '\0';
        bool last = i + sl >= len;
        if (strcmp(seg, "#") == 0) {
            if (!last) {
                *why = "\"#\" may only end a pattern";
                return -1;
            }
            /* "#" alone: any name; "x.#": x and anything below it */
            bad |= put(out, n, w, k == 0 ? "[a-z0-9_]+(\\.[a-z0-9_]+)*" : "(\\.[a-z0-9_]+)*");
        } else if (strcmp(seg, "*") == 0 ||
                   (sl > 0 && strspn(seg, "abcdefghijklmnopqrstuvwxyz0123456789_") == sl)) {
            bad |= put(out, n, w, k == 0 ? "" : "\\.");
            bad |= put(out, n, w, strcmp(seg, "*") == 0 ? "[a-z0-9_]+" : seg);
        } else {
            *why = "a pattern is names of a-z, 0-9 and _ separated by dots, \"*\" for one name "
                   "or a final \"#\"";
            return -1;
        }
        i += sl + 1;
    }
    if (bad) {
        *why = "too many patterns";
        return -1;
    }
    return 0;
}

/* A comma-separated list of patterns as one anchored regex; "^$" (nothing)
 * for an empty list. 0, or -1 with why set. */
static int patterns_regex(const char *list, char *out, size_t n, const char **why)
{
    size_t w = 0;
    int count = 0;
    out[0] = '\0';
    put(out, n, &w, "^(");
    for (const char *p = list; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ')
            len--;
        if (!len)
            break;
        if (++count > MAX_PATTERNS) {
            *why = "more than 32 patterns";
            return -1;
        }
        if (count > 1 && put(out, n, &w, "|") != 0)
            return *why = "too many patterns", -1;
        if (pattern_regex(p, len, out, n, &w, why) != 0)
            return -1;
        p += len;
        p += strcspn(p, ",");
    }
    if (put(out, n, &w, ")$") != 0)
        return *why = "too many patterns", -1;
    if (count == 0)
        snprintf(out, n, "^$");
    return 0;
}

/* RabbitMQ's rabbit_password_hashing_sha256: base64(salt || sha256(salt || password))
 * with a 4-byte salt. So the password itself never reaches an argv or a file. */
static void password_hash(const char *password, char *out, size_t n)
{
    unsigned char buf[4 + crypto_hash_sha256_BYTES];
    randombytes_buf(buf, 4);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, buf, 4);
    crypto_hash_sha256_update(&st, (const unsigned char *)password, strlen(password));
    crypto_hash_sha256_final(&st, buf + 4);
    sodium_bin2base64(out, n, buf, sizeof buf, sodium_base64_VARIANT_ORIGINAL);
}

/* Runs `broker_ctl import_definitions` (no shell) with defs on its stdin.
 * 0, or -1 (printed). */
static int import_definitions(const char *defs)
{
    const char *ctl = bk_config_str("broker_ctl");
    int fds[2];
    if (pipe(fds) != 0) {
        perror("service-account: pipe");
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], STDIN_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char *argv[] = {(char *)ctl, "import_definitions", NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, ctl, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    if (e != 0) {
        close(fds[1]);
        fprintf(stderr, "service-account: cannot run %s (broker_ctl): %s\n", ctl, strerror(e));
        return -1;
    }
    void (*old)(int) = signal(SIGPIPE, SIG_IGN); /* a child that dies early: EPIPE, not death */
    size_t len = strlen(defs), off = 0;
    while (off < len) {
        ssize_t k = write(fds[1], defs + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    close(fds[1]);
    signal(SIGPIPE, old);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (off < len || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "service-account: %s import_definitions failed (status %d)\n", ctl,
                WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return -1;
    }
    return 0;
}

static int write_password_file(const char *path, const char *password)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "service-account: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fchmod(fd, 0600); /* an existing file keeps its mode otherwise */
    size_t len = strlen(password);
    int rc = write(fd, password, len) == (ssize_t)len && write(fd, "\n", 1) == 1 ? 0 : -1;
    if (close(fd) != 0 || rc != 0) {
        fprintf(stderr, "service-account: writing %s failed\n", path);
        return -1;
    }
    return 0;
}

int ctl_service_account(const struct ctl_args *a)
{
    const char *name = a->pos[0];
    const char *publish = ctl_opt(a, "publish") ? ctl_opt(a, "publish") : "";
    const char *subscribe = ctl_opt(a, "subscribe") ? ctl_opt(a, "subscribe") : "";
    const char *file = ctl_opt(a, "password-file");
    const char *vhost = bk_config_str("amqp_vhost");
    if (!name_ok(name)) {
        fprintf(stderr,
                "service-account: \"%s\" is not a service name (1-63 of a-z 0-9 - _, starting "
                "with a letter or digit, not a component's name or a queue prefix of ours)\n",
                name);
        return 2;
    }
    if (!*publish && !*subscribe) {
        fprintf(stderr, "service-account: give --publish, --subscribe or both\n");
        return 2;
    }
    static char pub_re[MAX_REGEX], sub_re[MAX_REGEX];
    const char *why = NULL;
    if (patterns_regex(publish, pub_re, sizeof pub_re, &why) != 0) {
        fprintf(stderr, "service-account: --publish: %s\n", why);
        return 2;
    }
    if (patterns_regex(subscribe, sub_re, sizeof sub_re, &why) != 0) {
        fprintf(stderr, "service-account: --subscribe: %s\n", why);
        return 2;
    }
    bool pub = strcmp(pub_re, "^$") != 0, sub = strcmp(sub_re, "^$") != 0;

    /* its own queues are NAME.<anything>: declare, bind, consume, purge */
    char own[MAX_NAME + 16], write[MAX_NAME + 64], read[MAX_NAME + 64];
    snprintf(own, sizeof own, "^%s\\..+$", name);
    snprintf(write, sizeof write, "^(%s\\..+%s)$", name, pub ? "|backend\\.commands" : "");
    snprintf(read, sizeof read, "^(%s\\..+%s)$", name, sub ? "|backend\\.events" : "");

    unsigned char raw[24];
    char password[64], hash[64];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(password, sizeof password, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    password_hash(password, hash, sizeof hash);

    json_t *defs = json_pack("{s:[{s:s, s:s, s:s, s:[]}], s:[{s:s, s:s, s:s, s:s, s:s}],"
                             " s:[{s:s, s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:s}]}",
                             "users", "name", name, "password_hash", hash, "hashing_algorithm",
                             "rabbit_password_hashing_sha256", "tags", "permissions", "user", name,
                             "vhost", vhost, "configure", own, "write", write, "read", read,
                             "topic_permissions", "user", name, "vhost", vhost, "exchange",
                             BK_EX_COMMANDS, "write", pub_re, "read", "^$", "user", name, "vhost",
                             vhost, "exchange", BK_EX_EVENTS, "write", "^$", "read", sub_re);
    char *text = defs ? json_dumps(defs, JSON_COMPACT) : NULL;
    json_decref(defs);
    int rc = 1;
    if (!text || import_definitions(text) != 0)
        goto out;
    if (file) {
        if (write_password_file(file, password) != 0)
            goto out;
        printf("service-account: %s: password in %s\n", name, file);
    } else {
        printf("%s\n", password);
    }
    fprintf(stderr, "service-account: %s may publish %s and bind %s on %s; its queues are %s.*\n",
            name, pub ? publish : "nothing", sub ? subscribe : "nothing", BK_EX_EVENTS, name);
    rc = 0;
out:
    if (text)
        sodium_memzero(text, strlen(text));
    free(text);
    sodium_memzero(password, sizeof password);
    return rc;
}
