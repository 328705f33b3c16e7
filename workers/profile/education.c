/* education.*: {id, user, degree, institution, start_year, end_year}, read
 * by every user, written by its owner; end_year never before start_year. */
#include <stdio.h>
#include <stdlib.h>

#include "workers/profile/profile.h"

/* The list conventions (shared/listing.h); ?user= alone keeps the
 * statements below. */
static const struct bk_list_field list_fields[] = {
    {"id", "e.id", BK_LT_INT, BK_LF_ORDER, NULL},
    {"user", "e.user_id", BK_LT_INT, BK_LF_EXACT | BK_LF_LENIENT, NULL},
    {"degree", "e.degree", BK_LT_TEXT, BK_LF_ORDER | BK_LF_SEARCH, NULL},
    {"institution", "e.institution", BK_LT_TEXT, BK_LF_ORDER | BK_LF_SEARCH, NULL},
    {"start_year", "e.start_year", BK_LT_INT, BK_LF_ORDER | BK_LF_EXACT | BK_LF_RANGE, NULL},
    {"end_year", "e.end_year", BK_LT_INT, BK_LF_ORDER | BK_LF_EXACT | BK_LF_RANGE, NULL},
    {NULL, NULL, 0, 0, NULL},
};
static const struct bk_list_spec list_spec = {
    .from = "educations e",
    .row = "education_json(e, $1)",
    .key = "e.id",
    .order = "e.start_year DESC, e.id",
    .tiebreak = "e.id",
    .fast_args = "user",
    .fields = list_fields,
};

static const struct pr_owned educations = {
    .name = "education",
    .count_all = "SELECT count(*) FROM educations",
    .count_user = "SELECT count(*) FROM educations WHERE user_id = $1",
    .page_all = "SELECT education_json(e, $1) FROM educations e "
                "ORDER BY e.start_year DESC, e.id LIMIT $2 OFFSET $3",
    .page_user = "SELECT education_json(e, $1) FROM educations e WHERE e.user_id = $4 "
                 "ORDER BY e.start_year DESC, e.id LIMIT $2 OFFSET $3",
    .get = "SELECT education_json(e, $2) FROM educations e WHERE e.id = $1",
    .owner = "SELECT user_id, start_year, end_year FROM educations WHERE id = $1 FOR UPDATE",
    .del = "DELETE FROM educations WHERE id = $1",
    .list = &list_spec,
};

struct education {
    const char *degree, *institution;
    bool has_start, has_end, end_null;
    int64_t start, end;
};

static void read_education(struct bk_call *c, struct education *e)
{
    e->degree = bk_in_str(c, "degree");
    e->institution = bk_in_str(c, "institution");
    e->has_start = bk_in_int(c, "start_year", &e->start);
    e->has_end = bk_in_set(c, "end_year");
    e->end_null = bk_in_null(c, "end_year");
    bk_in_int(c, "end_year", &e->end);
}

/* The object-level rule, with the stored values standing in for the fields
 * a partial update leaves out. */
static void check_years(struct bk_call *c, const struct education *e, PGresult *row)
{
    bool have_start = e->has_start, have_end = e->has_end && !e->end_null;
    int64_t start = e->start, end = e->end;
    if (!e->has_start && row && !PQgetisnull(row, 0, 1)) {
        start = atoll(PQgetvalue(row, 0, 1));
        have_start = true;
    }
    if (!e->has_end && row && !PQgetisnull(row, 0, 2)) {
        end = atoll(PQgetvalue(row, 0, 2));
        have_end = true;
    }
    if (have_start && have_end && end < start)
        bk_error(c, "end_year", "End year must not be before start year.");
}

int education_list(struct bk_call *c)
{
    return pr_owned_list(c, &educations);
}

int education_get(struct bk_call *c)
{
    return pr_owned_get(c, &educations);
}

int education_delete(struct bk_call *c)
{
    return pr_owned_delete(c, &educations);
}

static const char *num(struct bk_call *c, bool set, int64_t v)
{
    return set ? bk_strf(c, "%lld", (long long)v) : NULL;
}

int education_create(struct bk_call *c)
{
    struct education e;
    read_education(c, &e);
    if (!bk_failed(c))
        check_years(c, &e, NULL);
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r = BK_SQL(c,
                         "INSERT INTO educations (user_id, degree, institution, start_year, "
                         "end_year) VALUES ($1, $2, $3, $4, $5) "
                         "RETURNING education_json(educations, $6)",
                         c->actor.id, e.degree, e.institution, num(c, e.has_start, e.start),
                         num(c, e.has_end && !e.end_null, e.end), pr_base(c));
    if (!r)
        return -1;
    return bk_reply_text(c, 201, PQgetvalue(r, 0, 0));
}

int education_update(struct bk_call *c)
{
    const char *id = bk_in_str(c, "id");
    if (bk_not_found(c)) /* the row's owner is checked before the body */
        return bk_reply_invalid(c);
    PGresult *row;
    int64_t owner = pr_owner(c, educations.owner, id, true, &row);
    if (owner <= 0)
        return (int)owner;
    const char *before = pr_owned_before(c, &educations, id);
    if (!before)
        return -1;
    struct education e;
    read_education(c, &e);
    if (!bk_failed(c))
        check_years(c, &e, row);
    if (bk_failed(c))
        return bk_reply_invalid(c);
    PGresult *r =
        BK_SQL(c,
               "UPDATE educations SET degree = coalesce($2, degree), "
               "institution = coalesce($3, institution), "
               "start_year = coalesce($4::smallint, start_year), "
               "end_year = CASE WHEN $5::boolean THEN $6::smallint ELSE end_year END "
               "WHERE id = $1 RETURNING education_json(educations, $7)",
               id, e.degree, e.institution, num(c, e.has_start, e.start),
               e.has_end ? "true" : "false", num(c, e.has_end && !e.end_null, e.end), pr_base(c));
    if (!r || pr_owned_updated(c, &educations, id, owner, before, PQgetvalue(r, 0, 0)) != 0)
        return -1;
    return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
}
