/* resume.*: one PDF per user, {user, file, uploaded_at}. Anyone signed in
 * reads a user's resume; only its owner uploads or deletes it. */
#include <stdio.h>

#include "workers/profile/profile.h"

/* GET /api/resume/ (own) or GET /api/users/{id}/resume/ (args.id). */
int resume_get(struct bk_call *c)
{
    const char *id = bk_arg_present(c, "id") ? bk_in_str(c, "id") : c->actor.id;
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r =
        BK_SQL(c, "SELECT resume_json(r, $2) FROM resumes r WHERE r.user_id = $1", id, pr_base(c));
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}

int resume_update(struct bk_call *c)
{
    struct pr_upload u;
    if (pr_upload_read(c, "file", PR_PDF, &u) != 1)
        return bk_reply_invalid(c);
    const char *key;
    if (pr_media_store(c, &u, &key) != 0)
        return -1;
    PGresult *r = BK_SQL(c,
                         "INSERT INTO resumes (user_id, file) VALUES ($1, $2) "
                         "ON CONFLICT (user_id) DO UPDATE SET file = EXCLUDED.file, "
                         "uploaded_at = now() RETURNING resume_json(resumes, $3)",
                         c->actor.id, key, pr_base(c));
    if (!r)
        return -1;
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}

int resume_delete(struct bk_call *c)
{
    PGresult *r = BK_SQL(c, "DELETE FROM resumes WHERE user_id = $1 RETURNING 1", c->actor.id);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    return bk_reply(c, 204, json_null());
}
