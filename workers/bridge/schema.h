/* JSON Schema of the contract's declarations (shared/contract.h), shared by
 * the OpenAPI and the AsyncAPI documents: one spelling of every type, limit
 * and format, so the two documents cannot disagree. */
#ifndef BR_SCHEMA_H
#define BR_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>

#include "shared/contract.h"

enum br_schema_use {
    BR_OUTPUT, /* a reply or an event: readOnly marked, write-only fields left out */
    BR_INPUT,  /* a request body: writable fields, required as declared */
    BR_PATCH,  /* a partial update's body: nothing required */
    BR_ARGS,   /* a command's args over AMQP: every argument, path and query ones too */
};

/* The schema of one field (new reference). refs is the "#/components/schemas/"
 * prefix of the document. */
json_t *br_schema_field(const struct bk_field *f, enum br_schema_use use, const char *refs);

/* The object schema of repr (output) or of d's arguments (input uses); new
 * reference. multipart: file fields are included (binary); otherwise a JSON
 * body leaves them out. */
json_t *br_schema_repr(const struct bk_repr *r, const char *refs);
json_t *br_schema_args(const struct bk_command_decl *d, enum br_schema_use use, bool multipart,
                       const char *refs);

/* {"count", "next", "previous", "results": [ref]} (new reference). */
json_t *br_schema_page(const char *item_ref);

/* "#/components/schemas/<name>" and friends in buf. */
const char *br_schema_ref(char *buf, size_t n, const char *refs, const char *prefix,
                          const char *name, const char *suffix);

/* An example body of d built from its fields' examples (new reference), or
 * NULL when it has no body fields. */
json_t *br_schema_example(const struct bk_command_decl *d);

#endif
