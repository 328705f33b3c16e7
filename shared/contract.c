/* The declarations (see contract.h): representations first, then commands,
 * then events. A field shared by several representations is one macro here
 * (F_USERNAME...), so its type and limits are written once. */
#include "shared/contract.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "shared/jwt.h"
#include "shared/validate.h"

/* A declaration names what it sets; every limit it leaves out is zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* ---- formats ---------------------------------------------------------------- */

/* Django's UnicodeUsernameValidator: \w, @ . + - _ (ASCII letters and digits
 * plus any non-ASCII byte sequence, as \w takes most letters). */
static bool username_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!(isalnum(*p) || *p >= 0x80 || strchr("@.+-_", *p)))
            return false;
    return true;
}

static bool phone_ok(const char *s)
{
    for (; *s; s++)
        if (!strchr("0123456789+-(). ", *s))
            return false;
    return true;
}

static const struct format {
    const char *name, *pattern, *message;
} formats[] = {
    [BK_FMT_NONE] = {NULL, NULL, NULL},
    [BK_FMT_EMAIL] = {"email", NULL, "Enter a valid email address."},
    [BK_FMT_URI] = {"uri", "^(https?://.*)?$", "Enter a valid URL."},
    [BK_FMT_DATE] = {"date", NULL,
                     "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."},
    [BK_FMT_DATETIME] = {"date-time", NULL, NULL},
    [BK_FMT_USERNAME] = {NULL, "^[\\w.@+-]+$",
                         "Enter a valid username. This value may contain only letters, numbers, "
                         "and @/./+/-/_ characters."},
    [BK_FMT_PHONE] = {NULL, "^[0-9+().\\- ]*$", "Enter a valid phone number."},
    [BK_FMT_PASSWORD] = {"password", NULL, NULL},
    [BK_FMT_JWT] = {NULL, "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$", NULL},
    [BK_FMT_UUID] = {"uuid", NULL, NULL},
};

bool bk_contract_format_ok(enum bk_format fmt, const char *s)
{
    switch (fmt) {
    case BK_FMT_EMAIL:
        return bk_valid_email(s);
    case BK_FMT_URI:
        return !*s || bk_valid_url(s);
    case BK_FMT_USERNAME:
        return username_ok(s);
    case BK_FMT_PHONE:
        return phone_ok(s);
    default:
        return true; /* dates are read by the runtime; the rest are documentation */
    }
}

const char *bk_contract_format_message(enum bk_format fmt)
{
    return formats[fmt].message;
}

const char *bk_contract_format_name(enum bk_format fmt)
{
    return formats[fmt].name;
}

const char *bk_contract_format_pattern(enum bk_format fmt)
{
    return formats[fmt].pattern;
}

/* ---- enumerations -------------------------------------------------------------- */

static const char *const order_statuses[] = {"pending", "shipped", "delivered", "cancelled", NULL};
static const char *const payment_statuses[] = {"pending", "completed", "failed", NULL};
static const char *const password_hows[] = {"change", "reset", NULL};
static const char *const token_codes[] = {"token_not_valid", "no_active_account", NULL};

/* ---- shorthands --------------------------------------------------------------- */

#define REQ BK_F_REQUIRED
#define RO  (BK_F_READ_ONLY | BK_F_REQUIRED)
#define WO  BK_F_WRITE_ONLY
#define NUL BK_F_NULLABLE
#define NNE BK_F_NULL_IS_ERROR
#define END                                                                                        \
    {                                                                                              \
        0                                                                                          \
    }

#define EX_PASSWORD "\"Tea-Party-1865!\""

#define F_ID(what)                                                                                 \
    {                                                                                              \
        "id", BK_T_INTEGER, RO, .doc = what, .example = "1"                                        \
    }
#define F_USER_ID                                                                                  \
    {                                                                                              \
        "user", BK_T_INTEGER, RO, .doc = "The owner's id"                                          \
    }
#define F_USERNAME(fl)                                                                             \
    {                                                                                              \
        "username", BK_T_STRING, fl, .max = 150, .format = BK_FMT_USERNAME,                        \
                                     .doc = "Letters, digits and @/./+/-/_",                       \
                                     .example = "\"alice\""                                        \
    }
#define F_EMAIL(fl)                                                                                \
    {                                                                                              \
        "email", BK_T_STRING, fl, .max = 254, .format = BK_FMT_EMAIL,                              \
                                  .example = "\"alice@example.com\""                               \
    }
#define F_NAME(n, fl, ex)                                                                          \
    {                                                                                              \
        n, BK_T_STRING, fl, .max = 150, .example = ex                                              \
    }
/* 002's full_name: first_name and last_name joined (schema/009 keeps them
 * consistent; a write of full_name alone splits it) */
#define F_FULL_NAME(fl)                                                                            \
    {                                                                                              \
        "full_name", BK_T_STRING, fl, .max = 301,                                                  \
                                      .doc = "first_name and last_name, joined by a space",        \
                                      .example = "\"Alice Liddell\""                               \
    }
#define F_ROLE(fl)                                                                                 \
    {                                                                                              \
        "role", BK_T_CHOICE, fl, .choices = bk_roles,                                              \
                                 .doc = "member (default), student, alumni, "                      \
                                        "faculty or teacher",                                      \
                                 .example = "\"student\""                                          \
    }
#define F_IS_STAFF                                                                                 \
    {                                                                                              \
        "is_staff", BK_T_BOOLEAN, RO                                                               \
    }
#define F_SUPERUSER                                                                                \
    {                                                                                              \
        "is_superuser", BK_T_BOOLEAN, RO                                                           \
    }
#define F_DATE_JOINED                                                                              \
    {                                                                                              \
        "date_joined", BK_T_STRING, RO, .format = BK_FMT_DATETIME                                  \
    }
#define F_PASSWORD(n)                                                                              \
    {                                                                                              \
        n, BK_T_STRING, REQ | WO | BK_F_NO_TRIM, .max = 4096, .format = BK_FMT_PASSWORD,           \
                                                 .example = EX_PASSWORD                            \
    }
#define F_TOKEN(n, what)                                                                           \
    {                                                                                              \
        n, BK_T_STRING, REQ, .max = BK_JWT_MAX, .format = BK_FMT_JWT, .doc = what,                 \
                             .example = "\"<" what " from POST /api/auth/login/>\""                \
    }
#define F_MONEY(n, fl, digits, min_cents, what, ex)                                                \
    {                                                                                              \
        n, BK_T_DECIMAL, fl, .min = min_cents, .max = digits, .doc = what, .example = ex           \
    }
#define F_DATE(n)                                                                                  \
    {                                                                                              \
        n, BK_T_STRING, NUL, .format = BK_FMT_DATE, .doc = "YYYY-MM-DD, or null",                  \
                             .example = "\"2024-06-30\""                                           \
    }
#define F_IMAGE                                                                                    \
    {                                                                                              \
        "image", BK_T_BINARY, NUL,                                                                 \
            .max = 5 << 20,                                                                        \
            .doc = "PNG, JPEG, GIF or WebP (multipart); in the reply its URL or null"              \
    }
#define F_MEDIA_URL(n, fl)                                                                         \
    {                                                                                              \
        n, BK_T_STRING, fl, .format = BK_FMT_URI                                                   \
    }
#define F_PATH_ID                                                                                  \
    {                                                                                              \
        "id", BK_T_ID, BK_F_PATH | REQ, .doc = "The row's id"                                      \
    }
#define F_PARTIAL                                                                                  \
    {                                                                                              \
        "partial", BK_T_BOOLEAN, BK_F_HEADER,                                                      \
            .doc = "Set by the bridge: true for PATCH, false for PUT; absent over AMQP means true" \
    }
#define F_PAGE                                                                                     \
    {"page", BK_T_PAGE, BK_F_QUERY, .min = 1, .max = 1000000000, .doc = "1-based page number"},    \
    {                                                                                              \
        "page_size", BK_T_INTEGER, BK_F_QUERY | BK_F_LENIENT,                                      \
            .min = 1, .max = 100, .doc = "Rows per page (default 20, at most 100)"                 \
    }
#define F_USER_FILTER                                                                              \
    {                                                                                              \
        "user", BK_T_INTEGER, BK_F_QUERY | BK_F_LENIENT, .min = 1, .doc = "Only this user's rows"  \
    }

/* The list conventions (shared/listing.h): documented here, read by the
 * list's handler, which answers a value that does not parse with a 400
 * naming the parameter and drops unknown ordering fields, as DRF does. */
