/* auth.register: a new account, with Django's username, email and password
 * rules and their messages. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "shared/password.h"
#include "shared/validate.h"
#include "workers/auth/auth.h"

/* The base of a derived username: the address's local part with only the
 * characters a username may hold, at most 140 (room for a number). */
static const char *username_base(struct bk_call *c, const char *email)
{
    char *b = bk_alloc(c, 141);
    size_t n = 0;
    for (const char *p = email; *p && *p != '@' && n < 140; p++)
        if (isalnum((unsigned char)*p) || strchr(".+-_", *p))
            b[n++] = *p;
    b[n] = '\0';
    return n ? b : "user";
}

/* 001 and 002 register by email alone (the flag derive_username, set by
 * their routes' variant): the username is the local part of the address,
 * followed by the smallest number from 2 up that makes it free. NULL with
 * *failed on a database failure, or when 1000 numbers are taken. */
static const char *derive_username(struct bk_call *c, const char *email, bool *failed)
{
    PGresult *r = BK_SQL(c,
                         "SELECT $1 || CASE WHEN n = 1 THEN '' ELSE n::text END "
                         "FROM generate_series(1, 1000) n WHERE NOT EXISTS (SELECT 1 FROM users "
                         "WHERE username = $1 || CASE WHEN n = 1 THEN '' ELSE n::text END) "
                         "ORDER BY n LIMIT 1",
                         username_base(c, email));
    *failed = !r;
    if (!r)
        return NULL;
    if (PQntuples(r) == 0) {
        bk_error(c, "email", "Cannot derive a free username from this address.");
        return NULL;
    }
    return bk_strf(c, "%s", PQgetvalue(r, 0, 0));
}

/* Validates and inserts the account, from auth.register's declared args
 * (Register: username, password2) or, by_email, auth.register_email's
 * (RegisterByEmail: no username, which is derived, no password2; full_name,
 * designation and company). Returns 0 with *id and *me (caller owns) set, 1
 * when the reply is set (a refusal), -1 on a failure. */
static int create_user(struct bk_call *c, bool by_email, const char **id, json_t **me)
{
    const char *username = by_email ? NULL : bk_in_str(c, "username");
    const char *email = bk_in_str(c, "email");
    const char *password = bk_in_str(c, "password");
    const char *password2 = by_email ? password : bk_in_str(c, "password2");
    const char *first = bk_in_str(c, "first_name");
    const char *last = bk_in_str(c, "last_name");
    const char *full = by_email ? bk_in_str(c, "full_name") : NULL;
    const char *designation = by_email ? bk_in_str(c, "designation") : NULL;
    const char *company = by_email ? bk_in_str(c, "company") : NULL;
    const char *role = bk_in_str(c, "role");

    if (username && !bk_failed(c)) {
        PGresult *r = BK_SQL(c, "SELECT 1 FROM users WHERE username = $1", username);
        if (!r)
            return -1;
        if (PQntuples(r))
            bk_error(c, "username", "A user with that username already exists.");
    }
    if (email) {
        PGresult *r = BK_SQL(c, "SELECT 1 FROM users WHERE lower(email) = lower($1)", email);
        if (!r)
            return -1;
        if (PQntuples(r))
            bk_error(c, "email", "A user with that email already exists.");
    }
    if (!username && !bk_failed(c)) {
        bool failed;
        username = derive_username(c, email, &failed);
        if (failed)
            return -1;
    }
    if (bk_failed(c)) {
        bk_reply_invalid(c);
        return 1;
    }

    /* DRF runs the object-level checks only once every field is valid, and
     * stops at the first that raises */
    if (strcmp(password, password2) != 0) {
        bk_error(c, "password2", "The two password fields didn't match.");
        bk_reply_invalid(c);
        return 1;
    }
    if (bk_password_validate(password, username, email, first, last, bk_errors_of(c, "password"))) {
        bk_reply_invalid(c);
        return 1;
    }

    char hash[crypto_pwhash_STRBYTES];
    if (bk_password_hash(password, hash) != 0)
        return -1;
    /* full_name: the trigger of schema/009 splits it when the names are blank */
    PGresult *r =
        BK_SQL(c,
               "INSERT INTO users (username, email, password, first_name, last_name, "
               "role, full_name, designation, company) "
               "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
               "RETURNING id, user_me(users)",
               username, email, hash, first ? first : "", last ? last : "", role ? role : "member",
               full ? full : "", designation ? designation : "", company ? company : "");
    if (!r) {
        /* a concurrent registration took the name between check and insert */
        if (strcmp(bk_sql_state(c), "23505") == 0) {
            if (strcmp(bk_sql_constraint(c), "users_email_lower") == 0)
                bk_error(c, "email", "A user with that email already exists.");
            else
                bk_error(c, "username", "A user with that username already exists.");
            bk_reply_invalid(c);
            return 1;
        }
        return -1;
    }
    json_error_t err;
    *me = json_loads(PQgetvalue(r, 0, 1), 0, &err);
    if (!*me)
        return -1;
    *id = PQgetvalue(r, 0, 0);
    bk_emit(c, "user.registered",
            json_pack("{s:I, s:s, s:s}", "user_id", (json_int_t)atoll(*id), "username", username,
                      "email", email));
    return 0;
}

int auth_register(struct bk_call *c)
{
    const char *id;
    json_t *me;
    int rc = create_user(c, false, &id, &me);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    return bk_reply(c, 201,
                    json_pack("{s:s, s:o}", "detail", "User registered successfully.", "user", me));
}

/* auth.register_email: 001's and 002's registration by email alone; the
 * username is derived from the address (derive_username). */
int auth_register_email(struct bk_call *c)
{
    const char *id;
    json_t *me;
    int rc = create_user(c, true, &id, &me);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    return bk_reply(c, 201,
                    json_pack("{s:s, s:o}", "detail", "User registered successfully.", "user", me));
}

/* auth.signup: register and log in at once, as dj-rest-auth's registration
 * view does with JWT on: {access, refresh, user}. */
int auth_signup(struct bk_call *c)
{
    const char *id, *access, *refresh;
    json_t *me;
    int rc = create_user(c, false, &id, &me);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    const char *role = json_string_value(json_object_get(me, "role"));
    if (auth_new_session(c, id, false, role ? role : "member", &access, &refresh) != 0) {
        json_decref(me);
        return -1;
    }
    bk_emit(c, "user.logged_in", json_pack("{s:I}", "user_id", (json_int_t)atoll(id)));
    return bk_reply(c, 201,
                    json_pack("{s:s, s:s, s:o}", "access", access, "refresh", refresh, "user", me));
}
