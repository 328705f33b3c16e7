/* Text templates with {placeholders}, read once at start (mail bodies and
 * subjects). A placeholder is "{" + 1-32 of [a-z_] + "}"; any other brace is
 * text (CSS in an HTML template stays as it is). Loading checks that every
 * placeholder is one the caller provides, so a typo in a template stops the
 * process at start instead of mailing "{nmae}" to users. */
#ifndef BK_TEMPLATE_H
#define BK_TEMPLATE_H

#include <stddef.h>

#define BK_TEMPLATE_MAX (64 * 1024) /* bytes of one template file */

struct bk_template {
    char *text; /* NUL-terminated, owned */
    char path[512];
};

enum bk_template_escape {
    BK_TEMPLATE_TEXT, /* values as they are */
    BK_TEMPLATE_HTML, /* values with & < > " ' as entities */
};

/* Reads path (at most BK_TEMPLATE_MAX bytes, no NUL) into t and checks its
 * placeholders against names (NULL-terminated). 0, or -1 with the reason
 * printed on stderr (the file, the line, the unknown name). */
int bk_template_load(struct bk_template *t, const char *path, const char *const *names);

/* Loads text (not a file) the same way; path only names it in messages. */
int bk_template_parse(struct bk_template *t, const char *path, const char *text,
                      const char *const *names);

/* t with each {names[i]} replaced by values[i], escaped as esc says. A
 * malloc'd string (caller frees), or NULL when out of memory. */
char *bk_template_render(const struct bk_template *t, const char *const *names,
                         const char *const *values, enum bk_template_escape esc);

void bk_template_free(struct bk_template *t);

#endif
