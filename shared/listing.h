/* List conventions of DRF's filter backends, declared once per list:
 * ?ordering=field,-field (OrderingFilter: unknown fields are dropped, none
 * left means the list's default order), exact filters ?<field>= and ranges
 * ?<field>__gte= / ?<field>__lte= (django-filter: a value of the wrong type
 * is a 400 naming the parameter), and ?search= (SearchFilter: every term,
 * split at whitespace and commas, must match one of the search columns).
 *
 * A list declares its fields (name as the client writes it, the SQL column,
 * its type and what may be done with it); bk_list_reply builds the count
 * and page statements from those declarations only, so no client text ever
 * reaches the SQL but as a parameter, and replies with DRF's page.
 *
 * The statements vary per request, so they run unprepared (bk_sql_once):
 * the fixed, tuned statements of a list stay its fast path, and a handler
 * calls bk_list_wanted first to send only requests that use these
 * conventions here. */
#ifndef BK_LISTING_H
#define BK_LISTING_H

#include <stdbool.h>

#include "shared/worker.h"

enum bk_list_type {
    BK_LT_TEXT,   /* compared as text */
    BK_LT_INT,    /* "Enter a number." otherwise */
    BK_LT_BOOL,   /* true/false/1/0 (any case) */
    BK_LT_TIME,   /* timestamptz: 2026-01-31 (the whole day) or RFC 3339 */
    BK_LT_DATE,   /* date: 2026-01-31 */
    BK_LT_CHOICE, /* one of choices */
};

enum bk_list_how {
    BK_LF_ORDER = 1,  /* ?ordering= may name it */
    BK_LF_EXACT = 2,  /* ?<name>= */
    BK_LF_RANGE = 4,  /* ?<name>__gte=, ?<name>__lte= */
    BK_LF_SEARCH = 8, /* a column ?search= looks in (ILIKE) */
    /* A value that does not fit matches nothing instead of a 400: the
     * list's filters from before these conventions (Django's own
     * .filter(status=...) answers an empty list), kept as they were. */
    BK_LF_LENIENT = 16,
};

struct bk_list_field {
    const char *name;   /* "order_date" */
    const char *column; /* "o.order_date" */
    enum bk_list_type type;
    unsigned how;
    const char *const *choices; /* BK_LT_CHOICE: NULL-terminated */
};

struct bk_list_spec {
    const char *from;     /* "orders o" */
    const char *row;      /* the JSON of one row: "order_json(o)" */
    const char *key;      /* a unique column: the page is chosen by it first, "o.id" */
    const char *order;    /* the default order: "o.order_date DESC, o.id DESC" */
    const char *tiebreak; /* appended to a client's order, for stable pages: "o.id DESC" */
    /* args the list's fast path reads itself ("status,all"): a request with
     * nothing else stays there */
    const char *fast_args;
    const struct bk_list_field *fields; /* ending with a zeroed entry */
    /* optional: adjusts each row's JSON before the reply (hides what this
     * caller may not see) */
    void (*each)(struct bk_call *c, json_t *row);
};

/* Whether the request uses a convention the fast path does not serve:
 * ?ordering=, ?search= or a field filter not in spec->fast_args. */
bool bk_list_wanted(struct bk_call *c, const struct bk_list_spec *spec);

/* Reads the conventions and page arguments, runs the count and the page and
 * replies (400 with the field errors, 404 past the end, else 200 and the
 * page). scope is an SQL condition that always applies ("o.user_id = $1"),
 * with its own parameters $1..$n_scope, or NULL. 0 once replied, -1 on a
 * database failure. */
int bk_list_reply(struct bk_call *c, const struct bk_list_spec *spec, const char *scope,
                  int n_scope, const char *const *scope_params);

/* Splits a ?search= value into at most max ILIKE patterns ("%term%",
 * wildcards escaped) in the call's arena, as SearchFilter splits it.
 * Returns how many. */
int bk_list_search_terms(struct bk_call *c, const char *search, const char **out, int max);

#endif
