#include "shared/listing.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shared/log.h"

#define MAX_ORDER_TERMS 8
#define MAX_ORDERING    300 /* characters of ?ordering= */
#define MAX_VALUE       100 /* characters of a filter value */
#define MAX_SEARCH      500
#define MAX_TERMS       8
#define MAX_PARAMS      64
#define SQL_MAX         4096

/* A growing SQL text in a fixed buffer: the pieces are our own declarations,
 * so an overflow is a bug, reported rather than cut. */
struct sql {
    char buf[SQL_MAX];
    size_t n;
    bool overflow;
};

static void add(struct sql *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct sql *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(s->buf + s->n, sizeof s->buf - s->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof s->buf - s->n)
        s->overflow = true;
    else
        s->n += (size_t)k;
}

/* args[key] as text in the arena: a string as sent, an integer or a boolean
 * (AMQP callers send JSON types) printed; NULL when absent or nil, "\1" for
 * a value that has no text (map, array, binary). */
static const char *arg_text(struct bk_call *c, const char *key)
{
    const msgpack_object *o = bk_arg(c, key);
    if (!o)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        if (o->via.str.size > MAX_SEARCH || memchr(o->via.str.ptr, '\0', o->via.str.size))
            return "\1";
        return bk_strf(c, "%.*s", (int)o->via.str.size, o->via.str.ptr);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return bk_strf(c, "%llu", (unsigned long long)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return bk_strf(c, "%lld", (long long)o->via.i64);
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean ? "true" : "false";
    default:
        return "\1";
    }
}

static bool is_int(const char *s)
{
    const char *p = s + (*s == '-');
    size_t n = strlen(p);
    if (n == 0 || n > 18)
        return false;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

static int days_in(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

/* 2026-01-31: 1; 2026-01-31T12:00[:00[.123456]](Z|+hh:mm), also with a space
 * for the T: 2; anything else 0. Checked here, so PostgreSQL never sees a
 * value it would refuse (a refused statement would look like an outage). */
static int time_kind(const char *s)
{
    int y, mo, d, n = 0;
    if (strlen(s) > 40 || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo))
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return 0;
    if (s[10] == '\0')
        return 1;
    if (s[10] != 'T' && s[10] != ' ')
        return 0;
    const char *p = s + 11;
    int h, mi, k = 0;
    if (sscanf(p, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5 || !isdigit((unsigned char)p[0]) ||
        !isdigit((unsigned char)p[3]) || h > 23 || mi > 59)
        return 0;
    p += 5;
    if (*p == ':') {
        if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) ||
            (p[1] - '0') * 10 + (p[2] - '0') > 59)
            return 0;
        p += 3;
        if (*p == '.') {
            int digits = 0;
            for (p++; isdigit((unsigned char)*p); p++)
                digits++;
            if (digits == 0 || digits > 6)
                return 0;
        }
    }
    if (*p == 'Z' && p[1] == '\0')
        return 2;
    if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
        p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) && !p[6] &&
        (p[1] - '0') * 10 + (p[2] - '0') <= 14)
        return 2;
    return 0;
}

static const char *bool_text(const char *v)
{
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
        return "t";
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
        return "f";
    return NULL;
}

static bool in_choices(const char *v, const char *const *choices)
{
    for (int i = 0; choices && choices[i]; i++)
        if (strcmp(v, choices[i]) == 0)
            return true;
    return false;
}

/* Whether name is one of the comma-separated names in list. */
static bool listed(const char *list, const char *name, size_t len)
{
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && memcmp(p, name, len) == 0)
            return true;
        p = e ? e + 1 : p + n;
    }
    return false;
}

static const struct bk_list_field *field_named(const struct bk_list_spec *s, const char *name,
                                               size_t len, unsigned how)
{
    for (const struct bk_list_field *f = s->fields; f->name; f++)
        if (strlen(f->name) == len && memcmp(f->name, name, len) == 0 && (f->how & how))
            return f;
    return NULL;
}

bool bk_list_wanted(struct bk_call *c, const struct bk_list_spec *spec)
{
    const msgpack_object *a = c->args;
    if (!a || a->type != MSGPACK_OBJECT_MAP)
        return false;
    for (uint32_t i = 0; i < a->via.map.size; i++) {
        const msgpack_object *k = &a->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            continue;
        const char *name = k->via.str.ptr;
        size_t len = k->via.str.size;
        if (listed(spec->fast_args, name, len))
            continue;
        if ((len == 8 && memcmp(name, "ordering", 8) == 0) ||
            (len == 6 && memcmp(name, "search", 6) == 0))
            return true;
        if (field_named(spec, name, len, BK_LF_EXACT))
            return true;
        if (len > 5 &&
            (memcmp(name + len - 5, "__gte", 5) == 0 || memcmp(name + len - 5, "__lte", 5) == 0) &&
            field_named(spec, name, len - 5, BK_LF_RANGE))
            return true;
    }
    return false;
}

