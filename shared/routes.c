/* The route table and its matcher. No dependencies beyond libc, so the unit
 * test can compile it in. */
#include "shared/routes.h"

#include <stdio.h>
#include <string.h>

/* ---- the source systems' variants (issue 14; struct br_variant in routes.h) */

/* simplejwt's TokenObtainPairView answers {refresh, access} alone: our login's
 * "user" goes */
static const struct br_variant V_TOKENS_ONLY = {.lift = "user", .lift_fields = ""};

/* 001's user/: one POST, two actions (as a query parameter or a body field) */
static const struct br_dispatch USER_ACTIONS[] = {
    {"register", "auth.register_email", NULL}, /* by email: the username is derived */
    {"login", "auth.login", &V_TOKENS_ONLY},
    {NULL, NULL, NULL},
};
static const struct br_variant V_001_USER = {.dispatch_arg = "action", .dispatch = USER_ACTIONS};

/* 002's CustomTokenObtainPairSerializer: the tokens and four user fields */
static const struct br_variant V_002_TOKEN = {
    .lift = "user", .lift_fields = "email,full_name,is_staff,is_superuser"};

/* 003's custom user calls about "bio" */
static const struct br_rename BIO[] = {{"bio", "about"}, {NULL, NULL}};
static const struct br_variant V_003_PROFILE = {.renames = BIO};

/* 004's UserProfile calls the picture "profile_img" */
static const struct br_rename PROFILE_IMG[] = {{"profile_img", "profile_picture"}, {NULL, NULL}};
static const struct br_variant V_004_PROFILE = {.renames = PROFILE_IMG};

/* dj-rest-auth: UserDetailsSerializer's "pk", RegisterSerializer's
 * "password1", PasswordChangeSerializer's "new_password1" */
static const struct br_rename DJ_USER[] = {{"pk", "id"}, {NULL, NULL}};
static const struct br_variant V_004_AUTH = {.renames = DJ_USER};
static const struct br_rename DJ_REGISTER[] = {
    {"pk", "id"}, {"password1", "password"}, {NULL, NULL}};
static const struct br_variant V_004_REGISTER = {.renames = DJ_REGISTER};
static const struct br_rename DJ_PASSWORD[] = {{"new_password1", "new_password"}, {NULL, NULL}};
static const struct br_variant V_004_PASSWORD = {.renames = DJ_PASSWORD};