#define Q_LIST (BK_F_QUERY | BK_F_LENIENT)
#define F_ORDERING(fields)                                                                         \
    {                                                                                              \
        "ordering", BK_T_STRING, Q_LIST,                                                           \
            .max = 300,                                                                            \
            .doc = "Fields to order by, comma-separated, - for descending (others are "            \
                   "ignored): " fields                                                             \
    }
#define F_SEARCH(where)                                                                            \
    {                                                                                              \
        "search", BK_T_STRING, Q_LIST, .max = 500, .doc = "Every word in " where                   \
    }
#define F_TIME_RANGE(n)                                                                            \
    {n "__gte", BK_T_STRING, Q_LIST, .doc = "From: a date (its whole day, UTC) or RFC 3339 time"}, \
    {                                                                                              \
        n "__lte", BK_T_STRING, Q_LIST, .doc = "Up to: a date (its whole day, UTC) or RFC 3339"    \
    }
#define F_DATE_RANGE(n)                                                                            \
    {n "__gte", BK_T_STRING, Q_LIST, .format = BK_FMT_DATE, .doc = "From this day"},               \
    {                                                                                              \
        n "__lte", BK_T_STRING, Q_LIST, .format = BK_FMT_DATE, .doc = "Up to this day"             \
    }
#define F_INT_RANGE(n)                                                                             \
    {n, BK_T_INTEGER, Q_LIST, .doc = "Exactly"}, {n "__gte", BK_T_INTEGER, Q_LIST, .doc = "From"}, \
    {                                                                                              \
        n "__lte", BK_T_INTEGER, Q_LIST, .doc = "Up to"                                            \
    }
#define F_BOOL_FILTER(n, what)                                                                     \
    {                                                                                              \
        n, BK_T_BOOLEAN, Q_LIST, .doc = what                                                       \
    }
#define F_CHANGES(fl)                                                                              \
    {                                                                                              \
        "changes", BK_T_MAP, fl, .doc = "What changed: {field: [before, after]}"                   \
    }

/* ---- error bodies -------------------------------------------------------------- */

static const struct bk_field detail_fields[] = {
    {"detail", BK_T_STRING, REQ, .doc = "What went wrong (or right), in words"},
    END,
};
const struct bk_repr bk_repr_detail = {"Detail", "A message", detail_fields};

static const struct bk_field token_error_fields[] = {
    {"detail", BK_T_STRING, REQ},
    {"code", BK_T_CHOICE, REQ, .choices = token_codes},
    END,
};
const struct bk_repr bk_repr_token_error = {"TokenError", "A refused token or login",
                                            token_error_fields};

static const struct bk_field validation_fields[] = {
    {"non_field_errors", BK_T_ARRAY, BK_F_OMITTED, .doc = "Errors of the object as a whole"},
    END,
};
/* free keys: every other key is a field name with its list of messages */
const struct bk_repr bk_repr_validation_error = {
    "ValidationError",
    "400: each invalid field with its messages (DRF's), non_field_errors for the whole",
    validation_fields};

/* ---- accounts ---------------------------------------------------------------- */

#define ME_FIELDS                                                                                  \
    F_ID("The user's id"), F_USERNAME(RO), F_EMAIL(RO), F_NAME("first_name", RO, NULL),            \
        F_NAME("last_name", RO, NULL), F_FULL_NAME(RO),                                            \
        {"role", BK_T_CHOICE, RO, .choices = bk_roles}, F_IS_STAFF, F_SUPERUSER, F_DATE_JOINED

static const struct bk_field me_fields[] = {ME_FIELDS, END};
static const struct bk_repr me = {"Me", "The signed-in user", me_fields};

static const struct bk_field admin_user_fields[] = {
    ME_FIELDS,
    {"is_active", BK_T_BOOLEAN, 0, .doc = "False: the account cannot log in"},
    {"last_login", BK_T_STRING, BK_F_READ_ONLY | REQ | NUL, .format = BK_FMT_DATETIME},
    END,
};
static const struct bk_repr admin_user = {"AdminUser", "A user as staff see it", admin_user_fields};

static const struct bk_field register_fields[] = {
    F_USERNAME(REQ),
    F_EMAIL(REQ),
    F_PASSWORD("password"),
    F_PASSWORD("password2"),
    F_NAME("first_name", BK_F_BLANK | NUL, "\"Alice\""),
    F_NAME("last_name", BK_F_BLANK | NUL, "\"Liddell\""),
    F_ROLE(0),
    END,
};
static const struct bk_repr register_in = {"Register", "A new account", register_fields};

/* 001's and 002's registration: by email, the username derived from it */
static const struct bk_field register_email_fields[] = {
    F_EMAIL(REQ),
    F_PASSWORD("password"),
    F_FULL_NAME(BK_F_BLANK | NUL),
    F_NAME("first_name", BK_F_BLANK | NUL, "\"Alice\""),
    F_NAME("last_name", BK_F_BLANK | NUL, "\"Liddell\""),
    F_ROLE(0),
    {"designation", BK_T_STRING, BK_F_BLANK | NUL, .max = 100},
    {"company", BK_T_STRING, BK_F_BLANK | NUL, .max = 100},
    END,
};
static const struct bk_repr register_email_in = {
    "RegisterByEmail", "A new account by email: the username is derived from the address",
    register_email_fields};

static const struct bk_field registered_fields[] = {
    {"detail", BK_T_STRING, REQ},
    {"user", BK_T_OBJECT, REQ, .ref = &me},
    END,
};
static const struct bk_repr registered = {"Registered", "The new account", registered_fields};

static const struct bk_field login_fields[] = {
    {"username", BK_T_STRING, NUL, .max = 150, .doc = "The username, or give email instead",
     .example = "\"alice\""},
    {"email", BK_T_STRING, NUL, .max = 254, .doc = "The address, instead of username"},
    F_PASSWORD("password"),
    END,
};
static const struct bk_repr login_in = {"Login", "Credentials: username or email, and password",
                                        login_fields};

static const struct bk_field token_pair_user_fields[] = {
    {"refresh", BK_T_STRING, REQ, .format = BK_FMT_JWT},
    {"access", BK_T_STRING, REQ, .format = BK_FMT_JWT},
    {"user", BK_T_OBJECT, REQ, .ref = &me},
    END,
};
static const struct bk_repr login_out = {"LoginTokens", "A token pair and the user",
                                         token_pair_user_fields};

static const struct bk_field token_pair_fields[] = {
    {"access", BK_T_STRING, REQ, .format = BK_FMT_JWT},
    {"refresh", BK_T_STRING, REQ, .format = BK_FMT_JWT},
    END,
};
static const struct bk_repr token_pair = {"TokenPair", "A rotated token pair", token_pair_fields};

static const struct bk_field access_token_fields[] = {
    {"access", BK_T_STRING, REQ, .format = BK_FMT_JWT},
    END,
};
static const struct bk_repr access_token = {
    "AccessToken", "A new access token (the refresh token stays valid)", access_token_fields};

static const struct bk_field refresh_fields[] = {F_TOKEN("refresh", "A refresh token"), END};
static const struct bk_repr refresh_in = {"TokenRefresh", "A refresh token", refresh_fields};

static const struct bk_field verify_fields[] = {F_TOKEN("token", "Any token"), END};
static const struct bk_repr verify_in = {"TokenVerify", "A token to check", verify_fields};

static const struct bk_field empty_fields[] = {END};
static const struct bk_repr empty = {"Empty", "An empty object", empty_fields};

static const struct bk_field change_fields[] = {
    {"old_password", BK_T_STRING, REQ | WO | BK_F_NO_TRIM, .max = 4096, .format = BK_FMT_PASSWORD,
     .example = EX_PASSWORD},
    {"new_password", BK_T_STRING, REQ | WO | BK_F_NO_TRIM, .max = 4096, .format = BK_FMT_PASSWORD,
     .example = "\"Mad-Hatter-1871?\""},
    {"new_password2", BK_T_STRING, REQ | WO | BK_F_NO_TRIM, .max = 4096, .format = BK_FMT_PASSWORD,
     .example = "\"Mad-Hatter-1871?\""},
    END,
};
static const struct bk_repr change_in = {"PasswordChange", "The old and the new password",
                                         change_fields};

static const struct bk_field changed_fields[] = {
    {"detail", BK_T_STRING, REQ},
    {"access", BK_T_STRING, REQ, .format = BK_FMT_JWT},
    {"refresh", BK_T_STRING, REQ, .format = BK_FMT_JWT},
    END,
};
static const struct bk_repr changed = {"PasswordChanged", "A fresh token pair for this session",
                                       changed_fields};

