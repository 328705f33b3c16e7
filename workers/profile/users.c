/* profile.*: the user list and search, a user's profile with its nested
 * lists, the caller's own profile (read, update, delete, picture), follows. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/listing.h"
#include "shared/password.h"
#include "shared/validate.h"
#include "workers/profile/profile.h"

/* ---- lists of users ------------------------------------------------------- */

/* The list statements, one per (scope, role filter, number of search terms),
 * built once: the database prepares each by its address, and each gets the
 * plan that suits it.
 *
 * Without search terms: a count and a page by id (users_active_role serves a
 * role filter). With terms: one statement that collects the matching ids
 * through the trigram index once, counts them and joins the page's rows;
 * left alone, the planner walks the primary key in id order and tests every
 * row against the patterns, which costs more than the match itself. The
 * count comes in every row (and alone, with a null id, past the end). */
enum { PUBLIC, ADMIN };
static char *page_sql[2][2][PR_MAX_TERMS + 1];
static char *count_sql[2][2][PR_MAX_TERMS + 1];

struct sb {
    char buf[2048];
    size_t n;
};

static void add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->buf + b->n, sizeof b->buf - b->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        b->n = b->n + (size_t)k < sizeof b->buf ? b->n + (size_t)k : sizeof b->buf - 1;
}

/* The WHERE clause; *k is the next parameter number. */
static void add_where(struct sb *b, int scope, int role, int terms, int *k)
{
    add(b, "%s", scope == PUBLIC ? "u.is_active" : "true");
    if (role)
        add(b, " AND u.role = $%d", (*k)++);
    for (int t = 0; t < terms; t++)
        add(b, " AND u.search_text LIKE lower($%d)", (*k)++);
}

static char *build_sql(int scope, int role, int terms, bool count)
{
    struct sb b = {.n = 0};
    int k = 1;
    const char *row = scope == PUBLIC ? "profile_json(u, $1)" : "admin_user_json(u)";
    if (scope == PUBLIC)
        k++; /* $1 is the base URL in the page statements */
    if (count) {
        if (terms > 0)
            return NULL; /* the page statement counts */
        k = 1;
        add(&b, "SELECT count(*) FROM users u WHERE ");
        add_where(&b, scope, role, terms, &k);
    } else if (terms == 0) {
        add(&b, "SELECT NULL, %s FROM users u WHERE ", row);
        add_where(&b, scope, role, terms, &k);
        add(&b, " ORDER BY u.id LIMIT $%d OFFSET $%d", k, k + 1);
    } else {
        add(&b, "WITH m AS MATERIALIZED (SELECT u.id FROM users u WHERE ");
        add_where(&b, scope, role, terms, &k);
        add(&b,
            ") SELECT c.n, %s, p.id FROM (SELECT count(*) AS n FROM m) c "
            "LEFT JOIN LATERAL (SELECT id FROM m ORDER BY id LIMIT $%d OFFSET $%d) p ON true "
            "LEFT JOIN users u ON u.id = p.id ORDER BY p.id",
            row, k, k + 1);
    }
    return strdup(b.buf);
}

int pr_users_sql_init(void)
{
    for (int s = 0; s < 2; s++)
        for (int r = 0; r < 2; r++)
            for (int t = 0; t <= PR_MAX_TERMS; t++) {
                page_sql[s][r][t] = build_sql(s, r, t, false);
                count_sql[s][r][t] = build_sql(s, r, t, true);
                if (!page_sql[s][r][t] || (t == 0 && !count_sql[s][r][t]))
                    return -1;
            }
    return 0;
}

/* The list conventions (shared/listing.h) on both user lists; a request
 * with only ?search= and ?role= keeps the tuned statements above. The
 * staff's fields come first: the public list reads the same array from its
 * first shared field on (list_specs), so each is declared once. */
