/* Mail: addresses that may go into a header, the message we build (no
 * header injection from a name, encoded words, 7bit/8bit/quoted-printable
 * parts, multipart/alternative), the file backend's writer, the templates
 * and the mail settings config.c checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/config.h"
#include "tests/unit/unit_env.h"
#include "shared/mail.h"
#include "shared/template.h"

#define ID "0b9c6f1e-5d1c-4d8a-9a57-3f1d2c4b5a69"

static char *format(const struct bk_mail *m, size_t *len)
{
    const char *why = NULL;
    char *s = bk_mail_format(m, "noreply@example.com", "Example site", len, &why);
    if (!s)
        fail_msg("bk_mail_format: %s", why);
    assert_int_equal(strlen(s), *len);
    return s;
}

/* The header block of a message (up to the first empty line). */
static char *headers_of(const char *msg)
{
    const char *end = strstr(msg, "\r\n\r\n");
    assert_non_null(end);
    return strndup(msg, (size_t)(end - msg) + 2);
}

static void addresses(void **state)
{
    assert_true(bk_mail_addr_ok("a@example.com"));
    assert_true(bk_mail_addr_ok("first.last+tag@sub.example.org"));
    assert_true(bk_mail_addr_ok("noreply@localhost"));
    assert_false(bk_mail_addr_ok(""));
    assert_false(bk_mail_addr_ok("no-at-sign"));
    assert_false(bk_mail_addr_ok("@example.com"));
    assert_false(bk_mail_addr_ok("a@"));
    assert_false(bk_mail_addr_ok("a@b@c"));
    assert_false(bk_mail_addr_ok("a b@example.com"));
    assert_false(bk_mail_addr_ok("a@example.com\r\nBcc: x@evil.test"));
    assert_false(bk_mail_addr_ok("\"quoted\"@example.com"));
    assert_false(bk_mail_addr_ok("a..b@example.com"));
    assert_false(bk_mail_addr_ok("<a@example.com>"));
    assert_false(bk_mail_addr_ok("a@example.com,b@example.com"));
    char big[300];
    memset(big, 'a', sizeof big);
    memcpy(big + 280, "@example.com", 13);
    assert_false(bk_mail_addr_ok(big));
}

static void text_only_mail(void **state)
{
    struct bk_mail m = {.to = "user@example.com",
                        .to_name = "Ann Smith",
                        .subject = "Hello",
                        .text = "line one\nline two\n",
                        .id = ID,
                        .date_s = 1714564800}; /* 2024-05-01 12:00:00 UTC */
    size_t len;
    char *msg = format(&m, &len);
    char *h = headers_of(msg);
    assert_non_null(strstr(h, "Date: Wed, 01 May 2024 12:00:00 +0000\r\n"));
    assert_non_null(strstr(h, "From: \"Example site\" <noreply@example.com>\r\n"));
    assert_non_null(strstr(h, "To: \"Ann Smith\" <user@example.com>\r\n"));
    assert_non_null(strstr(h, "Subject: Hello\r\n"));
    assert_non_null(strstr(h, "Message-ID: <" ID "@example.com>\r\n"));
    assert_non_null(strstr(h, "Content-Type: text/plain; charset=\"utf-8\"\r\n"));
    assert_non_null(strstr(h, "Content-Transfer-Encoding: 7bit\r\n"));
    /* LF became CRLF, and no bare LF anywhere */
    assert_non_null(strstr(msg, "\r\n\r\nline one\r\nline two\r\n"));
    for (const char *p = msg; *p; p++)
        if (*p == '\n')
            assert_true(p > msg && p[-1] == '\r');
    free(h);
    free(msg);
}

/* A username or a first name with CR LF must not become a header of its
 * own (Bcc: to a stranger); a subject neither. */
