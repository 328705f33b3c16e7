/* backendctl migrate: applies schema/NNN_name.sql in order, each in its own
 * transaction with its record in schema_migrations, so a second run does
 * nothing and a failed file leaves no half-applied schema. */
#include <dirent.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/db.h"
#include "shared/log.h"
#include "workers/ctl/ctl.h"

#define MAX_FILES 256
#define MAX_SQL   (4 << 20)

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f)
        return NULL;
    buf = malloc(MAX_SQL + 1);
    size_t n = buf ? fread(buf, 1, MAX_SQL, f) : 0;
    if (buf && (n == MAX_SQL || ferror(f))) {
        free(buf);
        buf = NULL;
    } else if (buf) {
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

static int apply(struct bk_db *db, const char *dir, const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *sql = read_file(path);
    int rc = -1;
    if (!sql) {
        fprintf(stderr, "migrate: cannot read %s\n", path);
        return -1;
    }
    if (bk_db_simple(db, "BEGIN") != 0)
        goto out;
    /* a file holds several statements: the simple-query protocol runs them
     * all; the file is ours, not input */
    PGresult *r = PQexec(bk_db_conn(db), sql);
    if (!bk_db_ok(r)) {
        fprintf(stderr, "migrate: %s failed: %s", file, PQresultErrorMessage(r));
        PQclear(r);
        bk_db_simple(db, "ROLLBACK");
        goto out;
    }
    PQclear(r);
    const char *params[] = {file};
    r = bk_db_exec(db, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, params);
    bool ok = bk_db_ok(r);
    PQclear(r);
    if (!ok || bk_db_simple(db, "COMMIT") != 0) {
        bk_db_simple(db, "ROLLBACK");
        goto out;
    }
    printf("migrate: applied %s\n", file);
    rc = 0;
out:
    free(sql);
    return rc;
}

/* The schema files of dir (*.sql), sorted; returns their count (at most
 * MAX_FILES) or -1 when dir cannot be read. The caller frees each name. */
static int list_files(const char *dir, char *files[MAX_FILES])
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr,
                "migrate: cannot open %s (run from the repository root, or set schema_dir)\n", dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_FILES) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".sql") == 0 && (files[n] = strdup(e->d_name)))
            n++;
    }
    closedir(d);
    qsort(files, (size_t)n, sizeof *files, by_name);
    return n;
}

/* 1 when file is recorded in schema_migrations, 0 when not, -1 on error. */
static int is_applied(struct bk_db *db, const char *file)
{
    const char *params[] = {file};
    PGresult *r = bk_db_exec(db, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, params);
    int rc = bk_db_ok(r) ? PQntuples(r) == 1 : -1;
    PQclear(r);
    return rc;
}

int ctl_schema_pending(struct bk_db *db, int *pending, int *total)
{
    char *files[MAX_FILES];
    int n = list_files(bk_config_str("schema_dir"), files), rc = 0;
    *pending = *total = 0;
    if (n < 0)
        return -1;
    PGresult *r = bk_db_exec(db, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL);
    bool table = bk_db_ok(r) && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if (!bk_db_ok(r))
        rc = -1;
    PQclear(r);
    for (int i = 0; i < n; i++) {
        int done = table && rc == 0 ? is_applied(db, files[i]) : 0;
        if (done < 0)
            rc = -1;
        *pending += done == 0;
        free(files[i]);
    }
    *total = n;
    return rc;
}

int ctl_migrate(const struct ctl_args *a)
{
    (void)a;
    const char *dir = bk_config_str("schema_dir");
    char *files[MAX_FILES];
    int n = 0, rc = 1, applied = 0;
    struct bk_db *db = bk_db_open(10000);
    if (!db)
        return 1;
    n = list_files(dir, files);
    if (n < 0) {
        n = 0;
        goto out;
    }

    /* one migrator at a time, whoever else runs it */
    if (bk_db_simple(db, "SELECT pg_advisory_lock(727272)") != 0 ||
        bk_db_simple(db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"))
        goto out;
    for (int i = 0; i < n; i++) {
        int done = is_applied(db, files[i]);
        if (done < 0)
            goto out;
        if (done)
            continue;
        if (apply(db, dir, files[i]) != 0)
            goto out;
        applied++;
    }
    printf("migrate: %d applied, %d already there\n", applied, n - applied);
    rc = 0;
out:
    for (int i = 0; i < n; i++)
        free(files[i]);
    bk_db_close(db);
    return rc;
}