#define N_STAFF_ONLY 4
static const struct bk_list_field user_fields[] = {
    {"email", "u.email", BK_LT_TEXT, BK_LF_ORDER | BK_LF_SEARCH, NULL},
    {"is_staff", "u.is_staff", BK_LT_BOOL, BK_LF_EXACT, NULL},
    {"is_active", "u.is_active", BK_LT_BOOL, BK_LF_EXACT, NULL},
    {"last_login", "u.last_login", BK_LT_TIME, BK_LF_ORDER | BK_LF_RANGE, NULL},
    /* both lists */
    {"id", "u.id", BK_LT_INT, BK_LF_ORDER, NULL},
    {"username", "u.username", BK_LT_TEXT, BK_LF_ORDER, NULL},
    {"first_name", "u.first_name", BK_LT_TEXT, BK_LF_ORDER, NULL},
    {"last_name", "u.last_name", BK_LT_TEXT, BK_LF_ORDER, NULL},
    {"date_joined", "u.date_joined", BK_LT_TIME, BK_LF_ORDER | BK_LF_RANGE, NULL},
    {"role", "u.role", BK_LT_CHOICE, BK_LF_EXACT | BK_LF_LENIENT, bk_roles},
    {"search_text", "u.search_text", BK_LT_TEXT, BK_LF_SEARCH, NULL},
    {NULL, NULL, 0, 0, NULL},
};

static const struct bk_list_spec list_specs[2] = {
    [PUBLIC] = {.from = "users u",
                .row = "profile_json(u, $1)",
                .key = "u.id",
                .order = "u.id",
                .tiebreak = "u.id",
                .fast_args = "search,role",
                .fields = user_fields + N_STAFF_ONLY,
                .each = pr_hide_private},
    [ADMIN] = {.from = "users u",
               .row = "admin_user_json(u)",
               .key = "u.id",
               .order = "u.id",
               .tiebreak = "u.id",
               .fast_args = "role", /* ?search= looks in emails too: here */
               .fields = user_fields},
};

/* GET /api/users/ and /api/admin/users/: ?search= (every term in username,
 * first or last name, designation or company), ?role=, paginated by id. */
static int users_list(struct bk_call *c, int scope)
{
    if (bk_list_wanted(c, &list_specs[scope])) {
        /* $1, the media links' base, is named in the condition too, so that
         * the count statement gives it a type */
        const char *base = pr_base(c);
        return scope == PUBLIC ? bk_list_reply(c, &list_specs[scope],
                                               "u.is_active AND $1::text IS NOT NULL", 1, &base)
                               : bk_list_reply(c, &list_specs[scope], NULL, 0, NULL);
    }
    const char *search = bk_in_str(c, "search");
    const char *role = bk_in_str(c, "role");
    struct bk_page p;
    bk_page_args(c, &p);
    if (bk_failed(c))
        return bk_reply_invalid(c);
    const char *terms[PR_MAX_TERMS];
    int nt = search ? pr_search_patterns(c, search, terms) : 0;
    bool by_role = role && *role;

    const char *params[3 + 1 + PR_MAX_TERMS];
    int n = 0;
    int64_t count = -1;
    if (nt == 0) {
        if (by_role)
            params[n++] = role;
        PGresult *r = bk_sql(c, count_sql[scope][by_role][0], n, params);
        if (!r)
            return -1;
        count = atoll(PQgetvalue(r, 0, 0));
    }
    json_t *results = json_array();
    if (count < 0 || p.offset < count) {
        n = 0;
        if (scope == PUBLIC)
            params[n++] = pr_base(c);
        if (by_role)
            params[n++] = role;
        for (int i = 0; i < nt; i++)
            params[n++] = terms[i];
        params[n++] = p.limit_s;
        params[n++] = p.offset_s;
        PGresult *r = bk_sql(c, page_sql[scope][by_role][nt], n, params);
        if (!r) {
            json_decref(results);
            return -1;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            if (nt > 0) {
                count = atoll(PQgetvalue(r, i, 0));
                if (PQgetisnull(r, i, 2)) /* past the end: only the count */
                    continue;
            }
            json_t *u = pr_parse(c, PQgetvalue(r, i, 1));
            if (!u) {
                json_decref(results);
                return -1;
            }
            if (scope == PUBLIC)
                pr_hide_private(c, u);
            json_array_append_new(results, u);
        }
    }
    return bk_reply_page(c, &p, count < 0 ? 0 : count, results);
}

/* Who may list: any user (the contract, 000) or staff only (003's "User
 * List ... (Admin-only)"): the config key users_list decides. */
int profile_list(struct bk_call *c)
{
    if (strcmp(bk_config_str("users_list"), "staff") == 0 && !c->actor.is_staff)
        return bk_reply_detail(c, 403, "You do not have permission to perform this action.");
    return users_list(c, PUBLIC);
}

int admin_list(struct bk_call *c)
{
    return users_list(c, ADMIN);
}

