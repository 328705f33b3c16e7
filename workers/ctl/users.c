/* backendctl users and set-staff: the operator's view of the users table and
 * the way to grant staff without an admin account (the first staff user). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/db.h"
#include "shared/outbox.h"
#include "shared/util.h"
#include "workers/ctl/ctl.h"

int ctl_users(const struct ctl_args *a)
{
    long limit = ctl_opt_long(a, "limit", 100);
    const char *search = ctl_opt(a, "search") ? ctl_opt(a, "search") : "";
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    struct bk_db *db = bk_db_open(5000);
    if (!db) {
        fprintf(stderr, "users: cannot reach the database (see 'backendctl check')\n");
        return 1;
    }
    /* strpos, not LIKE: the search text is taken literally (% and _ too) */
    const char *params[] = {search, lim};
    PGresult *r = bk_db_exec(db,
                             "SELECT id, username, email, is_staff, is_active, role, "
                             "to_char(date_joined AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
                             "count(*) OVER () FROM users "
                             "WHERE $1 = '' OR strpos(lower(username), lower($1)) > 0 "
                             "OR strpos(lower(email), lower($1)) > 0 ORDER BY id LIMIT $2",
                             2, params);
    int rc = 1;
    if (!bk_db_ok(r)) {
        fprintf(stderr, "users: %s", r ? PQresultErrorMessage(r) : "connection lost\n");
        goto out;
    }
    printf("%-8s %-24s %-32s %-5s %-6s %-10s %s\n", "id", "username", "email", "staff", "active",
           "role", "joined (UTC)");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-8s %-24s %-32s %-5s %-6s %-10s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), strcmp(PQgetvalue(r, i, 3), "t") == 0 ? "yes" : "no",
               strcmp(PQgetvalue(r, i, 4), "t") == 0 ? "yes" : "no", PQgetvalue(r, i, 5),
               PQgetvalue(r, i, 6));
    long total = PQntuples(r) ? atol(PQgetvalue(r, 0, 7)) : 0;
    printf("(%d of %ld user%s%s%s%s)\n", PQntuples(r), total, total == 1 ? "" : "s",
           *search ? " matching \"" : "", search, *search ? "\"" : "");
    rc = 0;
out:
    PQclear(r);
    bk_db_close(db);
    return rc;
}

/* Runs one statement of set-staff's transaction; NULL (printed) on failure. */
static PGresult *step(struct bk_db *db, const char *sql, int n, const char *const *params)
{
    PGresult *r = bk_db_exec(db, sql, n, params);
    if (bk_db_ok(r))
        return r;
    fprintf(stderr, "set-staff: %s", r ? PQresultErrorMessage(r) : "connection lost\n");
    PQclear(r);
    return NULL;
}

int ctl_set_staff(const struct ctl_args *a)
{
    const char *username = a->pos[0];
    const char *want = ctl_flag(a, "off") ? "f" : "t";
    struct bk_db *db = bk_db_open(5000);
    PGresult *staff = NULL, *user = NULL, *r = NULL;
    int rc = 1;
    if (!db) {
        fprintf(stderr, "set-staff: cannot reach the database (see 'backendctl check')\n");
        return 1;
    }
    if (bk_db_simple(db, "BEGIN") != 0)
        goto out;
    /* the same lock as admin.update: every active staff row, so a concurrent
     * demotion through the API cannot leave no staff user at all */
    staff = step(db, "SELECT id FROM users WHERE is_staff AND is_active ORDER BY id FOR UPDATE", 0,
                 NULL);
    const char *p1[] = {username};
    user = staff ? step(db,
                        "SELECT id, is_staff, is_active, role FROM users WHERE username = $1 "
                        "FOR UPDATE",
                        1, p1)
                 : NULL;
    if (!user)
        goto out;
    if (PQntuples(user) == 0) {
        fprintf(stderr, "set-staff: no user named \"%s\" (see 'backendctl users --search')\n",
                username);
        goto out;
    }
    const char *id = PQgetvalue(user, 0, 0);
    bool is_staff = strcmp(PQgetvalue(user, 0, 1), "t") == 0;
    bool active = strcmp(PQgetvalue(user, 0, 2), "t") == 0;
    if (strcmp(PQgetvalue(user, 0, 1), want) == 0) {
        printf("set-staff: %s (id %s) %s staff already; nothing changed\n", username, id,
               is_staff ? "is" : "is not");
        rc = 0;
        goto out;
    }
    if (is_staff && active && PQntuples(staff) == 1) {
        fprintf(stderr,
                "set-staff: %s is the last active staff user and keeps staff; grant "
                "staff to another user first\n",
                username);
        goto out;
    }
    const char *p2[] = {id, want};
    r = step(db, "UPDATE users SET is_staff = $2::boolean WHERE id = $1", 2, p2);
    if (!r)
        goto out;
    /* subscribers learn of it as of an admin's change; "by": null is the
     * operator. The event's correlation id is this run's request id. */
    char request_id[37];
    bk_uuid4(request_id);
    json_t *ev = bk_event_new("user.role_changed",
                              json_pack("{s:I, s:s, s:b, s:n, s:{s:[b,b]}}", "user_id",
                                        (json_int_t)atoll(id), "role", PQgetvalue(user, 0, 3),
                                        "is_staff", want[0] == 't', "by", "changes", "is_staff",
                                        want[0] != 't', want[0] == 't'),
                              request_id, NULL);
    int put = ev && bk_event_actor(ev, 0, "backendctl", "cli") == 0 ? bk_outbox_put(db, ev) : -1;
    json_decref(ev);
    if (put != 0 || bk_db_simple(db, "COMMIT") != 0)
        goto out;
    printf("set-staff: %s (id %s) %s\n", username, id,
           want[0] == 't' ? "is staff now" : "is no longer staff");
    rc = 0;
out:
    if (rc != 0 || !r)
        bk_db_simple(db, "ROLLBACK");
    PQclear(staff);
    PQclear(user);
    PQclear(r);
    bk_db_close(db);
    return rc;
}