static const struct bk_field reset_fields[] = {F_EMAIL(REQ), END};
static const struct bk_repr reset_in = {"PasswordReset", "The account's address", reset_fields};

static const struct bk_field reset_confirm_fields[] = {
    {"uid", BK_T_STRING, REQ, .max = 64, .doc = "From the reset mail", .example = "\"MQ\""},
    {"token", BK_T_STRING, REQ, .max = 128, .doc = "From the reset mail",
     .example = "\"<the token of the reset mail>\""},
    {"new_password", BK_T_STRING, REQ | WO | BK_F_NO_TRIM, .max = 4096, .format = BK_FMT_PASSWORD,
     .example = "\"Mad-Hatter-1871?\""},
    {"new_password2", BK_T_STRING, REQ | WO | BK_F_NO_TRIM, .max = 4096, .format = BK_FMT_PASSWORD,
     .example = "\"Mad-Hatter-1871?\""},
    END,
};
static const struct bk_repr reset_confirm_in = {
    "PasswordResetConfirm", "The mailed uid and token, and the new password", reset_confirm_fields};

static const char *const jwk_kty[] = {"OKP", NULL};
static const char *const jwk_crv[] = {"Ed25519", NULL};
static const char *const jwk_use[] = {"sig", NULL};
static const char *const jwk_alg[] = {"EdDSA", NULL};
static const struct bk_field jwk_fields[] = {
    {"kty", BK_T_CHOICE, REQ, .choices = jwk_kty},
    {"crv", BK_T_CHOICE, REQ, .choices = jwk_crv},
    {"x", BK_T_STRING, REQ, .doc = "The public key, base64url"},
    {"kid", BK_T_STRING, REQ, .doc = "The key id of the tokens' header"},
    {"use", BK_T_CHOICE, REQ, .choices = jwk_use},
    {"alg", BK_T_CHOICE, REQ, .choices = jwk_alg},
    END,
};
static const struct bk_repr jwk = {"JWK", "A verification key (RFC 8037)", jwk_fields};

static const struct bk_field jwks_fields[] = {
    {"keys", BK_T_ARRAY, REQ, .ref = &jwk},
    END,
};
static const struct bk_repr jwks = {"JWKS", "The token verification keys (RFC 7517)", jwks_fields};

static const struct bk_field delete_account_fields[] = {
    {"password", BK_T_STRING, REQ | WO | BK_F_NO_TRIM, .max = 4096, .format = BK_FMT_PASSWORD,
     .example = EX_PASSWORD},
    END,
};
static const struct bk_repr delete_account = {"AccountDelete", "The password, to confirm",
                                              delete_account_fields};

/* ---- profiles ------------------------------------------------------------------- */

static const struct bk_field education_fields[] = {
    F_ID("The education's id"),
    F_USER_ID,
    {"degree", BK_T_STRING, REQ | NNE, .max = 100, .example = "\"BSc Mathematics\""},
    {"institution", BK_T_STRING, REQ | NNE, .max = 200, .example = "\"University of Oxford\""},
    {"start_year", BK_T_INTEGER, REQ | NNE, .min = 0, .max = 32767, .example = "2019"},
    {"end_year", BK_T_INTEGER, NUL, .min = 0, .max = 32767,
     .doc = "Not before start_year; null while studying", .example = "2022"},
    END,
};
static const struct bk_repr education = {"Education", "A degree", education_fields};

static const struct bk_field certificate_fields[] = {
    F_ID("The certificate's id"),
    F_USER_ID,
    {"title", BK_T_STRING, REQ | NNE, .max = 200, .example = "\"Cloud Practitioner\""},
    {"issuer", BK_T_STRING, REQ | NNE, .max = 200, .example = "\"AWS\""},
    F_DATE("date"),
    F_IMAGE,
    {"link", BK_T_STRING, BK_F_BLANK | NNE, .max = 200, .format = BK_FMT_URI,
     .example = "\"https://example.com/cert/42\""},
    END,
};
static const struct bk_repr certificate = {"Certificate", "A certificate", certificate_fields};

static const struct bk_field achievement_fields[] = {
    F_ID("The achievement's id"),
    F_USER_ID,
    {"title", BK_T_STRING, REQ | NNE, .max = 200, .example = "\"Best paper award\""},
    {"description", BK_T_STRING, BK_F_BLANK | NNE, .max = 5000, .example = "\"At PyCon 2023\""},
    F_DATE("date"),
    F_IMAGE,
    END,
};
static const struct bk_repr achievement = {"Achievement", "An achievement", achievement_fields};

static const struct bk_field resume_fields[] = {
    {"user", BK_T_INTEGER, RO},
    {"file", BK_T_BINARY, REQ, .max = 5 << 20, .doc = "A PDF (multipart); in the reply its URL"},
    {"uploaded_at", BK_T_STRING, RO, .format = BK_FMT_DATETIME},
    END,
};
static const struct bk_repr resume = {"Resume", "A user's resume", resume_fields};

static const struct bk_field picture_fields[] = {
    {"file", BK_T_BINARY, REQ | WO, .max = 5 << 20, .doc = "PNG, JPEG, GIF or WebP"},
    END,
};
static const struct bk_repr picture = {"ProfilePicture", "The new picture", picture_fields};

/* The profile's own fields; email, phone_no and address are in the reply
 * only for the owner and staff. */
/* The profile's writable fields, in two runs (the representation's order):
 * the names, then the rest. */
#define PROFILE_NAMES                                                                              \
    F_EMAIL(REQ | NNE | BK_F_OMITTED), F_NAME("first_name", BK_F_BLANK | NNE, "\"Alice\""),        \
        F_NAME("last_name", BK_F_BLANK | NNE, "\"Liddell\"")
#define PROFILE_ABOUT                                                                              \
    {"about", BK_T_STRING, BK_F_BLANK | NNE, .max = 5000, .example = "\"Curious.\""},              \
        {"linkedin", BK_T_STRING, BK_F_BLANK | NNE, .max = 200, .format = BK_FMT_URI},             \
        {"github",   BK_T_STRING,          BK_F_BLANK | NNE,                                       \
         .max = 200, .format = BK_FMT_URI, .example = "\"https://github.com/alice\""},             \
        {"phone_no", BK_T_STRING, BK_F_BLANK | NNE | BK_F_OMITTED, .max = 20,                      \
         .format = BK_FMT_PHONE},                                                                  \
        {"address", BK_T_STRING, BK_F_BLANK | NNE | BK_F_OMITTED, .max = 1000},                    \
        {"designation", BK_T_STRING, BK_F_BLANK | NNE, .max = 100},                                \
        {"company", BK_T_STRING, BK_F_BLANK | NNE, .max = 100},                                    \
        {"is_student", BK_T_BOOLEAN, NNE, .example = "true"}, {"is_alumni", BK_T_BOOLEAN, NNE},    \
    {                                                                                              \
        "is_faculty", BK_T_BOOLEAN, NNE                                                            \
    }

/* The profile's own fields; email, phone_no and address are in the reply
 * only for the owner and staff. */
#define PROFILE_FIELDS                                                                             \
    F_ID("The user's id"), F_USERNAME(RO), PROFILE_NAMES, F_FULL_NAME(RO),                         \
        {"role", BK_T_CHOICE, RO, .choices = bk_roles}, F_IS_STAFF, F_DATE_JOINED, PROFILE_ABOUT,  \
        F_MEDIA_URL("profile_picture", RO | NUL), {"followers_count", BK_T_INTEGER, RO, .min = 0}, \
    {                                                                                              \
        "following_count", BK_T_INTEGER, RO, .min = 0                                              \
    }

static const struct bk_field profile_fields[] = {PROFILE_FIELDS, END};
static const struct bk_repr profile = {"UserProfile", "A user's profile", profile_fields};

static const struct bk_field profile_detail_fields[] = {
    PROFILE_FIELDS,
    {"educations", BK_T_ARRAY, RO, .ref = &education},
    {"certificates", BK_T_ARRAY, RO, .ref = &certificate},
    {"achievements", BK_T_ARRAY, RO, .ref = &achievement},
    {"resume", BK_T_OBJECT, RO | NUL, .ref = &resume},
    END,
};
static const struct bk_repr profile_detail = {
    "UserProfileDetail", "A user's profile with educations, certificates, achievements and resume",
    profile_detail_fields};

/* One's own user on the source systems' user routes (profile.update_user):
 * the profile's fields, the username, the role (001 lists it among what a
 * user updates; staff stays an admin matter), full_name, and a picture. */
