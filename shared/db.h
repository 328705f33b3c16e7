/* PostgreSQL through libpq: one connection per thread that needs one,
 * parameterised statements only, prepared once per connection. */
#ifndef BK_DB_H
#define BK_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

struct bk_db;

/* Connects with db_conninfo, retrying with backoff for up to wait_ms.
 * Returns NULL on failure (logged). */
struct bk_db *bk_db_open(int wait_ms);
void bk_db_close(struct bk_db *db);

/* Runs sql with n text parameters (NULL = SQL NULL). sql must be a string
 * literal or otherwise live for the life of the process: it is prepared on
 * first use and the prepared statement is found again by its address.
 * Returns the result (caller PQclear's it) or NULL on a connection failure.
 * A result whose status is an error is returned as is: see bk_db_ok. */
PGresult *bk_db_exec(struct bk_db *db, const char *sql, int n, const char *const *params);
/* The same, never prepared: for statements built per request (shared/listing.c),
 * whose text may reuse the address of a statement prepared before. */
PGresult *bk_db_exec_once(struct bk_db *db, const char *sql, int n, const char *const *params);

/* Runs sql with n parameters where some are binary (lengths/formats as in
 * PQexecParams), e.g. bytea. Prepared like bk_db_exec. Caller PQclear's the result. */
PGresult *bk_db_exec_bin(struct bk_db *db, const char *sql, int n, const char *const *values,
                         const int *lengths, const int *formats);

/* One statement of a pipeline: sql (kept as bk_db_exec's), n parameters,
 * lengths/formats as PQexecParams' (NULL: all text). */
struct bk_db_stmt {
    const char *sql;
    int n;
    const char *const *values;
    const int *lengths, *formats;
};
#define BK_DB_PIPELINE_MAX 64

/* Runs n statements (at most BK_DB_PIPELINE_MAX) in one libpq pipeline: one
 * round trip. out[i] gets statement i's result (caller PQclear's each);
 * after a failed statement the others report PGRES_PIPELINE_ABORTED. Returns
 * 0, or -1 when the connection failed (then out[] is all NULL, and the
 * connection is closed: bk_db_ensure opens a new one). */
int bk_db_pipeline(struct bk_db *db, int n, const struct bk_db_stmt *stmts, PGresult **out);

/* A plain statement without parameters (BEGIN, COMMIT, ROLLBACK). 0 or -1. */
int bk_db_simple(struct bk_db *db, const char *sql);

/* True when r is non-NULL and PGRES_COMMAND_OK or PGRES_TUPLES_OK. */
bool bk_db_ok(const PGresult *r);

/* The SQLSTATE of a failed result ("23505"...), or "" */
const char *bk_db_state(const PGresult *r);

/* Reconnects when the connection is broken; 0 when it is usable. */
int bk_db_ensure(struct bk_db *db);

PGconn *bk_db_conn(struct bk_db *db);

#endif
