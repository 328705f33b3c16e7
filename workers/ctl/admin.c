/* backendctl service-token, createsuperuser, flush-expired. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/db.h"
#include "shared/jwt.h"
#include "shared/password.h"
#include "shared/util.h"
#include "workers/auth/auth.h"
#include "workers/ctl/ctl.h"

int ctl_service_token(const struct ctl_args *a)
{
    const char *name = a->pos[0];
    long ttl = ctl_opt_long(a, "ttl", 3600);
    if (strlen(name) >= 64 || !*name) {
        fprintf(stderr, "service-token: the name must be 1 to 63 characters\n");
        return 2;
    }
    struct bk_jwt_claims cl = {.iat = bk_now_ms() / 1000};
    cl.exp = cl.iat + ttl;
    snprintf(cl.token_type, sizeof cl.token_type, "access");
    snprintf(cl.service, sizeof cl.service, "%s", name);
    snprintf(cl.role, sizeof cl.role, "service");
    bk_uuid4(cl.jti);
    char token[BK_JWT_MAX + 1];
    if (bk_jwt_sign(bk_config_str("key_dir"), &cl, token, sizeof token) != 0) {
        fprintf(stderr, "service-token: cannot sign (run backendctl keygen first)\n");
        return 1;
    }
    printf("%s\n", token);
    return 0;
}

/* Reads a line from the terminal without echo. */
static int prompt_password(const char *label, char *out, size_t n)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return -1;
    struct termios old, quiet;
    fprintf(tty, "%s", label);
    fflush(tty);
    tcgetattr(fileno(tty), &old);
    quiet = old;
    quiet.c_lflag &= (tcflag_t)~ECHO;
    tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    char *got = fgets(out, (int)n, tty);
    tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fprintf(tty, "\n");
    fclose(tty);
    if (!got)
        return -1;
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

int ctl_createsuperuser(const struct ctl_args *a)
{
    const char *username = ctl_opt(a, "username");
    const char *email = ctl_opt(a, "email");
    char pw[512] = "", pw2[512] = "";
    const char *env = getenv("BACKEND_SUPERUSER_PASSWORD");
    if (env) {
        snprintf(pw, sizeof pw, "%s", env);
    } else if (prompt_password("Password: ", pw, sizeof pw) != 0 ||
               prompt_password("Password (again): ", pw2, sizeof pw2) != 0 ||
               strcmp(pw, pw2) != 0) {
        fprintf(stderr, "createsuperuser: the passwords do not match (or no terminal: set "
                        "BACKEND_SUPERUSER_PASSWORD)\n");
        return 1;
    }
    if (bk_password_load_common(bk_config_str("common_passwords")) != 0)
        return 1;
    json_t *errors = json_array();
    int bad = bk_password_validate(pw, username, email, NULL, NULL, errors);
    for (size_t i = 0; i < json_array_size(errors); i++)
        fprintf(stderr, "createsuperuser: %s\n", json_string_value(json_array_get(errors, i)));
    json_decref(errors);
    if (bad)
        return 1;
    char hash[crypto_pwhash_STRBYTES];
    if (bk_password_hash(pw, hash) != 0)
        return 1;
    sodium_memzero(pw, sizeof pw);
    struct bk_db *db = bk_db_open(10000);
    if (!db)
        return 1;
    const char *params[] = {username, email, hash};
    PGresult *r = bk_db_exec(db,
                             "INSERT INTO users (username, email, password, is_staff, "
                             "is_superuser) VALUES ($1, $2, $3, true, true) RETURNING id",
                             3, params);
    int rc = 1;
    if (bk_db_ok(r)) {
        printf("createsuperuser: created %s (id %s)\n", username, PQgetvalue(r, 0, 0));
        rc = 0;
    } else {
        fprintf(stderr, "createsuperuser: %s", PQresultErrorMessage(r));
    }
    PQclear(r);
    bk_db_close(db);
    return rc;
}

int ctl_flush_expired(const struct ctl_args *a)
{
    (void)a;
    struct bk_db *db = bk_db_open(10000);
    if (!db)
        return 1;
    int rc = auth_housekeeping(db) == 0 ? 0 : 1;
    bk_db_close(db);
    return rc;
}
