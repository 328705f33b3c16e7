/* backendctl keygen [--rotate]: makes sure key_dir holds a token signing key
 * and the server secret (server.keys: keyed message ids and fingerprints,
 * stored replies encrypted; shared/secret.h). Without --rotate it is
 * idempotent (existing keys are kept); with it a new key signs and seals from
 * now on while the old ones keep verifying tokens and opening stored replies. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/config.h"
#include "shared/jwt.h"
#include "shared/secret.h"
#include "workers/ctl/ctl.h"

int ctl_keygen(const struct ctl_args *a)
{
    bool rotate = ctl_flag(a, "rotate"), existed;
    char kid[64], skid[BK_SECRET_KID_LEN + 1], path[4096];
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
    if (snprintf(path, sizeof path, "%s/%s", dir, BK_SECRET_FILE) >= (int)sizeof path)
        return 1;
    existed = stat(path, &st) == 0;
    if (bk_secret_keygen(dir, rotate, skid) != 0) {
        fprintf(stderr, "keygen: cannot create the server secret in %s (see the log)\n", dir);
        return 1;
    }
    if (rotate)
        printf("server key %s rotated in %s (older keys still open stored replies)\n", skid, dir);
    else
        printf("server key %s %s in %s\n", skid, existed ? "existed" : "created", dir);
    return 0;
}
