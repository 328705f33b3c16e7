/* Mail: an RFC 5322 message built from its parts, handed to the backend
 * mail_backend names, as Django's email backends do: file (one .eml per mail
 * in mail_dir), smtp (libcurl: STARTTLS, implicit TLS, AUTH) or console
 * (standard output).
 *
 * Everything that reaches a header is either checked (addresses: bk_mail_addr_ok)
 * or encoded (names and subjects: a quoted string or RFC 2047 encoded words,
 * control characters turned into spaces first), so no value can end a header
 * line and start another (header injection). */
#ifndef BK_MAIL_H
#define BK_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_MAIL_MAX_ADDR  254          /* RFC 5321's path limit, minus the brackets */
#define BK_MAIL_MAX_BYTES (256 * 1024) /* a whole message: ours are a few KiB */

struct bk_mail {
    const char *to;      /* a bare address (bk_mail_addr_ok) */
    const char *to_name; /* the recipient's name, any UTF-8, or "" */
    const char *subject; /* UTF-8, one line */
    const char *text;    /* the plain-text part, UTF-8, LF or CRLF line ends */
    const char *html;    /* the HTML part, or NULL for a text-only mail */
    const char *id;      /* a stable id of what caused the mail (the event id, [A-Za-z0-9-]):
                            Message-ID <id@sender's domain> and the file backend's file name,
                            so a mail sent again is recognisably the same mail */
    int64_t date_s;      /* the Date header and the file name's time, seconds since the epoch */
};

enum bk_mail_result {
    BK_MAIL_SENT,     /* the server accepted it (or it was written) */
    BK_MAIL_RETRY,    /* the backend is unavailable now (server down, a 4xx, disk full) */
    BK_MAIL_REJECTED, /* refused for good (the server said the mailbox does not exist, the
                         mail is malformed or too big): sending it again will not help */
};

/* A bare address: local@domain of printable ASCII without spaces, quotes,
 * brackets, commas or backslashes, a dot-atom on both sides, at most
 * BK_MAIL_MAX_ADDR bytes. Stricter than RFC 5322 on purpose: it goes into
 * a header and an SMTP command as it is. */
bool bk_mail_addr_ok(const char *s);

/* Checks the mail settings of the backend in use and prepares it (libcurl's
 * global state; the file backend's folder, created 0700: mails carry reset
 * links). 0, or -1 with each problem printed on stderr as "config: ...". */
int bk_mail_init(void);
void bk_mail_cleanup(void);

/* The message of m from `from` (a bare address) with from_name, CRLF line
 * ends: multipart/alternative (text, then HTML) when m->html is set, else
 * text/plain. Parts travel as 7bit or 8bit UTF-8 when every line fits in 998
 * bytes (readable .eml files, links intact, as Django sends them), else
 * quoted-printable. Returns a malloc'd buffer (caller frees) and its length,
 * or NULL with *why set. */
char *bk_mail_format(const struct bk_mail *m, const char *from, const char *from_name, size_t *len,
                     const char **why);

/* Formats m with mail_from and site_name and hands it to mail_backend.
 * detail (n bytes) gets what to log: the file written, the server's answer.
 * request_id goes into the log lines. */
enum bk_mail_result bk_mail_send(const struct bk_mail *m, const char *request_id, char *detail,
                                 size_t n);

/* The file backend: writes msg into dir as <yyyymmdd-hhmmss of date_s>-<id>.eml
 * (mode 0600) through a temporary file and a rename, so a reader never sees
 * half a mail and a mail sent again replaces its first copy. detail gets the
 * path. */
enum bk_mail_result bk_mail_write_file(const char *dir, const char *id, int64_t date_s,
                                       const char *msg, size_t len, char *detail, size_t n);

#endif
