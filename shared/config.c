#include "shared/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/mail.h"

enum type {
    T_STR,     /* any text */
    T_INT,     /* a whole number within [min, max] */
    T_PORT,    /* a TCP port, 1-65535 */
    T_CHOICE,  /* one of choices */
    T_URL,     /* http(s)://host[:port][/path], no trailing slash, query or fragment */
    T_ORIGINS, /* a list of http(s)://host[:port] (CORS origins) */
    T_HOSTS,   /* a list of host names (".example.com" for subdomains, "*" for any) */
    T_ADDR,    /* a bare mail address (local@domain), safe in a header and an SMTP envelope */
    T_LINK,    /* a T_URL that may hold {placeholders} (the key's choices name the allowed
                  ones, each required); a query is allowed */
    T_NODES,   /* a list of host:port (broker nodes), at most BK_CONFIG_MAX_NODES */
};

struct key {
    const char *name;
    enum type type;
    const char *def; /* NULL: unset unless configured */
    long min, max;   /* T_INT */
    const char *const *choices;
    bool secret; /* masked by bk_config_print */
    const char *help;
};

static const char *const LOG_LEVELS[] = {"debug", "info", "warn", "warning", "error", NULL};
static const char *const MAIL_BACKENDS[] = {"file", "smtp", "console", NULL};
static const char *const SMTP_SECURITY[] = {"none", "starttls", "tls", NULL};
static const char *const RESET_URL_PLACEHOLDERS[] = {"uid", "token", NULL};
static const char *const USERS_LIST[] = {"user", "staff", NULL};

#define STR(n, d, h)                                                                               \
    {                                                                                              \
        n, T_STR, d, 0, 0, NULL, false, h                                                          \
    }
#define SECRET(n, d, h)                                                                            \
    {                                                                                              \
        n, T_STR, d, 0, 0, NULL, true, h                                                           \
    }
#define INT(n, d, lo, hi, h)                                                                       \
    {                                                                                              \
        n, T_INT, d, lo, hi, NULL, false, h                                                        \
    }
#define PORT(n, d, h)                                                                              \
    {                                                                                              \
        n, T_PORT, d, 1, 65535, NULL, false, h                                                     \
    }
#define TYPED(n, t, d, h)                                                                          \
    {                                                                                              \
        n, t, d, 0, 0, NULL, false, h                                                              \
    }
#define CHOICE(n, d, c, h)                                                                         \
    {                                                                                              \
        n, T_CHOICE, d, 0, 0, c, false, h                                                          \
    }
#define MIB (1024L * 1024L)

/* Every key, once: its type, limits, default and meaning. `backendctl config`
 * prints them; config/backend.conf only sets what differs. */
