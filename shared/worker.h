/* The worker runtime: everything a command needs that is not business logic.
 *
 * bk_worker_main forks worker_copies processes (competing consumers on the
 * worker's queue) and restarts one that dies. Each copy, for each message:
 * refuses (dead-letters unrun) a reply_to that is not a queue name or a
 * direct reply-to name, decodes the envelope (bounded), refuses what is
 * expired or was delivered max_deliveries times, verifies the access token,
 * runs the handler and, for a write, stores message_id + caller + reply
 * (inbox: keyed fingerprint, reply sealed with the server secret,
 * shared/secret.h) and the events (outbox) in the transaction of the effect;
 * then replies to reply_to, on a connection of its own, and acks. A relay
 * thread publishes the outbox with publisher confirms.
 *
 * A handler is SQL and a reply; its arguments were validated against the
 * command's declaration (shared/contract.h) before it runs:
 *
 *     static int order_get(struct bk_call *c)
 *     {
 *         const char *id = bk_in_str(c, "id");
 *         if (bk_failed(c))
 *             return bk_reply_invalid(c);
 *         PGresult *r = BK_SQL(c, "SELECT ... WHERE id = $1", id);
 *         if (!r)
 *             return -1;
 *         if (PQntuples(r) == 0)
 *             return bk_reply_detail(c, 404, "Not found.");
 *         return bk_reply_text(c, 200, PQgetvalue(r, 0, 0));
 *     }
 *
 * A handler returns 0 once it has replied, or -1 when something outside the
 * request failed (database down): the runtime rolls back and the command is
 * delivered again, up to max_deliveries times.
 */
#ifndef BK_WORKER_H
#define BK_WORKER_H

#include <jansson.h>
#include <libpq-fe.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/db.h"

/* Who sent the command, from its verified access token. */
struct bk_actor {
    bool authenticated;
    int64_t user_id; /* 0 for a service token */
    char id[24];     /* user_id as an SQL parameter ("42"), "" for a service */
    bool is_staff;
    char role[16];
    char service[64]; /* a service token's name, else "" */
    char jti[40];
    char family[40];
};

enum bk_auth_rule {
    BK_PUBLIC,          /* no token needed; a valid one sets the actor, a bad one is ignored */
    BK_USER,            /* a user's access token (service token: 403) */
    BK_STAFF,           /* a staff user's access token, else 403 */
    BK_USER_OR_SERVICE, /* a user's or a service's access token */
};

enum bk_command_flags {
    BK_WRITE = 0, /* inbox + transaction + outbox */
    BK_READ = 1,  /* only reads: no inbox row, no transaction */
};

struct bk_call;

struct bk_command {
    const char *name; /* "order.place" */
    int (*handler)(struct bk_call *c);
    enum bk_auth_rule auth;
    unsigned flags;
};

struct bk_call {
    const char *command;        /* the routing key */
    const char *message_id;     /* the idempotency key */
    const char *correlation_id; /* may be "" */
    const char *request_id;     /* x-request-id, else message_id: logs and events carry it */
    const char *client_ip;      /* x-client-ip, only from the bridge's identity; else "" */
    const char *client_key;     /* per-address limits: "ip:<client_ip>" from the bridge,
                                   "svc:<publisher>" from anyone else */
    const char *publisher;      /* the AMQP user_id the broker checked: who published */
    const char *request_target; /* path?query the client used (x-request-target, only from
                                   the bridge's identity), or "" */
    const char *public_base; /* public_base_url, no trailing slash: every absolute link's start */
    const msgpack_object *args; /* a map (maybe empty) */
    struct bk_actor actor;
    struct bk_db *db;
    struct bk_call_state *st; /* runtime's own */
};

/* Runs the worker named name ("order") with its command table (ended by a
 * zeroed entry). init, if not NULL, runs once in each copy before consuming
 * (load files, prepare caches); it returns 0 or -1. Returns the exit status. */
int bk_worker_main(const char *name, const struct bk_command *commands, int (*init)(void), int argc,
                   char **argv);

/* Runs fn(db) in each copy every interval_s seconds (pruning expired rows).
 * Call before bk_worker_main. fn returns 0 or -1 (logged). */
void bk_worker_housekeeping(int (*fn)(struct bk_db *db), int interval_s);

/* ---- arguments ---------------------------------------------------------- */

enum bk_arg_flags {
    BK_OPTIONAL = 0,
    BK_REQUIRED = 1,    /* missing: "This field is required." */
    BK_ALLOW_BLANK = 2, /* "" allowed (else "This field may not be blank.") */
    BK_NO_TRIM = 4,     /* keep surrounding whitespace (passwords) */
};

