/* Pruning, so the token tables do not grow without end (a common complaint
 * about simplejwt's blacklist): run hourly by every auth copy and by
 * `backendctl flush-expired`. */
#include "workers/auth/auth.h"

#include <stdlib.h>

#include "shared/log.h"

static const char *const prune[] = {
    "DELETE FROM token_families WHERE expires_at < now() - interval '1 hour'",
    "DELETE FROM password_resets WHERE expires_at < now() - interval '1 hour'",
    "DELETE FROM login_throttle WHERE window_start < now() - interval '1 day'",
    /* the Idempotency-Key window is 24 h */
    "DELETE FROM inbox WHERE created_at < now() - interval '25 hours'",
    NULL,
};

int auth_housekeeping(struct bk_db *db)
{
    long total = 0;
    for (int i = 0; prune[i]; i++) {
        PGresult *r = bk_db_exec(db, prune[i], 0, NULL);
        if (!bk_db_ok(r)) {
            bk_log(BK_WARN, NULL, "housekeeping: %s", r ? PQresultErrorMessage(r) : "no db");
            PQclear(r);
            return -1;
        }
        total += atol(PQcmdTuples(r));
        PQclear(r);
    }
    bk_log(BK_INFO, NULL, "housekeeping: %ld expired rows deleted", total);
    return 0;
}