/* The detail representation of r's row (profile_json, profile_nested_json). */
static json_t *detail(struct bk_call *c, PGresult *r)
{
    json_t *u = pr_parse(c, PQgetvalue(r, 0, 0));
    json_t *nested = pr_parse(c, PQgetvalue(r, 0, 1));
    if (!u || !nested || json_object_update(u, nested) != 0) {
        json_decref(u);
        json_decref(nested);
        return NULL;
    }
    json_decref(nested);
    pr_hide_private(c, u);
    return u;
}

static int reply_detail(struct bk_call *c, int status, PGresult *r)
{
    json_t *u = detail(c, r);
    return u ? bk_reply(c, status, u) : -1;
}

/* profile_rep and profile_nested are inlined into this statement's plan
 * (schema/008_inline.sql): nothing is planned per execution. */
static const char SQL_DETAIL[] = "SELECT p, n FROM users u, profile_rep(u, $2) p, "
                                 "profile_nested(u.id, $2) n WHERE u.id = $1 AND u.is_active";

int profile_get(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c, SQL_DETAIL, id, pr_base(c));
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    return reply_detail(c, 200, r);
}

int profile_me(struct bk_call *c)
{
    PGresult *r = BK_SQL(c, SQL_DETAIL, c->actor.id, pr_base(c));
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    return reply_detail(c, 200, r);
}

/* ---- update ----------------------------------------------------------------- */

/* The writable fields of /api/profile/ (declared in shared/contract.c, the
 * UserProfile representation), in the order of the UPDATE below. Everything
 * else a client sends (id, username, role, is_staff, date_joined,
 * profile_picture, the counts...) is read-only and ignored, as DRF does. */
static const char *const fields[] = {
    "email",   "first_name",  "last_name", "about",      "linkedin",  "github",     "phone_no",
    "address", "designation", "company",   "is_student", "is_alumni", "is_faculty",
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* The validated values as SQL text (NULL: absent, keep). PUT requires email,
 * the one field without a default, as DRF's full update does. */
static void read_fields(struct bk_call *c, const char *v[N_FIELDS])
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        bool b;
        v[i] = bk_in_bool(c, fields[i], &b) ? (b ? "true" : "false") : bk_in_str(c, fields[i]);
    }
}

/* The extra fields of one's own user on the source systems' user routes
 * (profile.update_user): the username, the role (001 lists it among what a
 * user updates; staff stays an admin matter), full_name, and a picture
 * upload (profile_picture as a file, or null to remove it). */
struct extra {
    const char *username, *role, *full_name;
    struct pr_upload pic;
    int pic_state; /* pr_upload_read's: 1 a file, 0 none, -1 invalid */
};

/* Declared in OwnUser (shared/contract.c); a picture is a file (an image
 * checked as /api/profile/picture/ checks it). */
static void read_extra(struct bk_call *c, struct extra *x)
{
    x->username = bk_in_str(c, "username");
    x->role = bk_in_str(c, "role");
    x->full_name = bk_in_str(c, "full_name");
    x->pic_state = pr_upload_read(c, "profile_picture", PR_IMAGE, &x->pic);
}

/* Updates user uid (the caller, checked by the callers) from the fields and,
 * with x, the extra ones. */
