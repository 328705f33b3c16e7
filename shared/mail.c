#include "shared/mail.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/log.h"

#define MAX_LINE 998 /* RFC 5322 2.1.1, without the CRLF */
#define QP_LINE  76  /* RFC 2045 6.7 */
#define WORD_BYTES                                                                                 \
    39                      /* raw bytes per encoded word: 52 base64 + 12 = 64 characters, so      \
                               "Subject: " and a word fit in RFC 2047's 76 */
#define MAX_HEADER_TEXT 900 /* a name or subject longer than this is cut */
#define MAX_PASSWORD    256

/* ---- a growing buffer ------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
    bool failed; /* out of memory or over BK_MAIL_MAX_BYTES: checked once at the end */
};

static void put_n(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > BK_MAIL_MAX_BYTES) {
        b->failed = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put(struct buf *b, const char *s)
{
    put_n(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = true;
        return;
    }
    put_n(b, tmp, (size_t)n);
}

/* ---- addresses --------------------------------------------------------------- */

/* atext of RFC 5322 without the characters some software mistreats in
 * headers (quotes, backslashes, brackets are not atext anyway). */
static bool atext(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* A dot-atom: atext runs separated by single dots, none at either end. */
static bool dot_atom(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.' ? s[i + 1] == '.' : !atext(s[i]))
            return false;
    return true;
}

bool bk_mail_addr_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    const char *at = s ? strrchr(s, '@') : NULL;
    if (n == 0 || n > BK_MAIL_MAX_ADDR || !at || at == s)
        return false;
    return dot_atom(s, (size_t)(at - s)) && dot_atom(at + 1, n - (size_t)(at - s) - 1) &&
           !strchr(at + 1, '@');
}

/* ---- headers ------------------------------------------------------------------ */

/* text with every control character (CR and LF above all) a space, cut at
 * MAX_HEADER_TEXT bytes on a character boundary. */
static void header_text(const char *in, char *out, size_t n)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t w = 0;
    for (; p[w] && w + 1 < n; w++)
        out[w] = p[w] < 0x20 || p[w] == 0x7f ? ' ' : (char)p[w];
    if (p[w]) /* cut short: not in the middle of a character */
        while (w > 0 && (p[w] & 0xc0) == 0x80)
            w--;
    out[w] = '\0';
}

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* RFC 2047 B-encoded words, folded onto continuation lines; each word holds
 * whole UTF-8 characters. */
static void encoded_words(struct buf *b, const char *s)
{
    size_t n = strlen(s), i = 0;
    bool first = true;
    while (i < n) {
        size_t k = n - i < WORD_BYTES ? n - i : WORD_BYTES;
        while (k > 1 && i + k < n && ((unsigned char)s[i + k] & 0xc0) == 0x80)
            k--; /* do not split a character */
        char b64[sodium_base64_ENCODED_LEN(WORD_BYTES, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(b64, sizeof b64, (const unsigned char *)s + i, k,
                          sodium_base64_VARIANT_ORIGINAL);
        putf(b, "%s=?utf-8?B?%s?=", first ? "" : "\r\n ", b64);
        first = false;
        i += k;
    }
}

/* A display name: a quoted string when it is printable ASCII, else encoded
 * words (a quoted string may not carry them). */
static void put_phrase(struct buf *b, const char *raw)
{
    char s[MAX_HEADER_TEXT + 1];
    header_text(raw, s, sizeof s);
    if (!printable_ascii(s) || strstr(s, "=?")) {
        encoded_words(b, s);
        return;
    }
    put(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(b, "\\");
        put_n(b, p, 1);
    }
    put(b, "\"");
}

/* An unstructured header value (Subject). */
static void put_unstructured(struct buf *b, const char *raw)
{
    char s[MAX_HEADER_TEXT + 1];
    header_text(raw, s, sizeof s);
    if (printable_ascii(s) && !strstr(s, "=?") && strlen(s) <= 78 - strlen("Subject: "))
        put(b, s);
    else
        encoded_words(b, s);
}

static void put_mailbox(struct buf *b, const char *name, const char *addr)
{
    if (name && *name) {
        put_phrase(b, name);
        put(b, " ");
    }
    putf(b, "<%s>", addr);
}

/* ---- bodies ---------------------------------------------------------------------- */

/* text with CRLF line ends (LF, CRLF and a lone CR all count as one). */
static char *crlf(const char *s)
{
    struct buf b = {0};
    for (const char *p = s; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            put(&b, "\r\n");
            if (*p == '\r' && p[1] == '\n')
                p++;
        } else {
            put_n(&b, p, 1);
        }
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

enum encoding { ENC_7BIT, ENC_8BIT, ENC_QP };

static enum encoding encoding_of(const char *s)
{
    enum encoding e = ENC_7BIT;
    size_t line = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\r' && p[1] == '\n') {
            line = 0;
            p++;
            continue;
        }
        if (++line > MAX_LINE || *p == '\r' || *p == '\n')
            return ENC_QP;
        if (*p >= 0x80)
            e = ENC_8BIT;
    }
    return e;
}

static void put_qp(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\r' && p[1] == '\n') {
            put(b, "\r\n");
            col = 0;
            p++;
            continue;
        }
        char enc[4];
        bool space_at_end = (*p == ' ' || *p == '\t') && (p[1] == '\r' || p[1] == '\0');
        if ((*p >= 33 && *p <= 126 && *p != '=') || ((*p == ' ' || *p == '\t') && !space_at_end)) {
            enc[0] = (char)*p;
            enc[1] = '\0';
        } else {
            enc[0] = '=', enc[1] = hex[*p >> 4], enc[2] = hex[*p & 15], enc[3] = '\0';
        }
        size_t w = strlen(enc);
        if (col + w > QP_LINE - 1) { /* room for the soft break's "=" */
            put(b, "=\r\n");
            col = 0;
        }
        put(b, enc);
        col += w;
    }
}