static const struct key KEYS[] = {
    /* RabbitMQ */
    STR("amqp_host", "127.0.0.1", "broker host (unless amqp_nodes is set)"),
    PORT("amqp_port", "5673", "broker AMQP port (unless amqp_nodes is set)"),
    TYPED("amqp_nodes", T_NODES, NULL,
          "broker cluster nodes, host:port,host:port (at most 16); when set it replaces "
          "amqp_host and amqp_port, and each connect tries the nodes in turn"),
    INT("amqp_heartbeat_s", "30", 1, 600,
        "AMQP heartbeat of the connections that use one (worker consumers, bridge): a broker "
        "machine that vanishes without closing its connections is noticed after two missed"),
    INT("amqp_connect_timeout_ms", "2000", 100, 60000,
        "how long one connect (TCP and login) to one broker node may take before the next "
        "node is tried"),
    STR("amqp_user", "guest", "broker identity this process logs in as (the user_id it publishes)"),
    SECRET("amqp_password", "guest", "broker password, when amqp_password_file is unset"),
    STR("amqp_password_file", NULL,
        "file holding the broker password (read at each connect; wins over amqp_password)"),
    STR("relay_amqp_user", NULL,
        "broker identity of the outbox relay inside each worker, the only publisher of events "
        "(unset: amqp_user)"),
    STR("relay_amqp_password_file", NULL, "file holding relay_amqp_user's broker password"),
    STR("dead_letters_amqp_user", "dead-letters",
        "broker identity of the staff's dead-letter commands (admin.dead_letters*): reads "
        "backend.dead, republishes to backend.commands; workers keep x-bk-publisher from it"),
    STR("dead_letters_amqp_password_file", NULL,
        "file holding dead_letters_amqp_user's broker password (the profile worker's)"),
    STR("bridge_amqp_user", "bridge",
        "broker identity of the HTTP bridge: workers trust x-client-ip and x-request-target "
        "only from it"),
    STR("broker_ctl", "rabbitmqctl",
        "rabbitmqctl for our broker node (backendctl service-account); the scripts point it at "
        "their instance's"),
    STR("amqp_vhost", "/", "broker virtual host"),
    INT("amqp_prefetch", "16", 1, 65535,
        "unacked commands a worker copy holds at once; measured (scripts/bench, 2 cores, 64 "
        "connections, CPU us per request GET/POST order): 4 -> 709/1,481 (RabbitMQ pushes more "
        "often), 16 -> 560/1,374, 64 -> 521/1,399: 16 and 64 the same within noise, 16 holds "
        "fewer commands in a copy that dies (README Performance)"),
    /* PostgreSQL */
    SECRET("db_conninfo",
           "host=127.0.0.1 port=5433 user=backend password=backend dbname=backend "
           "connect_timeout=5",
           "libpq connection string"),
    /* HTTP bridge */
    STR("http_host", "127.0.0.1", "address the bridge binds"),
    PORT("http_port", "8000", "port the bridge binds"),
    INT("http_timeout_ms", "5000", 100, 600000,
        "how long the bridge waits for a worker's reply before answering 504"),
    INT("http_health_timeout_ms", "2000", 100, 60000, "how long a health check waits"),
    INT("http_max_json_bytes", "1048576", 1024, 256 * MIB, "largest JSON request body"),
    INT("http_max_upload_bytes", "5242880", 1024, 256 * MIB, "largest multipart upload"),
    INT("http_threads", "1", 1, 64, "bridge HTTP threads"),
    INT("http_max_connections", "4096", 1, 1000000, "open HTTP connections at most"),
    INT("http_idle_timeout_s", "30", 1, 3600, "an idle keep-alive connection is closed after"),
    INT("http_max_header_bytes", "65536", 1024, 16 * MIB, "request line + headers at most"),
    INT("http_max_inflight", "10000", 1, 1000000,
        "commands in flight at once; beyond it the bridge answers 503"),
    INT("http_max_inflight_per_caller", "256", 1, 1000000,
        "commands in flight at once from one client address; beyond it 429"),
    INT("http_max_connections_per_address", "256", 1, 1000000,
        "open HTTP connections from one client address; more are closed at once"),
    INT("http_header_timeout_s", "10", 1, 3600,
        "a new connection's request line, and each request's headers after its request line, "
        "must arrive within this; a slower sender is disconnected"),
    INT("http_retry_after_s", "1", 1, 3600,
        "Retry-After of a 503 for a full worker queue or too many commands in flight, and of "
        "a 429 for too many from one caller"),
    TYPED("public_base_url", T_URL, "http://127.0.0.1:8000",
          "absolute links (next/previous, media) start with this, never with the Host header"),
    TYPED("allowed_hosts", T_HOSTS, NULL,
          "Host headers the bridge accepts (Django's ALLOWED_HOSTS; unset: http_host, "
          "localhost, 127.0.0.1)"),
    TYPED("cors_allowed_origins", T_ORIGINS, NULL,
          "origins a browser may call from (CORS); unset: none"),
    STR("web_dir", "web",
        "folder of the files the bridge serves (the repository's web/: Swagger UI from "
        "node_modules, installed by scripts/setup, and our pages); relative to the working "
        "directory"),
    /* workers */
    INT("worker_copies", "2", 1, 32,
        "copies of each worker process (competing consumers); measured (scripts/bench, 2 cores, "
        "64 connections): 2, 3 and 4 cost the same CPU per request (GET order 508-541 us, POST "
        "1,398-1,463 us), 3-4 gave POST 20-30 % more req/s, 2 the least memory (README "
        "Performance)"),
    INT("auth_copies", NULL, 1, 32, "copies of the auth worker (default worker_copies)"),
    INT("profile_copies", NULL, 1, 32, "copies of the profile worker (default worker_copies)"),
    INT("order_copies", NULL, 1, 32, "copies of the order worker (default worker_copies)"),
    INT("payment_copies", NULL, 1, 32, "copies of the payment worker (default worker_copies)"),
    INT("outbox_linger_ms", "5", 0, 1000,
        "the outbox relay waits this long after a commit wakes it, so one transaction and one "
        "confirm wait publish the events of the commits meanwhile (0: at once; issue 13)"),
    INT("max_deliveries", "5", 1, 1000,
        "deliveries of one command before it is dead-lettered with a 500 reply"),
    /* tokens and passwords */
    STR("key_dir", ".run/keys", "Ed25519 signing key (auth worker) and public keys"),
    INT("jwt_access_ttl", "1800", 60, 86400, "access token lifetime, seconds"),
    INT("jwt_refresh_ttl", "86400", 300, 366L * 86400, "refresh token lifetime, seconds"),
    INT("argon2_opslimit", "2", 2, 64, "argon2id passes (never below 2)"),
    INT("argon2_memlimit_kib", "19456", 19456, 4L * 1024 * 1024,
        "argon2id memory, KiB (never below 19 MiB)"),
    INT("password_reset_ttl", "3600", 60, 7L * 86400, "password reset tokens live this long"),
    INT("login_max_failures_account", "5", 1, 1000000,
        "failed logins per account within the window, then 429"),
    INT("login_max_failures_address", "50", 1, 1000000,
        "failed logins per client address within the window, then 429"),
    INT("login_window_s", "900", 1, 7L * 86400, "the login throttling window, seconds"),
    /* the source systems' conflicts (issue 14, README "Source systems") */
    CHOICE("users_list", "user", USERS_LIST,
           "who may list GET /api/users/: user (any authenticated user: the contract and "
           "system 000) or staff (system 003: admin-only)"),
    /* mail (the notify worker: README "Mail") */
    CHOICE("mail_backend", "file", MAIL_BACKENDS,
           "where mails go: file (one .eml per mail in mail_dir), smtp (smtp_* keys) or console "
           "(standard output)"),
    STR("mail_dir", ".run/mail", "the file backend's folder (created if missing)"),
    TYPED("mail_from", T_ADDR, "noreply@localhost",
          "the sender address of every mail (shown with site_name as the sender's name)"),
    STR("site_name", "backend", "the site's name in mail subjects, greetings and the From name"),
    {"reset_url_template", T_LINK, "http://127.0.0.1:8000/reset/{uid}/{token}", 0, 0,
     RESET_URL_PLACEHOLDERS, false,
     "the frontend page a password reset mail links to; {uid} and {token} are filled in "
     "(djoser's PASSWORD_RESET_CONFIRM_URL)"},
    STR("mail_template_dir", "templates/mail",
        "mail templates: <name>.txt (first line \"Subject: ...\") and <name>.html"),
    INT("mail_retry_max_s", "60", 1, 3600,
        "while the mail server is down, retries back off up to this many seconds apart"),
    STR("smtp_host", "127.0.0.1", "the SMTP server (mail_backend = smtp)"),
    PORT("smtp_port", "25", "the SMTP server's port (587 for starttls, 465 for tls, usually)"),
    CHOICE("smtp_security", "starttls", SMTP_SECURITY,
           "none, starttls (required: no plain-text fallback) or tls (implicit TLS, smtps)"),
    STR("smtp_user", NULL, "SMTP login (unset: no AUTH)"),
    STR("smtp_password_file", NULL,
        "file holding the SMTP password (read at each send, so a rotated one needs no restart)"),
    INT("smtp_timeout_s", "30", 1, 600, "one SMTP transaction at most, seconds"),
    /* paths */
    STR("schema_dir", "schema", "migrations (backendctl migrate)"),
    STR("common_passwords", "data/common-passwords.txt.gz", "Django's common password list"),
    {"log_level", T_CHOICE, "info", 0, 0, LOG_LEVELS, false, "debug, info, warn or error"},
};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

