/* auth.change_password, auth.reset_password, auth.reset_password_confirm. */
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/password.h"
#include "shared/validate.h"
#include "workers/auth/auth.h"

/* The SQL text of a bytea parameter: "\x" and hex. */
static const char *bytea_hex(struct bk_call *c, const unsigned char *b, size_t n)
{
    char *s = bk_alloc(c, 2 * n + 3);
    s[0] = '\\', s[1] = 'x';
    sodium_bin2hex(s + 2, 2 * n + 1, b, n);
    return s;
}

static const char *token_hash(struct bk_call *c, const char *token)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    return bytea_hex(c, h, sizeof h);
}

/* Checks new == new2 and Django's validators against the user's attributes
 * (row r: username, email, first_name, last_name at columns 1-4). Records
 * the errors; returns true when the new password may be used. */
static bool new_password_ok(struct bk_call *c, const char *pw, const char *pw2, PGresult *r)
{
    if (strcmp(pw, pw2) != 0) {
        bk_error(c, "new_password2", "The two password fields didn't match.");
        return false;
    }
    return bk_password_validate(pw, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
                                PQgetvalue(r, 0, 4), bk_errors_of(c, "new_password")) == 0;
}

static int set_password(struct bk_call *c, const char *user_id, const char *pw)
{
    char hash[crypto_pwhash_STRBYTES];
    if (bk_password_hash(pw, hash) != 0)
        return -1;
    return BK_SQL(c, "UPDATE users SET password = $2 WHERE id = $1", user_id, hash) ? 0 : -1;
}

int auth_change_password(struct bk_call *c)
{
    const char *old = bk_in_str(c, "old_password");
    const char *pw = bk_in_str(c, "new_password");
    const char *pw2 = bk_in_str(c, "new_password2");
    const char *id = c->actor.id;
    PGresult *r = BK_SQL(c,
                         "SELECT password, username, email, first_name, last_name, is_staff, "
                         "role FROM users WHERE id = $1 FOR UPDATE",
                         id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    if (old && bk_password_verify(PQgetvalue(r, 0, 0), old) != 0)
        bk_error(c, "old_password",
                 "Your old password was entered incorrectly. Please enter it "
                 "again.");
    if (bk_failed(c) || !new_password_ok(c, pw, pw2, r))
        return bk_reply_invalid(c);

    /* every session ends; this one goes on with a fresh pair */
    const char *access, *refresh;
    if (set_password(c, id, pw) != 0 || auth_revoke_all(c, id, "password_change") != 0 ||
        auth_new_session(c, id, strcmp(PQgetvalue(r, 0, 5), "t") == 0, PQgetvalue(r, 0, 6), &access,
                         &refresh) != 0)
        return -1;
    bk_emit(c, "user.password_changed",
            json_pack("{s:I, s:s}", "user_id", (json_int_t)c->actor.user_id, "how", "change"));
    return bk_reply(c, 200,
                    json_pack("{s:s, s:s, s:s}", "detail", "Password changed successfully.",
                              "access", access, "refresh", refresh));
}

int auth_reset_password(struct bk_call *c)
{
    /* DRF's EmailField refuses a malformed address before the view runs; only
     * a well-formed one gets the 202 that does not tell whether it is known */
    const char *email = bk_in_str(c, "email");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    /* the same statements run whether or not the address is known (a decoy
     * row with no user), so neither the answer nor its time tells */
    unsigned char raw[32];
    char token[64];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(token, sizeof token, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    PGresult *u = BK_SQL(c,
                         "SELECT id, email FROM users WHERE lower(email) = lower($1) "
                         "AND is_active",
                         email);
    if (!u)
        return -1;
    bool known = PQntuples(u) == 1;
    const char *ttl = bk_strf(c, "%ld", bk_config_long("password_reset_ttl"));
    PGresult *r = BK_SQL(c,
                         "INSERT INTO password_resets (token_hash, user_id, expires_at) "
                         "VALUES ($1, $2, now() + $3 * interval '1 second') "
                         "RETURNING rfc3339(expires_at)",
                         token_hash(c, token), known ? PQgetvalue(u, 0, 0) : NULL, ttl);
    if (!r)
        return -1;
    if (known) {
        const char *id = PQgetvalue(u, 0, 0);
        char uid[32];
        sodium_bin2base64(uid, sizeof uid, (const unsigned char *)id, strlen(id),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        bk_emit(c, "user.password_reset_requested",
                json_pack("{s:I, s:s, s:s, s:s, s:s}", "user_id", (json_int_t)atoll(id), "email",
                          PQgetvalue(u, 0, 1), "uid", uid, "token", token, "expires_at",
                          PQgetvalue(r, 0, 0)));
    }
    return bk_reply_detail(c, 202,
                           "If an account with this email address exists, a password "
                           "reset link has been sent to it.");
}

int auth_reset_password_confirm(struct bk_call *c)
{
    const char *uid = bk_in_str(c, "uid");
    const char *token = bk_in_str(c, "token");
    const char *pw = bk_in_str(c, "new_password");
    const char *pw2 = bk_in_str(c, "new_password2");
    if (bk_failed(c))
        return bk_reply_invalid(c);
    char id[24] = "";
    size_t idlen = 0;
    if (sodium_base642bin((unsigned char *)id, sizeof id - 1, uid, strlen(uid), NULL, &idlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        idlen == 0 || strspn(id, "0123456789") != idlen) {
        bk_error(c, "uid", "Invalid user id or user doesn't exist.");
        return bk_reply_invalid(c);
    }
    id[idlen] = '\0';
    PGresult *r = BK_SQL(c,
                         "SELECT u.id, u.username, u.email, u.first_name, u.last_name "
                         "FROM password_resets pr JOIN users u ON u.id = pr.user_id "
                         "WHERE pr.token_hash = $1 AND pr.user_id = $2 AND pr.used_at IS NULL "
                         "AND pr.expires_at > now() AND u.is_active FOR UPDATE OF pr",
                         token_hash(c, token), id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        bk_error(c, "token", "Invalid token for given user.");
        return bk_reply_invalid(c);
    }
    if (!new_password_ok(c, pw, pw2, r))
        return bk_reply_invalid(c);
    /* single use, and any other link sent before is spent too */
    if (set_password(c, id, pw) != 0 ||
        !BK_SQL(c,
                "UPDATE password_resets SET used_at = now() WHERE user_id = $1 "
                "AND used_at IS NULL",
                id) ||
        auth_revoke_all(c, id, "password_reset") != 0)
        return -1;
    bk_emit(c, "user.password_changed",
            json_pack("{s:I, s:s}", "user_id", (json_int_t)atoll(id), "how", "reset"));
    return bk_reply_detail(c, 200, "Password has been reset with the new password.");
}
