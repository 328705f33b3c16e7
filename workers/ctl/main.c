/* backendctl: the operator's command line. Every subcommand is declared here
 * once, with its arguments, options and help; parsing is getopt_long's. */
#include <getopt.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/log.h"
#include "workers/ctl/ctl.h"

#ifndef BK_VERSION
#define BK_VERSION "dev"
#endif

struct ctl_cmd {
    const char *name;
    int (*run)(const struct ctl_args *a);
    const char *synopsis; /* positional arguments, for the usage line */
    int min_pos, max_pos;
    const struct ctl_opt *opts;
    const char *summary;
    const char *help; /* more lines for COMMAND --help, or NULL */
};

static const struct ctl_opt NO_OPTS[] = {{0}};
static const struct ctl_opt KEYGEN_OPTS[] = {
    {"rotate", NULL, false,
     "make a new signing key and server key; older ones keep verifying and opening", 0, 0},
    {0},
};
static const struct ctl_opt TOKEN_OPTS[] = {
    {"ttl", "SECONDS", false, "lifetime of the token (default 3600)", 1, 366L * 86400},
    {0},
};
static const struct ctl_opt SUPERUSER_OPTS[] = {
    {"username", "NAME", true, "the new user's username", 0, 0},
    {"email", "ADDRESS", true, "the new user's email address", 0, 0},
    {0},
};
static const struct ctl_opt REPLAY_OPTS[] = {
    {"limit", "N", false, "replay at most N messages (default 1000)", 1, 1000000},
    {"command", "PREFIX", false, "only commands whose name starts with PREFIX (e.g. order.)", 0, 0},
    {0},
};
static const struct ctl_opt SERVICE_OPTS[] = {
    {"publish", "PATTERNS", false,
     "commands it may publish, comma-separated (order.*,payment.get; # for all)", 0, 0},
    {"subscribe", "PATTERNS", false,
     "events it may bind its queues to (user.registered,order.*; # for all but secrets)", 0, 0},
    {"password-file", "FILE", false, "write the password to FILE (mode 600) instead of stdout", 0,
     0},
    {0},
};
static const struct ctl_opt STAFF_OPTS[] = {
    {"off", NULL, false, "revoke staff instead of granting it", 0, 0},
    {0},
};
static const struct ctl_opt USERS_OPTS[] = {
    {"search", "TEXT", false, "only users whose username or email contains TEXT", 0, 0},
    {"limit", "N", false, "list at most N users (default 100)", 1, 1000000},
    {0},
};

