#include "workers/bridge/variant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* args[to] = args[from] (moved), with the companions multipart leaves
 * beside a file (<name>_filename, <name>_content_type). */
static void move_key(json_t *args, const char *from, const char *to)
{
    static const char *const suffixes[] = {"", "_filename", "_content_type"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char f[160], t[160];
        if ((size_t)snprintf(f, sizeof f, "%s%s", from, suffixes[i]) >= sizeof f ||
            (size_t)snprintf(t, sizeof t, "%s%s", to, suffixes[i]) >= sizeof t)
            continue;
        json_t *x = json_object_get(args, f);
        if (!x)
            continue;
        json_object_set(args, t, x);
        json_object_del(args, f);
    }
}

static void rename_files(struct br_file *files, const char *from, const char *to)
{
    for (struct br_file *f = files; f; f = f->next) {
        if (strcmp(f->name, from) != 0)
            continue;
        char *n = strdup(to);
        if (!n)
            continue; /* the worker then sees their name: a field error, not a crash */
        free(f->name);
        f->name = n;
    }
}

static void apply(const struct br_variant *v, json_t *args, struct br_file *files)
{
    for (const struct br_rename *r = v->renames; r && r->theirs; r++) {
        move_key(args, r->theirs, r->ours);
        rename_files(files, r->theirs, r->ours);
    }
}

int br_variant_request(const struct br_variant *v, json_t *args, struct br_file *files,
                       const char **command, const struct br_variant **reply_v, json_t **err)
{
    *reply_v = v;
    *err = NULL;
    if (!v)
        return 0;
    apply(v, args, files);
    if (!v->dispatch_arg)
        return 0;
    json_t *x = json_object_get(args, v->dispatch_arg);
    if (!x || json_is_null(x)) {
        *err = json_pack("{s:[s]}", v->dispatch_arg, "This field is required.");
        return 400;
    }
    const char *value = json_is_string(x) ? json_string_value(x) : "";
    for (const struct br_dispatch *d = v->dispatch; d->value; d++) {
        if (strcmp(d->value, value) != 0)
            continue;
        *command = d->command;
        *reply_v = d->variant;
        if (d->variant)
            apply(d->variant, args, files);
        return 0;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "\"%.64s\" is not a valid choice.", value);
    *err = json_pack("{s:[s]}", v->dispatch_arg, msg);
    return 400;
}

static void rename_back(const struct br_variant *v, json_t *obj)
{
    for (const struct br_rename *r = v->renames; r && r->theirs; r++) {
        json_t *x = json_object_get(obj, r->ours);
        if (!x)
            continue;
        json_object_set(obj, r->theirs, x);
        json_object_del(obj, r->ours);
    }
}

void br_variant_reply(const struct br_variant *v, json_t *body)
{
    if (!v || !json_is_object(body))
        return;
    json_t *from = v->lift ? json_object_get(body, v->lift) : NULL;
    if (from) {
        json_incref(from);
        json_object_del(body, v->lift);
        for (const char *f = v->lift_fields; json_is_object(from) && f && *f;) {
            size_t k = strcspn(f, ",");
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(k < 63 ? k : 63), f);
            json_t *x = json_object_get(from, key);
            if (x)
                json_object_set(body, key, x);
            f += k + (f[k] == ',');
        }
        json_decref(from);
    }
    if (!v->renames)
        return;
    rename_back(v, body);
    const char *k;
    json_t *x;
    json_object_foreach(body, k, x)
    {
        if (json_is_object(x))
            rename_back(v, x);
    }
}

json_t *br_variant_actions(const struct br_variant *v)
{
    if (!v || !v->dispatch_arg)
        return NULL;
    json_t *out = json_object();
    for (const struct br_dispatch *d = v->dispatch; out && d->value; d++) {
        char param[160];
        snprintf(param, sizeof param, "%s=%s", v->dispatch_arg, d->value);
        json_object_set_new(out, d->value, json_string(param));
    }
    return out;
}

/* One key of an object, renamed in place (its value moves; order aside). */
static void rename_key(json_t *obj, const char *from, const char *to)
{
    json_t *x = json_object_get(obj, from);
    if (!x)
        return;
    json_object_set(obj, to, x);
    json_object_del(obj, from);
}

void br_variant_schema(const struct br_variant *v, json_t *schema)
{
    if (!v)
        return;
    json_t *props = json_object_get(schema, "properties");
    json_t *req = json_object_get(schema, "required");
    for (const struct br_rename *r = v->renames; r && r->theirs; r++) {
        rename_key(props, r->ours, r->theirs);
        size_t i;
        json_t *name;
        json_array_foreach(req, i, name)
        {
            if (json_is_string(name) && strcmp(json_string_value(name), r->ours) == 0)
                json_array_set_new(req, i, json_string(r->theirs));
        }
    }
}

void br_variant_example(const struct br_variant *v, json_t *example)
{
    for (const struct br_rename *r = v ? v->renames : NULL; r && r->theirs; r++)
        rename_key(example, r->ours, r->theirs);
}
