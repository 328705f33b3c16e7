/* backendctl keygen [--rotate]: makes sure key_dir holds a token signing key.
 * Without --rotate it is idempotent (an existing key is kept); with it a new
 * key signs from now on while the old public keys keep verifying the tokens
 * already issued. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/config.h"
#include "shared/jwt.h"
#include "workers/ctl/ctl.h"

int ctl_keygen(const struct ctl_args *a)
{
    bool rotate = ctl_flag(a, "rotate"), existed;
    char kid[64], path[4096];
    struct stat st;
    const char *dir = bk_config_str("key_dir");
    if (snprintf(path, sizeof path, "%s/signing.key", dir) >= (int)sizeof path) {
        fprintf(stderr, "keygen: key_dir too long\n");
        return 1;
    }
    existed = stat(path, &st) == 0;
    if (bk_jwt_keygen(dir, rotate, kid) != 0) {
        fprintf(stderr, "keygen: cannot create the signing key in %s (see the log)\n", dir);
        return 1;
    }
    if (rotate)
        printf("%s rotated in %s (older public keys still verify)\n", kid, dir);
    else
        printf("%s %s in %s\n", kid, existed ? "existed" : "created", dir);
    return 0;
}
