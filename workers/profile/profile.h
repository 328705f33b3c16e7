/* The profile worker: users and profiles (users.c), educations, certificates
 * and achievements (education.c, certificate.c, achievement.c), resumes
 * (resume.c), uploaded files (upload.c checks them, media.c stores and serves
 * them), staff administration (admin.c); helpers shared by those in common.c.
 * The representations are built by SQL functions (schema/003_profiles.sql). */
#ifndef PROFILE_H
#define PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "shared/listing.h"
#include "shared/worker.h"

/* ---- upload.c: what an uploaded file is, decided by its content ---------- */

#define PR_MAX_UPLOAD (5u << 20) /* bytes */
#define PR_MAX_SIDE   10000u     /* pixels, either side */
#define PR_MAX_PIXELS 50000000u  /* width x height */

enum pr_kind {
    PR_IMAGE, /* PNG, JPEG, GIF or WebP */
    PR_PDF,
};

struct pr_file {
    const char *content_type; /* "image/png"... (static) */
    uint32_t width, height;   /* 0 for a PDF */
};

/* Opens libmagic once per process. 0 or -1. */
int pr_upload_init(void);

/* Checks data as a file of the given kind: libmagic's verdict on the bytes
 * and our own bounded parse of the header must agree, and an image must fit
 * PR_MAX_SIDE and PR_MAX_PIXELS. Returns NULL and fills f when the file is
 * acceptable, else the message for the client (static). */
const char *pr_file_check(const void *data, size_t len, enum pr_kind kind, struct pr_file *f);

/* Dimension readers: 0 and *w, *h when the header is well formed, -1
 * otherwise (-2 from the GIF reader: frames too large or too many). They
 * never read past n. */
int pr_png_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h);
int pr_jpeg_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h);
int pr_gif_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h);
int pr_webp_size(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h);

/* ---- media.c ----------------------------------------------------------- */

/* An upload read from args[field] and checked (upload.c's rules). */
struct pr_upload {
    const void *data; /* points into the message */
    size_t len;
    struct pr_file f;
    bool is_null; /* the field was sent as null (clear the file) */
};

/* Takes the declared file field (its presence and size checked by the
 * runtime) and checks its content. Returns 1 with a valid file in u, 0 when
 * the field is absent or null (u->is_null), -1 when it is invalid (field
 * error recorded). No database. */
int pr_upload_read(struct bk_call *c, const char *field, enum pr_kind kind, struct pr_upload *u);

/* Stores u's bytes once, under their SHA-256, and holds a key-share lock on
 * the row until the command commits, so that a concurrent release of the
 * same blob cannot remove it under the caller's new reference. *key gets the
 * hex digest (arena). 0 or -1 (database). */
int pr_media_store(struct bk_call *c, const struct pr_upload *u, const char **key);

int media_get(struct bk_call *c);
/* Removes blobs that nothing refers to (a safety net behind the triggers). */
int media_housekeeping(struct bk_db *db);

/* ---- common.c ---------------------------------------------------------- */

/* public_base_url, the start of absolute media URLs (never the request's
 * Host: the client chooses it). */
const char *pr_base(struct bk_call *c);
/* Parses JSON text built by PostgreSQL; NULL on failure (logged). */
json_t *pr_parse(struct bk_call *c, const char *text);
/* Removes the fields UserProfile declares BK_F_OMITTED (email, phone_no,
 * address) from a profile unless the caller is its owner or staff. */
void pr_hide_private(struct bk_call *c, json_t *profile);

/* The owner of a row of an owned resource. sql takes the row id as $1 and
 * returns user_id first (and whatever else the caller needs in *row).
 * Returns the owner id; 0 when the reply is already set (404 when the row
 * does not exist, 403 when check_owner and the caller is neither the owner
 * nor staff: staff edit and delete anyone's, as in Django's admin, and the
 * events of the change name them); -1 on a database failure. */
int64_t pr_owner(struct bk_call *c, const char *sql, const char *id, bool check_owner,
                 PGresult **row);

/* The statements of one owned resource (educations, certificates,
 * achievements): rows readable by every user, written by their owner. */