static const struct bk_field own_user_fields[] = {
    F_USERNAME(NNE),
    PROFILE_NAMES,
    F_FULL_NAME(BK_F_BLANK | NNE),
    F_ROLE(NNE),
    PROFILE_ABOUT,
    {"profile_picture", BK_T_BINARY, NUL, .max = 5 << 20,
     .doc = "PNG, JPEG, GIF or WebP (multipart); null removes it"},
    END,
};
static const struct bk_repr own_user = {"OwnUser", "What a user may change of its own user",
                                        own_user_fields};

/* 001's AdminUser/: being an admin is a role there ("admin": staff) */
static const char *const set_role_choices[] = {"member",  "student", "alumni", "faculty",
                                               "teacher", "admin",   NULL};
static const struct bk_field set_role_fields[] = {
    {"id", BK_T_ID, REQ, .doc = "The user's id", .example = "2"},
    {"role", BK_T_CHOICE, REQ, .choices = set_role_choices,
     .doc = "admin makes the user staff; any other role sets it and takes staff away",
     .example = "\"admin\""},
    END,
};
static const struct bk_repr set_role = {"AdminSetRole", "A user's new role", set_role_fields};

static const struct bk_field admin_update_fields[] = {
    F_ROLE(NNE),
    {"is_staff", BK_T_BOOLEAN, NNE},
    {"is_active", BK_T_BOOLEAN, NNE},
    END,
};
static const struct bk_repr admin_update = {"AdminUserUpdate", "What staff may change of a user",
                                            admin_update_fields};

/* ---- orders and payments ----------------------------------------------------------- */

static const struct bk_field order_payment_fields[] = {
    {"id", BK_T_INTEGER, RO},
    {"status", BK_T_CHOICE, RO, .choices = payment_statuses},
    F_MONEY("amount", RO, 15, 0, NULL, NULL),
    END,
};
static const struct bk_repr order_payment = {"OrderPayment", "An order's payment, in short",
                                             order_payment_fields};

static const struct bk_field order_fields[] = {
    F_ID("The order's id"),
    F_USER_ID,
    {"product_name", BK_T_STRING, REQ, .max = 100, .example = "\"Blue mug\""},
    {"quantity", BK_T_INTEGER, REQ, .min = 1, .max = 10000, .example = "2"},
    F_MONEY("price", REQ, 10, 1, "Unit price, at least 0.01", "\"12.50\""),
    F_MONEY("total", RO, 15, 0, "quantity x price", NULL),
    {"status", BK_T_CHOICE, RO, .choices = order_statuses},
    {"order_date", BK_T_STRING, RO, .format = BK_FMT_DATETIME},
    {"payment", BK_T_OBJECT, RO | NUL, .ref = &order_payment},
    END,
};
static const struct bk_repr order = {"Order", "An order", order_fields};

static const struct bk_field order_status_fields[] = {
    {"status", BK_T_CHOICE, REQ, .choices = order_statuses, .example = "\"cancelled\""},
    END,
};
static const struct bk_repr order_status = {"OrderStatus", "An order's new status",
                                            order_status_fields};

static const struct bk_field payment_fields[] = {
    F_ID("The payment's id"),
    {"order", BK_T_PK, REQ, .doc = "A pending order of the caller", .example = "1"},
    F_MONEY("amount", REQ, 15, INT64_MIN, "Equal to the order's total", "\"25.00\""),
    {"status", BK_T_CHOICE, RO, .choices = payment_statuses},
    {"payment_date", BK_T_STRING, RO, .format = BK_FMT_DATETIME},
    END,
};
static const struct bk_repr payment = {"Payment", "A payment", payment_fields};

static const struct bk_field payment_status_fields[] = {
    {"status", BK_T_CHOICE, REQ, .choices = payment_statuses, .example = "\"completed\""},
    END,
};
static const struct bk_repr payment_status = {"PaymentStatus", "A payment's new status",
                                              payment_status_fields};

/* ---- command arguments beyond the body ------------------------------------------ */

static const struct bk_field args_id[] = {F_PATH_ID, END};
static const struct bk_field args_id_partial[] = {F_PATH_ID, F_PARTIAL, END};
static const struct bk_field args_partial[] = {F_PARTIAL, END};
/* a source system's own-user route: its {id} (the caller's), or none (the caller) */
static const struct bk_field args_own_partial[] = {
    {"id", BK_T_ID, BK_F_PATH, .doc = "The caller's own id (another's: 403)"}, F_PARTIAL, END};
static const struct bk_field args_own[] = {
    {"id", BK_T_ID, BK_F_PATH, .doc = "The caller's own id (another's: 403)"}, END};
static const struct bk_field args_id_page[] = {F_PATH_ID, F_PAGE, END};
static const struct bk_field args_resumes[] = {F_USER_FILTER, F_PAGE, END}; /* 000's viewset */
static const struct bk_field args_educations[] = {
    F_USER_FILTER,
    F_SEARCH("degree or institution"),
    F_INT_RANGE("start_year"),
    F_INT_RANGE("end_year"),
    F_ORDERING("id, degree, institution, start_year, end_year"),
    F_PAGE,
    END,
};
static const struct bk_field args_certificates[] = {
    F_USER_FILTER,
    F_SEARCH("title or issuer"),
    F_DATE_RANGE("date"),
    F_ORDERING("id, title, issuer, date"),
    F_PAGE,
    END,
};
static const struct bk_field args_achievements[] = {
    F_USER_FILTER,
    F_SEARCH("title or description"),
    F_DATE_RANGE("date"),
    F_ORDERING("id, title, date"),
    F_PAGE,
    END,
};
#define USER_LIST_ARGS                                                                             \
    {"search", BK_T_STRING, BK_F_QUERY | BK_F_BLANK | NUL, .max = 500,                             \
     .doc = "Words to find in username, names, designation or company (staff: email too)"},        \
        {"role", BK_T_STRING, BK_F_QUERY | BK_F_BLANK | NUL, .max = 32, .doc = "Only this role"},  \
        F_TIME_RANGE("date_joined")
static const struct bk_field args_users[] = {
    USER_LIST_ARGS,
    F_ORDERING("id, username, first_name, last_name, date_joined"),
    F_PAGE,
    END,
};
static const struct bk_field args_admin_users[] = {
    USER_LIST_ARGS,
    F_BOOL_FILTER("is_staff", "Only staff (true) or only others (false)"),
    F_BOOL_FILTER("is_active", "Only active (true) or only inactive (false) accounts"),
    F_TIME_RANGE("last_login"),
    F_ORDERING("id, username, first_name, last_name, email, date_joined, last_login"),
    F_PAGE,
    END,
};
static const char *const audit_objects[] = {
    "user", "order", "payment", "dead_letter", "education", "certificate", "achievement", NULL};
static const struct bk_field args_audit[] = {
    {"object_type", BK_T_CHOICE, Q_LIST, .choices = audit_objects, .doc = "Only this kind"},
    {"object_id", BK_T_STRING, Q_LIST, .max = 128, .doc = "Only this object (with object_type)"},
    {"actor", BK_T_INTEGER, Q_LIST, .doc = "Only what this user did"},
    {"actor_service", BK_T_STRING, Q_LIST, .doc = "Only what this service (or backendctl) did"},
    {"event", BK_T_STRING, Q_LIST, .doc = "Only this event (user.updated...)"},
    {"channel", BK_T_STRING, Q_LIST, .doc = "http, amqp or cli"},
    {"request_id", BK_T_STRING, Q_LIST, .doc = "Only what this request (X-Request-ID) caused"},
    F_TIME_RANGE("occurred_at"),
    F_SEARCH("the event's name"),
    F_ORDERING("id, occurred_at"),
    F_PAGE,
    END,
};
static const struct bk_field args_dead_letters[] = {
    {"command", BK_T_STRING, BK_F_QUERY | BK_F_BLANK | NUL, .max = 255,
     .doc = "Only commands whose name starts so (profile., order.place)"},
    F_PAGE,
    END,
};
static const struct bk_field args_replay[] = {
    {"ids", BK_T_ARRAY, REQ | BK_F_LENIENT, .doc = "Message ids of dead letters (1-100)"},
    END,
};
static const struct bk_field args_discard[] = {
    {"ids", BK_T_ARRAY, REQ | BK_F_LENIENT, .doc = "Message ids of dead letters (1-100)"},
    {"reason", BK_T_STRING, REQ, .max = 500, .doc = "Why: kept in the audit trail",
     .example = "\"sent twice by the client\""},
    END,
};
static const struct bk_field args_orders[] = {
    {"status", BK_T_CHOICE, BK_F_QUERY | BK_F_LENIENT, .choices = order_statuses,
     .doc = "Only orders in this status"},
    {"all", BK_T_BOOLEAN, BK_F_QUERY | BK_F_LENIENT, .doc = "Staff: everyone's orders (1 or true)"},
    F_USER_FILTER,
    F_TIME_RANGE("order_date"),
    F_SEARCH("the product name"),
    F_ORDERING("id, order_date, total, price, quantity, product_name, status"),
    F_PAGE,
    END,
};
static const struct bk_field args_payments[] = {
    {"status", BK_T_CHOICE, Q_LIST, .choices = payment_statuses, .doc = "Only this status"},
    {"order", BK_T_INTEGER, Q_LIST, .doc = "Only this order's"},
    F_USER_FILTER,
    F_TIME_RANGE("payment_date"),
    F_SEARCH("the order's product name"),
    F_ORDERING("id, payment_date, amount, status"),
    F_PAGE,
    END,
};
static const struct bk_field args_resume_get[] = {
    {"id", BK_T_ID, BK_F_PATH, .doc = "The user's id (GET /api/users/{id}/resume/)"},
    END,
};
static const struct bk_field args_media[] = {
    {"key", BK_T_STRING, BK_F_PATH | REQ | BK_F_LENIENT, .max = 64,
     .doc = "The file's SHA-256, in hex"},
    {"if_none_match", BK_T_STRING, BK_F_HEADER | BK_F_LENIENT,
     .doc = "The If-None-Match request header"},
    END,
};

