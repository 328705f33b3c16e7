/* The contract, declared once: every command's arguments and replies, every
 * representation (Me, Order, Payment...), every event's data. Everything that
 * speaks about a field reads it from here:
 *
 * - the worker runtime validates a command's args against its declaration
 *   before the handler runs (DRF's messages, shared/worker.c) and hands the
 *   handler typed values (bk_in_*, shared/worker.h);
 * - the bridge's route table takes each route's body and query fields from
 *   the command's declaration (shared/routes.c keeps only the path);
 * - /api/openapi.json and /api/asyncapi.json are generated from it
 *   (workers/bridge/openapi.c, workers/bridge/asyncapi.c).
 *
 * A command's name, auth rule and read/write flag stay in its worker's command
 * table; the declaration is keyed by the same name (bk_contract_command).
 * Adding a field to Order is one line in the Order representation: its
 * writable fields are order.place's arguments (as a DRF ModelSerializer's
 * are), its read-only ones the documented reply. */
#ifndef BK_CONTRACT_H
#define BK_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bk_type {
    BK_T_STRING,  /* CharField: max = length in characters (0: no limit) */
    BK_T_INTEGER, /* IntegerField: [min, max]; a string of digits is read too */
    BK_T_BOOLEAN, /* BooleanField: true/false, "true"/"1"/"yes"... */
    BK_T_DECIMAL, /* DecimalField(max_digits = max, decimal_places = 2), at least min cents */
    BK_T_CHOICE,  /* ChoiceField over choices */
    BK_T_BINARY,  /* an uploaded file (MessagePack bin), at most max bytes */
    BK_T_ID,      /* a positive row id in the path: malformed is a 404 */
    BK_T_PK,      /* PrimaryKeyRelatedField: a positive id, DRF's messages */
    BK_T_PAGE,    /* ?page=: malformed is 404 "Invalid page." */
    BK_T_OBJECT,  /* a nested representation (ref); output only */
    BK_T_ARRAY,   /* an array of ref (or of strings when ref is NULL); output only */
    BK_T_MAP,     /* an object with free keys (a JWKS key, errors); output only */
};

/* Formats: each has one checker, one message and one OpenAPI spelling
 * (shared/contract.c). */
enum bk_format {
    BK_FMT_NONE,
    BK_FMT_EMAIL,    /* Django's EmailValidator */
    BK_FMT_URI,      /* http/https URL (URLValidator), "" allowed when blank is */
    BK_FMT_DATE,     /* YYYY-MM-DD, a real day; "" or null: no date */
    BK_FMT_DATETIME, /* RFC 3339 UTC (output) */
    BK_FMT_USERNAME, /* letters, digits and @ . + - _ */
    BK_FMT_PHONE,    /* digits, + - ( ) . and spaces */
    BK_FMT_PASSWORD, /* write-only secret (documentation) */
    BK_FMT_JWT,      /* a JSON Web Token */
    BK_FMT_UUID,     /* output */
};

enum bk_field_flags {
    BK_F_REQUIRED = 1,        /* input: "This field is required." (not on a partial update) */
    BK_F_NULLABLE = 2,        /* null is a value (input: read as absent) */
    BK_F_BLANK = 4,           /* "" allowed */
    BK_F_NO_TRIM = 8,         /* keep surrounding whitespace (passwords) */
    BK_F_READ_ONLY = 16,      /* set by the server: in the reply, never read from args */
    BK_F_WRITE_ONLY = 32,     /* read from args, never in the reply (passwords) */
    BK_F_PATH = 64,           /* a path parameter ({id}) */
    BK_F_QUERY = 128,         /* a query parameter */
    BK_F_FILTER = 256,        /* a list filter: documented and typed, read leniently by the
                                 handler (a value that matches nothing gives an empty page) */
    BK_F_NULL_IS_ERROR = 512, /* an explicit null: "This field may not be null." even
                                 when optional (DRF's allow_null=False) */
    BK_F_HEADER = 1024,       /* set by the bridge from a header or the method: not a
                                 documented body or query field */
    BK_F_LENIENT = 2048,      /* documented and typed, but read by the handler, which never
                                 refuses it (a list filter that matches nothing, a media key
                                 that is not found): the runtime does not validate it */
    BK_F_OMITTED = 4096,      /* output: may be absent from a reply (email, phone_no and
                                 address of someone else's profile); every other output field
                                 is always present */
};