/* Rows name the fields at the end of struct br_route (static_dir, system...)
 * only where they use them: zero is what they mean elsewhere. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
/* clang-format off */
const struct br_route br_routes[] = {
    /* method, pattern, command, auth, flags, max_body, status, summary: a route's body and
     * query fields are its command's declared args (shared/contract.c) */

    /* auth worker */
    {"POST", "/api/auth/register/", "auth.register", BR_ANYONE, 0, 0, 201,
     "Register a user"},
    {"POST", "/api/auth/login/", "auth.login", BR_ANYONE, BR_NO_STORE, 0, 200,
     "Log in by username or email: a refresh and an access token"},
    {"POST", "/api/auth/token/refresh/", "auth.refresh", BR_ANYONE, BR_NO_STORE, 0, 200,
     "Rotate a refresh token: a new access and refresh token"},
    {"POST", "/api/auth/token/verify/", "auth.verify", BR_ANYONE, 0, 0, 200,
     "Verify a token"},
    {"POST", "/api/auth/logout/", "auth.logout", BR_USER, 0, 0, 200,
     "Revoke a refresh token"},
    {"POST", "/api/auth/logout/all/", "auth.logout_all", BR_USER, 0, 0, 200,
     "Revoke every refresh token of the caller"},
    {"POST", "/api/auth/password/change/", "auth.change_password", BR_USER, BR_NO_STORE, 0, 200,
     "Change the password: a fresh token pair"},
    {"GET", "/api/auth/jwks.json", "auth.jwks", BR_ANYONE, 0, 0, 200,
     "The token verification keys (JWKS)"},
    {"POST", "/api/auth/password/reset/", "auth.reset_password", BR_ANYONE, 0, 0, 202,
     "Request a password reset mail"},
    {"POST", "/api/auth/password/reset/confirm/", "auth.reset_password_confirm", BR_ANYONE, 0, 0, 200,
     "Set a new password with a reset token"},

    /* profile worker: users and the caller's profile */
    {"GET", "/api/users/", "profile.list", BR_USER, 0, 0, 200,
     "List users"},
    {"GET", "/api/users/{id}/", "profile.get", BR_USER, 0, 0, 200,
     "A user's profile with educations, certificates, achievements and resume"},
    {"GET", "/api/users/{id}/resume/", "resume.get", BR_USER, 0, 0, 200,
     "A user's resume"},
    {"POST", "/api/users/{id}/follow/", "profile.follow", BR_USER, 0, 0, 201,
     "Follow a user (200 when already following)"},
    {"DELETE", "/api/users/{id}/follow/", "profile.unfollow", BR_USER, 0, 0, 204,
     "Unfollow a user"},
    {"GET", "/api/users/{id}/followers/", "profile.followers", BR_USER, 0, 0, 200,
     "A user's followers"},
    {"GET", "/api/users/{id}/following/", "profile.following", BR_USER, 0, 0, 200,
     "The users a user follows"},
    {"GET", "/api/profile/", "profile.me", BR_USER, 0, 0, 200,
     "The caller's profile"},
    {"PUT", "/api/profile/", "profile.update", BR_USER, 0, 0, 200,
     "Replace the caller's profile"},
    {"PATCH", "/api/profile/", "profile.update", BR_USER, 0, 0, 200,
     "Update some fields of the caller's profile"},
    {"DELETE", "/api/profile/", "profile.delete", BR_USER, 0, 0, 204,
     "Delete the caller's account"},
    {"PUT", "/api/profile/picture/", "profile.set_picture", BR_USER, BR_MULTIPART, 0, 200,
     "Upload the profile picture (PNG, JPEG, GIF or WebP)"},
    {"DELETE", "/api/profile/picture/", "profile.clear_picture", BR_USER, 0, 0, 204,
     "Remove the profile picture"},

    /* profile worker: educations, certificates, achievements, resume */
    {"GET", "/api/educations/", "education.list", BR_USER, 0, 0, 200,
     "List educations"},
    {"POST", "/api/educations/", "education.create", BR_USER, 0, 0, 201,
     "Add an education"},
    {"GET", "/api/educations/{id}/", "education.get", BR_USER, 0, 0, 200,
     "An education"},
    {"PUT", "/api/educations/{id}/", "education.update", BR_USER, 0, 0, 200,
     "Replace an education (owner)"},
    {"PATCH", "/api/educations/{id}/", "education.update", BR_USER, 0, 0, 200,
     "Update an education (owner)"},
    {"DELETE", "/api/educations/{id}/", "education.delete", BR_USER, 0, 0, 204,
     "Delete an education (owner)"},

    {"GET", "/api/certificates/", "certificate.list", BR_USER, 0, 0, 200,
     "List certificates"},
    {"POST", "/api/certificates/", "certificate.create", BR_USER, BR_MULTIPART, 0, 201,
     "Add a certificate (JSON, or multipart with an image)"},
    {"GET", "/api/certificates/{id}/", "certificate.get", BR_USER, 0, 0, 200,
     "A certificate"},
    {"PUT", "/api/certificates/{id}/", "certificate.update", BR_USER, BR_MULTIPART, 0, 200,
     "Replace a certificate (owner)"},
    {"PATCH", "/api/certificates/{id}/", "certificate.update", BR_USER, BR_MULTIPART, 0, 200,
     "Update a certificate (owner)"},
    {"DELETE", "/api/certificates/{id}/", "certificate.delete", BR_USER, 0, 0, 204,
     "Delete a certificate (owner)"},

    {"GET", "/api/achievements/", "achievement.list", BR_USER, 0, 0, 200,
     "List achievements"},
    {"POST", "/api/achievements/", "achievement.create", BR_USER, BR_MULTIPART, 0, 201,
     "Add an achievement (JSON, or multipart with an image)"},
    {"GET", "/api/achievements/{id}/", "achievement.get", BR_USER, 0, 0, 200,
     "An achievement"},
    {"PUT", "/api/achievements/{id}/", "achievement.update", BR_USER, BR_MULTIPART, 0, 200,
     "Replace an achievement (owner)"},
    {"PATCH", "/api/achievements/{id}/", "achievement.update", BR_USER, BR_MULTIPART, 0, 200,
     "Update an achievement (owner)"},
    {"DELETE", "/api/achievements/{id}/", "achievement.delete", BR_USER, 0, 0, 204,
     "Delete an achievement (owner)"},

    {"GET", "/api/resume/", "resume.get", BR_USER, 0, 0, 200,
     "The caller's resume"},
    {"PUT", "/api/resume/", "resume.update", BR_USER, BR_MULTIPART, 0, 200,
     "Upload the caller's resume (PDF)"},
    {"DELETE", "/api/resume/", "resume.delete", BR_USER, 0, 0, 204,
     "Delete the caller's resume"},

    {"GET", "/api/media/{key}", "media.get", BR_ANYONE, BR_RAW, 0, 200,
     "An uploaded file by its content key (raw bytes, immutable)"},

    /* profile worker: administration */
    {"GET", "/api/admin/users/", "admin.list", BR_STAFF, 0, 0, 200,
     "List every user"},
    {"GET", "/api/admin/users/{id}/", "admin.get", BR_STAFF, 0, 0, 200,
     "A user, with the admin fields"},
    {"PATCH", "/api/admin/users/{id}/", "admin.update", BR_STAFF, 0, 0, 200,
     "Change a user's role, staff flag or active flag"},
    {"DELETE", "/api/admin/users/{id}/", "admin.delete", BR_STAFF, 0, 0, 204,
     "Delete a user"},
    {"POST", "/api/admin/users/{id}/logout/", "admin.logout_all", BR_STAFF, 0, 0, 200,
     "Log a user out everywhere (every refresh token revoked)"},
    {"GET", "/api/admin/audit/", "admin.audit", BR_STAFF, 0, 0, 200,
     "The audit trail: every change of a user, order, payment or profile item and every staff "
     "action, newest first"},
    {"GET", "/api/admin/dead-letters/", "admin.dead_letters", BR_STAFF, 0, 0, 200,
     "Commands in backend.dead, oldest first, secrets masked"},
    {"POST", "/api/admin/dead-letters/replay/", "admin.replay_dead_letters", BR_STAFF, 0, 0, 200,
     "Put dead letters back on backend.commands"},
    {"POST", "/api/admin/dead-letters/discard/", "admin.discard_dead_letters", BR_STAFF, 0, 0, 200,
     "Drop dead letters, with the reason (audited)"},

    /* order worker */
    {"POST", "/api/orders/", "order.place", BR_USER, 0, 0, 201,
     "Place an order"},
    {"GET", "/api/orders/", "order.list", BR_USER, 0, 0, 200,
     "The caller's orders, newest first (staff with all=1: everyone's)"},
    {"GET", "/api/orders/{id}/", "order.get", BR_USER, 0, 0, 200,
     "An order (owner or staff)"},
    {"PATCH", "/api/orders/{id}/", "order.set_status", BR_USER, 0, 0, 200,
     "Change an order's status"},

    /* payment worker */
    {"POST", "/api/payments/", "payment.initiate", BR_USER, 0, 0, 201,
     "Start the payment of a pending order"},
    {"GET", "/api/payments/", "payment.list", BR_USER, 0, 0, 200,
     "The caller's payments (staff: all)"},
    {"GET", "/api/payments/{id}/", "payment.get", BR_USER, 0, 0, 200,
     "A payment"},
    {"PUT", "/api/payments/{id}/", "payment.set_status", BR_STAFF_OR_SERVICE, 0, 0, 200,
     "Set a payment's status"},
    {"PATCH", "/api/payments/{id}/", "payment.set_status", BR_STAFF_OR_SERVICE, 0, 0, 200,
     "Set a payment's status"},

    /* the bridge itself */
    {"GET", "/api/health/", "health", BR_ANYONE, BR_LOCAL | BR_ANY_HOST, 0, 200,
     "Readiness: 200 when the broker, the database and every worker are up, else 503"},
    {"GET", "/api/health/live", "live", BR_ANYONE, BR_LOCAL | BR_ANY_HOST, 0, 200,
     "Liveness: 200 while the bridge serves"},
    {"GET", "/api/openapi.json", "openapi", BR_ANYONE, BR_LOCAL, 0, 200,
     "This API as OpenAPI 3.1"},
    {"GET", "/api/asyncapi.json", "asyncapi", BR_ANYONE, BR_LOCAL, 0, 200,
     "The same commands and the events over AMQP, as AsyncAPI 3.0"},
    /* files (BR_STATIC, under web_dir): Swagger UI as npm installed it, then
     * our page; the more specific prefix first */
    {"GET", "/api/docs/swagger-ui/", "docs.swagger_ui", BR_ANYONE, BR_LOCAL | BR_STATIC, 0, 200,
     "Swagger UI's files (swagger-ui-dist, pinned in web/package-lock.json)",
     .static_dir = "node_modules/swagger-ui-dist"},
    {"GET", "/api/docs/", "docs", BR_ANYONE, BR_LOCAL | BR_STATIC, 0, 200,
     "An interactive page for this API (Swagger UI)",
     .static_dir = "docs", .static_index = "index.html"},
    /* the staff console (issue 15): its page over the API, and the libraries
     * as npm installed them (pinned in web/package-lock.json); more specific
     * prefixes first */
    {"GET", "/admin/vendor/preact/", "console.preact", BR_ANYONE, BR_LOCAL | BR_STATIC, 0, 200,
     "Preact (UMD build)", .static_dir = "node_modules/preact/dist"},
    {"GET", "/admin/vendor/preact-hooks/", "console.preact_hooks", BR_ANYONE, BR_LOCAL | BR_STATIC,
     0, 200, "Preact's hooks (UMD build)", .static_dir = "node_modules/preact/hooks/dist"},
    {"GET", "/admin/vendor/htm/", "console.htm", BR_ANYONE, BR_LOCAL | BR_STATIC, 0, 200,
     "htm: JSX-like templates without a build (UMD build)", .static_dir = "node_modules/htm/dist"},
    {"GET", "/admin/vendor/pico/", "console.pico", BR_ANYONE, BR_LOCAL | BR_STATIC, 0, 200,
     "Pico CSS", .static_dir = "node_modules/@picocss/pico/css"},
    {"GET", "/admin/", "console", BR_ANYONE, BR_LOCAL | BR_STATIC, 0, 200,
     "The staff console (it talks to this API with a staff user's token)",
     .static_dir = "admin", .static_index = "index.html"},

    /* ---- the source systems' routes (issue 14): README "Source systems" ---- */

    /* 000: profile system (simplejwt, a users ModelViewSet with IsOwnerOrReadOnly) */
    {"POST", "/api/token/", "auth.login", BR_ANYONE, BR_NO_STORE, 0, 200,
     "Log in: a refresh and an access token",
     .system = "000", .variant = &V_TOKENS_ONLY},
    {"POST", "/api/token/refresh/", "auth.refresh_access", BR_ANYONE, BR_NO_STORE, 0, 200,
     "A new access token; the refresh token stays valid",
     .system = "000"},
    {"PUT", "/api/users/{id}/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Replace one's own user (owner)",
     .system = "000"},
    {"PATCH", "/api/users/{id}/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Update one's own user (owner)",
     .system = "000"},
    {"DELETE", "/api/users/{id}/", "profile.delete_user", BR_USER, 0, 0, 204,
     "Delete one's own user (owner)",
     .system = "000"},
    {"GET", "/api/resumes/", "resume.list", BR_USER, 0, 0, 200,
     "Every resume, by user",
     .system = "000"},
    {"POST", "/api/resumes/", "resume.update", BR_USER, BR_MULTIPART, 0, 200,
     "Upload the caller's resume (PDF)",
     .system = "000"},
    {"GET", "/api/resumes/{id}/", "resume.get", BR_USER, 0, 0, 200,
     "A user's resume (id: the user's)",
     .system = "000"},
    {"PUT", "/api/resumes/{id}/", "resume.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Replace one's own resume (owner; id: the user's)",
     .system = "000"},
    {"PATCH", "/api/resumes/{id}/", "resume.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Replace one's own resume (owner; id: the user's)",
     .system = "000"},
    {"DELETE", "/api/resumes/{id}/", "resume.delete_user", BR_USER, 0, 0, 204,
     "Delete one's own resume (owner; id: the user's)",
     .system = "000"},

    /* 001: account management (user/ with actions, user/<id>/, AdminUser/), with and
     * without /api */
    {"GET", "/user/", "actions", BR_ANYONE, BR_LOCAL, 0, 200,
     "The actions of POST user/ (register, login)",
     .system = "001", .variant = &V_001_USER},
    {"POST", "/user/", "auth.register_email", BR_ANYONE, BR_NO_STORE, 0, 201,
     "action=register: register by email (201); action=login: tokens (200)",
     .system = "001", .variant = &V_001_USER},
    {"GET", "/user/{id}/", "profile.get", BR_USER, 0, 0, 200,
     "A user's account",
     .system = "001"},
    {"PUT", "/user/{id}/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Replace one's own account",
     .system = "001"},
    {"PATCH", "/user/{id}/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Update one's own account",
     .system = "001"},
    {"DELETE", "/user/{id}/", "profile.delete_user", BR_USER, 0, 0, 204,
     "Delete one's own account",
     .system = "001"},
    {"GET", "/AdminUser/", "admin.list", BR_STAFF, 0, 0, 200,
     "Every user (staff)",
     .system = "001"},
    {"PUT", "/AdminUser/", "admin.set_role", BR_STAFF, 0, 0, 200,
     "Change a user's role; \"admin\" makes staff (staff)",
     .system = "001"},
    {"PATCH", "/AdminUser/", "admin.set_role", BR_STAFF, 0, 0, 200,
     "Change a user's role; \"admin\" makes staff (staff)",
     .system = "001"},
    {"DELETE", "/AdminUser/", "admin.delete", BR_STAFF, 0, 0, 204,
     "Delete a user (staff)",
     .system = "001"},
    {"GET", "/api/user/", "actions", BR_ANYONE, BR_LOCAL, 0, 200,
     "The actions of POST user/ (register, login)",
     .system = "001", .variant = &V_001_USER},
    {"POST", "/api/user/", "auth.register_email", BR_ANYONE, BR_NO_STORE, 0, 201,
     "action=register: register by email (201); action=login: tokens (200)",
     .system = "001", .variant = &V_001_USER},
    {"GET", "/api/user/{id}/", "profile.get", BR_USER, 0, 0, 200,
     "A user's account",
     .system = "001"},
    {"PUT", "/api/user/{id}/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Replace one's own account",
     .system = "001"},
    {"PATCH", "/api/user/{id}/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Update one's own account",
     .system = "001"},
    {"DELETE", "/api/user/{id}/", "profile.delete_user", BR_USER, 0, 0, 204,
     "Delete one's own account",
     .system = "001"},
    {"GET", "/api/AdminUser/", "admin.list", BR_STAFF, 0, 0, 200,
     "Every user (staff)",
     .system = "001"},
    {"PUT", "/api/AdminUser/", "admin.set_role", BR_STAFF, 0, 0, 200,
     "Change a user's role; \"admin\" makes staff (staff)",
     .system = "001"},
    {"PATCH", "/api/AdminUser/", "admin.set_role", BR_STAFF, 0, 0, 200,
     "Change a user's role; \"admin\" makes staff (staff)",
     .system = "001"},
    {"DELETE", "/api/AdminUser/", "admin.delete", BR_STAFF, 0, 0, 204,
     "Delete a user (staff)",
     .system = "001"},

    /* 002: music institute (simplejwt without rotation, login by email) */
    {"POST", "/api/v1/accounts/register/", "auth.register_email", BR_ANYONE, 0, 0, 201,
     "Register by email",
     .system = "002"},
    {"POST", "/api/v1/accounts/token/", "auth.login", BR_ANYONE, BR_NO_STORE, 0, 200,
     "Log in by email: tokens, email, full_name, is_staff, is_superuser",
     .system = "002", .variant = &V_002_TOKEN},
    {"POST", "/api/v1/accounts/token/refresh/", "auth.refresh_access", BR_ANYONE, BR_NO_STORE, 0, 200,
     "A new access token; the refresh token stays valid",
     .system = "002"},
    {"POST", "/api/v1/accounts/logout/", "auth.logout", BR_USER, 0, 0, 200,
     "Blacklist a refresh token",
     .system = "002"},

    /* 003: social API (register, login and GET /api/users/ are the unified rows) */
    {"GET", "/api/auth/profile/", "profile.me", BR_USER, 0, 0, 200,
     "The caller's profile",
     .system = "003", .variant = &V_003_PROFILE},
    {"PUT", "/api/auth/profile/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Update the caller's profile",
     .system = "003", .variant = &V_003_PROFILE},

    /* 004: e-commerce (no /api prefix; dj-rest-auth with JWT) */
    {"GET", "/profile/", "profile.me", BR_USER, 0, 0, 200,
     "The caller's profile",
     .system = "004", .variant = &V_004_PROFILE},
    {"PUT", "/profile/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Edit the caller's profile",
     .system = "004", .variant = &V_004_PROFILE},
    {"POST", "/orders/", "order.place", BR_USER, 0, 0, 201,
     "Place an order",
     .system = "004"},
    {"GET", "/orders/", "order.list", BR_USER, 0, 0, 200,
     "The caller's orders, newest first",
     .system = "004"},
    {"GET", "/orders/{id}/", "order.get", BR_USER, 0, 0, 200,
     "An order (owner or staff)",
     .system = "004"},
    {"POST", "/payments/", "payment.initiate", BR_USER, 0, 0, 201,
     "Start the payment of a pending order",
     .system = "004"},
    {"PUT", "/payments/{id}/", "payment.set_status", BR_STAFF_OR_SERVICE, 0, 0, 200,
     "Set a payment's status",
     .system = "004"},
    {"POST", "/auth/registration/", "auth.signup", BR_ANYONE, BR_NO_STORE, 0, 201,
     "Register: tokens and the user",
     .system = "004", .variant = &V_004_REGISTER},
    {"POST", "/auth/login/", "auth.login", BR_ANYONE, BR_NO_STORE, 0, 200,
     "Log in: tokens and the user",
     .system = "004", .variant = &V_004_AUTH},
    {"POST", "/auth/logout/", "auth.logout", BR_USER, 0, 0, 200,
     "Blacklist a refresh token",
     .system = "004"},
    {"GET", "/auth/user/", "profile.me", BR_USER, 0, 0, 200,
     "The caller",
     .system = "004", .variant = &V_004_AUTH},
    {"PUT", "/auth/user/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Replace the caller's details",
     .system = "004", .variant = &V_004_AUTH},
    {"PATCH", "/auth/user/", "profile.update_user", BR_USER, BR_MULTIPART, 0, 200,
     "Update the caller's details",
     .system = "004", .variant = &V_004_AUTH},
    {"POST", "/auth/password/change/", "auth.change_password", BR_USER, BR_NO_STORE, 0, 200,
     "Change the password",
     .system = "004", .variant = &V_004_PASSWORD},
    {"POST", "/auth/token/refresh/", "auth.refresh", BR_ANYONE, BR_NO_STORE, 0, 200,
     "Rotate a refresh token",
     .system = "004"},
    {"POST", "/auth/token/verify/", "auth.verify", BR_ANYONE, 0, 0, 200,
     "Verify a token",
     .system = "004"},


    {NULL, NULL, NULL, 0, 0, 0, 0, NULL},
};
/* clang-format on */
#pragma GCC diagnostic pop