/* ---- staff administration (issue 15) ---------------------------------------------- */

static const struct bk_field audit_actor_fields[] = {
    {"user_id", BK_T_INTEGER, RO | NUL, .doc = "The user whose token it was"},
    {"service", BK_T_STRING, RO | NUL, .doc = "A service token's name, or backendctl"},
    {"username", BK_T_STRING, RO | NUL, .doc = "The user's name now (null once deleted)"},
    END,
};
static const struct bk_repr audit_actor = {"AuditActor", "Who did it", audit_actor_fields};
static const struct bk_field audit_fields[] = {
    F_ID("The entry's id"),
    {"event", BK_T_STRING, RO, .doc = "The event it comes from"},
    {"occurred_at", BK_T_STRING, RO, .format = BK_FMT_DATETIME},
    {"object_type", BK_T_CHOICE, RO, .choices = audit_objects},
    {"object_id", BK_T_STRING, RO, .doc = "The object's id (a dead letter's message id)"},
    {"actor", BK_T_OBJECT, RO, .ref = &audit_actor},
    {"channel", BK_T_STRING, RO, .doc = "http, amqp or cli"},
    {"request_id", BK_T_STRING, RO | NUL, .doc = "The X-Request-ID of the request"},
    {"message_id", BK_T_STRING, RO | NUL, .doc = "The command's message_id"},
    {"before", BK_T_MAP, RO | NUL, .doc = "The changed fields before (a deletion: the record)"},
    {"after", BK_T_MAP, RO | NUL, .doc = "The changed fields after (a creation: the record)"},
    {"data", BK_T_MAP, RO, .doc = "The event's data, secrets masked"},
    END,
};
static const struct bk_repr audit_entry = {"AuditEntry", "One step of the audit trail",
                                           audit_fields};
static const struct bk_field dead_letter_fields[] = {
    {"message_id", BK_T_STRING, RO | NUL, .doc = "Its id: what replay and discard name"},
    {"command", BK_T_STRING, RO},
    {"reason", BK_T_STRING, RO, .doc = "The last error, or the broker's reason (rejected...)"},
    {"attempts", BK_T_INTEGER, RO, .doc = "Failed attempts before it was moved aside"},
    {"first_failure", BK_T_STRING, RO | NUL, .format = BK_FMT_DATETIME},
    {"dead_lettered_at", BK_T_STRING, RO | NUL, .format = BK_FMT_DATETIME},
    {"publisher", BK_T_STRING, RO | NUL, .doc = "The broker identity that published it"},
    {"request_id", BK_T_STRING, RO | NUL},
    {"args", BK_T_MAP, RO, .doc = "Its args, passwords and tokens masked"},
    END,
};
static const struct bk_repr dead_letter = {"DeadLetter", "A command in backend.dead",
                                           dead_letter_fields};
static const struct bk_field replayed_fields[] = {
    {"replayed", BK_T_ARRAY, RO, .ref = &dead_letter},
    {"not_found", BK_T_ARRAY, RO, .doc = "Ids no longer in backend.dead"},
    END,
};
static const struct bk_repr replayed = {"DeadLettersReplayed", NULL, replayed_fields};
static const struct bk_field discarded_fields[] = {
    {"discarded", BK_T_ARRAY, RO, .ref = &dead_letter},
    {"not_found", BK_T_ARRAY, RO, .doc = "Ids no longer in backend.dead"},
    END,
};
static const struct bk_repr discarded = {"DeadLettersDiscarded", NULL, discarded_fields};
static const struct bk_field sessions_fields[] = {
    {"detail", BK_T_STRING, RO},
    {"sessions", BK_T_INTEGER, RO, .doc = "How many logins were revoked"},
    END,
};
static const struct bk_repr sessions = {"SessionsRevoked", NULL, sessions_fields};

/* ---- replies ---------------------------------------------------------------------- */

#define R_INVALID                                                                                  \
    {                                                                                              \
        400, BK_R_ONE, &bk_repr_validation_error, "Invalid input"                                  \
    }
#define R_404                                                                                      \
    {                                                                                              \
        404, BK_R_ONE, &bk_repr_detail, "Not found (a malformed id too)"                           \
    }
#define R_403                                                                                      \
    {                                                                                              \
        403, BK_R_ONE, &bk_repr_detail, "Not the owner"                                            \
    }
#define R_END                                                                                      \
    {                                                                                              \
        0                                                                                          \
    }

static const struct bk_reply_decl r_register[] = {
    {201, BK_R_ONE, &registered, "Registered"}, R_INVALID, R_END};
static const struct bk_reply_decl r_login[] = {
    {200, BK_R_ONE, &login_out, "Logged in"},
    R_INVALID,
    {401, BK_R_ONE, &bk_repr_token_error, "Wrong or inactive account (no_active_account)"},
    {429, BK_R_ONE, &bk_repr_detail, "Too many failures: wait Retry-After seconds"},
    R_END};
static const struct bk_reply_decl r_refresh[] = {
    {200, BK_R_ONE, &token_pair, "Rotated"},
    R_INVALID,
    {401, BK_R_ONE, &bk_repr_token_error, "Invalid, expired or blacklisted (token_not_valid)"},
    R_END};
static const struct bk_reply_decl r_verify[] = {
    {200, BK_R_ONE, &empty, "Valid"},
    R_INVALID,
    {401, BK_R_ONE, &bk_repr_token_error, "Invalid or expired (token_not_valid)"},
    R_END};
static const struct bk_reply_decl r_logout[] = {
    {200, BK_R_ONE, &bk_repr_detail, "Logged out"},
    R_INVALID,
    {401, BK_R_ONE, &bk_repr_token_error, "Invalid or expired (token_not_valid)"},
    R_END};
static const struct bk_reply_decl r_refresh_access[] = {
    {200, BK_R_ONE, &access_token, "A new access token"},
    R_INVALID,
    {401, BK_R_ONE, &bk_repr_token_error, "Invalid, expired or blacklisted (token_not_valid)"},
    R_END};
static const struct bk_reply_decl r_signup[] = {
    {201, BK_R_ONE, &login_out, "Registered and logged in"}, R_INVALID, R_END};
static const struct bk_reply_decl r_detail[] = {{200, BK_R_ONE, &bk_repr_detail, "Done"}, R_END};
static const struct bk_reply_decl r_change[] = {
    {200, BK_R_ONE, &changed, "Changed"}, R_INVALID, R_END};
static const struct bk_reply_decl r_jwks[] = {{200, BK_R_ONE, &jwks, "The keys"}, R_END};
static const struct bk_reply_decl r_reset[] = {
    {202, BK_R_ONE, &bk_repr_detail, "Mailed if the address is known"}, R_INVALID, R_END};
static const struct bk_reply_decl r_reset_confirm[] = {
    {200, BK_R_ONE, &bk_repr_detail, "Password set"}, R_INVALID, R_END};