/* args[key] or NULL when absent or nil. */
const msgpack_object *bk_arg(struct bk_call *c, const char *key);
bool bk_arg_present(struct bk_call *c, const char *key);

/* A string of at most max characters (UTF-8 code points), trimmed unless
 * BK_NO_TRIM, copied NUL-terminated into the call's arena. NULL when absent
 * (or invalid: a field error is recorded, with DRF's message). */
const char *bk_arg_str(struct bk_call *c, const char *key, unsigned flags, size_t max);

/* An integer (a msgpack int, or a string of digits as a path or query
 * parameter arrives) within [min, max]. Returns false when absent or invalid
 * (a field error is recorded when invalid, or when absent and required). */
bool bk_arg_int(struct bk_call *c, const char *key, unsigned flags, int64_t min, int64_t max,
                int64_t *out);

/* A boolean (msgpack bool, or "true"/"false"/"1"/"0" strings). */
bool bk_arg_bool(struct bk_call *c, const char *key, unsigned flags, bool *out);

/* Raw bytes (an uploaded file arrives as MessagePack bin) of at most max
 * bytes; points into the message, valid for the call. NULL when absent or
 * invalid ("The submitted data was not a file..." / "...too large"). */
const void *bk_arg_bin(struct bk_call *c, const char *key, unsigned flags, size_t max, size_t *len);

/* One of choices (NULL-terminated), compared exactly (DRF does not trim);
 * else NULL with DRF's '"x" is not a valid choice.' (x as Python prints it). */
const char *bk_arg_choice(struct bk_call *c, const char *key, unsigned flags,
                          const char *const *choices);

/* A positive row id (path parameter) as a decimal string in the arena, or
 * NULL; a malformed id is recorded as a 404 (bk_failed, reply 404). */
const char *bk_arg_id(struct bk_call *c, const char *key);

/* Money as DRF's DecimalField(max_digits, decimal_places=2) reads it: a
 * string ("19.99") or a JSON number (19.99, read back in its shortest form),
 * no exponent, NaN or infinity, at most max_digits digits and 2 decimals,
 * at least min_cents. Returns false when absent or invalid (field error with
 * DRF's message). *cents gets the exact value in cents. */
bool bk_arg_money(struct bk_call *c, const char *key, unsigned flags, int max_digits,
                  int64_t min_cents, int64_t *cents);
/* "1234.50" in the arena: cents as SQL numeric text. */
const char *bk_money_str(struct bk_call *c, int64_t cents);

/* ---- declared arguments ---------------------------------------------------- */

/* Every command's arguments are declared once, with their types and limits,
 * in shared/contract.c. Before the handler runs, the runtime reads each one
 * with the bk_arg_* reader its type calls for and records DRF's message for
 * what is invalid (bk_call_validate); the handler then takes the typed values
 * with bk_in_* and keeps only what a declaration cannot say: rules across
 * fields and checks that need the database. Field errors are not replied by
 * the runtime: a handler still decides when to answer with
 * bk_reply_invalid (DRF looks an object up, 404 or 403, before it validates
 * an update's body; unique checks add their messages to the field errors).
 * Reading an argument the command does not declare is a bug: logged, and
 * fatal in the test build. */
void bk_call_validate(struct bk_call *c);

/* A string, choice, date (YYYY-MM-DD), row id or pk (decimal text), or NULL
 * when absent, null or invalid. */
const char *bk_in_str(struct bk_call *c, const char *key);
/* An integer, or a decimal in cents: false when absent, null or invalid. */
bool bk_in_int(struct bk_call *c, const char *key, int64_t *out);
bool bk_in_money(struct bk_call *c, const char *key, int64_t *cents);
bool bk_in_bool(struct bk_call *c, const char *key, bool *out);
/* An uploaded file's bytes (valid for the call), or NULL. */
const void *bk_in_bin(struct bk_call *c, const char *key, size_t *len);
/* Sent and valid, null included (a null date or end_year clears it). */
bool bk_in_set(struct bk_call *c, const char *key);
/* Sent as null (or "" where a form means null). */
bool bk_in_null(struct bk_call *c, const char *key);
/* A partial update (PATCH, or an *.update over AMQP without partial: false). */
bool bk_in_partial(struct bk_call *c);
/* A malformed path id or page was recorded (the reply will be a 404). */
bool bk_not_found(const struct bk_call *c);
/* Records DRF's 'Invalid pk "<pk>" - object does not exist.' under key. */
void bk_error_no_object(struct bk_call *c, const char *key, const char *pk);

/* ---- lists ---------------------------------------------------------------- */

