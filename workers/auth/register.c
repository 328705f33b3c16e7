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

int auth_register(struct bk_call *c)
{
    const char *username = bk_arg_str(c, "username", BK_REQUIRED, 150);
    const char *email = bk_arg_str(c, "email", BK_REQUIRED, 254);
    const char *password = bk_arg_str(c, "password", BK_REQUIRED | BK_NO_TRIM, 4096);
    const char *password2 = bk_arg_str(c, "password2", BK_REQUIRED | BK_NO_TRIM, 4096);
    const char *first = bk_arg_str(c, "first_name", BK_ALLOW_BLANK, 150);
    const char *last = bk_arg_str(c, "last_name", BK_ALLOW_BLANK, 150);
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
    if (bk_failed(c))
        return bk_reply_invalid(c);

    /* DRF runs the object-level checks only once every field is valid, and
     * stops at the first that raises */
    if (strcmp(password, password2) != 0) {
        bk_error(c, "password2", "The two password fields didn't match.");
        return bk_reply_invalid(c);
    }
    if (bk_password_validate(password, username, email, first, last, bk_errors_of(c, "password")))
        return bk_reply_invalid(c);

    char hash[crypto_pwhash_STRBYTES];
    if (bk_password_hash(password, hash) != 0)
        return -1;
    PGresult *r =
        BK_SQL(c,
               "INSERT INTO users (username, email, password, first_name, last_name, "
               "role) VALUES ($1, $2, $3, $4, $5, $6) "
               "RETURNING id, user_me(users)",
               username, email, hash, first ? first : "", last ? last : "", role ? role : "member");
    if (!r) {
        /* a concurrent registration took the name between check and insert */
        if (strcmp(bk_sql_state(c), "23505") == 0) {
            if (strcmp(bk_sql_constraint(c), "users_email_lower") == 0)
                bk_error(c, "email", "A user with that email already exists.");
            else
                bk_error(c, "username", "A user with that username already exists.");
            return bk_reply_invalid(c);
        }
        return -1;
    }
    json_error_t err;
    json_t *me = json_loads(PQgetvalue(r, 0, 1), 0, &err);
    if (!me)
        return -1;
    bk_emit(c, "user.registered",
            json_pack("{s:I, s:s, s:s}", "user_id", (json_int_t)atoll(PQgetvalue(r, 0, 0)),
                      "username", username, "email", email));
    return bk_reply(c, 201,
                    json_pack("{s:s, s:o}", "detail", "User registered successfully.", "user", me));
}