static const struct bk_reply_decl r_users[] = {{200, BK_R_PAGE, &profile, "A page of users"},
                                               {404, BK_R_ONE, &bk_repr_detail, "Invalid page."},
                                               R_INVALID,
                                               R_END};
static const struct bk_reply_decl r_admin_users[] = {
    {200, BK_R_PAGE, &admin_user, "A page of users"},
    {404, BK_R_ONE, &bk_repr_detail, "Invalid page."},
    R_INVALID,
    R_END};
static const struct bk_reply_decl r_profile_page[] = {
    {200, BK_R_PAGE, &profile, "A page of users"}, R_404, R_END};
static const struct bk_reply_decl r_profile[] = {
    {200, BK_R_ONE, &profile_detail, "The profile"}, R_404, R_END};
static const struct bk_reply_decl r_profile_update[] = {
    {200, BK_R_ONE, &profile_detail, "The profile"}, R_INVALID, R_END};
static const struct bk_reply_decl r_no_content[] = {
    {204, BK_R_EMPTY, NULL, "Done"}, R_INVALID, R_404, R_END};
static const struct bk_reply_decl r_follow[] = {
    {201, BK_R_ONE, &bk_repr_detail, "Now following"},
    {200, BK_R_ONE, &bk_repr_detail, "Already following"},
    {400, BK_R_ONE, &bk_repr_detail, "Not yourself"},
    R_404,
    R_END};
static const struct bk_reply_decl r_unfollow[] = {
    {204, BK_R_EMPTY, NULL, "Unfollowed"}, R_404, R_END};
static const struct bk_reply_decl r_picture[] = {
    {200, BK_R_ONE, &profile_detail, "The profile"}, R_INVALID, R_END};
static const struct bk_reply_decl r_media[] = {{200, BK_R_RAW, NULL, "The file's bytes"},
                                               {304, BK_R_EMPTY, NULL, "Not modified"},
                                               R_404,
                                               R_END};
static const struct bk_reply_decl r_admin_user[] = {
    {200, BK_R_ONE, &admin_user, "The user"},
    R_INVALID,
    R_404,
    {409, BK_R_ONE, &bk_repr_detail, "The last active staff user"},
    R_END};
static const struct bk_reply_decl r_own_update[] = {
    {200, BK_R_ONE, &profile_detail, "The profile"}, R_INVALID, R_403, R_404, R_END};
static const struct bk_reply_decl r_own_delete[] = {
    {204, BK_R_EMPTY, NULL, "Deleted"},
    R_403,
    R_404,
    {409, BK_R_ONE, &bk_repr_detail, "The last active staff user"},
    R_END};
static const struct bk_reply_decl r_admin_logout[] = {
    {200, BK_R_ONE, &sessions, "Logged out everywhere"}, R_404, R_END};
static const struct bk_reply_decl r_audit[] = {
    {200, BK_R_PAGE, &audit_entry, "A page of the audit trail, newest first"},
    {404, BK_R_ONE, &bk_repr_detail, "Invalid page."},
    R_INVALID,
    R_END};
static const struct bk_reply_decl r_dead_letters[] = {
    {200, BK_R_PAGE, &dead_letter, "A page of dead letters, oldest first"},
    {404, BK_R_ONE, &bk_repr_detail, "Invalid page."},
    R_INVALID,
    R_END};
static const struct bk_reply_decl r_replay[] = {
    {200, BK_R_ONE, &replayed, "Replayed"}, R_INVALID, R_END};
static const struct bk_reply_decl r_discard[] = {
    {200, BK_R_ONE, &discarded, "Discarded"}, R_INVALID, R_END};
static const struct bk_reply_decl r_admin_delete[] = {
    {204, BK_R_EMPTY, NULL, "Deleted"},
    R_404,
    {409, BK_R_ONE, &bk_repr_detail, "The last active staff user"},
    R_END};

#define OWNED_REPLIES(repr, plural)                                                                \
    static const struct bk_reply_decl r_##repr##_list[] = {                                        \
        {200, BK_R_PAGE, &repr, "A page of " plural},                                              \
        {404, BK_R_ONE, &bk_repr_detail, "Invalid page."},                                         \
        R_INVALID,                                                                                 \
        R_END};                                                                                    \
    static const struct bk_reply_decl r_##repr##_get[] = {                                         \
        {200, BK_R_ONE, &repr, "Found"}, R_404, R_END};                                            \
    static const struct bk_reply_decl r_##repr##_create[] = {                                      \
        {201, BK_R_ONE, &repr, "Created"}, R_INVALID, R_END};                                      \
    static const struct bk_reply_decl r_##repr##_update[] = {                                      \
        {200, BK_R_ONE, &repr, "Updated"}, R_INVALID, R_403, R_404, R_END};                        \
    static const struct bk_reply_decl r_##repr##_delete[] = {                                      \
        {204, BK_R_EMPTY, NULL, "Deleted"}, R_403, R_404, R_END}

OWNED_REPLIES(education, "educations");
OWNED_REPLIES(certificate, "certificates");
OWNED_REPLIES(achievement, "achievements");

static const struct bk_reply_decl r_resume_list[] = {
    {200, BK_R_PAGE, &resume, "A page of resumes, by user"},
    {404, BK_R_ONE, &bk_repr_detail, "Invalid page."},
    R_END};
static const struct bk_reply_decl r_resume_update_user[] = {
    {200, BK_R_ONE, &resume, "Stored"}, R_INVALID, R_403, R_END};
static const struct bk_reply_decl r_resume_delete_user[] = {
    {204, BK_R_EMPTY, NULL, "Deleted"}, R_403, R_404, R_END};
static const struct bk_reply_decl r_resume_get[] = {
    {200, BK_R_ONE, &resume, "The resume"}, R_404, R_END};
static const struct bk_reply_decl r_resume_update[] = {
    {200, BK_R_ONE, &resume, "Stored"}, R_INVALID, R_END};
static const struct bk_reply_decl r_resume_delete[] = {
    {204, BK_R_EMPTY, NULL, "Deleted"}, R_404, R_END};

static const struct bk_reply_decl r_order_place[] = {
    {201, BK_R_ONE, &order, "Placed"}, R_INVALID, R_END};
static const struct bk_reply_decl r_order_list[] = {
    {200, BK_R_PAGE, &order, "A page of orders, newest first"},
    {404, BK_R_ONE, &bk_repr_detail, "Invalid page."},
    R_INVALID,
    R_END};
static const struct bk_reply_decl r_order_get[] = {
    {200, BK_R_ONE, &order, "The order"}, R_404, R_END};
static const struct bk_reply_decl r_order_status[] = {
    {200, BK_R_ONE, &order, "Changed"},
    R_INVALID,
    R_404,
    {409, BK_R_ONE, &bk_repr_detail, "A transition the rules forbid"},
    R_END};
static const struct bk_reply_decl r_payment_initiate[] = {
    {201, BK_R_ONE, &payment, "Started"}, R_INVALID, R_END};
static const struct bk_reply_decl r_payment_list[] = {
    {200, BK_R_PAGE, &payment, "A page of payments"},
    {404, BK_R_ONE, &bk_repr_detail, "Invalid page."},
    R_INVALID,
    R_END};
static const struct bk_reply_decl r_payment_get[] = {
    {200, BK_R_ONE, &payment, "The payment"}, R_404, R_END};
static const struct bk_reply_decl r_payment_status[] = {
    {200, BK_R_ONE, &payment, "Changed"},
    R_INVALID,
    R_404,
    {409, BK_R_ONE, &bk_repr_detail, "A transition the rules forbid"},
    R_END};

/* ---- commands ------------------------------------------------------------------------ */

