/* Request transcoding: the parts of turning an HTTP request into a command
 * that need no connection (header checks, the JSON body, the envelope), as
 * pure functions the unit tests can call. */
#ifndef BR_REQUEST_H
#define BR_REQUEST_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

enum br_body_kind {
    BR_BODY_JSON,      /* application/json (parameters such as charset ignored) */
    BR_BODY_MULTIPART, /* multipart/form-data */
    BR_BODY_OTHER,     /* anything else, or no Content-Type: 415 when there is a body */
};

/* Classifies a Content-Type header value (NULL when absent). */
enum br_body_kind br_request_body_kind(const char *content_type);

/* True when s is 1 to max printable ASCII characters (0x20-0x7e): the rule
 * for X-Request-ID (max 128) and Idempotency-Key (max 255). */
bool br_request_header_ok(const char *s, size_t max);

/* Reads an Authorization header value as simplejwt's JWTAuthentication does:
 * returns false (unauthenticated) when it is absent, empty or another scheme
 * than "Bearer"; else true with the token in *tok and *len. simplejwt refuses
 * a header of other than two parts with a 401; the worker gets what follows
 * "Bearer" as the token instead ("" for "Bearer" alone), which it refuses with
 * its 401 for a bad token. *tok points into value. */
bool br_request_bearer(const char *value, const char **tok, size_t *len);

/* DRF's (Python's) type name of a JSON value: "list", "str", "int"... */
const char *br_request_type_name(const json_t *v);

/* Parses a JSON request body that must be an object, within the limits the
 * workers' decoder enforces (BK_CODEC_*). Returns 0 with *out = the object
 * (caller owns), or 400 with *err = DRF's error body (caller owns):
 * {"detail": "JSON parse error - <reason>"} or
 * {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}
 * ("No data provided" for null). */
int br_request_parse_json(const char *body, size_t len, json_t **out, json_t **err);

/* A file field of a multipart body. */
struct br_file {
    char *name;
    char *filename;
    char *content_type;
    char *data;
    size_t len, cap;
    struct br_file *next;
};

void br_request_free_files(struct br_file *f);

/* Packs the command envelope {"v": 1, "auth": token or nil, "args": {...}}
 * into sb: args' members, then each file as bin under its field name unless
 * args holds that name (a query or path parameter of the same name wins).
 * token NULL means nil. Returns 0, or -1 when a value is nested too deeply. */
int br_request_pack(msgpack_sbuffer *sb, const char *token, size_t token_len, const json_t *args,
                    const struct br_file *files);

#endif