static void no_header_injection(void **state)
{
    struct bk_mail m = {.to = "user@example.com",
                        .to_name = "Eve\r\nBcc: victim@evil.test",
                        .subject = "Hi\r\nBcc: other@evil.test\nX-Evil: 1",
                        .text = "body",
                        .html = "<p>body</p>",
                        .id = ID,
                        .date_s = 0};
    size_t len;
    char *msg = format(&m, &len);
    char *h = headers_of(msg);
    assert_null(strstr(h, "\r\nBcc:"));
    assert_null(strstr(h, "\r\nX-Evil:"));
    /* every header line starts a known header or continues one (folded) */
    for (const char *line = h; *line; line = strstr(line, "\r\n") + 2) {
        bool known = line[0] == ' ' || strncmp(line, "Date: ", 6) == 0 ||
                     strncmp(line, "From: ", 6) == 0 || strncmp(line, "To: ", 4) == 0 ||
                     strncmp(line, "Subject: ", 9) == 0 || strncmp(line, "Message-ID: ", 12) == 0 ||
                     strncmp(line, "MIME-Version: ", 14) == 0 ||
                     strncmp(line, "Content-Type: ", 14) == 0;
        if (!known)
            fail_msg("unexpected header line: %.40s", line);
    }
    free(h);
    free(msg);

    /* a recipient that is not a plain address is refused, not written */
    const char *why = NULL;
    size_t n;
    m.to = "user@example.com>\r\nBcc: <victim@evil.test";
    assert_null(bk_mail_format(&m, "noreply@example.com", "x", &n, &why));
    assert_non_null(why);
    m.to = "user@example.com";
    m.id = "id\r\nX: 1";
    assert_null(bk_mail_format(&m, "noreply@example.com", "x", &n, &why));
}

static void encoded_words(void **state)
{
    struct bk_mail m = {.to = "user@example.com",
                        .to_name = "Zoë \"Z\" Ünal",
                        .subject = "Réinitialisez votre mot de passe",
                        .text = "Bonjour Zoë,\n",
                        .id = ID,
                        .date_s = 0};
    size_t len;
    char *msg = format(&m, &len);
    char *h = headers_of(msg);
    /* non-ASCII: RFC 2047 B words (base64 of the UTF-8 bytes) */
    assert_non_null(strstr(h, "To: =?utf-8?B?"));
    assert_non_null(strstr(h, "Subject: =?utf-8?B?"));
    assert_non_null(strstr(h, "Content-Transfer-Encoding: 8bit\r\n"));
    assert_non_null(strstr(msg, "Bonjour Zoë,\r\n"));
    free(h);
    free(msg);

    /* a quoted string escapes its quotes and backslashes */
    m.to_name = "A \"B\" \\C";
    m.subject = "plain";
    msg = format(&m, &len);
    assert_non_null(strstr(msg, "To: \"A \\\"B\\\" \\\\C\" <user@example.com>\r\n"));
    free(msg);

    /* a long subject is folded into several words, none longer than 76 */
    char subject[400];
    memset(subject, 0, sizeof subject);
    for (int i = 0; i < 60; i++)
        strcat(subject, "é");
    m.subject = subject;
    msg = format(&m, &len);
    h = headers_of(msg);
    assert_non_null(strstr(h, "?=\r\n =?utf-8?B?"));
    for (const char *line = h; *line; line = strstr(line, "\r\n") + 2)
        assert_true(strstr(line, "\r\n") - line <= 78);
    free(h);
    free(msg);
}

static void multipart_alternative(void **state)
{
    struct bk_mail m = {.to = "user@example.com",
                        .to_name = "",
                        .subject = "Reset",
                        .text = "open https://app.example/reset/MQ/abc-_DEF\n",
                        .html = "<a href=\"https://app.example/reset/MQ/abc-_DEF\">reset</a>\n",
                        .id = ID,
                        .date_s = 0};
    size_t len;
    char *msg = format(&m, &len);
    char *h = headers_of(msg);
    assert_non_null(strstr(h, "To: <user@example.com>\r\n"));
    assert_non_null(strstr(h, "Content-Type: multipart/alternative; boundary=\"=_bk_" ID "\"\r\n"));
    const char *text = strstr(msg, "--=_bk_" ID "\r\nContent-Type: text/plain");
    const char *html = strstr(msg, "--=_bk_" ID "\r\nContent-Type: text/html");
    assert_non_null(text);
    assert_non_null(html);
    assert_true(text < html);
    assert_non_null(strstr(msg, "--=_bk_" ID "--\r\n"));
    /* the link arrives whole in both parts (7bit: no soft line breaks) */
    assert_non_null(strstr(text, "https://app.example/reset/MQ/abc-_DEF\r\n"));
    assert_non_null(strstr(html, "href=\"https://app.example/reset/MQ/abc-_DEF\""));
    free(h);
    free(msg);
}