struct pr_owned {
    const char *name;       /* "education": its events are <name>.updated, <name>.deleted */
    const char *count_all;  /* no parameters */
    const char *count_user; /* $1 user id */
    const char *page_all;   /* $1 base, $2 limit, $3 offset: one JSON row each */
    const char *page_user;  /* ... and $4 user id */
    const char *get;        /* $1 id, $2 base: the row's JSON */
    const char *owner;      /* $1 id: user_id, FOR UPDATE */
    const char *del;        /* $1 id */
    /* the list conventions (shared/listing.h); its row may use $1, the
     * media links' base */
    const struct bk_list_spec *list;
};
/* GET /api/<resource>/?user= paginated (a ?user= that is not a number
 * matches nothing, as the peer's queryset.none()). */
int pr_owned_list(struct bk_call *c, const struct pr_owned *o);
int pr_owned_get(struct bk_call *c, const struct pr_owned *o);
int pr_owned_delete(struct bk_call *c, const struct pr_owned *o);
/* The row's JSON text before an update (o->get), for pr_owned_updated;
 * NULL on a database failure. */
const char *pr_owned_before(struct bk_call *c, const struct pr_owned *o, const char *id);
/* Emits <name>.updated {id, user_id, changes: {field: [before, after]}}
 * when the update changed something (the audit trail's). 0 or -1. */
int pr_owned_updated(struct bk_call *c, const struct pr_owned *o, const char *id, int64_t owner,
                     const char *before, const char *after);

/* Splits ?search= into at most PR_MAX_TERMS LIKE patterns ("%term%",
 * wildcards escaped), the way DRF's SearchFilter splits (whitespace and
 * commas). Returns the number of patterns. */
#define PR_MAX_TERMS 8
int pr_search_patterns(struct bk_call *c, const char *search, const char **out);

/* Locks every active staff row (in id order, so concurrent callers queue
 * instead of deadlocking) and tells how many there are and whether id is one
 * of them. 0 or -1. */
int pr_lock_staff(struct bk_call *c, const char *id, int64_t *n_staff, bool *id_is_staff,
                  bool *actor_is_staff);

/* ---- handlers ----------------------------------------------------------- */

int profile_list(struct bk_call *c);
int profile_get(struct bk_call *c);
int profile_me(struct bk_call *c);
int profile_update(struct bk_call *c);
int profile_delete(struct bk_call *c);
int profile_update_user(struct bk_call *c);
int profile_delete_user(struct bk_call *c);
int admin_set_role(struct bk_call *c);
int profile_set_picture(struct bk_call *c);
int profile_clear_picture(struct bk_call *c);
int profile_follow(struct bk_call *c);
int profile_unfollow(struct bk_call *c);
int profile_followers(struct bk_call *c);
int profile_following(struct bk_call *c);

int education_list(struct bk_call *c);
int education_get(struct bk_call *c);
int education_create(struct bk_call *c);
int education_update(struct bk_call *c);
int education_delete(struct bk_call *c);

int certificate_list(struct bk_call *c);
int certificate_get(struct bk_call *c);
int certificate_create(struct bk_call *c);
int certificate_update(struct bk_call *c);
int certificate_delete(struct bk_call *c);

int achievement_list(struct bk_call *c);
int achievement_get(struct bk_call *c);
int achievement_create(struct bk_call *c);
int achievement_update(struct bk_call *c);
int achievement_delete(struct bk_call *c);

int resume_list(struct bk_call *c);
int resume_get(struct bk_call *c);
int resume_update(struct bk_call *c);
int resume_delete(struct bk_call *c);
int resume_update_user(struct bk_call *c);
int resume_delete_user(struct bk_call *c);

int admin_list(struct bk_call *c);
int admin_get(struct bk_call *c);
int admin_update(struct bk_call *c);
int admin_delete(struct bk_call *c);
int admin_logout_all(struct bk_call *c);
int admin_audit(struct bk_call *c);
/* dead.c: backend.dead for the staff */
int admin_dead_letters(struct bk_call *c);
int admin_replay_dead_letters(struct bk_call *c);
int admin_discard_dead_letters(struct bk_call *c);

/* The SQL texts of the user lists, built once (prepared by address). */
int pr_users_sql_init(void);

#endif
