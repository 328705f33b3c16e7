/* backendctl: the operator's command line, like Django's manage.py.
 *
 * main.c declares every subcommand once (name, positional arguments, options,
 * help) and parses the command line with getopt_long for all of them: `--help`
 * prints help and runs nothing, an unknown command or option is one line and
 * the usage on stderr with exit status 2. A subcommand gets its arguments
 * parsed and returns the process exit status (0 ok, 1 failed). */
#ifndef CTL_H
#define CTL_H

#include <stdbool.h>

#define CTL_MAX_OPTS 8

/* One option of a subcommand: --name, with a value when arg is not NULL. */
struct ctl_opt {
    const char *name;
    const char *arg; /* "SECONDS": takes a value; NULL: a flag */
    bool required;
    const char *help;
    long min, max; /* a whole number in [min, max] when max > 0 */
};

struct ctl_args {
    int npos;
    char **pos; /* the positional arguments */
    const struct ctl_opt *opts;
    const char *val[CTL_MAX_OPTS]; /* per option: its value, "" for a set flag, NULL */
};

/* The value of option name ("" for a flag that is set), or NULL. */
const char *ctl_opt(const struct ctl_args *a, const char *name);
bool ctl_flag(const struct ctl_args *a, const char *name);
/* A numeric option (declared with min and max, checked by the parser), or
 * def when absent. */
long ctl_opt_long(const struct ctl_args *a, const char *name, long def);

int ctl_migrate(const struct ctl_args *a);
int ctl_keygen(const struct ctl_args *a);
int ctl_service_token(const struct ctl_args *a);
int ctl_createsuperuser(const struct ctl_args *a);
int ctl_flush_expired(const struct ctl_args *a);
int ctl_replay_dead_letters(const struct ctl_args *a);
int ctl_set_staff(const struct ctl_args *a);
int ctl_users(const struct ctl_args *a);
int ctl_check(const struct ctl_args *a);
int ctl_broker_setup(const struct ctl_args *a);
int ctl_service_account(const struct ctl_args *a);
int ctl_config(const struct ctl_args *a);

/* Schema files (the .sql files of schema_dir) not yet applied: *pending of *total.
 * 0, or -1 when the folder or the database cannot be read (printed). */
struct bk_db;
int ctl_schema_pending(struct bk_db *db, int *pending, int *total);

#endif
