/* The three mails: which user, which address, which words. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/config.h"
#include "shared/log.h"
#include "shared/mail.h"
#include "shared/template.h"
#include "shared/util.h"
#include "workers/notify/notify.h"

const char *const notify_placeholders[] = {"site_name",  "name", "username", "email", "reset_url",
                                           "expires_at", "how",  "when",     NULL};
enum { P_SITE, P_NAME, P_USERNAME, P_EMAIL, P_RESET_URL, P_EXPIRES_AT, P_HOW, P_WHEN };

static const char *const FILE_NAMES[NOTIFY_N_MAILS] = {"password_reset", "password_changed",
                                                       "welcome"};

struct mail_templates {
    struct bk_template subject, text, html;
};
static struct mail_templates templates[NOTIFY_N_MAILS];

/* <name>.txt starts with "Subject: ..." and a blank line: the subject and
 * the words of a mail stay together in one file a translator edits. */
static int load_one(const char *dir, enum notify_mail m)
{
    char path[600];
    struct bk_template whole;
    snprintf(path, sizeof path, "%s/%s.txt", dir, FILE_NAMES[m]);
    if (bk_template_load(&whole, path, notify_placeholders) != 0)
        return -1;
    int rc = -1;
    const char *s = whole.text;
    const char *eol = strchr(s, '\n');
    if (strncmp(s, "Subject:", 8) != 0 || !eol || (eol[1] != '\n' && strncmp(eol + 1, "\r\n", 2))) {
        fprintf(stderr, "template %s: must start with a line \"Subject: ...\" and a blank line\n",
                path);
        goto out;
    }
    char subject[1024];
    const char *sub = s + 8 + strspn(s + 8, " \t");
    size_t n = (size_t)(eol - sub);
    while (n > 0 && (sub[n - 1] == '\r' || sub[n - 1] == ' '))
        n--;
    if (n == 0 || n >= sizeof subject) {
        fprintf(stderr, "template %s: the subject is empty or longer than %zu bytes\n", path,
                sizeof subject - 1);
        goto out;
    }
    memcpy(subject, sub, n);
    subject[n] = '\0';
    const char *body = eol + 1 + (eol[1] == '\r' ? 2 : 1);
    if (bk_template_parse(&templates[m].subject, path, subject, notify_placeholders) != 0 ||
        bk_template_parse(&templates[m].text, path, body, notify_placeholders) != 0)
        goto out;
    snprintf(path, sizeof path, "%s/%s.html", dir, FILE_NAMES[m]);
    if (bk_template_load(&templates[m].html, path, notify_placeholders) != 0)
        goto out;
    rc = 0;
out:
    bk_template_free(&whole);
    return rc;
}

int notify_templates_load(void)
{
    const char *dir = bk_config_str("mail_template_dir");
    int rc = 0;
    for (int m = 0; m < NOTIFY_N_MAILS; m++)
        if (load_one(dir, (enum notify_mail)m) != 0)
            rc = -1;
    return rc;
}

void notify_templates_free(void)
{
    for (int m = 0; m < NOTIFY_N_MAILS; m++) {
        bk_template_free(&templates[m].subject);
        bk_template_free(&templates[m].text);
        bk_template_free(&templates[m].html);
    }
}

enum bk_effect notify_send(struct bk_event *ev, enum notify_mail m, const char *to,
                           const char *to_name, const char *const *values)
{
    const struct mail_templates *t = &templates[m];
    char *subject = bk_template_render(&t->subject, notify_placeholders, values, BK_TEMPLATE_TEXT);
    char *text = bk_template_render(&t->text, notify_placeholders, values, BK_TEMPLATE_TEXT);
    char *html = bk_template_render(&t->html, notify_placeholders, values, BK_TEMPLATE_HTML);
    enum bk_effect rc = BK_EFFECT_RETRY;
    if (!subject || !text || !html) {
        snprintf(ev->detail, sizeof ev->detail, "out of memory rendering %s", FILE_NAMES[m]);
        goto out;
    }
    struct bk_mail mail = {
        .to = to,
        .to_name = to_name,
        .subject = subject,
        .text = text,
        .html = html,
        .id = ev->id,
        .date_s = ev->occurred_s,
    };
    char detail[sizeof ev->detail - 64];
    enum bk_mail_result r = bk_mail_send(&mail, ev->request_id, detail, sizeof detail);
    snprintf(ev->detail, sizeof ev->detail, "%s mail: %s", FILE_NAMES[m], detail);
    rc = r == BK_MAIL_SENT    ? BK_EFFECT_DONE
         : r == BK_MAIL_RETRY ? BK_EFFECT_RETRY
                              : BK_EFFECT_FAILED;
out:
    free(subject);
    free(text);
    free(html);
    return rc;
}