static void long_lines_are_quoted_printable(void **state)
{
    char *text = malloc(1201);
    memset(text, 'x', 1200);
    text[1200] = '\0';
    text[10] = '=';
    struct bk_mail m = {
        .to = "user@example.com", .subject = "s", .text = text, .id = ID, .date_s = 0};
    size_t len;
    char *msg = format(&m, &len);
    assert_non_null(strstr(msg, "Content-Transfer-Encoding: quoted-printable\r\n"));
    assert_non_null(strstr(msg, "=3D"));
    const char *body = strstr(msg, "\r\n\r\n") + 4;
    for (const char *line = body; *line; line = strstr(line, "\r\n") + 2)
        assert_true(strstr(line, "\r\n") - line <= 76);
    free(msg);
    free(text);
}

static void too_big_is_refused(void **state)
{
    char *text = malloc(BK_MAIL_MAX_BYTES + 1);
    memset(text, 'a', BK_MAIL_MAX_BYTES);
    text[BK_MAIL_MAX_BYTES] = '\0';
    struct bk_mail m = {.to = "user@example.com", .subject = "s", .text = text, .id = ID};
    const char *why = NULL;
    size_t n;
    assert_null(bk_mail_format(&m, "noreply@example.com", "x", &n, &why));
    assert_string_equal(why, "the mail is too big");
    free(text);
}

static void file_backend_writes_one_file_per_mail(void **state)
{
    char dir[] = "/tmp/bk-mail-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[64], detail[1400];
    snprintf(sub, sizeof sub, "%s/mail/inner", dir); /* created as needed */
    const char *msg = "Subject: x\r\n\r\nbody\r\n";
    assert_int_equal(
        bk_mail_write_file(sub, ID, 1714564800, msg, strlen(msg), detail, sizeof detail),
        BK_MAIL_SENT);
    char want[128];
    snprintf(want, sizeof want, "%s/20240501-120000-" ID ".eml", sub);
    assert_string_equal(detail, want);
    struct stat st;
    assert_int_equal(stat(want, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* the same mail again replaces its first copy: still one file, no temp */
    assert_int_equal(
        bk_mail_write_file(sub, ID, 1714564800, msg, strlen(msg), detail, sizeof detail),
        BK_MAIL_SENT);
    DIR *d = opendir(sub);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));)
        files += e->d_name[0] != '.' || strstr(e->d_name, ".tmp") ? 1 : 0;
    closedir(d);
    assert_int_equal(files, 1);
    FILE *f = fopen(want, "r");
    char buf[64] = "";
    assert_int_equal(fread(buf, 1, sizeof buf - 1, f), strlen(msg));
    fclose(f);
    assert_string_equal(buf, msg);
    unlink(want);
    /* a folder it cannot write: try again later, never "sent" */
    assert_int_equal(
        bk_mail_write_file("/proc/no/such", ID, 0, msg, strlen(msg), detail, sizeof detail),
        BK_MAIL_RETRY);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/mail", dir);
    rmdir(sub);
    rmdir(dir);
}

static const char *const NAMES[] = {"name", "reset_url", NULL};

static void templates(void **state)
{
    struct bk_template t;
    assert_int_equal(bk_template_parse(&t, "t", "Hi {name}, {reset_url} {not a} {} }{", NAMES), 0);
    const char *values[] = {"<Ann & \"Bob\">", "https://x/?a=1&b=2"};
    char *text = bk_template_render(&t, NAMES, values, BK_TEMPLATE_TEXT);
    assert_string_equal(text, "Hi <Ann & \"Bob\">, https://x/?a=1&b=2 {not a} {} }{");
    char *html = bk_template_render(&t, NAMES, values, BK_TEMPLATE_HTML);
    assert_string_equal(
        html, "Hi &lt;Ann &amp; &quot;Bob&quot;&gt;, https://x/?a=1&amp;b=2 {not a} {} }{");
    free(text);
    free(html);
    bk_template_free(&t);
    /* a placeholder nobody fills is refused at load */
    assert_int_equal(bk_template_parse(&t, "t", "Hi {nmae}", NAMES), -1);
    assert_null(t.text);
    /* a value that looks like a placeholder stays as it is */
    assert_int_equal(bk_template_parse(&t, "t", "{name}{reset_url}", NAMES), 0);
    const char *tricky[] = {"{reset_url}", "x"};
    text = bk_template_render(&t, NAMES, tricky, BK_TEMPLATE_TEXT);
    assert_string_equal(text, "{reset_url}x");
    free(text);
    bk_template_free(&t);
}