const struct bk_command_decl bk_contract_commands[] = {
    /* auth */
    {"auth.register", &register_in, NULL, r_register, 0, NULL},
    /* issue 14: the source systems' own shapes of the same operations */
    {"auth.register_email", &register_email_in, NULL, r_register, 0, NULL},
    {"auth.signup", &register_in, NULL, r_signup, 0, NULL},
    {"auth.refresh_access", &refresh_in, NULL, r_refresh_access, 0, NULL},
    {"auth.login", &login_in, NULL, r_login, 0, NULL},
    {"auth.refresh", &refresh_in, NULL, r_refresh, 0, NULL},
    {"auth.verify", &verify_in, NULL, r_verify, 0, NULL},
    {"auth.logout", &refresh_in, NULL, r_logout, 0, NULL},
    {"auth.logout_all", NULL, NULL, r_detail, 0, NULL},
    {"auth.change_password", &change_in, NULL, r_change, 0, NULL},
    {"auth.jwks", NULL, NULL, r_jwks, 0, NULL},
    {"auth.reset_password", &reset_in, NULL, r_reset, 0, NULL},
    {"auth.reset_password_confirm", &reset_confirm_in, NULL, r_reset_confirm, 0, NULL},

    /* profile */
    {"profile.list", NULL, args_users, r_users, 0, NULL},
    {"profile.get", NULL, args_id, r_profile, 0, NULL},
    {"profile.me", NULL, NULL, r_profile, 0, NULL},
    {"profile.update", &profile, args_partial, r_profile_update, BK_C_PARTIAL, NULL},
    {"profile.delete", &delete_account, NULL, r_no_content, 0, NULL},
    {"profile.update_user", &own_user, args_own_partial, r_own_update, BK_C_PARTIAL, NULL},
    {"profile.delete_user", NULL, args_own, r_own_delete, 0, NULL},
    {"profile.set_picture", &picture, NULL, r_picture, 0, NULL},
    {"profile.clear_picture", NULL, NULL, r_no_content, 0, NULL},
    {"profile.follow", NULL, args_id, r_follow, 0, NULL},
    {"profile.unfollow", NULL, args_id, r_unfollow, 0, NULL},
    {"profile.followers", NULL, args_id_page, r_profile_page, 0, NULL},
    {"profile.following", NULL, args_id_page, r_profile_page, 0, NULL},
    {"media.get", NULL, args_media, r_media, 0, NULL},

    {"education.list", NULL, args_educations, r_education_list, 0, NULL},
    {"education.create", &education, NULL, r_education_create, 0, NULL},
    {"education.get", NULL, args_id, r_education_get, 0, NULL},
    {"education.update", &education, args_id_partial, r_education_update, BK_C_PARTIAL, NULL},
    {"education.delete", NULL, args_id, r_education_delete, 0, NULL},
    {"certificate.list", NULL, args_certificates, r_certificate_list, 0, NULL},
    {"certificate.create", &certificate, NULL, r_certificate_create, 0, NULL},
    {"certificate.get", NULL, args_id, r_certificate_get, 0, NULL},
    {"certificate.update", &certificate, args_id_partial, r_certificate_update, BK_C_PARTIAL, NULL},
    {"certificate.delete", NULL, args_id, r_certificate_delete, 0, NULL},
    {"achievement.list", NULL, args_achievements, r_achievement_list, 0, NULL},
    {"achievement.create", &achievement, NULL, r_achievement_create, 0, NULL},
    {"achievement.get", NULL, args_id, r_achievement_get, 0, NULL},
    {"achievement.update", &achievement, args_id_partial, r_achievement_update, BK_C_PARTIAL, NULL},
    {"achievement.delete", NULL, args_id, r_achievement_delete, 0, NULL},
    {"resume.get", NULL, args_resume_get, r_resume_get, 0, NULL},
    {"resume.update", &resume, NULL, r_resume_update, 0, NULL},
    {"resume.delete", NULL, NULL, r_resume_delete, 0, NULL},
    {"resume.list", NULL, args_resumes, r_resume_list, 0, NULL},
    {"resume.update_user", &resume, args_id, r_resume_update_user, 0, NULL},
    {"resume.delete_user", NULL, args_id, r_resume_delete_user, 0, NULL},

    {"admin.list", NULL, args_admin_users, r_admin_users, 0, NULL},
    {"admin.get", NULL, args_id, r_admin_user, 0, NULL},
    {"admin.update", &admin_update, args_id, r_admin_user, 0, NULL},
    {"admin.delete", NULL, args_id, r_admin_delete, 0, NULL},
    {"admin.set_role", &set_role, NULL, r_admin_user, 0, NULL},
    {"admin.logout_all", NULL, args_id, r_admin_logout, 0, NULL},
    {"admin.audit", NULL, args_audit, r_audit, 0, NULL},
    {"admin.dead_letters", NULL, args_dead_letters, r_dead_letters, 0, NULL},
    {"admin.replay_dead_letters", NULL, args_replay, r_replay, 0, NULL},
    {"admin.discard_dead_letters", NULL, args_discard, r_discard, 0, NULL},

    /* orders and payments */
    {"order.place", &order, NULL, r_order_place, 0, NULL},
    {"order.list", NULL, args_orders, r_order_list, 0, NULL},
    {"order.get", NULL, args_id, r_order_get, 0, NULL},
    {"order.set_status", &order_status, args_id, r_order_status, 0, NULL},
    {"payment.initiate", &payment, NULL, r_payment_initiate, 0, NULL},
    {"payment.list", NULL, args_payments, r_payment_list, 0, NULL},
    {"payment.get", NULL, args_id, r_payment_get, 0, NULL},
    {"payment.set_status", &payment_status, args_id, r_payment_status, 0, NULL},
    {0},
};

/* ---- events --------------------------------------------------------------------------- */

static const struct bk_field ev_registered[] = {
    {"user_id", BK_T_INTEGER, REQ}, F_USERNAME(REQ), F_EMAIL(REQ), END};
static const struct bk_field ev_user[] = {{"user_id", BK_T_INTEGER, REQ}, END};
static const struct bk_field ev_deleted[] = {
    {"user_id", BK_T_INTEGER, REQ},
    {"before", BK_T_OBJECT, REQ, .ref = &admin_user, .doc = "The account as it was"},
    END};
static const struct bk_field ev_updated[] = {
    {"user_id", BK_T_INTEGER, REQ},
    {"fields", BK_T_ARRAY, REQ, .doc = "The names of the fields that changed"},
    F_CHANGES(BK_F_OMITTED),
    END};
static const struct bk_field ev_sessions[] = {
    {"user_id", BK_T_INTEGER, REQ},
    {"sessions", BK_T_INTEGER, REQ, .doc = "How many logins were revoked"},
    {"by", BK_T_INTEGER, REQ, .doc = "The staff user who did it"},
    END};
static const struct bk_field ev_dead_letter[] = {
    {"message_id", BK_T_STRING, REQ},
    {"command", BK_T_STRING, REQ},
    {"reason", BK_T_STRING, REQ, .doc = "Why it was dead-lettered"},
    {"args", BK_T_MAP, REQ, .doc = "Its args, secrets masked"},
    {"by", BK_T_INTEGER, REQ, .doc = "The staff user who did it"},
    {"discard_reason", BK_T_STRING, BK_F_OMITTED, .doc = "dead_letter.discarded: why"},
    END};
static const struct bk_field ev_item_updated[] = {
    {"id", BK_T_INTEGER, REQ}, {"user_id", BK_T_INTEGER, REQ}, F_CHANGES(REQ), END};
#define ITEM_DELETED(repr)                                                                         \
    static const struct bk_field ev_##repr##_deleted[] = {                                         \
        {"id", BK_T_INTEGER, REQ},                                                                 \
        {"user_id", BK_T_INTEGER, REQ},                                                            \
        {"before", BK_T_OBJECT, REQ, .ref = &repr, .doc = "The row as it was"},                    \
        END};                                                                                      \
    static const struct bk_repr ev_##repr##_deleted_r = {#repr "Deleted", NULL, ev_##repr##_deleted}
ITEM_DELETED(education);
ITEM_DELETED(certificate);
ITEM_DELETED(achievement);
static const struct bk_field ev_payment[] = {
    F_ID("The payment's id"),
    {"order", BK_T_INTEGER, REQ},
    F_MONEY("amount", REQ, 15, INT64_MIN, NULL, NULL),
    {"status", BK_T_CHOICE, REQ, .choices = payment_statuses},
    {"payment_date", BK_T_STRING, REQ, .format = BK_FMT_DATETIME},
    F_CHANGES(BK_F_OMITTED),
    END};
static const struct bk_field ev_role[] = {
    {"user_id", BK_T_INTEGER, REQ},
    {"role", BK_T_CHOICE, REQ, .choices = bk_roles},
    {"is_staff", BK_T_BOOLEAN, REQ},
    {"by", BK_T_INTEGER, REQ | NUL, .doc = "The staff user who changed it (null: backendctl)"},
    F_CHANGES(BK_F_OMITTED),
    END};
static const struct bk_field ev_password[] = {
    {"user_id", BK_T_INTEGER, REQ}, {"how", BK_T_CHOICE, REQ, .choices = password_hows}, END};
