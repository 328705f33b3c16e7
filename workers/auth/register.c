/* auth.register: a new account, with Django's username, email and password
 * rules and their messages. */
#include <stdlib.h>
#include <string.h>

#include "shared/password.h"
#include "shared/validate.h"
#include "workers/auth/auth.h"

int auth_register(struct bk_call *c)
{
    const char *username = bk_in_str(c, "username");
    const char *email = bk_in_str(c, "email");
    const char *password = bk_in_str(c, "password");
    const char *password2 = bk_in_str(c, "password2");
    const char *first = bk_in_str(c, "first_name");
    const char *last = bk_in_str(c, "last_name");
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