/* Length of s without one trailing slash (but "/" stays "/"). */
static size_t trimmed_len(const char *s, size_t n)
{
    return n > 1 && s[n - 1] == '/' ? n - 1 : n;
}

bool br_routes_pattern_match(const char *pattern, const char *path, struct br_match *m)
{
    size_t plen = strlen(path);
    if (plen == 0 || plen > BR_MAX_PATH || path[0] != '/')
        return false;
    plen = trimmed_len(path, plen);
    size_t tlen = trimmed_len(pattern, strlen(pattern));
    size_t pi = 0, ti = 0;
    int n_params = 0;

    /* Both start with '/': compare one segment at a time. */
    while (ti < tlen && pi < plen) {
        if (pattern[ti] != '/' || path[pi] != '/')
            return false;
        ti++;
        pi++;
        size_t te = ti, pe = pi;
        while (te < tlen && pattern[te] != '/')
            te++;
        while (pe < plen && path[pe] != '/')
            pe++;
        if (te - ti >= 2 && pattern[ti] == '{' && pattern[te - 1] == '}') {
            if (pe == pi || n_params == BR_MAX_PARAMS)
                return false;
            if (m) {
                m->params[n_params].name = pattern + ti + 1;
                m->params[n_params].name_len = te - ti - 2;
                m->params[n_params].value = path + pi;
                m->params[n_params].value_len = pe - pi;
            }
            n_params++;
        } else if (te - ti != pe - pi || memcmp(pattern + ti, path + pi, te - ti) != 0) {
            return false;
        }
        ti = te;
        pi = pe;
    }
    if (ti != tlen || pi != plen)
        return false;
    if (m)
        m->n_params = n_params;
    return true;
}

