/* backendctl check and config: is this deployment ready, and what does it run
 * with. check exits 1 naming every problem, so a script (or an operator after
 * an edit) learns everything at once. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/amqp.h"
#include "shared/config.h"
#include "shared/db.h"
#include "shared/secret.h"
#include "workers/ctl/ctl.h"

int ctl_config(const struct ctl_args *a)
{
    (void)a;
    bk_config_print(stdout);
    return 0;
}

static int report(const char *what, bool ok, const char *detail)
{
    printf("%-14s %s%s%s\n", what, ok ? "ok" : "FAILED", *detail ? ": " : "", detail);
    return ok ? 0 : 1;
}

int ctl_check(const struct ctl_args *a)
{
    (void)a;
    int bad = 0;
    char detail[512];
    /* main() loaded it: an invalid configuration never gets here */
    bad += report("configuration", true, bk_config_path());

    if (bk_config_set("amqp_nodes")) /* a cluster: any of its nodes will do */
        snprintf(detail, sizeof detail, "amqp://%s@{%s}%s", bk_amqp_user(BK_AMQP_PROCESS),
                 bk_config_str("amqp_nodes"), bk_config_str("amqp_vhost"));
    else
        snprintf(detail, sizeof detail, "amqp://%s@%s:%ld%s", bk_amqp_user(BK_AMQP_PROCESS),
                 bk_config_str("amqp_host"), bk_config_long("amqp_port"),
                 bk_config_str("amqp_vhost"));
    amqp_connection_state_t c = bk_amqp_connect("backendctl-check", 0);
    if (!c)
        strncat(detail,
                " unreachable or login refused (is RabbitMQ running? amqp_user, "
                "amqp_password_file)",
                sizeof detail - strlen(detail) - 1);
    bad += report("broker", c != NULL, detail);
    if (c)
        bk_amqp_close(c);

    struct bk_db *db = bk_db_open(0);
    bad += report("database", db != NULL,
                  db ? "" : "unreachable (is PostgreSQL running? check db_conninfo)");
    if (db) {
        int pending = 0, total = 0;
        if (ctl_schema_pending(db, &pending, &total) != 0)
            snprintf(detail, sizeof detail, "cannot read schema_migrations or %s",
                     bk_config_str("schema_dir"));
        else if (pending)
            snprintf(detail, sizeof detail, "%d of %d migrations not applied (backendctl migrate)",
                     pending, total);
        else
            snprintf(detail, sizeof detail, "%d migrations applied", total);
        bad += report("schema", pending == 0 && !strstr(detail, "cannot"), detail);
        bk_db_close(db);
    } else {
        bad += report("schema", false, "not checked: no database");
    }

    struct stat st;
    snprintf(detail, sizeof detail, "%s/signing.key", bk_config_str("key_dir"));
    bool key = stat(detail, &st) == 0 && S_ISREG(st.st_mode);
    if (!key)
        strncat(detail, " missing (backendctl keygen)", sizeof detail - strlen(detail) - 1);
    bad += report("signing key", key, detail);

    struct bk_secret_key sk;
    snprintf(detail, sizeof detail, "%s/%s", bk_config_str("key_dir"), BK_SECRET_FILE);
    key = bk_secret_get(bk_config_str("key_dir"), BK_SECRET_CURRENT, NULL, &sk) == 0;
    sodium_memzero(&sk, sizeof sk);
    if (!key)
        strncat(detail, " missing or unreadable (backendctl keygen)",
                sizeof detail - strlen(detail) - 1);
    bad += report("server secret", key, detail);

    if (bad)
        fprintf(stderr, "check: %d problem%s (above)\n", bad, bad == 1 ? "" : "s");
    return bad ? 1 : 0;
}
