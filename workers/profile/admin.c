/* admin.*: staff manage users (role, staff flag, active flag, deletion).
 * The last active staff user cannot be demoted, deactivated or deleted: the
 * check runs with every active staff row locked (pr_lock_staff), so two
 * staff users demoting each other at once are serialised and the second
 * sees the first one's change. admin.list lives in users.c beside
 * profile.list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/listing.h"
#include "shared/validate.h"
#include "workers/profile/profile.h"

int admin_get(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c, "SELECT admin_user_json(u) FROM users u WHERE u.id = $1", id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}

/* A boolean as PostgreSQL prints it: NULL when absent (or invalid, recorded). */
static const char *arg_flag(struct bk_call *c, const char *key)
{
    bool b;
    return bk_in_bool(c, key, &b) ? (b ? "t" : "f") : NULL;
}

static const char FORBIDDEN[] = "You do not have permission to perform this action.";

/* Sets what is not NULL of role, staff and active ("t"/"f") on user id,
 * which exists, under the last-staff guard. */
static int set_user(struct bk_call *c, const char *id, const char *role, const char *staff,
                    const char *active)
{
    PGresult *r;
    int64_t n_staff;
    bool target_staff, actor_staff;
    if (pr_lock_staff(c, id, &n_staff, &target_staff, &actor_staff) != 0)
        return -1;
    PGresult *old =
        BK_SQL(c, "SELECT role, is_staff, is_active FROM users WHERE id = $1 FOR UPDATE", id);
    if (!old)
        return -1;
    if (PQntuples(old) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    bool demote = staff && strcmp(staff, "f") == 0;
    bool deactivate = active && strcmp(active, "f") == 0;
    if ((demote || deactivate) && target_staff && n_staff == 1)
        return bk_reply_detail(c, 409,
                               "The last active staff user cannot be demoted or deactivated.");
    if (!actor_staff) /* demoted (or deactivated) since the command was authenticated */
        return bk_reply_detail(c, 403, FORBIDDEN);

    json_t *changed = json_array();
    json_t *changes = json_object(); /* {field: [before, after]}: the audit trail's */
    const char *now[] = {role, staff, active};
    const char *names[] = {"role", "is_staff", "is_active"};
    for (int i = 0; i < 3; i++)
        if (now[i] && strcmp(now[i], PQgetvalue(old, 0, i)) != 0) {
            const char *was = PQgetvalue(old, 0, i);
            json_array_append_new(changed, json_string(names[i]));
            json_object_set_new(
                changes, names[i],
                i == 0 ? json_pack("[s,s]", was, now[i])
                       : json_pack("[b,b]", strcmp(was, "t") == 0, strcmp(now[i], "t") == 0));
        }

    r = BK_SQL(c,
               "UPDATE users SET role = coalesce($2, role), "
               "is_staff = coalesce($3::boolean, is_staff), "
               "is_active = coalesce($4::boolean, is_active) WHERE id = $1 "
               "RETURNING admin_user_json(users), role, is_staff",
               id, role, staff, active);
    if (!r) {
        json_decref(changed);
        json_decref(changes);
        return -1;
    }
    if (deactivate && strcmp(PQgetvalue(old, 0, 2), "t") == 0 &&
        !BK_SQL(c,
                "UPDATE token_families SET revoked_at = now(), revoked_reason = 'deactivated' "
                "WHERE user_id = $1 AND revoked_at IS NULL",
                id)) {
        json_decref(changed);
        json_decref(changes);
        return -1;
    }
    json_int_t uid = (json_int_t)atoll(id);
    if ((role && strcmp(role, PQgetvalue(old, 0, 0)) != 0) ||
        (staff && strcmp(staff, PQgetvalue(old, 0, 1)) != 0))
        bk_emit(c, "user.role_changed",
                json_pack("{s:I, s:s, s:b, s:I}", "user_id", uid, "role", PQgetvalue(r, 0, 1),
                          "is_staff", strcmp(PQgetvalue(r, 0, 2), "t") == 0, "by",
                          (json_int_t)c->actor.user_id));
    if (json_array_size(changed) > 0)
        bk_emit(
            c, "user.updated",
            json_pack("{s:I, s:o, s:o}", "user_id", uid, "fields", changed, "changes", changes));
    else {
        json_decref(changed);
        json_decref(changes);
    }
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}

/* The user named by args.id (a path id, or 001's body id): its id, or NULL
 * with the reply set (or *failed on a database failure). The user is looked
 * up before the body counts. */
static const char *existing_user(struct bk_call *c, bool *failed)
{
    *failed = false;
    const char *id = bk_in_str(c, "id");
    if (bk_not_found(c)) {
        bk_reply_invalid(c);
        return NULL;
    }
    PGresult *r = BK_SQL(c, "SELECT 1 FROM users WHERE id = $1", id);
    if (!r) {
        *failed = true;
        return NULL;
    }
    if (PQntuples(r) == 0) {
        bk_reply_detail(c, 404, "Not found.");
        return NULL;
    }
    return id;
}

int admin_update(struct bk_call *c)
{
    bool failed;
    const char *id = existing_user(c, &failed);
    if (!id)
        return failed ? -1 : 0;
    const char *role = bk_in_str(c, "role");
    const char *staff = arg_flag(c, "is_staff");
    const char *active = arg_flag(c, "is_active");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    return set_user(c, id, role, staff, active);
}

/* admin.set_role: 001's AdminUser/ changes a user's role, where being an
 * admin is a role: "admin" makes the user staff (its role stays), any of
 * our roles sets it and takes staff away (the downgrade 001 allows an admin
 * on itself, after which AdminUser/ answers it 403). */
int admin_set_role(struct bk_call *c)
{
    bool failed;
    const char *id = existing_user(c, &failed);
    if (!id)
        return failed ? -1 : 0;
    const char *role = bk_in_str(c, "role");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    if (strcmp(role, "admin") == 0)
        return set_user(c, id, NULL, "t", NULL);
    return set_user(c, id, role, "f", NULL);
}

int admin_delete(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c, "SELECT 1 FROM users WHERE id = $1", id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    int64_t n_staff;
    bool target_staff, actor_staff;
    if (pr_lock_staff(c, id, &n_staff, &target_staff, &actor_staff) != 0)
        return -1;
    if (target_staff && n_staff == 1)
        return bk_reply_detail(c, 409, "The last active staff user cannot be deleted.");
    if (!actor_staff)
        return bk_reply_detail(c, 403, FORBIDDEN);
    r = BK_SQL(c, "DELETE FROM users u WHERE id = $1 RETURNING admin_user_json(u)", id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) /* deleted meanwhile */
        return bk_reply_detail(c, 404, "Not found.");
    json_t *before = pr_parse(c, PQgetvalue(r, 0, 0));
    if (!before)
        return -1;
    bk_emit(c, "user.deleted",
            json_pack("{s:I, s:o}", "user_id", (json_int_t)atoll(id), "before", before));
    return bk_reply(c, 204, json_null());
}

/* POST /api/admin/users/{id}/logout/: every refresh token of the user is
 * revoked (auth.logout_all, done by staff); access tokens run out within
 * their lifetime, as after the user's own logout/all. */
int admin_logout_all(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c, "SELECT 1 FROM users WHERE id = $1", id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    r = BK_SQL(c,
               "UPDATE token_families SET revoked_at = now(), revoked_reason = 'staff' "
               "WHERE user_id = $1 AND revoked_at IS NULL",
               id);
    if (!r)
        return -1;
    long long n = atoll(PQcmdTuples(r));
    bk_emit(c, "user.sessions_revoked",
            json_pack("{s:I, s:I, s:I}", "user_id", (json_int_t)atoll(id), "sessions",
                      (json_int_t)n, "by", (json_int_t)c->actor.user_id));
    return bk_reply(c, 200,
                    json_pack("{s:s, s:I}", "detail", "The user was logged out everywhere.",
                              "sessions", (json_int_t)n));
}

/* ---- the audit trail (schema/010_audit.sql) --------------------------------- */

static const char *const object_types[] = {"user",      "order",       "payment",     "dead_letter",
                                           "education", "certificate", "achievement", NULL};

static const struct bk_list_field audit_fields[] = {
    {"id", "x.id", BK_LT_INT, BK_LF_ORDER, NULL},
    {"object_type", "x.object_type", BK_LT_CHOICE, BK_LF_EXACT, object_types},
    {"object_id", "x.object_id", BK_LT_TEXT, BK_LF_EXACT, NULL},
    {"actor", "x.actor_id", BK_LT_INT, BK_LF_EXACT, NULL},
    {"actor_service", "x.actor_service", BK_LT_TEXT, BK_LF_EXACT, NULL},
    {"event", "x.event", BK_LT_TEXT, BK_LF_EXACT | BK_LF_SEARCH, NULL},
    {"channel", "x.channel", BK_LT_TEXT, BK_LF_EXACT, NULL},
    {"request_id", "x.request_id", BK_LT_TEXT, BK_LF_EXACT, NULL},
    {"occurred_at", "x.occurred_at", BK_LT_TIME, BK_LF_ORDER | BK_LF_RANGE, NULL},
    {NULL, NULL, 0, 0, NULL},
};

static const struct bk_list_spec audit_list = {
    .from = "audit x",
    .row = "audit_json(x)",
    .key = "x.id",
    .order = "x.id DESC",
    .tiebreak = "x.id DESC",
    .fast_args = NULL,
    .fields = audit_fields,
};

/* GET /api/admin/audit/: newest first; per object with
 * ?object_type=&object_id=, per staff member with ?actor=, a period with
 * ?occurred_at__gte=&occurred_at__lte=. */
int admin_audit(struct bk_call *c)
{
    return bk_list_reply(c, &audit_list, NULL, 0, NULL);
}
