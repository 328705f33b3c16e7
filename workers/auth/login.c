/* auth.login: a token pair for a username or email address and password,
 * with failures counted per account and per client address. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/jwt.h"
#include "shared/log.h"
#include "shared/password.h"
#include "shared/util.h"
#include "workers/auth/auth.h"

int auth_issue_pair(struct bk_call *c, const char *user_id, bool is_staff, const char *role,
                    const char *family, const char **access, const char **refresh)
{
    const char *dir = bk_config_str("key_dir");
    int64_t now = bk_now_ms() / 1000;
    struct bk_jwt_claims a = {.iat = now, .user_id = atoll(user_id), .is_staff = is_staff};
    snprintf(a.token_type, sizeof a.token_type, "access");
    snprintf(a.role, sizeof a.role, "%s", role);
    snprintf(a.family, sizeof a.family, "%s", family);
    struct bk_jwt_claims r = a;
    snprintf(r.token_type, sizeof r.token_type, "refresh");
    a.exp = now + bk_config_long("jwt_access_ttl");
    r.exp = now + bk_config_long("jwt_refresh_ttl");
    bk_uuid4(a.jti);
    bk_uuid4(r.jti);
    char *at = bk_alloc(c, BK_JWT_MAX + 1), *rt = bk_alloc(c, BK_JWT_MAX + 1);
    if (bk_jwt_sign(dir, &a, at, BK_JWT_MAX + 1) != 0 ||
        bk_jwt_sign(dir, &r, rt, BK_JWT_MAX + 1) != 0) {
        bk_log(BK_ERROR, c->request_id,
               "cannot sign tokens: is %s/signing.key there? (backendctl keygen)", dir);
        return -1;
    }
    const char *exp = bk_strf(c, "%lld", (long long)r.exp);
    if (!BK_SQL(c,
                "INSERT INTO refresh_tokens (jti, family_id, expires_at) "
                "VALUES ($1, $2, to_timestamp($3))",
                r.jti, family, exp) ||
        !BK_SQL(c,
                "UPDATE token_families SET expires_at = greatest(expires_at, to_timestamp($2)) "
                "WHERE id = $1",
                family, exp))
        return -1;
    *access = at;
    *refresh = rt;
    return 0;
}

int auth_new_session(struct bk_call *c, const char *user_id, bool is_staff, const char *role,
                     const char **access, const char **refresh)
{
    char family[37];
    bk_uuid4(family);
    if (!BK_SQL(c, "INSERT INTO token_families (id, user_id, expires_at) VALUES ($1, $2, now())",
                family, user_id))
        return -1;
    return auth_issue_pair(c, user_id, is_staff, role, family, access, refresh);
}

/* Verifying against a fixed hash when the account does not exist keeps the
 * answer as slow as for a wrong password: no probing for usernames. */
static void burn_verify(const char *password)
{
    static char dummy[crypto_pwhash_STRBYTES];
    if (!dummy[0] && bk_password_hash("not-a-real-password", dummy) != 0)
        return;
    bk_password_verify(dummy, password);
}

/* Seconds until the account or the address may try again, 0 when they may
 * now, -1 on a database failure. */
static long throttled_for(struct bk_call *c, const char *account_key, const char *address_key)
{
    const char *window = bk_strf(c, "%ld", bk_config_long("login_window_s"));
    PGresult *r = BK_SQL(c,
                         "SELECT key, failures, greatest(1, ceil(extract(epoch FROM "
                         "window_start + $3 * interval '1 second' - now())))::bigint "
                         "FROM login_throttle WHERE key IN ($1, $2) "
                         "AND window_start > now() - $3 * interval '1 second'",
                         account_key, address_key, window);
    if (!r)
        return -1;
    long wait = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        bool account = strcmp(PQgetvalue(r, i, 0), account_key) == 0;
        long limit = account ? bk_config_long("login_max_failures_account")
                             : bk_config_long("login_max_failures_address");
        long secs = atol(PQgetvalue(r, i, 2));
        if (atol(PQgetvalue(r, i, 1)) >= limit && secs > wait)
            wait = secs;
    }
    return wait;
}

