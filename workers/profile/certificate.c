/* certificate.*: {id, user, title, issuer, date, image, link}, read by every
 * user, written by its owner; the image comes as a multipart file. */
#include <stdio.h>

#include "workers/profile/profile.h"

/* The list conventions (shared/listing.h); ?user= alone keeps the
 * statements below. */
static const struct bk_list_field list_fields[] = {
    {"id", "x.id", BK_LT_INT, BK_LF_ORDER, NULL},
    {"user", "x.user_id", BK_LT_INT, BK_LF_EXACT | BK_LF_LENIENT, NULL},
    {"title", "x.title", BK_LT_TEXT, BK_LF_ORDER | BK_LF_SEARCH, NULL},
    {"issuer", "x.issuer", BK_LT_TEXT, BK_LF_ORDER | BK_LF_SEARCH, NULL},
    {"date", "x.date", BK_LT_DATE, BK_LF_ORDER | BK_LF_RANGE, NULL},
    {NULL, NULL, 0, 0, NULL},
};
static const struct bk_list_spec list_spec = {
    .from = "certificates x",
    .row = "certificate_json(x, $1)",
    .key = "x.id",
    .order = "x.date DESC, x.id",
    .tiebreak = "x.id",
    .fast_args = "user",
    .fields = list_fields,
};

static const struct pr_owned certificates = {
    .name = "certificate",
    .count_all = "SELECT count(*) FROM certificates",
    .count_user = "SELECT count(*) FROM certificates WHERE user_id = $1",
    .page_all = "SELECT certificate_json(x, $1) FROM certificates x "
                "ORDER BY x.date DESC, x.id LIMIT $2 OFFSET $3",
    .page_user = "SELECT certificate_json(x, $1) FROM certificates x WHERE x.user_id = $4 "
                 "ORDER BY x.date DESC, x.id LIMIT $2 OFFSET $3",
    .get = "SELECT certificate_json(x, $2) FROM certificates x WHERE x.id = $1",
    .owner = "SELECT user_id FROM certificates WHERE id = $1 FOR UPDATE",
    .del = "DELETE FROM certificates WHERE id = $1",
    .list = &list_spec,
};

struct certificate {
    const char *title, *issuer, *date, *link, *image;
    bool date_set, image_set;
};

/* Reads the fields and the image (stored once everything is valid). Returns
 * 0, or -1 on a database failure; field errors are recorded. */
static int read_certificate(struct bk_call *c, struct certificate *x)
{
    x->title = bk_in_str(c, "title");
    x->issuer = bk_in_str(c, "issuer");
    x->date = bk_in_str(c, "date");
    x->date_set = bk_in_set(c, "date");
    x->link = bk_in_str(c, "link");
    struct pr_upload img;
    int up = pr_upload_read(c, "image", PR_IMAGE, &img);
    x->image = NULL;
    x->image_set = up == 1 || img.is_null;
    if (up == 1 && !bk_failed(c))
        return pr_media_store(c, &img, &x->image);
    return 0;
}

int certificate_list(struct bk_call *c)
{
    return pr_owned_list(c, &certificates);
}

int certificate_get(struct bk_call *c)
{
    return pr_owned_get(c, &certificates);
}

int certificate_delete(struct bk_call *c)
{
    return pr_owned_delete(c, &certificates);
}

int certificate_create(struct bk_call *c)
{
    struct certificate x;
    if (read_certificate(c, &x) != 0)
        return -1;
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c,
                         "INSERT INTO certificates (user_id, title, issuer, date, link, image) "
                         "VALUES ($1, $2, $3, $4::date, coalesce($5, ''), $6) "
                         "RETURNING certificate_json(certificates, $7)",
                         c->actor.id, x.title, x.issuer, x.date, x.link, x.image, pr_base(c));
    if (!r)
        return -1;
    return bk_reply_text(c, 201, PQgetvalue(r, 0, 0));
}

int certificate_update(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_not_found(c)) /* the row's owner is checked before the body */
        return bk_reply_invalid(c);
    int64_t owner = pr_owner(c, certificates.owner, id, true, NULL);
    if (owner <= 0)
        return (int)owner;
    const char *before = pr_owned_before(c, &certificates, id);
    if (!before)
        return -1;
    struct certificate x;
    if (read_certificate(c, &x) != 0)
        return -1;
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c,
                         "UPDATE certificates SET title = coalesce($2, title), "
                         "issuer = coalesce($3, issuer), "
                         "date = CASE WHEN $4::boolean THEN $5::date ELSE date END, "
                         "link = coalesce($6, link), "
                         "image = CASE WHEN $7::boolean THEN $8 ELSE image END "
                         "WHERE id = $1 RETURNING certificate_json(certificates, $9)",
                         id, x.title, x.issuer, x.date_set ? "true" : "false", x.date, x.link,
                         x.image_set ? "true" : "false", x.image, pr_base(c));
    if (!r || pr_owned_updated(c, &certificates, id, owner, before, PQgetvalue(r, 0, 0)) != 0)
        return -1;
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}