/* Variables that are not keys but are read from the environment. */
static const char *const ENV_ONLY[] = {
    "BACKEND_CONFIG",             /* the file to load */
    "BACKEND_SUPERUSER_PASSWORD", /* backendctl createsuperuser without a prompt */
    NULL,
};

enum source { SRC_DEFAULT, SRC_FILE, SRC_ENV };

struct value {
    char *text; /* NULL: unset */
    enum source source;
    int line; /* SRC_FILE */
    long num; /* T_INT, T_PORT */
};

static struct value values[N_KEYS];
static char loaded_path[1024];

#define MAX_LINE 4096

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int find(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Levenshtein distance of two short strings (keys are under 64 bytes). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *bk_config_nearest(const char *name)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < N_KEYS; i++) {
        size_t d = distance(name, KEYS[i].name);
        if (d < best_d) {
            best_d = d;
            best = KEYS[i].name;
        }
    }
    /* a hint only when it is plausibly a typo */
    size_t len = strlen(name);
    return best_d <= (len < 9 ? 2 : len / 3) ? best : NULL;
}

static bool is_http_url(const char *s, bool path_allowed)
{
    const char *rest = strncmp(s, "http://", 7) == 0    ? s + 7
                       : strncmp(s, "https://", 8) == 0 ? s + 8
                                                        : NULL;
    if (!rest || !*rest || *rest == '/' || *rest == ':')
        return false;
    for (const char *p = rest; *p; p++)
        if (isspace((unsigned char)*p) || *p == '?' || *p == '#' || *p == '"' || *p == '\\' ||
            (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return false;
    const char *slash = strchr(rest, '/');
    if (slash && !path_allowed)
        return false;
    return s[strlen(s) - 1] != '/';
}

static bool is_host_pattern(const char *s, size_t n)
{
    if (n == 1 && *s == '*')
        return true;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-:[]", s[i]))
            return false;
    return n > 0 && n < 254;
}

/* A link template: an http(s) URL once each {name} of placeholders is
 * filled, with every one of them present and no other brace. Placeholders
 * stand in for URL-safe text (base64url), so checking the URL with each
 * replaced by a letter is enough. A query or a trailing slash is fine in a
 * frontend link (?uid={uid}&token={token}, .../{token}/). */
static bool link_ok(const char *s, const char *const *placeholders, char *why, size_t n)
{
    char url[1024];
    size_t w = 0;
    unsigned seen = 0;
    if (strlen(s) >= sizeof url) {
        snprintf(why, n, "longer than %zu bytes", sizeof url - 1);
        return false;
    }
    for (const char *p = s; *p;) {
        if (*p != '{' && *p != '}') {
            url[w++] = *p++;
            continue;
        }
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        int found = -1;
        for (int i = 0; end && placeholders[i] && i < 16; i++)
            if ((size_t)(end - p - 1) == strlen(placeholders[i]) &&
                strncmp(p + 1, placeholders[i], (size_t)(end - p - 1)) == 0)
                found = i;
        if (found < 0) {
            snprintf(why, n, "\"%.24s\" is not one of its placeholders", p);
            return false;
        }
        seen |= 1u << found;
        url[w++] = 'x';
        p = end + 1;
    }
    url[w] = '\0';
    for (int i = 0; placeholders[i] && i < 16; i++)
        if (!(seen & (1u << i))) {
            snprintf(why, n, "{%s} is missing", placeholders[i]);
            return false;
        }
    url[strcspn(url, "?#")] = '\0';
    w = strlen(url);
    if (w > 0 && url[w - 1] == '/')
        url[w - 1] = '\0';
    if (!is_http_url(url, true)) {
        snprintf(why, n, "not an http(s) URL");
        return false;
    }
    return true;
}

/* host:port, the host a name, an IPv4 address or a bracketed IPv6 address. */
static bool is_node(const char *s, size_t n)
{
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon || colon == s)
        return false;
    size_t hn = (size_t)(colon - s), pn = n - hn - 1;
    long port = 0;
    if (pn == 0 || pn > 5)
        return false;
    for (size_t i = 0; i < pn; i++) {
        if (!isdigit((unsigned char)colon[1 + i]))
            return false;
        port = port * 10 + (colon[1 + i] - '0');
    }
    if (port < 1 || port > 65535 || hn > 253)
        return false;
    bool v6 = s[0] == '[';
    if (v6 && (hn < 3 || s[hn - 1] != ']'))
        return false;
    for (size_t i = v6 ? 1 : 0; i < (v6 ? hn - 1 : hn); i++)
        if (v6 ? !isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.'
               : !isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

/* Checks a list (separated by spaces or commas) item by item. */
static bool list_ok(const char *s, enum type t, char *bad, size_t badlen)
{
    int items = 0;
    while (*s) {
        size_t skip = strspn(s, " ,\t");
        s += skip;
        size_t n = strcspn(s, " ,\t");
        if (n == 0)
            break;
        char item[512];
        snprintf(item, sizeof item, "%.*s", (int)(n < 511 ? n : 511), s);
        bool ok = n < 511 && (t == T_ORIGINS ? is_http_url(item, false)
                              : t == T_NODES ? is_node(s, n) && ++items <= BK_CONFIG_MAX_NODES
                                             : is_host_pattern(s, n));
        if (!ok) {
            snprintf(bad, badlen, "%s", item);
            return false;
        }
        s += n;
    }
    return true;
}

/* Checks one value against its declaration; prints the reason and returns
 * -1 when it does not fit. */
static int check(size_t i)
{
    const struct key *k = &KEYS[i];
    struct value *v = &values[i];
    const char *s = v->text;
    char bad[512];
    if (!s)
        return 0;
    switch (k->type) {
    case T_STR:
        return 0;
    case T_INT:
    case T_PORT: {
        char *end;
        errno = 0;
        long n = strtol(s, &end, 10);
        bool number = *s && !isspace((unsigned char)*s) && *end == '\0';
        if (number && errno == ERANGE)
            n = LONG_MAX; /* a whole number, far out of range */
        if (number && n >= k->min && n <= k->max) {
            v->num = n;
            return 0;
        }
        if (k->type == T_PORT)
            fprintf(stderr, "config: %s: \"%s\" is not a port (1-65535)\n", k->name, s);
        else if (!number)
            fprintf(stderr, "config: %s: \"%s\" is not a whole number\n", k->name, s);
        else
            fprintf(stderr, "config: %s: %s is out of range (%ld-%ld)\n", k->name, s, k->min,
                    k->max);
        return -1;
    }
    case T_CHOICE:
        for (int c = 0; k->choices[c]; c++)
            if (strcmp(s, k->choices[c]) == 0)
                return 0;
        fprintf(stderr, "config: %s: \"%s\" is not one of:", k->name, s);
        for (int c = 0; k->choices[c]; c++)
            fprintf(stderr, "%s %s", c ? "," : "", k->choices[c]);
        fprintf(stderr, "\n");
        return -1;
    case T_ADDR:
        if (bk_mail_addr_ok(s))
            return 0;
        fprintf(stderr,
                "config: %s: \"%s\" is not a bare mail address (local@domain, no name, "
                "spaces or quotes)\n",
                k->name, s);
        return -1;
    case T_LINK:
        if (link_ok(s, k->choices, bad, sizeof bad))
            return 0;
        fprintf(stderr, "config: %s: \"%s\": %s\n", k->name, s, bad);
        return -1;
    case T_URL:
        if (is_http_url(s, true))
            return 0;
        fprintf(stderr,
                "config: %s: \"%s\" is not an http(s) URL without a trailing slash, query or "
                "fragment (e.g. https://api.example.com)\n",
                k->name, s);
        return -1;
    case T_ORIGINS:
        if (list_ok(s, k->type, bad, sizeof bad))
            return 0;
        fprintf(stderr,
                "config: %s: \"%s\" is not an origin (scheme://host[:port], no path or "
                "trailing slash)\n",
                k->name, bad);
        return -1;
    case T_HOSTS:
        if (list_ok(s, k->type, bad, sizeof bad))
            return 0;
        fprintf(stderr, "config: %s: \"%s\" is not a host name\n", k->name, bad);
        return -1;
    case T_NODES:
        if (list_ok(s, k->type, bad, sizeof bad))
            return 0;
        fprintf(stderr,
                "config: %s: \"%s\" is not host:port (e.g. 10.0.0.1:5672, [::1]:5672), or "
                "there are more than %d nodes\n",
                k->name, bad, BK_CONFIG_MAX_NODES);
        return -1;
    }
    return -1;
}

static void set_value(size_t i, const char *text, enum source src, int line)
{
    free(values[i].text);
    values[i].text = text ? strdup(text) : NULL;
    values[i].source = src;
    values[i].line = line;
}

static int read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr,
                "config: cannot read %s: %s (run from the repository root or set "
                "BACKEND_CONFIG)\n",
                path, strerror(errno));
        return -1;
    }
    char line[MAX_LINE];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, "config: %s:%d: line longer than %d bytes\n", path, lineno,
                    MAX_LINE - 2);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "config: %s:%d: expected 'key = value'\n", path, lineno);
            rc = -1;
            continue;
        }
        *eq = '\0';
        const char *name = trim(s);
        int i = find(name);
        if (i < 0) {
            const char *near = bk_config_nearest(name);
            fprintf(stderr, "config: %s:%d: unknown key \"%s\"%s%s%s\n", path, lineno, name,
                    near ? " (did you mean \"" : "", near ? near : "", near ? "\"?)" : "");
            rc = -1;
            continue;
        }
        set_value((size_t)i, trim(eq + 1), SRC_FILE, lineno);
    }
    fclose(f);
    return rc;
}