static int update(struct bk_call *c, const char *uid, struct extra *x)
{
    const char *v[N_FIELDS];
    read_fields(c, v);
    if (x)
        read_extra(c, x);
    const char *username = x ? x->username : NULL, *role = x ? x->role : NULL;
    const char *full = x ? x->full_name : NULL;
    if (v[0] && !bk_failed(c)) {
        PGresult *r =
            BK_SQL(c, "SELECT 1 FROM users WHERE lower(email) = lower($1) AND id <> $2", v[0], uid);
        if (!r)
            return -1;
        if (PQntuples(r))
            bk_error(c, "email", "A user with that email already exists.");
    }
    if (username && !bk_failed(c)) {
        PGresult *r =
            BK_SQL(c, "SELECT 1 FROM users WHERE username = $1 AND id <> $2", username, uid);
        if (!r)
            return -1;
        if (PQntuples(r))
            bk_error(c, "username", "A user with that username already exists.");
    }
    if (bk_failed(c))
        return bk_reply_invalid(c);

    PGresult *old = BK_SQL(c,
                           "SELECT email, first_name, last_name, about, linkedin, github, "
                           "phone_no, address, designation, company, is_student::text, "
                           "is_alumni::text, is_faculty::text, username, role, full_name, "
                           "is_staff FROM users WHERE id = $1 FOR UPDATE",
                           uid);
    if (!old)
        return -1;
    if (PQntuples(old) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    json_t *changed = json_array();
    json_t *changes = json_object(); /* {field: [before, after]}: the audit trail's */
    for (size_t i = 0; i < N_FIELDS; i++)
        if (v[i] && strcmp(v[i], PQgetvalue(old, 0, (int)i)) != 0) {
            const char *was = PQgetvalue(old, 0, (int)i);
            bool flag = strncmp(fields[i], "is_", 3) == 0; /* is_student...: booleans */
            json_array_append_new(changed, json_string(fields[i]));
            json_object_set_new(
                changes, fields[i],
                flag ? json_pack("[b,b]", strcmp(was, "true") == 0, strcmp(v[i], "true") == 0)
                     : json_pack("[s,s]", was, v[i]));
        }
    const char *extra_v[] = {username, role, full};
    const char *extra_n[] = {"username", "role", "full_name"};
    for (int i = 0; i < 3; i++) {
        const char *was = PQgetvalue(old, 0, (int)N_FIELDS + i);
        if (extra_v[i] && strcmp(extra_v[i], was) != 0) {
            json_array_append_new(changed, json_string(extra_n[i]));
            json_object_set_new(changes, extra_n[i], json_pack("[s,s]", was, extra_v[i]));
        }
    }

    const char *pic_key = NULL;
    if (x && x->pic_state == 1) {
        if (pr_media_store(c, &x->pic, &pic_key) != 0) {
            json_decref(changed);
            json_decref(changes);
            return -1;
        }
        json_array_append_new(changed, json_string("profile_picture"));
    } else if (x && x->pic.is_null) {
        json_array_append_new(changed, json_string("profile_picture"));
    }

    PGresult *r =
        BK_SQL(c,
               "UPDATE users SET email = coalesce($2, email), "
               "first_name = coalesce($3, first_name), "
               "last_name = coalesce($4, last_name), about = coalesce($5, about), "
               "linkedin = coalesce($6, linkedin), github = coalesce($7, github), "
               "phone_no = coalesce($8, phone_no), address = coalesce($9, address), "
               "designation = coalesce($10, designation), "
               "company = coalesce($11, company), "
               "is_student = coalesce($12::boolean, is_student), "
               "is_alumni = coalesce($13::boolean, is_alumni), "
               "is_faculty = coalesce($14::boolean, is_faculty), "
               "username = coalesce($16, username), role = coalesce($17, role), "
               "full_name = coalesce($18, full_name), "
               "profile_picture = CASE WHEN $20 THEN NULL "
               "ELSE coalesce($19, profile_picture) END WHERE id = $1 "
               "RETURNING profile_json(users, $15), profile_nested_json(id, $15)",
               uid, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12],
               pr_base(c), username, role, full, pic_key, x && x->pic.is_null ? "true" : "false");
    if (!r) {
        json_decref(changed);
        json_decref(changes);
        if (strcmp(bk_sql_state(c), "23505") == 0) { /* a concurrent update took the name */
            if (strcmp(bk_sql_constraint(c), "users_email_lower") == 0)
                bk_error(c, "email", "A user with that email already exists.");
            else
                bk_error(c, "username", "A user with that username already exists.");
            return bk_reply_invalid(c);
        }
        return -1;
    }
    json_int_t id = (json_int_t)atoll(uid);
    if (role && strcmp(role, PQgetvalue(old, 0, (int)N_FIELDS + 1)) != 0)
        bk_emit(c, "user.role_changed",
                json_pack("{s:I, s:s, s:b, s:I}", "user_id", id, "role", role, "is_staff",
                          strcmp(PQgetvalue(old, 0, (int)N_FIELDS + 3), "t") == 0, "by",
                          (json_int_t)c->actor.user_id));
    if (json_array_size(changed) > 0)
        bk_emit(c, "user.updated",
                json_pack("{s:I, s:o, s:o}", "user_id", id, "fields", changed, "changes", changes));
    else {
        json_decref(changed);
        json_decref(changes);
    }
    return reply_detail(c, 200, r);
}

int profile_update(struct bk_call *c)
{
    return update(c, c->actor.id, NULL);
}

/* The user a source system's own-user route names: args.id, which must be
 * the caller (IsOwnerOrReadOnly: 404 for no such user, 403 for another), or
 * the caller when the route has no id (003's auth/profile/, 004's profile/).
 * NULL when the reply is set, or with *failed on a database failure. */
