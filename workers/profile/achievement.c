/* achievement.*: {id, user, title, description, date, image}, read by every
 * user, written by its owner; the image comes as a multipart file. */
#include <stdio.h>

#include "workers/profile/profile.h"

/* The list conventions (shared/listing.h); ?user= alone keeps the
 * statements below. */
static const struct bk_list_field list_fields[] = {
    {"id", "a.id", BK_LT_INT, BK_LF_ORDER, NULL},
    {"user", "a.user_id", BK_LT_INT, BK_LF_EXACT | BK_LF_LENIENT, NULL},
    {"title", "a.title", BK_LT_TEXT, BK_LF_ORDER | BK_LF_SEARCH, NULL},
    {"description", "a.description", BK_LT_TEXT, BK_LF_SEARCH, NULL},
    {"date", "a.date", BK_LT_DATE, BK_LF_ORDER | BK_LF_RANGE, NULL},
    {NULL, NULL, 0, 0, NULL},
};
static const struct bk_list_spec list_spec = {
    .from = "achievements a",
    .row = "achievement_json(a, $1)",
    .key = "a.id",
    .order = "a.date DESC, a.id",
    .tiebreak = "a.id",
    .fast_args = "user",
    .fields = list_fields,
};

static const struct pr_owned achievements = {
    .name = "achievement",
    .count_all = "SELECT count(*) FROM achievements",
    .count_user = "SELECT count(*) FROM achievements WHERE user_id = $1",
    .page_all = "SELECT achievement_json(a, $1) FROM achievements a "
                "ORDER BY a.date DESC, a.id LIMIT $2 OFFSET $3",
    .page_user = "SELECT achievement_json(a, $1) FROM achievements a WHERE a.user_id = $4 "
                 "ORDER BY a.date DESC, a.id LIMIT $2 OFFSET $3",
    .get = "SELECT achievement_json(a, $2) FROM achievements a WHERE a.id = $1",
    .owner = "SELECT user_id FROM achievements WHERE id = $1 FOR UPDATE",
    .del = "DELETE FROM achievements WHERE id = $1",
    .list = &list_spec,
};

struct achievement {
    const char *title, *description, *date, *image;
    bool date_set, image_set;
};

/* Reads the fields and the image (stored once everything is valid). Returns
 * 0, or -1 on a database failure; field errors are recorded. */
static int read_achievement(struct bk_call *c, struct achievement *a)
{
    a->title = bk_in_str(c, "title");
    a->description = bk_in_str(c, "description");
    a->date = bk_in_str(c, "date");
    a->date_set = bk_in_set(c, "date");
    struct pr_upload img;
    int up = pr_upload_read(c, "image", PR_IMAGE, &img);
    a->image = NULL;
    a->image_set = up == 1 || img.is_null;
    if (up == 1 && !bk_failed(c))
        return pr_media_store(c, &img, &a->image);
    return 0;
}

int achievement_list(struct bk_call *c)
{
    return pr_owned_list(c, &achievements);
}

int achievement_get(struct bk_call *c)
{
    return pr_owned_get(c, &achievements);
}

int achievement_delete(struct bk_call *c)
{
    return pr_owned_delete(c, &achievements);
}

int achievement_create(struct bk_call *c)
{
    struct achievement a;
    if (read_achievement(c, &a) != 0)
        return -1;
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c,
                         "INSERT INTO achievements (user_id, title, description, date, image) "
                         "VALUES ($1, $2, coalesce($3, ''), $4::date, $5) "
                         "RETURNING achievement_json(achievements, $6)",
                         c->actor.id, a.title, a.description, a.date, a.image, pr_base(c));
    if (!r)
        return -1;
    return bk_reply_text(c, 201, PQgetvalue(r, 0, 0));
}

int achievement_update(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_not_found(c)) /* the row's owner is checked before the body */
        return bk_reply_invalid(c);
    int64_t owner = pr_owner(c, achievements.owner, id, true, NULL);
    if (owner <= 0)
        return (int)owner;
    const char *before = pr_owned_before(c, &achievements, id);
    if (!before)
        return -1;
    struct achievement a;
    if (read_achievement(c, &a) != 0)
        return -1;
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c,
                         "UPDATE achievements SET title = coalesce($2, title), "
                         "description = coalesce($3, description), "
                         "date = CASE WHEN $4::boolean THEN $5::date ELSE date END, "
                         "image = CASE WHEN $6::boolean THEN $7 ELSE image END "
                         "WHERE id = $1 RETURNING achievement_json(achievements, $8)",
                         id, a.title, a.description, a.date_set ? "true" : "false", a.date,
                         a.image_set ? "true" : "false", a.image, pr_base(c));
    if (!r || pr_owned_updated(c, &achievements, id, owner, before, PQgetvalue(r, 0, 0)) != 0)
        return -1;
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}
