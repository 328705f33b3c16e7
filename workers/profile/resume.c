/* resume.*: one PDF per user, {user, file, uploaded_at}. Anyone signed in
 * reads a user's resume; only its owner uploads or deletes it. */
#include <stdio.h>
#include <stdlib.h>

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

/* 000's resumes viewset names a resume by its user (the one-to-one key):
 * PUT, PATCH and DELETE /api/resumes/{id}/ are the owner's only. True when
 * the call may go on; else the reply is set. (resume.update and
 * resume.delete ignore an id: they write the caller's own, whatever args
 * say.) */
static bool own_resume(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_not_found(c)) {
        bk_reply_invalid(c);
        return false;
    }
    if (atoll(id) != c->actor.user_id) {
        bk_reply_detail(c, 403, "You do not have permission to perform this action.");
        return false;
    }
    return true;
}

static const struct pr_owned resumes = {
    .count_all = "SELECT count(*) FROM resumes",
    .count_user = "SELECT count(*) FROM resumes WHERE user_id = $1",
    .page_all = "SELECT resume_json(r, $1) FROM resumes r ORDER BY r.user_id LIMIT $2 OFFSET $3",
    .page_user = "SELECT resume_json(r, $1) FROM resumes r WHERE r.user_id = $4 "
                 "ORDER BY r.user_id LIMIT $2 OFFSET $3",
};

/* GET /api/resumes/?user= (000's resumes viewset), by user. */
int resume_list(struct bk_call *c)
{
    return pr_owned_list(c, &resumes);
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

int resume_update_user(struct bk_call *c)
{
    return own_resume(c) ? resume_update(c) : 0;
}

int resume_delete_user(struct bk_call *c)
{
    return own_resume(c) ? resume_delete(c) : 0;
}