static const struct bk_field ev_reset[] = {
    {"user_id", BK_T_INTEGER, REQ},
    F_EMAIL(REQ),
    {"uid", BK_T_STRING, REQ, .doc = "For the reset link"},
    {"token", BK_T_STRING, REQ, .doc = "For the reset link: single use"},
    {"expires_at", BK_T_STRING, REQ, .format = BK_FMT_DATETIME},
    END};
static const struct bk_field ev_follow[] = {
    {"follower_id", BK_T_INTEGER, REQ}, {"followee_id", BK_T_INTEGER, REQ}, END};
static const struct bk_field ev_status[] = {{"order_id", BK_T_INTEGER, REQ},
                                            {"user_id", BK_T_INTEGER, REQ},
                                            {"from", BK_T_CHOICE, REQ, .choices = order_statuses},
                                            {"to", BK_T_CHOICE, REQ, .choices = order_statuses},
                                            F_CHANGES(REQ),
                                            END};

static const struct bk_repr ev_registered_r = {"UserRegistered", NULL, ev_registered};
static const struct bk_repr ev_user_r = {"UserRef", NULL, ev_user};
static const struct bk_repr ev_updated_r = {"UserUpdated", NULL, ev_updated};
static const struct bk_repr ev_role_r = {"UserRoleChanged", NULL, ev_role};
static const struct bk_repr ev_password_r = {"UserPasswordChanged", NULL, ev_password};
static const struct bk_repr ev_reset_r = {"UserPasswordResetRequested", NULL, ev_reset};
static const struct bk_repr ev_follow_r = {"UserFollow", NULL, ev_follow};
static const struct bk_repr ev_status_r = {"OrderStatusChanged", NULL, ev_status};
static const struct bk_repr ev_deleted_r = {"UserDeleted", NULL, ev_deleted};
static const struct bk_repr ev_sessions_r = {"UserSessionsRevoked", NULL, ev_sessions};
static const struct bk_repr ev_dead_letter_r = {"DeadLetterHandled", NULL, ev_dead_letter};
static const struct bk_repr ev_item_updated_r = {"ProfileItemUpdated", NULL, ev_item_updated};
static const struct bk_repr ev_payment_r = {"PaymentEvent", "A payment, and what changed",
                                            ev_payment};

const struct bk_event_decl bk_contract_events[] = {
    {"user.registered", &ev_registered_r, "A user registered"},
    {"user.logged_in", &ev_user_r, "A user logged in"},
    {"user.updated", &ev_updated_r, "A user's fields changed"},
    {"user.deleted", &ev_deleted_r, "A user was deleted"},
    {"user.sessions_revoked", &ev_sessions_r, "Staff logged a user out everywhere"},
    {"user.role_changed", &ev_role_r, "Staff changed a user's role or staff flag"},
    {"user.password_changed", &ev_password_r, "A password was changed or reset"},
    {"user.password_reset_requested", &ev_reset_r,
     "A reset was asked for a known address: a notification service mails it"},
    {"user.followed", &ev_follow_r, "A user followed another"},
    {"user.unfollowed", &ev_follow_r, "A user stopped following another"},
    {"order.placed", &order, "An order was placed"},
    {"order.status_changed", &ev_status_r, "An order's status changed"},
    {"payment.initiated", &ev_payment_r, "A payment was started (or retried: with changes)"},
    {"payment.completed", &ev_payment_r, "A payment completed"},
    {"payment.failed", &ev_payment_r, "A payment failed"},
    {"education.updated", &ev_item_updated_r, "An education was changed (by its owner or staff)"},
    {"education.deleted", &ev_education_deleted_r, "An education was deleted"},
    {"certificate.updated", &ev_item_updated_r, "A certificate was changed"},
    {"certificate.deleted", &ev_certificate_deleted_r, "A certificate was deleted"},
    {"achievement.updated", &ev_item_updated_r, "An achievement was changed"},
    {"achievement.deleted", &ev_achievement_deleted_r, "An achievement was deleted"},
    {"dead_letter.replayed", &ev_dead_letter_r, "Staff replayed a dead letter"},
    {"dead_letter.discarded", &ev_dead_letter_r, "Staff discarded a dead letter"},
    {0},
};

/* Every representation a document names, in order; the request shapes are
 * derived from them. */
const struct bk_repr *const bk_contract_reprs[] = {
    &bk_repr_detail,
    &bk_repr_validation_error,
    &bk_repr_token_error,
    &me,
    &admin_user,
    &register_in,
    &register_email_in,
    &registered,
    &login_in,
    &login_out,
    &token_pair,
    &access_token,
    &refresh_in,
    &verify_in,
    &empty,
    &change_in,
    &changed,
    &reset_in,
    &reset_confirm_in,
    &jwk,
    &jwks,
    &delete_account,
    &education,
    &certificate,
    &achievement,
    &resume,
    &picture,
    &profile,
    &profile_detail,
    &admin_update,
    &own_user,
    &set_role,
    &order_payment,
    &order,
    &order_status,
    &payment,
    &payment_status,
    &ev_registered_r,
    &ev_user_r,
    &ev_updated_r,
    &ev_role_r,
    &ev_password_r,
    &ev_reset_r,
    &ev_follow_r,
    &ev_status_r,
    &audit_actor,
    &audit_entry,
    &dead_letter,
    &replayed,
    &discarded,
    &sessions,
    &ev_deleted_r,
    &ev_sessions_r,
    &ev_dead_letter_r,
    &ev_item_updated_r,
    &ev_education_deleted_r,
    &ev_certificate_deleted_r,
    &ev_achievement_deleted_r,
    &ev_payment_r,
    NULL,
};

/* ---- lookups ----------------------------------------------------------------------------- */

const struct bk_repr *bk_contract_repr(const char *name)
{
    for (const struct bk_repr *const *r = bk_contract_reprs; *r; r++)
        if (strcmp((*r)->name, name) == 0)
            return *r;
    return NULL;
}

const struct bk_command_decl *bk_contract_command(const char *command)
{
    for (const struct bk_command_decl *d = bk_contract_commands; d->name; d++)
        if (strcmp(d->name, command) == 0)
            return d;
    return NULL;
}

int bk_contract_each_arg(const struct bk_command_decl *d,
                         int (*fn)(const struct bk_field *f, void *ctx), void *ctx)
{
    if (d->input)
        for (const struct bk_field *f = d->input->fields; f->name; f++)
            if (!(f->flags & BK_F_READ_ONLY)) {
                int rc = fn(f, ctx);
                if (rc)
                    return rc;
            }
    for (const struct bk_field *f = d->args; f && f->name; f++) {
        int rc = fn(f, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

struct find {
    const char *key;
    const struct bk_field *found;
};

static int find_one(const struct bk_field *f, void *ctx)
{
    struct find *x = ctx;
    if (strcmp(f->name, x->key) != 0)
        return 0;
    x->found = f;
    return 1;
}

const struct bk_field *bk_contract_arg(const struct bk_command_decl *d, const char *key)
{
    struct find x = {key, NULL};
    bk_contract_each_arg(d, find_one, &x);
    return x.found;
}

static int find_file(const struct bk_field *f, void *ctx)
{
    if (f->type != BK_T_BINARY)
        return 0;
    *(const struct bk_field **)ctx = f;
    return 1;
}

const struct bk_field *bk_contract_file(const struct bk_command_decl *d)
{
    const struct bk_field *f = NULL;
    bk_contract_each_arg(d, find_file, &f);
    return f;
}

bool bk_contract_in_body(const struct bk_field *f)
{
    return !(f->flags & (BK_F_PATH | BK_F_QUERY | BK_F_HEADER | BK_F_READ_ONLY));
}

struct names {
    unsigned want, avoid;
    char *out;
    size_t n, used;
    int count;
};

static int add_name(const struct bk_field *f, void *ctx)
{
    struct names *x = ctx;
    bool body = x->want == 0;
    if (body ? !bk_contract_in_body(f) : (f->flags & x->want) != x->want)
        return 0;
    if (f->flags & x->avoid)
        return 0;
    int k = snprintf(x->out + x->used, x->n - x->used, "%s%s", x->count ? "," : "", f->name);
    if (k < 0 || (size_t)k >= x->n - x->used)
        return -1;
    x->used += (size_t)k;
    x->count++;
    return 0;
}

int bk_contract_names(const struct bk_command_decl *d, unsigned want, unsigned avoid, char *out,
                      size_t n)
{
    if (n == 0)
        return -1;
    out[0] = '\0';
    struct names x = {want, avoid, out, n, 0, 0};
    if (d && bk_contract_each_arg(d, add_name, &x) != 0)
        return -1;
    return x.count;
}