static void put_part(struct buf *b, const char *type, const char *body)
{
    enum encoding e = encoding_of(body);
    putf(b, "Content-Type: %s; charset=\"utf-8\"\r\nContent-Transfer-Encoding: %s\r\n\r\n", type,
         e == ENC_7BIT   ? "7bit"
         : e == ENC_8BIT ? "8bit"
                         : "quoted-printable");
    if (e == ENC_QP)
        put_qp(b, body);
    else
        put(b, body);
    if (b->len < 2 || memcmp(b->p + b->len - 2, "\r\n", 2) != 0)
        put(b, "\r\n");
}

char *bk_mail_format(const struct bk_mail *m, const char *from, const char *from_name, size_t *len,
                     const char **why)
{
    struct buf b = {0};
    char *text = NULL, *html = NULL;
    *why = NULL;
    if (!bk_mail_addr_ok(m->to)) {
        *why = "the recipient is not a plain mail address";
        goto out;
    }
    if (!bk_mail_addr_ok(from)) {
        *why = "the sender (mail_from) is not a plain mail address";
        goto out;
    }
    if (!m->id || !*m->id || strlen(m->id) > 64 ||
        strspn(m->id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") !=
            strlen(m->id)) {
        *why = "the mail id is not 1-64 of [A-Za-z0-9-]";
        goto out;
    }
    text = crlf(m->text ? m->text : "");
    html = m->html ? crlf(m->html) : NULL;
    if (!text || (m->html && !html)) {
        *why = "the mail is too big";
        goto out;
    }
    char date[64];
    time_t t = (time_t)m->date_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm); /* C locale names */

    putf(&b, "Date: %s\r\nFrom: ", date);
    put_mailbox(&b, from_name, from);
    put(&b, "\r\nTo: ");
    put_mailbox(&b, m->to_name, m->to);
    put(&b, "\r\nSubject: ");
    put_unstructured(&b, m->subject ? m->subject : "");
    /* the same cause gives the same Message-ID: a mail sent again after a
     * crash is recognisably a duplicate for the receiving side */
    putf(&b, "\r\nMessage-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n", m->id, strrchr(from, '@') + 1);
    if (!html) {
        put_part(&b, "text/plain", text);
    } else {
        /* a boundary that cannot occur in the parts: "=_" never starts a
         * 7bit/8bit line of ours by chance, and QP encodes every "=" */
        char boundary[96];
        snprintf(boundary, sizeof boundary, "=_bk_%s", m->id);
        if (strstr(text, boundary) || strstr(html, boundary)) {
            *why = "a part contains the MIME boundary";
            goto out;
        }
        putf(&b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary);
        put(&b, "This is a multi-part message in MIME format.\r\n");
        putf(&b, "\r\n--%s\r\n", boundary);
        put_part(&b, "text/plain", text);
        putf(&b, "\r\n--%s\r\n", boundary);
        put_part(&b, "text/html", html);
        putf(&b, "\r\n--%s--\r\n", boundary);
    }
    if (b.failed)
        *why = "the mail is too big";
out:
    free(text);
    free(html);
    if (*why) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---- backends ---------------------------------------------------------------------- */

static int mkdirs(const char *path, mode_t mode)
{
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, mode) != 0 && errno != EEXIST ? -1 : 0;
}

