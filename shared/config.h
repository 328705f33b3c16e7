/* Configuration: config/backend.conf (key = value lines), each key overridable
 * by the environment variable BACKEND_<KEY> (upper case). The file is found at
 * $BACKEND_CONFIG, else config/backend.conf relative to the working directory. */
#ifndef BK_CONFIG_H
#define BK_CONFIG_H

/* Loads the file once. Returns 0, or -1 when the file cannot be read or a line
 * is malformed (the reason is logged). A NULL path means the default. */
int bk_config_load(const char *path);

/* The value of key: environment first, then the file, then def. The returned
 * pointer stays valid until bk_config_free. */
const char *bk_config_str(const char *key, const char *def);

/* The value of key as a number; def when unset or not a whole number. */
long bk_config_long(const char *key, long def);

void bk_config_free(void);

#endif
