/* auth.refresh, auth.verify, auth.logout, auth.logout_all, auth.jwks: the
 * life of a login's refresh token family. */
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/jwt.h"
#include "shared/log.h"
#include "shared/util.h"
#include "workers/auth/auth.h"

static int invalid_token(struct bk_call *c)
{
    return bk_reply_code(c, 401, "Token is invalid or expired", "token_not_valid");
}

static int blacklisted(struct bk_call *c)
{
    return bk_reply_code(c, 401, "Token is blacklisted", "token_not_valid");
}

/* Reads args[key] as a token of the wanted type. Returns false after
 * replying (400 when missing, 401 when not a valid token of that type). */
static bool read_token(struct bk_call *c, const char *key, const char *type,
                       struct bk_jwt_claims *cl)
{
    const char *token = bk_in_str(c, key);
    if (bk_failed(c)) {
        bk_reply_invalid(c);
        return false;
    }
    const char *dir = bk_config_str("key_dir");
    if (bk_jwt_verify(dir, token, bk_now_ms() / 1000, cl) != BK_JWT_OK ||
        (type && strcmp(cl->token_type, type) != 0) || !bk_uuid_valid(cl->jti, strlen(cl->jti))) {
        invalid_token(c);
        return false;
    }
    return true;
}

static const char SQL_REFRESH_STATE[] =
    "SELECT rt.used_at IS NOT NULL, f.revoked_at IS NOT NULL, f.id, u.id, u.is_active, "
    "u.is_staff, u.role FROM refresh_tokens rt "
    "JOIN token_families f ON f.id = rt.family_id JOIN users u ON u.id = f.user_id "
    "WHERE rt.jti = $1 FOR UPDATE OF rt, f";

int auth_refresh(struct bk_call *c)
{
    struct bk_jwt_claims cl;
    if (!read_token(c, "refresh", "refresh", &cl))
        return 0;
    /* the row lock makes two refreshes of one token take turns: the second
     * sees the first one's use */
    PGresult *r = BK_SQL(c, SQL_REFRESH_STATE, cl.jti);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return invalid_token(c);
    bool used = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    bool revoked = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    const char *family = PQgetvalue(r, 0, 2), *user_id = PQgetvalue(r, 0, 3);
    if (revoked)
        return blacklisted(c);
    if (used) {
        /* a rotated token came back: whoever holds it, the family is no
         * longer trusted, the thief's successors included */
        bk_log(BK_WARN, c->request_id, "refresh token reuse in family %s: revoked", family);
        if (!BK_SQL(c,
                    "UPDATE token_families SET revoked_at = now(), revoked_reason = 'reuse' "
                    "WHERE id = $1",
                    family))
            return -1;
        bk_commit_anyway(c);
        return blacklisted(c);
    }
    if (strcmp(PQgetvalue(r, 0, 4), "t") != 0)
        return bk_reply_code(c, 401, "No active account found with the given credentials",
                             "no_active_account");
    const char *access, *refresh;
    if (!BK_SQL(c, "UPDATE refresh_tokens SET used_at = now() WHERE jti = $1", cl.jti) ||
        auth_issue_pair(c, user_id, strcmp(PQgetvalue(r, 0, 5), "t") == 0, PQgetvalue(r, 0, 6),
                        family, &access, &refresh) != 0)
        return -1;
    return bk_reply(c, 200, json_pack("{s:s, s:s}", "access", access, "refresh", refresh));
}

int auth_verify(struct bk_call *c)
{
    struct bk_jwt_claims cl;
    if (!read_token(c, "token", NULL, &cl))
        return 0;
    /* an access token stands until it expires; a refresh token also has to
     * be unused in a live family */
    if (strcmp(cl.token_type, "refresh") == 0) {
        PGresult *r = BK_SQL(c,
                             "SELECT rt.used_at IS NOT NULL OR f.revoked_at IS NOT NULL "
                             "FROM refresh_tokens rt JOIN token_families f ON f.id = rt.family_id "
                             "WHERE rt.jti = $1",
                             cl.jti);
        if (!r)
            return -1;
        if (PQntuples(r) == 0)
            return invalid_token(c);
        if (strcmp(PQgetvalue(r, 0, 0), "t") == 0)
            return blacklisted(c);
    }
    return bk_reply(c, 200, json_object());
}

int auth_logout(struct bk_call *c)
{
    struct bk_jwt_claims cl;
    if (!read_token(c, "refresh", "refresh", &cl))
        return 0;
    PGresult *r = BK_SQL(c, SQL_REFRESH_STATE, cl.jti);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return invalid_token(c);
    if (strcmp(PQgetvalue(r, 0, 0), "t") == 0 || strcmp(PQgetvalue(r, 0, 1), "t") == 0)
        return blacklisted(c);
    if (atoll(PQgetvalue(r, 0, 3)) != c->actor.user_id) {
        bk_error(c, "refresh", "Token does not belong to this user.");
        return bk_reply_invalid(c);
    }
    if (!BK_SQL(c,
                "UPDATE token_families SET revoked_at = now(), revoked_reason = 'logout' "
                "WHERE id = $1",
                PQgetvalue(r, 0, 2)))
        return -1;
    return bk_reply_detail(c, 200, "Successfully logged out.");
}

int auth_revoke_all(struct bk_call *c, const char *user_id, const char *reason)
{
    return BK_SQL(c,
                  "UPDATE token_families SET revoked_at = now(), revoked_reason = $2 "
                  "WHERE user_id = $1 AND revoked_at IS NULL",
                  user_id, reason)
               ? 0
               : -1;
}

int auth_logout_all(struct bk_call *c)
{
    if (auth_revoke_all(c, c->actor.id, "logout_all") != 0)
        return -1;
    return bk_reply_detail(c, 200, "Successfully logged out of all sessions.");
}

int auth_jwks(struct bk_call *c)
{
    char *doc = bk_jwt_jwks(bk_config_str("key_dir"));
    if (!doc)
        return -1;
    int rc = bk_reply_text(c, 200, doc);
    free(doc);
    /* verifiers may cache it briefly; a rotation keeps the old key listed
     * far longer than this */
    bk_reply_header(c, "Cache-Control", "public, max-age=300");
    return rc;
}