/* ---- the user ------------------------------------------------------------ */

struct user {
    char username[151 * 4];
    char email[255];
    char name[2 * 151 * 4 + 2]; /* "first last", else the username */
};

/* The user as the database has it now: the name to greet, the address to
 * write to (events carry no names, and an address may have changed since).
 * DONE when found and active, SKIPPED when not, RETRY on a database failure. */
static enum bk_effect load_user(struct bk_event *ev, int64_t id, struct user *u)
{
    char id_s[24];
    snprintf(id_s, sizeof id_s, "%lld", (long long)id);
    const char *p[] = {id_s};
    PGresult *r = bk_db_exec(ev->db,
                             "SELECT username, email, btrim(first_name || ' ' || last_name) "
                             "FROM users WHERE id = $1 AND is_active",
                             1, p);
    enum bk_effect rc = BK_EFFECT_RETRY;
    if (!bk_db_ok(r)) {
        snprintf(ev->detail, sizeof ev->detail, "reading the user failed");
        goto out;
    }
    rc = BK_EFFECT_SKIPPED;
    if (PQntuples(r) == 0) {
        snprintf(ev->detail, sizeof ev->detail, "user %s is gone or inactive: no mail", id_s);
        goto out;
    }
    snprintf(u->username, sizeof u->username, "%s", PQgetvalue(r, 0, 0));
    snprintf(u->email, sizeof u->email, "%s", PQgetvalue(r, 0, 1));
    snprintf(u->name, sizeof u->name, "%s",
             *PQgetvalue(r, 0, 2) ? PQgetvalue(r, 0, 2) : u->username);
    /* a name is one line: a line break in a first name (register takes any
     * text) would otherwise split the greeting (headers encode it anyway) */
    for (char *c = u->name; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    rc = BK_EFFECT_DONE;
out:
    PQclear(r);
    return rc;
}

/* "2024-05-01 12:00 UTC" for people, from seconds since the epoch. */
static void human_time(int64_t s, char *out, size_t n)
{
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm);
}

