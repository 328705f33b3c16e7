/* The auth worker's handlers, one file per group: register.c, login.c
 * (with throttling), tokens.c (refresh, verify, logout, JWKS), password.c
 * (change and reset), housekeeping.c. */
#ifndef AUTH_H
#define AUTH_H

#include "shared/worker.h"

int auth_register(struct bk_call *c);
int auth_register_email(struct bk_call *c);
int auth_login(struct bk_call *c);
int auth_signup(struct bk_call *c);
int auth_refresh(struct bk_call *c);
int auth_refresh_access(struct bk_call *c);
int auth_verify(struct bk_call *c);
int auth_logout(struct bk_call *c);
int auth_logout_all(struct bk_call *c);
int auth_jwks(struct bk_call *c);
int auth_change_password(struct bk_call *c);
int auth_reset_password(struct bk_call *c);
int auth_reset_password_confirm(struct bk_call *c);

/* Deletes expired families, tokens, reset tokens, throttle windows and
 * inbox rows past the idempotency window. */
int auth_housekeeping(struct bk_db *db);

/* Starts a token family (a login) for the user and signs its first pair
 * into the call's arena. 0 or -1. */
int auth_new_session(struct bk_call *c, const char *user_id, bool is_staff, const char *role,
                     const char **access, const char **refresh);

/* Signs the next access + refresh pair of family and records the refresh
 * token. 0 or -1. */
int auth_issue_pair(struct bk_call *c, const char *user_id, bool is_staff, const char *role,
                    const char *family, const char **access, const char **refresh);

/* Revokes every live family of the user (logout everywhere, password change
 * or reset). 0 or -1. */
int auth_revoke_all(struct bk_call *c, const char *user_id, const char *reason);

#endif
