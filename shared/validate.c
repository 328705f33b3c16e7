#include "shared/validate.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

const char *const bk_roles[] = {"member", "student", "alumni", "faculty", "teacher", NULL};

/* One host label of letters, digits and hyphens (any non-ASCII byte counts
 * as a letter, as Django's \u00a1-\uffff range does), not starting or ending
 * with a hyphen, at most 63 characters. */
static bool label_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && (unsigned char)s[i] < 0x80)
            return false;
    return true;
}

static bool ipv4_ok(const char *s, size_t n)
{
    int parts = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        unsigned v = 0;
        while (j < n && isdigit((unsigned char)s[j]) && j - i < 3)
            v = v * 10 + (unsigned)(s[j++] - '0');
        if (j == i || v > 255 || (j - i > 1 && s[i] == '0'))
            return false;
        parts++;
        if (j == n)
            break;
        if (s[j] != '.')
            return false;
        i = j + 1;
        if (i == n)
            return false;
    }
    return parts == 4;
}

static bool host_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    if (s[0] == '[') { /* an IPv6 literal: hex digits, colons and dots */
        if (n < 4 || s[n - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < n; i++)
            if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
                return false;
        return memchr(s, ':', n) != NULL;
    }
    if (n == 9 && strncasecmp(s, "localhost", 9) == 0)
        return true;
    if (isdigit((unsigned char)s[n - 1]) && ipv4_ok(s, n))
        return true;
    if (s[n - 1] == '.') /* a fully qualified name's final dot */
        n--;
    /* labels, then a top-level domain of two or more letters (or punycode) */
    const char *tld = NULL;
    size_t i = 0, labels = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != '.')
            j++;
        if (!label_ok(s + i, j - i))
            return false;
        tld = s + i;
        labels++;
        i = j + 1;
    }
    size_t tl = (size_t)(s + n - tld);
    if (labels < 2 || tl < 2)
        return false;
    if (tl > 4 && strncasecmp(tld, "xn--", 4) == 0)
        return true;
    for (size_t k = 0; k < tl; k++)
        if (isdigit((unsigned char)tld[k]))
            return false;
    return true;
}

/* Django's URLValidator(schemes=["http", "https"]), without its regex. */
bool bk_valid_url(const char *s)
{
    size_t n = strlen(s);
    if (n > 2048)
        return false;
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]) || (unsigned char)s[i] < 0x20)
            return false;
    const char *p;
    if (strncasecmp(s, "http://", 7) == 0)
        p = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        p = s + 8;
    else
        return false;
    size_t net = strcspn(p, "/?#");
    const char *end = p + net;
    /* user:password@ */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    const char *host = at ? at + 1 : p;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (at == p || (colon == p))
            return false;
    }
    /* :port, unless the colon is inside an IPv6 literal */
    const char *hend = end;
    const char *close = memchr(host, ']', (size_t)(end - host));
    const char *colon = memchr(close ? close : host, ':', (size_t)(end - (close ? close : host)));
    if (colon) {
        size_t digits = (size_t)(end - colon - 1);
        if (digits == 0 || digits > 5)
            return false;
        for (const char *q = colon + 1; q < end; q++)
            if (!isdigit((unsigned char)*q))
                return false;
        hend = colon;
    }
    return host_ok(host, (size_t)(hend - host));
}

/* Close to Django's EmailValidator: a dot-atom local part and a valid host. */
bool bk_valid_email(const char *s)
{
    const char *at = strrchr(s, '@');
    if (!at || at == s || at[1] == '\0')
        return false;
    const char *ok_local = "!#$%&'*+/=?^_`{|}~-";
    for (const char *p = s; p < at; p++) {
        if (*p == '.') {
            if (p == s || p + 1 == at || p[1] == '.')
                return false;
        } else if (!isalnum((unsigned char)*p) && !strchr(ok_local, *p) &&
                   (unsigned char)*p < 0x80) {
            return false;
        }
    }
    const char *d = at + 1;
    size_t n = strlen(d);
    if (n == 9 && strcasecmp(d, "localhost") == 0)
        return true;
    if (d[0] == '[')
        return host_ok(d, n);
    return d[n - 1] != '.' && host_ok(d, n);
}