extern char **environ;

/* BACKEND_* variables: each must name a key (or be one of ENV_ONLY). */
static int read_environment(void)
{
    int rc = 0;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "BACKEND_", 8) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
        char var[128], name[128];
        if (n >= sizeof var) {
            fprintf(stderr, "config: unknown variable %.40s... (name too long)\n", *e);
            rc = -1;
            continue;
        }
        memcpy(var, *e, n);
        var[n] = '\0';
        bool env_only = false;
        for (int j = 0; ENV_ONLY[j]; j++)
            env_only = env_only || strcmp(var, ENV_ONLY[j]) == 0;
        if (env_only)
            continue;
        for (size_t j = 8; j <= n; j++)
            name[j - 8] = (char)tolower((unsigned char)var[j]);
        int i = find(name);
        if (i < 0) {
            const char *near = bk_config_nearest(name);
            char up[128] = "";
            for (size_t j = 0; near && near[j] && j < sizeof up - 1; j++)
                up[j] = (char)toupper((unsigned char)near[j]), up[j + 1] = '\0';
            fprintf(stderr, "config: unknown variable %s%s%s%s\n", var,
                    near ? " (did you mean BACKEND_" : "", near ? up : "", near ? "?)" : "");
            rc = -1;
            continue;
        }
        char *copy = strdup(eq ? eq + 1 : "");
        if (!copy)
            return -1;
        set_value((size_t)i, trim(copy), SRC_ENV, 0);
        free(copy);
    }
    return rc;
}