int bk_list_search_terms(struct bk_call *c, const char *search, const char **out, int max)
{
    int n = 0;
    const char *p = search;
    while (*p && n < max) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p) && *p != ',')
            p++;
        size_t len = (size_t)(p - start);
        if (len == 0)
            break;
        char *pat = bk_alloc(c, 2 * len + 3);
        size_t w = 0;
        pat[w++] = '%';
        for (size_t i = 0; i < len; i++) {
            if (start[i] == '%' || start[i] == '_' || start[i] == '\\')
                pat[w++] = '\\';
            pat[w++] = start[i];
        }
        pat[w++] = '%';
        pat[w] = '\0';
        out[n++] = pat;
    }
    return n;
}

/* The state of one request's statement: its text and parameters. */
struct build {
    struct sql where;
    const char *params[MAX_PARAMS];
    int n;
    bool empty; /* a lenient filter cannot match: the list is empty */
};

static int param(struct build *b, const char *v)
{
    if (b->n == MAX_PARAMS) {
        b->where.overflow = true;
        return MAX_PARAMS;
    }
    b->params[b->n++] = v;
    return b->n;
}

/* The SQL type a value is compared as, and its check. NULL when v does not
 * fit (message in *why). */
static const char *typed(const struct bk_list_field *f, const char *v, const char **cast,
                         const char **why, int *tkind)
{
    *cast = "";
    *tkind = 0;
    if (v[0] == '\1' || strlen(v) > MAX_VALUE) {
        *why = "Enter a valid value.";
        return NULL;
    }
    switch (f->type) {
    case BK_LT_TEXT:
        return v;
    case BK_LT_INT:
        *cast = "::bigint";
        *why = "Enter a number.";
        return is_int(v) ? v : NULL;
    case BK_LT_BOOL:
        *cast = "::boolean";
        *why = "Enter a valid boolean (true or false).";
        return bool_text(v);
    case BK_LT_DATE:
        *cast = "::date";
        *why = "Enter a valid date.";
        return time_kind(v) == 1 ? v : NULL;
    case BK_LT_TIME:
        *why = "Enter a valid date/time.";
        *tkind = time_kind(v);
        *cast = "::timestamptz";
        return *tkind ? v : NULL;
    case BK_LT_CHOICE:
        *why = "Select a valid choice. That choice is not one of the available choices.";
        return in_choices(v, f->choices) ? v : NULL;
    }
    return NULL;
}

/* One filter: column op value. A date-only value of a time field covers
 * its whole day (UTC): __gte from its start, __lte to its end, = that day. */
static void filter(struct bk_call *c, struct build *b, const struct bk_list_field *f,
                   const char *argname, const char *op, const char *raw)
{
    const char *cast = NULL, *why = "Enter a valid value.", *v;
    int tkind = 0;
    if (*raw == '\0')
        return; /* django-filter: an empty value does not filter */
    v = typed(f, raw, &cast, &why, &tkind);
    if (!v) {
        if (f->how & BK_LF_LENIENT)
            b->empty = true;
        else
            bk_error(c, argname, "%s", why);
        return;
    }
    int k = param(b, v);
    if (tkind == 1) {
#define DAY  "(($%d::date)::timestamp AT TIME ZONE 'UTC')"
#define NEXT "(($%d::date + 1)::timestamp AT TIME ZONE 'UTC')"
        if (strcmp(op, ">=") == 0)
            add(&b->where, " AND %s >= " DAY, f->column, k);
        else if (strcmp(op, "<=") == 0)
            add(&b->where, " AND %s < " NEXT, f->column, k);
        else
            add(&b->where, " AND %s >= " DAY " AND %s < " NEXT, f->column, k, f->column, k);
#undef DAY
#undef NEXT
        return;
    }
    add(&b->where, " AND %s %s $%d%s", f->column, op, k, cast);
}

/* ?ordering=: the fields it names that may order, else the default. */
static void ordering(struct bk_call *c, const struct bk_list_spec *s, struct sql *out)
{
    const char *o = bk_arg_str(c, "ordering", BK_ALLOW_BLANK, MAX_ORDERING);
    int terms = 0;
    for (const char *p = o; p && *p && terms < MAX_ORDER_TERMS;) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        bool desc = *p == '-';
        const char *name = p + desc;
        size_t len = (size_t)(e - name);
        while (len > 0 && name[len - 1] == ' ')
            len--;
        const struct bk_list_field *f = len ? field_named(s, name, len, BK_LF_ORDER) : NULL;
        if (f) {
            add(out, "%s%s%s", terms ? ", " : "", f->column, desc ? " DESC" : "");
            terms++;
        }
        p = e;
    }
    if (terms == 0)
        add(out, "%s", s->order);
    else if (s->tiebreak)
        add(out, ", %s", s->tiebreak);
}

