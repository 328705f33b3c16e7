/* Uploaded files: read and checked from the command's args, stored once under
 * their SHA-256 in PostgreSQL, served by media.get with an ETag. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "shared/log.h"
#include "shared/util.h"
#include "workers/profile/profile.h"

int pr_upload_read(struct bk_call *c, const char *field, enum pr_kind kind, struct pr_upload *u)
{
    memset(u, 0, sizeof *u);
    u->is_null = bk_in_null(c, field);
    u->data = bk_in_bin(c, field, &u->len);
    if (!u->data) /* absent or null, or not a file, empty, too large: recorded */
        return u->is_null || !bk_arg_present(c, field) ? 0 : -1;
    const char *why = pr_file_check(u->data, u->len, kind, &u->f);
    if (why) {
        bk_error(c, field, "%s", why);
        return -1;
    }
    return 1;
}

int pr_media_store(struct bk_call *c, const struct pr_upload *u, const char **key)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, u->data, u->len);
    char *hex = bk_alloc(c, 2 * sizeof digest + 1);
    sodium_bin2hex(hex, 2 * sizeof digest + 1, digest, sizeof digest);
    const char *size = bk_strf(c, "%zu", u->len);
    const char *w = u->f.width ? bk_strf(c, "%u", (unsigned)u->f.width) : NULL;
    const char *h = u->f.height ? bk_strf(c, "%u", (unsigned)u->f.height) : NULL;
    const char *values[] = {hex, u->f.content_type, size, w, h, u->data};
    const int lengths[] = {0, 0, 0, 0, 0, (int)u->len};
    const int formats[] = {0, 0, 0, 0, 0, 1};
    /* A release committing between our insert (which found the row) and our
     * lock removes it: then insert again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        PGresult *r = bk_sql_bin(c,
                                 "INSERT INTO media (key, content_type, size, width, height, data) "
                                 "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING",
                                 6, values, lengths, formats);
        if (!r)
            return -1;
        r = BK_SQL(c, "SELECT 1 FROM media WHERE key = $1 FOR KEY SHARE", hex);
        if (!r)
            return -1;
        if (PQntuples(r) == 1) {
            *key = hex;
            return 0;
        }
    }
    return -1;
}

static bool key_ok(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size != 64)
        return false;
    for (uint32_t i = 0; i < 64; i++) {
        char ch = o->via.str.ptr[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
    }
    return true;
}

/* If-None-Match holds etag (or "*"): a comma-separated list of entity tags,
 * weak ones compared weakly as RFC 9110 says for GET. */
static bool none_match_hits(const msgpack_object *o, const char *etag)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size <= 8192 &&
           bk_etag_list_has(o->via.str.ptr, o->via.str.size, etag);
}

int media_get(struct bk_call *c)
{
    const msgpack_object *k = bk_arg(c, "key");
    if (!key_ok(k))
        return bk_reply_detail(c, 404, "Not found.");
    const char *key = bk_strf(c, "%.64s", k->via.str.ptr);
    const char *etag = bk_strf(c, "\"%s\"", key);
    if (none_match_hits(bk_arg(c, "if_none_match"), etag)) {
        PGresult *r = BK_SQL(c, "SELECT content_type FROM media WHERE key = $1", key);
        if (!r)
            return -1;
        if (PQntuples(r) == 0)
            return bk_reply_detail(c, 404, "Not found.");
        return bk_reply(c, 304,
                        json_pack("{s:s, s:s, s:s}", "content_type", PQgetvalue(r, 0, 0), "etag",
                                  etag, "data", ""));
    }
    PGresult *r = BK_SQL(c, "SELECT content_type, data FROM media WHERE key = $1", key);
    if (!r)
        return -1;
    if (PQntuples(r) == 0)
        return bk_reply_detail(c, 404, "Not found.");
    size_t len = 0;
    unsigned char *data = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &len);
    if (!data)
        return -1;
    int rc = bk_reply_blob(c, PQgetvalue(r, 0, 0), etag, data, len);
    PQfreemem(data);
    return rc;
}

int media_housekeeping(struct bk_db *db)
{
    /* media_release keeps whatever a concurrent upload has just referred to */
    PGresult *r = bk_db_exec(db,
                             "SELECT count(media_release(m.key)) FROM media m "
                             "WHERE m.created_at < now() - interval '1 hour' "
                             "AND NOT EXISTS (SELECT 1 FROM users WHERE profile_picture = m.key) "
                             "AND NOT EXISTS (SELECT 1 FROM certificates WHERE image = m.key) "
                             "AND NOT EXISTS (SELECT 1 FROM achievements WHERE image = m.key) "
                             "AND NOT EXISTS (SELECT 1 FROM resumes WHERE file = m.key)",
                             0, NULL);
    int rc = bk_db_ok(r) ? 0 : -1;
    if (rc)
        bk_log(BK_WARN, NULL, "media housekeeping: %s",
               r ? PQresultErrorMessage(r) : "connection lost");
    PQclear(r);
    return rc;
}
