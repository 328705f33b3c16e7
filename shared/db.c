#include "shared/db.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/log.h"

#define MAX_PREPARED 512

struct bk_db {
    PGconn *conn;
    /* statements prepared on this connection, found by the address of their
     * SQL text (a string literal): no hashing of the text per call */
    const char *prepared[MAX_PREPARED];
    int n_prepared;
};

/* Server notices ("relation already exists, skipping") are not errors:
 * keep them out of the output, in the debug log. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    bk_log(BK_DEBUG, NULL, "db notice: %s", message);
}

static PGconn *connect_once(void)
{
    const char *ci = bk_config_str("db_conninfo");
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        bk_log(BK_WARN, NULL, "db: cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, NULL);
    return c;
}

struct bk_db *bk_db_open(int wait_ms)
{
    struct bk_db *db = calloc(1, sizeof *db);
    if (!db)
        return NULL;
    int waited = 0, backoff = 100;
    while (!(db->conn = connect_once())) {
        if (waited >= wait_ms) {
            free(db);
            bk_log(BK_ERROR, NULL,
                   "db: giving up after %d ms (is PostgreSQL running? check "
                   "db_conninfo)",
                   waited);
            return NULL;
        }
        usleep((useconds_t)backoff * 1000);
        waited += backoff;
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
    return db;
}

void bk_db_close(struct bk_db *db)
{
    if (!db)
        return;
    PQfinish(db->conn);
    free(db);
}

PGconn *bk_db_conn(struct bk_db *db)
{
    return db->conn;
}

int bk_db_ensure(struct bk_db *db)
{
    if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
        return 0;
    bk_log(BK_WARN, NULL, "db: connection lost, reconnecting");
    PQfinish(db->conn);
    db->n_prepared = 0;
    db->conn = connect_once();
    return db->conn ? 0 : -1;
}

bool bk_db_ok(const PGresult *r)
{
    if (!r)
        return false;
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

const char *bk_db_state(const PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

static int find_or_prepare(struct bk_db *db, const char *sql, int n)
{
    for (int i = 0; i < db->n_prepared; i++)
        if (db->prepared[i] == sql)
            return i;
    if (db->n_prepared == MAX_PREPARED)
        return -1;
    char name[16];
    snprintf(name, sizeof name, "s%d", db->n_prepared);
    PGresult *r = PQprepare(db->conn, name, sql, n, NULL);
    bool ok = bk_db_ok(r);
    if (!ok)
        bk_log(BK_ERROR, NULL, "db: prepare failed: %s", r ? PQresultErrorMessage(r) : "no result");
    PQclear(r);
    if (!ok)
        return -2;
    db->prepared[db->n_prepared] = sql;
    return db->n_prepared++;
}

PGresult *bk_db_exec(struct bk_db *db, const char *sql, int n, const char *const *params)
{
    if (!db->conn)
        return NULL;
    int idx = find_or_prepare(db, sql, n);
    PGresult *r;
    if (idx == -1) {
        r = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);
    } else if (idx == -2) {
        /* a statement that does not prepare (syntax error, or the transaction
         * is aborted): run it unprepared so the caller sees the real error */
        r = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);
    } else {
        char name[16];
        snprintf(name, sizeof name, "s%d", idx);
        r = PQexecPrepared(db->conn, name, n, params, NULL, NULL, 0);
    }
    if (r && !bk_db_ok(r) && PQstatus(db->conn) != CONNECTION_OK) {
        PQclear(r);
        return NULL;
    }
    return r;
}

PGresult *bk_db_exec_once(struct bk_db *db, const char *sql, int n, const char *const *params)
{
    if (!db->conn)
        return NULL;
    PGresult *r = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (r && !bk_db_ok(r) && PQstatus(db->conn) != CONNECTION_OK) {
        PQclear(r);
        return NULL;
    }
    return r;
}

PGresult *bk_db_exec_bin(struct bk_db *db, const char *sql, int n, const char *const *values,
                         const int *lengths, const int *formats)
{
    if (!db->conn)
        return NULL;
    int idx = find_or_prepare(db, sql, n);
    PGresult *r;
    if (idx < 0) {
        r = PQexecParams(db->conn, sql, n, NULL, values, lengths, formats, 0);
    } else {
        char name[16];
        snprintf(name, sizeof name, "s%d", idx);
        r = PQexecPrepared(db->conn, name, n, values, lengths, formats, 0);
    }
    if (r && !bk_db_ok(r) && PQstatus(db->conn) != CONNECTION_OK) {
        PQclear(r);
        return NULL;
    }
    return r;
}

int bk_db_pipeline(struct bk_db *db, int n, const struct bk_db_stmt *stmts, PGresult **out)
{
    int idx[BK_DB_PIPELINE_MAX];
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    if (!db->conn || n < 1 || n > BK_DB_PIPELINE_MAX)
        return -1;
    /* prepared first, outside the pipeline (once per connection and text) */
    for (int i = 0; i < n; i++)
        idx[i] = find_or_prepare(db, stmts[i].sql, stmts[i].n);
    if (PQenterPipelineMode(db->conn) != 1)
        return -1;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        const struct bk_db_stmt *s = &stmts[i];
        if (idx[i] >= 0) {
            char name[16];
            snprintf(name, sizeof name, "s%d", idx[i]);
            ok = PQsendQueryPrepared(db->conn, name, s->n, s->values, s->lengths, s->formats, 0) ==
                 1;
        } else {
            ok = PQsendQueryParams(db->conn, s->sql, s->n, NULL, s->values, s->lengths, s->formats,
                                   0) == 1;
        }
    }
    ok = ok && PQpipelineSync(db->conn) == 1;
    /* each statement's result, then NULL; then the sync point's */
    for (int i = 0; i < n && ok; i++) {
        out[i] = PQgetResult(db->conn);
        if (!out[i]) {
            ok = false;
            break;
        }
        PGresult *extra;
        while ((extra = PQgetResult(db->conn)) != NULL)
            PQclear(extra);
    }
    if (ok) {
        PGresult *sync = PQgetResult(db->conn);
        ok = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
        PQclear(sync);
    }
    if (!ok || PQexitPipelineMode(db->conn) != 1) {
        /* a connection left mid-pipeline is of no further use: the next
         * bk_db_ensure opens a new one */
        bk_log(BK_WARN, NULL, "db: pipeline failed: %s", PQerrorMessage(db->conn));
        for (int i = 0; i < n; i++) {
            PQclear(out[i]);
            out[i] = NULL;
        }
        PQfinish(db->conn);
        db->conn = NULL;
        db->n_prepared = 0;
        return -1;
    }
    return 0;
}

int bk_db_simple(struct bk_db *db, const char *sql)
{
    if (!db->conn)
        return -1;
    PGresult *r = PQexec(db->conn, sql);
    int rc = bk_db_ok(r) ? 0 : -1;
    if (rc)
        bk_log(BK_WARN, NULL, "db: %s failed: %s", sql, PQerrorMessage(db->conn));
    PQclear(r);
    return rc;
}
