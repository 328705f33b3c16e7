#include "shared/config.h"

#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/log.h"

#define MAX_KEYS 128
#define MAX_LINE 1024

struct entry {
    char *key;
    char *value;
};

static struct entry entries[MAX_KEYS];
static int n_entries;
/* Environment lookups are cached so returned pointers stay stable. */
static struct entry env_cache[MAX_KEYS];
static int n_env;
/* the bridge and the outbox relay read the config from several threads */
static pthread_mutex_t env_mu = PTHREAD_MUTEX_INITIALIZER;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int bk_config_load(const char *path)
{
    if (!path)
        path = getenv("BACKEND_CONFIG");
    if (!path)
        path = "config/backend.conf";
    bk_config_free();
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr,
                "config: cannot read %s: %s (run from the repository root or set "
                "BACKEND_CONFIG)\n",
                path, strerror(errno));
        return -1;
    }
    char line[MAX_LINE];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq || n_entries == MAX_KEYS) {
            fprintf(stderr, "config: %s:%d: expected 'key = value'\n", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        entries[n_entries].key = strdup(trim(s));
        entries[n_entries].value = strdup(trim(eq + 1));
        n_entries++;
    }
    fclose(f);
    return rc;
}

const char *bk_config_str(const char *key, const char *def)
{
    char name[128] = "BACKEND_";
    size_t k = strlen(name);
    for (const char *p = key; *p && k < sizeof name - 1; p++)
        name[k++] = (char)toupper((unsigned char)*p);
    name[k] = '\0';
    const char *env = getenv(name);
    if (env) {
        const char *found = env;
        pthread_mutex_lock(&env_mu);
        int i = 0;
        while (i < n_env &&
               !(strcmp(env_cache[i].key, key) == 0 && strcmp(env_cache[i].value, env) == 0))
            i++;
        if (i < n_env) {
            found = env_cache[i].value;
        } else if (n_env < MAX_KEYS) {
            env_cache[n_env].key = strdup(key);
            env_cache[n_env].value = strdup(env);
            found = env_cache[n_env++].value;
        }
        pthread_mutex_unlock(&env_mu);
        return found;
    }
    for (int i = 0; i < n_entries; i++)
        if (strcmp(entries[i].key, key) == 0)
            return entries[i].value;
    return def;
}

long bk_config_long(const char *key, long def)
{
    const char *s = bk_config_str(key, NULL);
    if (!s || !*s)
        return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return def;
    return v;
}

void bk_config_free(void)
{
    for (int i = 0; i < n_entries; i++) {
        free(entries[i].key);
        free(entries[i].value);
    }
    for (int i = 0; i < n_env; i++) {
        free(env_cache[i].key);
        free(env_cache[i].value);
    }
    n_entries = n_env = 0;
}