enum bk_mail_result bk_mail_write_file(const char *dir, const char *id, int64_t date_s,
                                       const char *msg, size_t len, char *detail, size_t n)
{
    char path[1200], tmp[1300], stamp[32];
    time_t t = (time_t)date_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    if (snprintf(path, sizeof path, "%s/%s-%s.eml", dir, stamp, id) >= (int)sizeof path) {
        snprintf(detail, n, "mail_dir is too long a path");
        return BK_MAIL_RETRY;
    }
    snprintf(tmp, sizeof tmp, "%s/.%s-%s.eml.tmp", dir, stamp, id);
    if (mkdirs(dir, 0700) != 0) {
        snprintf(detail, n, "cannot create %s: %s", dir, strerror(errno));
        return BK_MAIL_RETRY;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(detail, n, "cannot write %s: %s", tmp, strerror(errno));
        return BK_MAIL_RETRY;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t k = write(fd, msg + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    int e = off < len ? errno : 0;
    /* on disk before the event counts as handled */
    if (off == len && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        snprintf(detail, n, "cannot write %s: %s", path, strerror(e));
        return BK_MAIL_RETRY;
    }
    snprintf(detail, n, "%s", path);
    return BK_MAIL_SENT;
}

static enum bk_mail_result write_console(const char *msg, size_t len, char *detail, size_t n)
{
    /* Django's console backend: the message, then a line of dashes */
    if (fwrite(msg, 1, len, stdout) != len ||
        fputs("\n"
              "----------\n",
              stdout) < 0 ||
        fflush(stdout) != 0) {
        snprintf(detail, n, "cannot write to standard output: %s", strerror(errno));
        return BK_MAIL_RETRY;
    }
    snprintf(detail, n, "standard output");
    return BK_MAIL_SENT;
}

struct reader {
    const char *p;
    size_t left;
};

static size_t read_message(char *out, size_t size, size_t nitems, void *arg)
{
    struct reader *r = arg;
    size_t k = size * nitems < r->left ? size * nitems : r->left;
    memcpy(out, r->p, k);
    r->p += k;
    r->left -= k;
    return k;
}

/* The first line of smtp_password_file, read at every send. 0 or -1. */
static int smtp_password(char *out, size_t n, char *detail, size_t dn)
{
    const char *path = bk_config_str("smtp_password_file");
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(detail, dn, "cannot read smtp_password_file %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = fgets(out, (int)n, f) ? 0 : -1;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (rc != 0 || !*out) {
        snprintf(detail, dn, "smtp_password_file %s is empty", path);
        return -1;
    }
    return 0;
}

/* SMTP reply codes that refuse this recipient for good (RFC 5321 4.2.3:
 * mailbox unavailable, user not local, mailbox name not allowed). Any
 * other failure, a 5xx to our login or sender included, is more likely our
 * configuration or the server's state than the mail: the mail waits. */
static bool permanent(long code)
{
    return code == 550 || code == 551 || code == 553;
}

static enum bk_mail_result send_smtp(const char *from, const char *to, const char *msg, size_t len,
                                     char *detail, size_t n)
{
    enum bk_mail_result rc = BK_MAIL_RETRY;
    char password[MAX_PASSWORD] = "", url[320], mail_from[BK_MAIL_MAX_ADDR + 3],
         rcpt[BK_MAIL_MAX_ADDR + 3], err[CURL_ERROR_SIZE] = "";
    struct curl_slist *rcpts = NULL;
    const char *host = bk_config_str("smtp_host"), *security = bk_config_str("smtp_security");
    bool user = bk_config_set("smtp_user");
    long timeout = bk_config_long("smtp_timeout_s");
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(detail, n, "curl_easy_init failed");
        goto out;
    }
    if (user && smtp_password(password, sizeof password, detail, n) != 0)
        goto out;
    bool v6 = strchr(host, ':') && host[0] != '[';
    snprintf(url, sizeof url, "%s://%s%s%s:%ld", strcmp(security, "tls") == 0 ? "smtps" : "smtp",
             v6 ? "[" : "", host, v6 ? "]" : "", bk_config_long("smtp_port"));
    snprintf(mail_from, sizeof mail_from, "<%s>", from);
    snprintf(rcpt, sizeof rcpt, "<%s>", to);
    rcpts = curl_slist_append(NULL, rcpt);
    struct reader r = {msg, len};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    /* starttls: TLS or nothing, never a silent fall back to plain text */
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     strcmp(security, "none") == 0 ? (long)CURLUSESSL_NONE : (long)CURLUSESSL_ALL);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, mail_from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_message);
    curl_easy_setopt(h, CURLOPT_READDATA, &r);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout < 10 ? timeout : 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    if (user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, bk_config_str("smtp_user"));
        curl_easy_setopt(h, CURLOPT_PASSWORD, password);
    }
    CURLcode res = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (res == CURLE_OK) {
        snprintf(detail, n, "accepted by %s (%ld)", url, code);
        rc = BK_MAIL_SENT;
    } else {
        snprintf(detail, n, "%s: %s (last reply %ld)", url, err[0] ? err : curl_easy_strerror(res),
                 code);
        rc = permanent(code) ? BK_MAIL_REJECTED : BK_MAIL_RETRY;
    }
