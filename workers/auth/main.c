/* The auth worker: accounts and tokens. */
#include "shared/config.h"
#include "shared/password.h"
#include "workers/auth/auth.h"

static const struct bk_command commands[] = {
    {"auth.register", auth_register, BK_PUBLIC, BK_WRITE},
    /* issue 14: 001 and 002 register by email (a derived username) */
    {"auth.register_email", auth_register_email, BK_PUBLIC, BK_WRITE},
    {"auth.login", auth_login, BK_PUBLIC, BK_WRITE},
    {"auth.refresh", auth_refresh, BK_PUBLIC, BK_WRITE},
    /* issue 14: dj-rest-auth's registration (004), refresh without rotation (000, 002) */
    {"auth.signup", auth_signup, BK_PUBLIC, BK_WRITE},
    {"auth.refresh_access", auth_refresh_access, BK_PUBLIC, BK_READ},
    {"auth.verify", auth_verify, BK_PUBLIC, BK_READ},
    {"auth.logout", auth_logout, BK_USER, BK_WRITE},
    {"auth.logout_all", auth_logout_all, BK_USER, BK_WRITE},
    {"auth.change_password", auth_change_password, BK_USER, BK_WRITE},
    {"auth.jwks", auth_jwks, BK_PUBLIC, BK_READ},
    {"auth.reset_password", auth_reset_password, BK_PUBLIC, BK_WRITE},
    {"auth.reset_password_confirm", auth_reset_password_confirm, BK_PUBLIC, BK_WRITE},
    {NULL, NULL, 0, 0},
};

static int init(void)
{
    return bk_password_load_common(bk_config_str("common_passwords"));
}

int main(int argc, char **argv)
{
    bk_worker_housekeeping(auth_housekeeping, 3600);
    return bk_worker_main("auth", commands, init, argc, argv);
}