struct bk_page {
    int64_t page;                   /* 1-based */
    int64_t size;                   /* page_size: default 20, at most 100 */
    int64_t offset;                 /* (page - 1) * size */
    const char *limit_s, *offset_s; /* the same as SQL parameters */
};

/* Reads ?page= and ?page_size= (DRF's PageNumberPagination). A page that is
 * not a positive number is recorded as 404 "Invalid page." (bk_failed). */
bool bk_page_args(struct bk_call *c, struct bk_page *p);

/* Replies 200 {"count", "next", "previous", "results"}, or 404 {"detail":
 * "Invalid page."} past the end (page 1 of an empty list is fine). The links
 * are public_base + the request target, or, over AMQP without one, + the
 * command's GET route and query parameters filled from args (shared/links.h).
 * results is stolen. */
int bk_reply_page(struct bk_call *c, const struct bk_page *p, int64_t count, json_t *results);
/* The same with the results as a JSON array's text (json_agg from SQL). */
int bk_reply_page_text(struct bk_call *c, const struct bk_page *p, int64_t count,
                       const char *results_json);

/* ---- errors and replies ------------------------------------------------- */

/* Appends a message to field's list of the 400 body ("non_field_errors" for
 * the object as a whole). */
void bk_error(struct bk_call *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool bk_failed(const struct bk_call *c);
/* The field's error list (created if missing) to append to directly. */
json_t *bk_errors_of(struct bk_call *c, const char *field);

/* Each of these sets the reply and returns 0, so a handler can return it. */
int bk_reply(struct bk_call *c, int status, json_t *body); /* steals body */
int bk_reply_text(struct bk_call *c, int status, const char *json_text);
int bk_reply_detail(struct bk_call *c, int status, const char *detail);
int bk_reply_code(struct bk_call *c, int status, const char *detail, const char *code);
int bk_reply_invalid(struct bk_call *c); /* 400 with the recorded field errors */
/* A binary body (media): the reply body becomes {"content_type", "etag",
 * "data": bin}, which the bridge sends as raw bytes. data is copied. */
int bk_reply_blob(struct bk_call *c, const char *content_type, const char *etag, const void *data,
                  size_t len);
/* An HTTP header the bridge copies into its response (Retry-After...). */
void bk_reply_header(struct bk_call *c, const char *name, const char *value);

/* Commit the handler's writes even though the reply is a refusal (4xx): a
 * failed login still counts toward throttling, a reused refresh token still
 * revokes its family. Without it a 4xx reply rolls everything back. */
void bk_commit_anyway(struct bk_call *c);

/* ---- SQL and events ------------------------------------------------------ */

/* Runs a parameterised statement on the call's connection (inside the
 * command's transaction for a write). The result belongs to the call and is
 * freed after the reply. NULL on error: bk_sql_state tells the SQLSTATE. */
PGresult *bk_sql(struct bk_call *c, const char *sql, int n, const char *const *params);
#define BK_SQL(c, sql, ...)                                                                        \
    bk_sql((c), (sql), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),        \
           (const char *[]){__VA_ARGS__})
#define BK_SQL0(c, sql) bk_sql((c), (sql), 0, NULL)
/* The same for a statement built per request (shared/listing.c): run
 * unprepared, after the caller's check; for reads. */
PGresult *bk_sql_once(struct bk_call *c, const char *sql, int n, const char *const *params);
/* Binary parameters (bytea uploads): lengths/formats as in PQexecParams. */
PGresult *bk_sql_bin(struct bk_call *c, const char *sql, int n, const char *const *values,
                     const int *lengths, const int *formats);
/* The SQLSTATE of the last failed bk_sql ("23505"), or "". */
const char *bk_sql_state(const struct bk_call *c);
/* The constraint a failed bk_sql violated ("users_email_lower"), or "". */
const char *bk_sql_constraint(const struct bk_call *c);

/* Queues the event (outbox row in the command's transaction, published after
 * commit). Its envelope carries correlation_id = the call's request id and
 * causation_id = the command's message_id. data is stolen. 0 or -1. */
int bk_emit(struct bk_call *c, const char *event, json_t *data);
int bk_emit_text(struct bk_call *c, const char *event, const char *data_json);

/* ---- for unit tests of validation: a call over args with no database ---- */

struct bk_call *bk_call_new(const msgpack_object *args); /* free with bk_call_free */
void bk_call_free(struct bk_call *c);
int bk_call_status(const struct bk_call *c); /* 0 until a reply is set */
const json_t *bk_call_body(const struct bk_call *c);

/* ---- memory ------------------------------------------------------------- */

/* Allocations that live until the call ends. */
void *bk_alloc(struct bk_call *c, size_t n);
char *bk_strf(struct bk_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