/* A BR_STATIC row: the prefix itself, with or without its slash, or any
 * path below it. */
static bool static_match(const char *prefix, const char *path, struct br_match *m)
{
    size_t n = strlen(prefix), plen = strnlen(path, BR_MAX_PATH + 1);
    if (n < 2 || prefix[n - 1] != '/' || plen > BR_MAX_PATH || strncmp(prefix, path, n - 1) != 0)
        return false;
    const char *rest = path + n - 1; /* at the prefix's slash, or at the end */
    if (*rest != '\0' && *rest != '/')
        return false;
    if (*rest == '/')
        rest++;
    if (m) {
        m->n_params = 1;
        m->params[0].name = "path";
        m->params[0].name_len = 4;
        m->params[0].value = rest;
        m->params[0].value_len = strlen(rest);
    }
    return true;
}

bool br_routes_row_match(const struct br_route *r, const char *path, struct br_match *m)
{
    return (r->flags & BR_STATIC) ? static_match(r->pattern, path, m)
                                  : br_routes_pattern_match(r->pattern, path, m);
}

enum br_match_result br_routes_match(const char *method, const char *path, struct br_match *m)
{
    bool path_known = false;
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    for (const struct br_route *r = br_routes; r->method; r++) {
        if (!br_routes_row_match(r, path, m))
            continue;
        path_known = true;
        if (strcmp(r->method, method) == 0) {
            m->route = r;
            return BR_MATCH_OK;
        }
    }
    return path_known ? BR_MATCH_NO_METHOD : BR_MATCH_NO_PATH;
}

const struct br_route *br_routes_find(const struct br_route *from, const char *command,
                                      const char *method)
{
    for (const struct br_route *r = from ? from : br_routes; r->method; r++)
        if (!r->system && strcmp(r->command, command) == 0 && strcmp(r->method, method) == 0)
            return r;
    return NULL;
}

size_t br_routes_allow(const char *path, char *out, size_t n)
{
    size_t o = 0;
    if (n == 0)
        return 0;
    out[0] = '\0';
    for (const struct br_route *r = br_routes; r->method; r++) {
        if (!br_routes_row_match(r, path, NULL))
            continue;
        bool seen = false;
        for (const struct br_route *q = br_routes; q < r; q++)
            if (strcmp(q->method, r->method) == 0 && br_routes_row_match(q, path, NULL))
                seen = true;
        if (seen)
            continue;
        int k = snprintf(out + o, n - o, "%s%s", o ? ", " : "", r->method);
        if (k < 0 || (size_t)k >= n - o) {
            out[o] = '\0';
            break;
        }
        o += (size_t)k;
    }
    return o;
}