static bool base64url(const char *s)
{
    size_t n = strlen(s);
    return n > 0 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

/* reset_url_template with {uid} and {token} filled; config.c checked that
 * it is an http(s) URL with both, and both are base64url here: nothing to
 * escape. 0, or -1 when it does not fit. */
static int reset_url(const char *uid, const char *token, char *out, size_t n)
{
    const char *t = bk_config_str("reset_url_template");
    size_t w = 0;
    while (*t) {
        const char *v = strncmp(t, "{uid}", 5) == 0     ? uid
                        : strncmp(t, "{token}", 7) == 0 ? token
                                                        : NULL;
        size_t k = v ? strlen(v) : 1;
        if (w + k >= n)
            return -1;
        memcpy(out + w, v ? v : t, k);
        w += k;
        t += v ? (v == uid ? 5 : 7) : 1;
    }
    out[w] = '\0';
    return 0;
}

static enum bk_effect malformed(struct bk_event *ev, const char *what)
{
    snprintf(ev->detail, sizeof ev->detail, "malformed %s data: %s", ev->name, what);
    return BK_EFFECT_FAILED;
}

static enum bk_effect unmailable(struct bk_event *ev, const char *email)
{
    snprintf(ev->detail, sizeof ev->detail,
             "the address %.254s cannot go into a mail header as it is: no mail", email);
    return BK_EFFECT_FAILED;
}

/* ---- the handlers ----------------------------------------------------------- */

enum bk_effect notify_password_reset(struct bk_event *ev)
{
    int64_t id;
    char email[255], uid[65], token[129], expires[40], url[2048], expires_h[40];
    if (!bk_event_int(ev, "user_id", &id) || !bk_event_str(ev, "email", email, sizeof email) ||
        !bk_event_str(ev, "uid", uid, sizeof uid) ||
        !bk_event_str(ev, "token", token, sizeof token) ||
        !bk_event_str(ev, "expires_at", expires, sizeof expires))
        return malformed(ev, "user_id, email, uid, token and expires_at are required");
    if (!base64url(uid) || !base64url(token))
        return malformed(ev, "uid and token must be base64url");
    int64_t expires_s = bk_rfc3339_parse(expires);
    if (expires_s < 0)
        return malformed(ev, "expires_at is not an RFC 3339 time");
    struct user u;
    enum bk_effect rc = load_user(ev, id, &u);
    if (rc != BK_EFFECT_DONE)
        return rc;
    /* a link that died while the mail server was down helps nobody */
    if (expires_s <= bk_now_ms() / 1000) {
        snprintf(ev->detail, sizeof ev->detail, "the link expired at %s before it could be sent",
                 expires);
        return BK_EFFECT_SKIPPED;
    }
    /* to the address the reset was asked for (the account's, when asked) */
    if (!bk_mail_addr_ok(email))
        return unmailable(ev, email);
    if (reset_url(uid, token, url, sizeof url) != 0)
        return malformed(ev, "the reset link would be longer than 2047 bytes");
    human_time(expires_s, expires_h, sizeof expires_h);
    const char *values[NOTIFY_N_PLACEHOLDERS] = {
        [P_SITE] = bk_config_str("site_name"),
        [P_NAME] = u.name,
        [P_USERNAME] = u.username,
        [P_EMAIL] = email,
        [P_RESET_URL] = url,
        [P_EXPIRES_AT] = expires_h,
    };
    return notify_send(ev, NOTIFY_PASSWORD_RESET, email, u.name, values);
}

enum bk_effect notify_password_changed(struct bk_event *ev)
{
    int64_t id;
    char how[16] = "", when[40];
    if (!bk_event_int(ev, "user_id", &id))
        return malformed(ev, "user_id is required");
    bk_event_str(ev, "how", how, sizeof how);
    struct user u;
    enum bk_effect rc = load_user(ev, id, &u);
    if (rc != BK_EFFECT_DONE)
        return rc;
    if (!bk_mail_addr_ok(u.email))
        return unmailable(ev, u.email);
    human_time(ev->occurred_s, when, sizeof when);
    const char *values[NOTIFY_N_PLACEHOLDERS] = {
        [P_SITE] = bk_config_str("site_name"),
        [P_NAME] = u.name,
        [P_USERNAME] = u.username,
        [P_EMAIL] = u.email,
        [P_HOW] = strcmp(how, "reset") == 0 ? "reset with a password reset link"
                                            : "changed from your account",
        [P_WHEN] = when,
    };
    return notify_send(ev, NOTIFY_PASSWORD_CHANGED, u.email, u.name, values);
}

enum bk_effect notify_welcome(struct bk_event *ev)
{
    int64_t id;
    if (!bk_event_int(ev, "user_id", &id))
        return malformed(ev, "user_id is required");
    struct user u;
    enum bk_effect rc = load_user(ev, id, &u);
    if (rc != BK_EFFECT_DONE)
        return rc;
    if (!bk_mail_addr_ok(u.email))
        return unmailable(ev, u.email);
    const char *values[NOTIFY_N_PLACEHOLDERS] = {
        [P_SITE] = bk_config_str("site_name"),
        [P_NAME] = u.name,
        [P_USERNAME] = u.username,
        [P_EMAIL] = u.email,
    };
    return notify_send(ev, NOTIFY_WELCOME, u.email, u.name, values);
}