out:
    sodium_memzero(password, sizeof password);
    curl_slist_free_all(rcpts);
    if (h)
        curl_easy_cleanup(h);
    return rc;
}

enum bk_mail_result bk_mail_send(const struct bk_mail *m, const char *request_id, char *detail,
                                 size_t n)
{
    const char *why = NULL, *backend = bk_config_str("mail_backend");
    const char *from = bk_config_str("mail_from");
    size_t len = 0;
    char *msg = bk_mail_format(m, from, bk_config_str("site_name"), &len, &why);
    if (!msg) {
        snprintf(detail, n, "%s", why);
        return BK_MAIL_REJECTED;
    }
    enum bk_mail_result rc;
    if (strcmp(backend, "smtp") == 0)
        rc = send_smtp(from, m->to, msg, len, detail, n);
    else if (strcmp(backend, "console") == 0)
        rc = write_console(msg, len, detail, n);
    else
        rc = bk_mail_write_file(bk_config_str("mail_dir"), m->id, m->date_s, msg, len, detail, n);
    bk_log(rc == BK_MAIL_SENT ? BK_DEBUG : BK_WARN, request_id, "mail %s via %s: %s",
           rc == BK_MAIL_SENT    ? "sent"
           : rc == BK_MAIL_RETRY ? "not sent yet"
                                 : "refused",
           backend, detail);
    free(msg);
    return rc;
}

int bk_mail_init(void)
{
    int rc = 0;
    const char *backend = bk_config_str("mail_backend");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "mail: curl_global_init failed\n");
        return -1;
    }
    if (strcmp(backend, "file") == 0) {
        const char *dir = bk_config_str("mail_dir");
        if (!*dir || mkdirs(dir, 0700) != 0 || access(dir, W_OK) != 0) {
            fprintf(stderr, "config: mail_dir: cannot create or write %s: %s\n", dir,
                    strerror(errno));
            rc = -1;
        }
    } else if (strcmp(backend, "smtp") == 0) {
        if (!*bk_config_str("smtp_host")) {
            fprintf(stderr, "config: smtp_host: empty\n");
            rc = -1;
        }
        if (bk_config_set("smtp_user") && !bk_config_set("smtp_password_file")) {
            fprintf(stderr, "config: smtp_user is set but not smtp_password_file\n");
            rc = -1;
        }
        /* a login over plain text hands the password to anyone on the path */
        if (bk_config_set("smtp_user") && strcmp(bk_config_str("smtp_security"), "none") == 0) {
            fprintf(stderr, "config: smtp_user needs smtp_security = starttls or tls (the "
                            "password would cross the network in clear)\n");
            rc = -1;
        }
    }
    return rc;
}

void bk_mail_cleanup(void)
{
    curl_global_cleanup();
}