static const struct ctl_cmd COMMANDS[] = {
    {"migrate", ctl_migrate, "", 0, 0, NO_OPTS, "apply schema/*.sql not applied yet, in order",
     "Each file runs in its own transaction with its record in schema_migrations,\n"
     "so a second run does nothing."},
    {"keygen", ctl_keygen, "", 0, 0, KEYGEN_OPTS,
     "create the token signing key and the server secret if missing", NULL},
    {"service-token", ctl_service_token, "NAME", 1, 1, TOKEN_OPTS,
     "print an access token for the service NAME", NULL},
    {"createsuperuser", ctl_createsuperuser, "", 0, 0, SUPERUSER_OPTS, "create a staff superuser",
     "The password comes from BACKEND_SUPERUSER_PASSWORD, else it is asked for\n"
     "on the terminal; it must pass the same validators as registration."},
    {"set-staff", ctl_set_staff, "USERNAME", 1, 1, STAFF_OPTS,
     "grant staff to USERNAME (--off: revoke)",
     "The last active staff user keeps staff: revoking it is refused (exit 1).\n"
     "A change publishes user.role_changed like an admin's change does."},
    {"users", ctl_users, "", 0, 0, USERS_OPTS, "list users (id, username, email, flags)", NULL},
    {"flush-expired", ctl_flush_expired, "", 0, 0, NO_OPTS,
     "delete expired tokens, reset links and inbox rows", NULL},
    {"replay-dead-letters", ctl_replay_dead_letters, "", 0, 0, REPLAY_OPTS,
     "put backend.dead back on backend.commands",
     "Message ids are kept, so the inbox prevents a second effect."},
    {"broker-setup", ctl_broker_setup, "", 0, 0, NO_OPTS,
     "declare the exchanges, worker queues and bindings (as the admin broker identity)",
     "Idempotent. The components have no configure permission: they find the\n"
     "topology in place (scripts/run and scripts/test run this)."},
    {"service-account", ctl_service_account, "NAME", 1, 1, SERVICE_OPTS,
     "create or update the broker user NAME for an outside service or subscriber",
     "It may publish the --publish commands to backend.commands, bind queues named\n"
     "NAME.<anything> to the --subscribe events of backend.events, and use those\n"
     "queues; never read commands nor publish events. A pattern is names separated\n"
     "by dots, * for one name, a final # for any; wildcards match concrete names\n"
     "only (bind each event by its name) and never grant a secret event such as\n"
     "user.password_reset_requested: name it to grant it. A new password is\n"
     "generated each time and printed once (or written to --password-file).\n"
     "Runs broker_ctl (rabbitmqctl) import_definitions."},
    {"check", ctl_check, "", 0, 0, NO_OPTS,
     "check the configuration, broker, database, schema and signing key",
     "Exit status 1 naming what is wrong, 0 when everything is ready."},
    {"config", ctl_config, "", 0, 0, NO_OPTS,
     "print the effective configuration and where each value comes from",
     "Sources: default, the file (with its line) or a BACKEND_* variable.\n"
     "Secrets (passwords) are masked."},
    {NULL, NULL, NULL, 0, 0, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: backendctl [--help] [--version] COMMAND [OPTIONS] [ARGS]\n");
}

static int main_help(void)
{
    usage(stdout);
    printf("\nThe operator's tool for the backend (run it from the repository root).\n\n"
           "commands:\n");
    for (int i = 0; COMMANDS[i].name; i++)
        printf("  %-20s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    printf("\noptions:\n  -h, --help           show this help and exit\n"
           "      --version        print the version and exit\n\n"
           "Run 'backendctl COMMAND --help' for a command's options.\n"
           "Configuration: config/backend.conf (or $BACKEND_CONFIG) and BACKEND_* variables;\n"
           "see 'backendctl config'.\n");
    return 0;
}

static void cmd_usage(const struct ctl_cmd *c, FILE *out)
{
    fprintf(out, "usage: backendctl %s", c->name);
    if (*c->synopsis)
        fprintf(out, " %s", c->synopsis);
    for (int i = 0; c->opts[i].name; i++) {
        const struct ctl_opt *o = &c->opts[i];
        fprintf(out, o->required ? " --%s%s%s" : " [--%s%s%s]", o->name, o->arg ? " " : "",
                o->arg ? o->arg : "");
    }
    fprintf(out, "\n");
}

static int cmd_help(const struct ctl_cmd *c)
{
    cmd_usage(c, stdout);
    printf("\n%s.\n", c->summary);
    if (c->help)
        printf("\n%s\n", c->help);
    printf("\noptions:\n");
    for (int i = 0; c->opts[i].name; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", c->opts[i].name, c->opts[i].arg ? " " : "",
                 c->opts[i].arg ? c->opts[i].arg : "");
        printf("  %-22s %s%s\n", left, c->opts[i].help, c->opts[i].required ? " (required)" : "");
    }
    printf("  %-22s %s\n", "-h, --help", "show this help and exit");
    return 0;
}

/* A usage error: one line, the usage, exit status 2. */
static int bad_usage(const struct ctl_cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad_usage(const struct ctl_cmd *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "backendctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (c) {
        cmd_usage(c, stderr);
        fprintf(stderr, "Run 'backendctl %s --help' for more.\n", c->name);
    } else {
        usage(stderr);
        fprintf(stderr, "Run 'backendctl --help' for the commands.\n");
    }
    return 2;
}

/* Parses argv (argv[0] = the command's name) into a. Returns -1 when the
 * command should not run: *rc is then 0 (help shown) or 2 (usage error). */
