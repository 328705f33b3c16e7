/* Validators for text Django checks with its own validators: email
 * addresses (EmailValidator) and web URLs (URLValidator with the http and
 * https schemes), written without Django's regexes. */
#ifndef BK_VALIDATE_H
#define BK_VALIDATE_H

#include <stdbool.h>

bool bk_valid_email(const char *s);
bool bk_valid_url(const char *s);

/* The contract's user roles, NULL-terminated, for bk_arg_choice (the same
 * list is the CHECK constraint of users.role in schema/001_platform.sql). */
extern const char *const bk_roles[];

#endif