int bk_list_reply(struct bk_call *c, const struct bk_list_spec *s, const char *scope, int n_scope,
                  const char *const *scope_params)
{
    struct build *b = bk_alloc(c, sizeof *b);
    struct sql *order = bk_alloc(c, sizeof *order);
    struct sql *q = bk_alloc(c, sizeof *q);
    memset(b, 0, sizeof *b);
    memset(order, 0, sizeof *order);
    memset(q, 0, sizeof *q);
    struct bk_page page;
    bk_page_args(c, &page);
    if (bk_failed(c))
        return bk_reply_invalid(c);

    for (int i = 0; i < n_scope; i++)
        param(b, scope_params[i]);
    add(&b->where, "%s", scope ? scope : "true");

    for (const struct bk_list_field *f = s->fields; f->name; f++) {
        const char *v;
        if ((f->how & BK_LF_EXACT) && (v = arg_text(c, f->name)))
            filter(c, b, f, f->name, "=", v);
        if (f->how & BK_LF_RANGE) {
            const char *gte = bk_strf(c, "%s__gte", f->name);
            const char *lte = bk_strf(c, "%s__lte", f->name);
            if ((v = arg_text(c, gte)))
                filter(c, b, f, gte, ">=", v);
            if ((v = arg_text(c, lte)))
                filter(c, b, f, lte, "<=", v);
        }
    }
    const char *search = arg_text(c, "search");
    if (search && search[0] == '\1')
        bk_error(c, "search", "Not a valid string.");
    else if (search) {
        const char *terms[MAX_TERMS];
        int nt = bk_list_search_terms(c, search, terms, MAX_TERMS);
        for (int t = 0; t < nt; t++) {
            int k = param(b, terms[t]);
            int cols = 0;
            add(&b->where, " AND (");
            for (const struct bk_list_field *f = s->fields; f->name; f++)
                if (f->how & BK_LF_SEARCH)
                    add(&b->where, "%s%s ILIKE $%d", cols++ ? " OR " : "", f->column, k);
            add(&b->where, "%s)", cols ? "" : "false");
        }
    }
    if (bk_failed(c))
        return bk_reply_invalid(c);
    if (b->empty)
        return bk_reply_page(c, &page, 0, json_array());
    ordering(c, s, order);
    if (b->where.overflow || order->overflow) {
        bk_log(BK_ERROR, c->request_id, "%s: list statement too long", c->command);
        return -1;
    }

    add(q, "SELECT count(*) FROM %s WHERE %s", s->from, b->where.buf);
    PGresult *r = bk_sql_once(c, q->buf, b->n, b->params);
    if (!r)
        return -1;
    int64_t count = atoll(PQgetvalue(r, 0, 0));
    if (page.offset >= count)
        return bk_reply_page(c, &page, count, json_array());

    q->n = 0;
    int lim = param(b, page.limit_s), off = param(b, page.offset_s);
    /* the page's keys first, then the JSON of those rows only: a row's
     * representation is not built for the rows OFFSET skips */
    add(q,
        "SELECT %s FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT $%d OFFSET "
        "$%d) "
        "ORDER BY %s",
        s->row, s->from, s->key, s->key, s->from, b->where.buf, order->buf, lim, off, order->buf);
    if (q->overflow || b->where.overflow) {
        bk_log(BK_ERROR, c->request_id, "%s: list statement too long", c->command);
        return -1;
    }
    r = bk_sql_once(c, q->buf, b->n, b->params);
    if (!r)
        return -1;
    size_t total = 3;
    for (int i = 0; i < PQntuples(r); i++)
        total += (size_t)PQgetlength(r, i, 0) + 1;
    char *json = bk_alloc(c, total);
    size_t w = 0;
    json[w++] = '[';
    for (int i = 0; i < PQntuples(r); i++) {
        if (i)
            json[w++] = ',';
        memcpy(json + w, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
        w += (size_t)PQgetlength(r, i, 0);
    }
    json[w++] = ']';
    json[w] = '\0';
    if (!s->each)
        return bk_reply_page_text(c, &page, count, json);
    json_error_t err;
    json_t *rows = json_loads(json, 0, &err);
    if (!rows) {
        bk_log(BK_ERROR, c->request_id, "%s: rows are not JSON: %s", c->command, err.text);
        return -1;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) s->each(c, row);
    return bk_reply_page(c, &page, count, rows);
}