static int count_failure(struct bk_call *c, const char *key)
{
    const char *window = bk_strf(c, "%ld", bk_config_long("login_window_s"));
    return BK_SQL(c,
                  "INSERT INTO login_throttle (key, failures, window_start) VALUES ($1, 1, now()) "
                  "ON CONFLICT (key) DO UPDATE SET "
                  "failures = CASE WHEN login_throttle.window_start > now() - $2 * interval '1 "
                  "second' THEN login_throttle.failures + 1 ELSE 1 END, "
                  "window_start = CASE WHEN login_throttle.window_start > now() - $2 * "
                  "interval '1 second' THEN login_throttle.window_start ELSE now() END",
                  key, window)
               ? 0
               : -1;
}

int auth_login(struct bk_call *c)
{
    const char *username = bk_in_str(c, "username");
    const char *email = bk_in_str(c, "email");
    const char *password = bk_in_str(c, "password");
    if (!username && !email && !bk_arg_present(c, "username") && !bk_arg_present(c, "email"))
        bk_error(c, "username", "This field is required.");
    if (bk_failed(c))
        return bk_reply_invalid(c);

    PGresult *r = username
                      ? BK_SQL(c,
                               "SELECT id, password, is_active, is_staff, role, user_me(users) "
                               "FROM users WHERE username = $1",
                               username)
                      : BK_SQL(c,
                               "SELECT id, password, is_active, is_staff, role, user_me(users) "
                               "FROM users WHERE lower(email) = lower($1)",
                               email);
    if (!r)
        return -1;
    bool found = PQntuples(r) == 1;
    /* an account is counted by its id when it exists, so switching between
     * username and email does not buy more tries */
    const char *account_key = found ? bk_strf(c, "user:%s", PQgetvalue(r, 0, 0))
                                    : bk_strf(c, "name:%s", username ? username : email);
    /* the address the bridge saw, or the identity of the service that
     * published: never an address a publisher merely claims */
    const char *address_key = c->client_key;
    long wait = throttled_for(c, account_key, address_key);
    if (wait < 0)
        return -1;
    if (wait > 0) {
        bk_reply_header(c, "Retry-After", bk_strf(c, "%ld", wait));
        return bk_reply(c, 429,
                        json_pack("{s:s}", "detail",
                                  bk_strf(c,
                                          "Request was throttled. Expected available in %ld "
                                          "seconds.",
                                          wait)));
    }

    bool ok = false;
    if (found)
        ok = bk_password_verify(PQgetvalue(r, 0, 1), password) == 0 &&
             strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    else
        burn_verify(password);
    if (!ok) {
        if (count_failure(c, account_key) != 0 ||
            (address_key[0] && count_failure(c, address_key) != 0))
            return -1;
        bk_commit_anyway(c); /* the failure must count */
        return bk_reply_code(c, 401, "No active account found with the given credentials",
                             "no_active_account");
    }

    const char *id = PQgetvalue(r, 0, 0);
    const char *access, *refresh;
    if (!BK_SQL(c, "DELETE FROM login_throttle WHERE key = $1", account_key) ||
        auth_new_session(c, id, strcmp(PQgetvalue(r, 0, 3), "t") == 0, PQgetvalue(r, 0, 4), &access,
                         &refresh) != 0 ||
        !BK_SQL(c, "UPDATE users SET last_login = now() WHERE id = $1", id))
        return -1;
    json_error_t err;
    json_t *me = json_loads(PQgetvalue(r, 0, 5), 0, &err);
    if (!me)
        return -1;
    bk_emit(c, "user.logged_in", json_pack("{s:I}", "user_id", (json_int_t)atoll(id)));
    return bk_reply(c, 200,
                    json_pack("{s:s, s:s, s:o}", "refresh", refresh, "access", access, "user", me));
}