struct bk_repr;

struct bk_field {
    const char *name;
    enum bk_type type;
    unsigned flags;
    int64_t min, max; /* see enum bk_type */
    enum bk_format format;
    const char *const *choices; /* BK_T_CHOICE: NULL-terminated */
    const struct bk_repr *ref;  /* BK_T_OBJECT, BK_T_ARRAY */
    const char *doc;            /* one line for the documents */
    const char *example;        /* a JSON value, or NULL */
};

/* A named representation (a DRF serializer): Order, Payment, Me... */
struct bk_repr {
    const char *name;
    const char *doc;
    const struct bk_field *fields; /* ends with a zeroed entry */
};

enum bk_reply_shape {
    BK_R_ONE,   /* the representation */
    BK_R_PAGE,  /* Paginated<Repr>List: {count, next, previous, results} */
    BK_R_EMPTY, /* no body (204) */
    BK_R_RAW,   /* raw bytes (media) */
};

struct bk_reply_decl {
    int status;
    enum bk_reply_shape shape;
    const struct bk_repr *body; /* NULL with BK_R_EMPTY / BK_R_RAW */
    const char *doc;
};

enum bk_command_decl_flags {
    BK_C_PARTIAL = 1, /* *.update: the arg "partial" (PATCH, or absent over AMQP) makes
                         every field optional, as DRF's partial update */
};

struct bk_command_decl {
    const char *name;                    /* the routing key, as in the worker's table */
    const struct bk_repr *input;         /* its writable fields are args; or NULL */
    const struct bk_field *args;         /* further args (path, query, body), or NULL */
    const struct bk_reply_decl *replies; /* success and the command's own refusals */
    unsigned flags;
    const char *example; /* a request body (JSON) that passes validation, or NULL */
};

struct bk_event_decl {
    const char *name; /* routing key on backend.events */
    const struct bk_repr *data;
    const char *doc;
};

/* The tables, each ended by a zeroed entry. */
extern const struct bk_command_decl bk_contract_commands[];
extern const struct bk_event_decl bk_contract_events[];
/* Every named representation, in document order (the error bodies too). */
extern const struct bk_repr *const bk_contract_reprs[];

/* The error bodies every command may answer with. */
extern const struct bk_repr bk_repr_detail, bk_repr_validation_error, bk_repr_token_error;

/* The representation named name ("UserProfile"), or NULL. */
const struct bk_repr *bk_contract_repr(const char *name);

/* The declaration of command, or NULL. */
const struct bk_command_decl *bk_contract_command(const char *command);

/* Calls fn for every argument of d: the writable fields of d->input, then
 * d->args. Stops when fn returns non-zero and returns that. */
int bk_contract_each_arg(const struct bk_command_decl *d,
                         int (*fn)(const struct bk_field *f, void *ctx), void *ctx);

/* The argument key of d, or NULL. */
const struct bk_field *bk_contract_arg(const struct bk_command_decl *d, const char *key);

/* Writes the names of d's arguments that have all of the flags in want and
 * none in avoid, comma-separated, into out (n bytes). Returns the count, or -1
 * when out is too small. BK_F_QUERY gives a route's query parameters; body
 * fields are those with neither BK_F_PATH, BK_F_QUERY nor BK_F_HEADER. */
int bk_contract_names(const struct bk_command_decl *d, unsigned want, unsigned avoid, char *out,
                      size_t n);

/* d's file field (BK_T_BINARY argument), or NULL: its routes take multipart. */
const struct bk_field *bk_contract_file(const struct bk_command_decl *d);

/* True when f is a body field (not path, query or header). */
bool bk_contract_in_body(const struct bk_field *f);

/* The format's checker: true when s is acceptable. */
bool bk_contract_format_ok(enum bk_format fmt, const char *s);
/* The format's DRF message ("Enter a valid email address."). */
const char *bk_contract_format_message(enum bk_format fmt);
/* The format's JSON Schema spelling: format (NULL: none) and pattern (NULL). */
const char *bk_contract_format_name(enum bk_format fmt);
const char *bk_contract_format_pattern(enum bk_format fmt);

#endif