static int parse(const struct ctl_cmd *c, int argc, char **argv, struct ctl_args *a, int *rc)
{
    struct option longs[CTL_MAX_OPTS + 2];
    int n = 0;
    for (; c->opts[n].name && n < CTL_MAX_OPTS; n++)
        longs[n] = (struct option){
            c->opts[n].name, c->opts[n].arg ? required_argument : no_argument, NULL, 1000 + n};
    longs[n] = (struct option){"help", no_argument, NULL, 'h'};
    longs[n + 1] = (struct option){0};
    *a = (struct ctl_args){.opts = c->opts};
    optind = 0; /* glibc: a full reset, getopt may have run before */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        if (ch == 'h') {
            *rc = cmd_help(c);
            return -1;
        }
        if (ch == '?' || ch == ':') {
            const char *arg = argv[optind - 1];
            char shortopt[3] = {'-', (char)optopt, 0};
            *rc = bad_usage(c, ch == ':' ? "option %s needs a value" : "unknown option %s",
                            optopt && ch == '?' ? shortopt : arg);
            return -1;
        }
        const struct ctl_opt *o = &c->opts[ch - 1000];
        if (o->max > 0) {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < o->min || v > o->max) {
                *rc = bad_usage(c, "--%s: \"%s\" is not a whole number in %ld-%ld", o->name, optarg,
                                o->min, o->max);
                return -1;
            }
        }
        a->val[ch - 1000] = optarg ? optarg : "";
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    if (a->npos < c->min_pos) {
        *rc = bad_usage(c, "%s is missing", c->synopsis);
        return -1;
    }
    if (a->npos > c->max_pos) {
        *rc = bad_usage(c, "unexpected argument '%s'", a->pos[c->max_pos]);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (c->opts[i].required && !a->val[i]) {
            char name[64];
            snprintf(name, sizeof name, "--%s", c->opts[i].name);
            *rc = bad_usage(c, "option %s is required", name);
            return -1;
        }
    return 0;
}

const char *ctl_opt(const struct ctl_args *a, const char *name)
{
    for (int i = 0; a->opts[i].name && i < CTL_MAX_OPTS; i++)
        if (strcmp(a->opts[i].name, name) == 0)
            return a->val[i];
    return NULL;
}

bool ctl_flag(const struct ctl_args *a, const char *name)
{
    return ctl_opt(a, name) != NULL;
}

long ctl_opt_long(const struct ctl_args *a, const char *name, long def)
{
    const char *s = ctl_opt(a, name);
    return s ? strtol(s, NULL, 10) : def;
}

int main(int argc, char **argv)
{
    static const struct option globals[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    opterr = 0;
    int ch;
    /* "+": stop at the command's name; what follows is the command's */
    while ((ch = getopt_long(argc, argv, "+h", globals, NULL)) != -1) {
        if (ch == 'h')
            return main_help();
        if (ch == 'V') {
            printf("backendctl %s\n", BK_VERSION);
            return 0;
        }
        return bad_usage(NULL, "unknown option %s", argv[optind - 1]);
    }
    if (optind >= argc)
        return bad_usage(NULL, "%s", "no command given");
    const char *name = argv[optind];
    const struct ctl_cmd *c = NULL;
    for (int i = 0; COMMANDS[i].name && !c; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            c = &COMMANDS[i];
    if (!c)
        return bad_usage(NULL, "unknown command '%s'", name);

    struct ctl_args a;
    int rc = 0;
    if (parse(c, argc - optind, argv + optind, &a, &rc) != 0)
        return rc;
    if (bk_config_load(NULL) != 0) {
        fprintf(stderr,
                "backendctl: the configuration is invalid (above); fix %s or the "
                "BACKEND_* variables\n",
                bk_config_path());
        bk_config_free();
        return 1;
    }
    bk_log_init("backendctl");
    if (sodium_init() < 0)
        return 1;
    rc = c->run(&a);
    bk_config_free();
    return rc;
}