/* The repository's own templates load with the notify worker's names. */
static void repository_templates_load(void **state)
{
    static const char *const notify[] = {"site_name",  "name", "username", "email", "reset_url",
                                         "expires_at", "how",  "when",     NULL};
    const char *files[] = {"password_reset", "password_changed", "welcome"};
    for (int i = 0; i < 3; i++)
        for (int html = 0; html < 2; html++) {
            char path[128];
            snprintf(path, sizeof path, "templates/mail/%s.%s", files[i], html ? "html" : "txt");
            struct bk_template t;
            if (bk_template_load(&t, path, notify) != 0)
                fail_msg("%s does not load", path);
            if (!html)
                assert_int_equal(strncmp(t.text, "Subject: ", 9), 0);
            bk_template_free(&t);
        }
}

static int load_with(const char *var, const char *value)
{
    unit_clear_backend_env();
    if (var)
        setenv(var, value, 1);
    int rc = bk_config_load("/dev/null");
    unit_clear_backend_env();
    return rc;
}

static void mail_settings(void **state)
{
    assert_int_equal(load_with(NULL, NULL), 0);
    assert_string_equal(bk_config_str("mail_backend"), "file");
    assert_string_equal(bk_config_str("smtp_security"), "starttls");
    assert_string_equal(bk_config_str("reset_url_template"),
                        "http://127.0.0.1:8000/reset/{uid}/{token}");
    assert_int_equal(load_with("BACKEND_MAIL_BACKEND", "smtp"), 0);
    assert_int_equal(load_with("BACKEND_MAIL_BACKEND", "sendmail"), -1);
    assert_int_equal(load_with("BACKEND_SMTP_SECURITY", "ssl"), -1);
    assert_int_equal(load_with("BACKEND_SMTP_PORT", "0"), -1);
    assert_int_equal(load_with("BACKEND_MAIL_FROM", "Site <noreply@example.com>"), -1);
    assert_int_equal(load_with("BACKEND_MAIL_FROM", "noreply@example.com\r\nBcc: x@y"), -1);
    assert_int_equal(load_with("BACKEND_MAIL_FROM", "noreply@example.com"), 0);
    const char *good[] = {"https://app.example/reset/{uid}/{token}",
                          "https://app.example/reset/{uid}/{token}/",
                          "https://app.example/#/reset?uid={uid}&token={token}",
                          "http://localhost:3000/r/{token}/{uid}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (load_with("BACKEND_RESET_URL_TEMPLATE", good[i]) != 0)
            fail_msg("refused %s", good[i]);
    const char *bad[] = {"https://app.example/reset/{uid}",          /* no token */
                         "https://app.example/{uid}/{token}/{user}", /* unknown */
                         "javascript:alert(1)//{uid}{token}",
                         "https://app.example/reset/{uid}/{token",
                         "app.example/{uid}/{token}",
                         "https://app example/{uid}/{token}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (load_with("BACKEND_RESET_URL_TEMPLATE", bad[i]) != -1)
            fail_msg("accepted %s", bad[i]);
    bk_config_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses),
        cmocka_unit_test(text_only_mail),
        cmocka_unit_test(no_header_injection),
        cmocka_unit_test(encoded_words),
        cmocka_unit_test(multipart_alternative),
        cmocka_unit_test(long_lines_are_quoted_printable),
        cmocka_unit_test(too_big_is_refused),
        cmocka_unit_test(file_backend_writes_one_file_per_mail),
        cmocka_unit_test(templates),
        cmocka_unit_test(repository_templates_load),
        cmocka_unit_test(mail_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
