/* Shared by the unit tests that load a configuration: scripts/test exports
 * the instance's BACKEND_* variables, which would win over the file a test
 * writes, so such a test clears them first. */
#ifndef UNIT_ENV_H
#define UNIT_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Unsets every BACKEND_* variable (unsetenv moves environ: start over). */
static inline void unit_clear_backend_env(void)
{
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "BACKEND_", 8) == 0) {
                char name[128];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                unsetenv(name);
                again = 1;
                break;
            }
    }
}

#endif
