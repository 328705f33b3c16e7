/* Configuration: every key is declared once in shared/config.c (its type,
 * limits, default and meaning). A value comes from the environment variable
 * BACKEND_<KEY> (upper case), else from the file (config/backend.conf, or
 * $BACKEND_CONFIG), else from the declaration's default.
 *
 * bk_config_load reads and checks everything at start: a value of the wrong
 * type or out of range, an unknown key in the file and an unknown BACKEND_*
 * variable all stop the process with the key and the reason, e.g.
 *     config: http_port: "abc" is not a port (1-65535)
 * so that a typo never runs silently with a default. */
#ifndef BK_CONFIG_H
#define BK_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

/* The most broker nodes amqp_nodes may list. */
#define BK_CONFIG_MAX_NODES 16

/* Loads and checks the file and the environment. Returns 0, or -1 with every
 * problem printed on stderr (one line each). A NULL path means
 * $BACKEND_CONFIG, else config/backend.conf. May be called again (tests). */
int bk_config_load(const char *path);

/* The value of a declared key ("" when unset and without a default). The
 * pointer stays valid until bk_config_free. An undeclared key is a bug: it
 * is logged on stderr and "" returned. */
const char *bk_config_str(const char *key);

/* The value of a declared integer key, within its declared limits (0 when
 * unset and without a default). */
long bk_config_long(const char *key);

/* Whether the key was set (environment or file) or has a default. */
bool bk_config_set(const char *key);

/* Prints every key as `key = value  # source` (default, file, environment),
 * secrets masked, for `backendctl config`. */
void bk_config_print(FILE *out);

/* The path of the file that was loaded. */
const char *bk_config_path(void);

/* The declared key nearest to name (edit distance), or NULL when none is
 * close. For "did you mean" hints. */
const char *bk_config_nearest(const char *name);

void bk_config_free(void);

#endif
