/* backendctl: the operator's command line. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "shared/config.h"
#include "shared/log.h"
#include "workers/ctl/ctl.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} subcommands[] = {
    {"migrate", ctl_migrate, "apply schema/*.sql not applied yet, in order"},
    {"keygen", ctl_keygen, "create the token signing key (--rotate: a new one)"},
    {"service-token", ctl_service_token, "mint an access token for a service: NAME [--ttl s]"},
    {"createsuperuser", ctl_createsuperuser,
     "--username U --email E (password from "
     "BACKEND_SUPERUSER_PASSWORD or a prompt)"},
    {"flush-expired", ctl_flush_expired, "delete expired tokens, reset links, inbox rows"},
    {"replay-dead-letters", ctl_replay_dead_letters,
     "put backend.dead back on backend.commands [--limit N] [--command PREFIX]"},
    {NULL, NULL, NULL},
};

static int usage(void)
{
    fprintf(stderr, "usage: backendctl <command> [options]\n\ncommands:\n");
    for (int i = 0; subcommands[i].name; i++)
        fprintf(stderr, "  %-16s %s\n", subcommands[i].name, subcommands[i].help);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (bk_config_load(NULL) != 0)
        return 2;
    bk_log_init("backendctl");
    if (sodium_init() < 0)
        return 2;
    for (int i = 0; subcommands[i].name; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0) {
            int rc = subcommands[i].run(argc - 2, argv + 2);
            bk_config_free();
            return rc;
        }
    return usage();
}