static const char *own_user(struct bk_call *c, bool *failed)
{
    *failed = false;
    if (!bk_arg_present(c, "id"))
        return c->actor.id;
    const char *id = bk_in_str(c, "id");
    if (bk_not_found(c)) { /* the user is looked up before the body counts */
        bk_reply_invalid(c);
        return NULL;
    }
    PGresult *r = BK_SQL(c, "SELECT 1 FROM users WHERE id = $1 AND is_active", id);
    if (!r) {
        *failed = true;
        return NULL;
    }
    if (PQntuples(r) == 0) {
        bk_reply_detail(c, 404, "Not found.");
        return NULL;
    }
    if (atoll(id) != c->actor.user_id) {
        bk_reply_detail(c, 403, "You do not have permission to perform this action.");
        return NULL;
    }
    return id;
}

int profile_update_user(struct bk_call *c)
{
    bool failed;
    const char *uid = own_user(c, &failed);
    if (!uid)
        return failed ? -1 : 0;
    struct extra x = {0};
    return update(c, uid, &x);
}

/* ---- delete ------------------------------------------------------------------ */

/* Deletes the caller's row, unless it is the last active staff user. */
static int delete_self(struct bk_call *c)
{
    const char *uid = c->actor.id;
    if (c->actor.is_staff) {
        int64_t n;
        bool self_staff, actor_staff;
        if (pr_lock_staff(c, uid, &n, &self_staff, &actor_staff) != 0)
            return -1;
        if (self_staff && n == 1)
            return bk_reply_detail(c, 409, "The last active staff user cannot be deleted.");
    }
    /* token families, follows, educations... go with the row (ON DELETE
     * CASCADE); blobs nothing refers to any more go with them (triggers) */
    PGresult *r = BK_SQL(c, "DELETE FROM users u WHERE id = $1 RETURNING admin_user_json(u)", uid);
    if (!r)
        return -1;
    bk_emit(c, "user.deleted",
            json_pack("{s:I, s:o}", "user_id", (json_int_t)c->actor.user_id, "before",
                      PQntuples(r) ? pr_parse(c, PQgetvalue(r, 0, 0)) : json_null()));
    return bk_reply(c, 204, json_null());
}

int profile_delete(struct bk_call *c)
{
    const char *password = bk_in_str(c, "password");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    const char *uid = c->actor.id;
    PGresult *r = BK_SQL(c, "SELECT password FROM users WHERE id = $1", uid);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    /* the slow hash runs before any lock is taken */
    if (bk_password_verify(PQgetvalue(r, 0, 0), password) != 0) {
        bk_error(c, "password", "Incorrect password.");
        return bk_reply_invalid(c);
    }
    return delete_self(c);
}

/* DELETE of one's own user on the source systems' routes (000's ModelViewSet,
 * 001's user/<id>/): the access token is the proof, as there, no password. */
int profile_delete_user(struct bk_call *c)
{
    bool failed;
    if (!own_user(c, &failed))
        return failed ? -1 : 0;
    return delete_self(c);
}

/* ---- picture --------------------------------------------------------------- */

int profile_set_picture(struct bk_call *c)
{
    struct pr_upload u;
    if (pr_upload_read(c, "file", PR_IMAGE, &u) != 1)
        return bk_reply_invalid(c);
    const char *key;
    if (pr_media_store(c, &u, &key) != 0)
        return -1;
    const char *uid = c->actor.id;
    PGresult *old = BK_SQL(c, "SELECT profile_picture FROM users WHERE id = $1 FOR UPDATE", uid);
    if (!old)
        return -1;
    bool changed =
        PQntuples(old) == 1 && (PQgetisnull(old, 0, 0) || strcmp(PQgetvalue(old, 0, 0), key) != 0);
    PGresult *r = BK_SQL(c,
                         "UPDATE users SET profile_picture = $2 WHERE id = $1 "
                         "RETURNING profile_json(users, $3), profile_nested_json(id, $3)",
                         uid, key, pr_base(c));
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    if (changed)
        bk_emit(c, "user.updated",
                json_pack("{s:I, s:[s]}", "user_id", (json_int_t)c->actor.user_id, "fields",
                          "profile_picture"));
    return reply_detail(c, 200, r);
}

int profile_clear_picture(struct bk_call *c)
{
    PGresult *r = BK_SQL(c,
                         "UPDATE users SET profile_picture = NULL "
                         "WHERE id = $1 AND profile_picture IS NOT NULL RETURNING 1",
                         c->actor.id);
    if (!r)
        return -1;
    if (PQntuples(r) == 1)
        bk_emit(c, "user.updated",
                json_pack("{s:I, s:[s]}", "user_id", (json_int_t)c->actor.user_id, "fields",
                          "profile_picture"));
    return bk_reply(c, 204, json_null());
}

