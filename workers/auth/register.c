/* auth.register: a new account, with Django's username, email and password
 * rules and their messages. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "shared/password.h"
#include "shared/validate.h"
#include "workers/auth/auth.h"

/* Django's UnicodeUsernameValidator: \w, @ . + - _ (we take ASCII letters
 * and digits plus any non-ASCII letter byte sequence, as \w does for most). */
static bool username_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!(isalnum(*p) || *p >= 0x80 || strchr("@.+-_", *p)))
            return false;
    return true;
}

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

/* Validates and inserts the account. Returns 0 with *id and *me (caller
 * owns) set, 1 when the reply is set (a refusal), -1 on a failure. */
static int create_user(struct bk_call *c, const char **id, json_t **me)
{
    bool derive = false;
    bk_arg_bool(c, "derive_username", BK_OPTIONAL, &derive);
    const char *username = derive && !bk_arg_present(c, "username")
                               ? NULL
                               : bk_arg_str(c, "username", BK_REQUIRED, 150);
    const char *email = bk_arg_str(c, "email", BK_REQUIRED, 254);
    const char *password = bk_arg_str(c, "password", BK_REQUIRED | BK_NO_TRIM, 4096);
    const char *password2 = bk_arg_str(c, "password2", BK_REQUIRED | BK_NO_TRIM, 4096);
    const char *first = bk_arg_str(c, "first_name", BK_ALLOW_BLANK, 150);
    const char *last = bk_arg_str(c, "last_name", BK_ALLOW_BLANK, 150);
    const char *full = bk_arg_str(c, "full_name", BK_ALLOW_BLANK, 301);
    const char *designation = bk_arg_str(c, "designation", BK_ALLOW_BLANK, 100);
    const char *company = bk_arg_str(c, "company", BK_ALLOW_BLANK, 100);
    const char *role = bk_arg_choice(c, "role", BK_OPTIONAL, bk_roles);

    if (username && !username_ok(username))
        bk_error(c, "username",
                 "Enter a valid username. This value may contain only letters, "
                 "numbers, and @/./+/-/_ characters.");
    if (email && !bk_valid_email(email))
        bk_error(c, "email", "Enter a valid email address.");
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
    int rc = create_user(c, &id, &me);
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
    int rc = create_user(c, &id, &me);
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