int bk_config_load(const char *path)
{
    bk_config_free();
    if (!path)
        path = getenv("BACKEND_CONFIG");
    if (!path)
        path = "config/backend.conf";
    snprintf(loaded_path, sizeof loaded_path, "%s", path);
    for (size_t i = 0; i < N_KEYS; i++)
        set_value(i, KEYS[i].def, SRC_DEFAULT, 0);
    int rc = read_file(path);
    if (read_environment() != 0)
        rc = -1;
    for (size_t i = 0; i < N_KEYS; i++)
        if (check(i) != 0)
            rc = -1;
    return rc;
}

static const struct value *lookup(const char *key, const struct key **k)
{
    int i = find(key);
    if (i < 0) {
        fprintf(stderr, "config: bug: undeclared key \"%s\" (declare it in shared/config.c)\n",
                key);
        return NULL;
    }
    if (k)
        *k = &KEYS[i];
    return &values[i];
}

const char *bk_config_str(const char *key)
{
    const struct value *v = lookup(key, NULL);
    return v && v->text ? v->text : "";
}

long bk_config_long(const char *key)
{
    const struct key *k = NULL;
    const struct value *v = lookup(key, &k);
    if (!v || !v->text || (k->type != T_INT && k->type != T_PORT))
        return 0;
    return v->num;
}