/* ---- follows --------------------------------------------------------------- */

/* The target of a follow: an active user other than the caller. Returns its
 * username, or NULL with the reply set (404 / 400) or *failed on a database
 * failure. */
static const char *follow_target(struct bk_call *c, const char *id, bool *failed)
{
    *failed = false;
    if (!id) {
        bk_reply_invalid(c);
        return NULL;
    }
    PGresult *r = BK_SQL(c, "SELECT username FROM users WHERE id = $1 AND is_active", id);
    if (!r) {
        *failed = true;
        return NULL;
    }
    if (PQntuples(r) == 0) {
        bk_reply_detail(c, 404, "Not found.");
        return NULL;
    }
    if (atoll(id) == c->actor.user_id) {
        bk_reply_detail(c, 400, "You cannot follow yourself.");
        return NULL;
    }
    return PQgetvalue(r, 0, 0);
}

static json_t *follow_event(struct bk_call *c, const char *id)
{
    return json_pack("{s:I, s:I}", "follower_id", (json_int_t)c->actor.user_id, "followee_id",
                     (json_int_t)atoll(id));
}

int profile_follow(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    bool failed;
    const char *name = follow_target(c, id, &failed);
    if (!name)
        return failed ? -1 : 0;
    PGresult *r = BK_SQL(c,
                         "INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2) "
                         "ON CONFLICT DO NOTHING RETURNING 1",
                         c->actor.id, id);
    if (!r) {
        if (strcmp(bk_sql_state(c), "23503") == 0) /* the target was deleted meanwhile */
            return bk_reply_detail(c, 404, "Not found.");
        return -1;
    }
    bool created = PQntuples(r) == 1;
    if (created)
        bk_emit(c, "user.followed", follow_event(c, id));
    return bk_reply(c, created ? 201 : 200,
                    json_pack("{s:s}", "detail", bk_strf(c, "You are now following %s.", name)));
}

int profile_unfollow(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    bool failed;
    if (!follow_target(c, id, &failed))
        return failed ? -1 : 0;
    PGresult *r =
        BK_SQL(c, "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING 1",
               c->actor.id, id);
    if (!r)
        return -1;
    if (PQntuples(r) == 1)
        bk_emit(c, "user.unfollowed", follow_event(c, id));
    return bk_reply(c, 204, json_null());
}

/* followers (who follows id) or following (whom id follows), active users
 * only, by id. */
static int people(struct bk_call *c, bool followers)
{
    const char *id = bk_in_str(c, "id");
    struct bk_page p;
    bk_page_args(c, &p);
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c, "SELECT 1 FROM users WHERE id = $1 AND is_active", id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    static const char count_followers[] =
        "SELECT count(*) FROM follows f JOIN users u ON u.id = f.follower_id "
        "WHERE f.followee_id = $1 AND u.is_active";
    static const char count_following[] =
        "SELECT count(*) FROM follows f JOIN users u ON u.id = f.followee_id "
        "WHERE f.follower_id = $1 AND u.is_active";
    static const char page_followers[] =
        "SELECT profile_json(u, $2) FROM follows f JOIN users u ON u.id = f.follower_id "
        "WHERE f.followee_id = $1 AND u.is_active ORDER BY u.id LIMIT $3 OFFSET $4";
    static const char page_following[] =
        "SELECT profile_json(u, $2) FROM follows f JOIN users u ON u.id = f.followee_id "
        "WHERE f.follower_id = $1 AND u.is_active ORDER BY u.id LIMIT $3 OFFSET $4";
    r = BK_SQL(c, followers ? count_followers : count_following, id);
    if (!r)
        return -1;
    int64_t count = atoll(PQgetvalue(r, 0, 0));
    json_t *results = json_array();
    if (p.offset < count) {
        r = BK_SQL(c, followers ? page_followers : page_following, id, pr_base(c), p.limit_s,
                   p.offset_s);
        if (!r) {
            json_decref(results);
            return -1;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            json_t *u = pr_parse(c, PQgetvalue(r, i, 0));
            if (!u) {
                json_decref(results);
                return -1;
            }
            pr_hide_private(c, u);
            json_array_append_new(results, u);
        }
    }
    return bk_reply_page(c, &p, count, results);
}

int profile_followers(struct bk_call *c)
{
    return people(c, true);
}

int profile_following(struct bk_call *c)
{
    return people(c, false);
}