bool bk_config_set(const char *key)
{
    const struct value *v = lookup(key, NULL);
    return v && v->text;
}

const char *bk_config_path(void)
{
    return loaded_path;
}

/* db_conninfo without its password: "password=..." becomes "password=***". */
static void mask_conninfo(const char *s, char *out, size_t n)
{
    const char *p = strstr(s, "password");
    size_t o = 0;
    while (*s && o + 1 < n) {
        if (s == p) {
            const char *eq = s + strlen("password");
            while (*eq == ' ')
                eq++;
            if (*eq == '=') {
                o += (size_t)snprintf(out + o, n - o, "password=***");
                s = eq + 1;
                while (*s == ' ')
                    s++;
                if (*s == '\'') { /* a quoted value ends at the next unescaped quote */
                    for (s++; *s && *s != '\''; s++)
                        if (*s == '\\' && s[1])
                            s++;
                    if (*s)
                        s++;
                } else {
                    while (*s && !isspace((unsigned char)*s))
                        s++;
                }
                p = strstr(s, "password");
                continue;
            }
            p = strstr(s + 1, "password");
        }
        out[o++] = *s++;
    }
    out[o < n ? o : n - 1] = '\0';
}

void bk_config_print(FILE *out)
{
    fprintf(out, "# effective configuration (file: %s)\n", loaded_path);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &KEYS[i];
        const struct value *v = &values[i];
        char shown[1024];
        if (!v->text)
            snprintf(shown, sizeof shown, "(unset)");
        else if (k->secret && strcmp(k->name, "db_conninfo") == 0)
            mask_conninfo(v->text, shown, sizeof shown);
        else if (k->secret)
            snprintf(shown, sizeof shown, "***");
        else
            snprintf(shown, sizeof shown, "%s", v->text);
        char src[1100];
        if (v->source == SRC_ENV) {
            char up[128];
            size_t j = 0;
            for (; k->name[j] && j < sizeof up - 1; j++)
                up[j] = (char)toupper((unsigned char)k->name[j]);
            up[j] = '\0';
            snprintf(src, sizeof src, "environment BACKEND_%s", up);
        } else if (v->source == SRC_FILE) {
            snprintf(src, sizeof src, "file %s:%d", loaded_path, v->line);
        } else {
            snprintf(src, sizeof src, "default");
        }
        fprintf(out, "%-28s = %-40s # %s; %s\n", k->name, shown, src, k->help);
    }
}

void bk_config_free(void)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        free(values[i].text);
        values[i] = (struct value){0};
    }
}
