/* Host and Origin policies. No dependencies beyond libc, so the unit test
 * can compile it in. */
#include "workers/bridge/policy.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

int br_policy_list_parse(const char *spec, struct br_policy_list *out)
{
    out->n = 0;
    const char *p = spec ? spec : "";
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (!*p)
            return out->n;
        size_t len = strcspn(p, " ,\t");
        if (out->n == BR_POLICY_MAX_ENTRIES || len > BR_POLICY_MAX_LEN)
            return -1;
        memcpy(out->item[out->n], p, len);
        out->item[out->n][len] = '\0';
        out->n++;
        p += len;
    }
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Django's split_domain_port: the lower-cased host must match
 * ^([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?$ ; the domain (with
 * its brackets, without one trailing dot) goes to out. False when it does
 * not match or the domain is empty. */
static bool split_domain(const char *host, char out[BR_POLICY_MAX_LEN + 1])
{
    size_t n = strlen(host);
    if (n == 0 || n > BR_POLICY_MAX_LEN)
        return false;
    char h[BR_POLICY_MAX_LEN + 1];
    for (size_t i = 0; i <= n; i++)
        h[i] = (char)tolower((unsigned char)host[i]);
    size_t end; /* one past the domain */
    if (h[0] == '[') {
        size_t i = 1;
        while (i < n && is_hex(h[i]))
            i++;
        if (i >= n || h[i] != ':')
            return false;
        size_t rest = ++i;
        while (i < n && (is_hex(h[i]) || h[i] == '.' || h[i] == ':'))
            i++;
        if (i == rest || i >= n || h[i] != ']')
            return false;
        end = i + 1;
    } else {
        end = 0;
        while (end < n && (isalnum((unsigned char)h[end]) || h[end] == '.' || h[end] == '-'))
            end++;
        if (end == 0)
            return false;
    }
    if (end < n) {
        if (h[end] != ':' || end + 1 == n)
            return false;
        for (size_t i = end + 1; i < n; i++)
            if (!isdigit((unsigned char)h[i]))
                return false;
    }
    if (h[end - 1] == '.')
        end--;
    if (end == 0)
        return false;
    memcpy(out, h, end);
    out[end] = '\0';
    return true;
}

/* Django's is_same_domain, with domain already lower case. */
static bool same_domain(const char *domain, const char *pattern)
{
    size_t dn = strlen(domain), pn = strlen(pattern);
    if (pattern[0] == '.')
        return (dn >= pn && strcasecmp(domain + dn - pn, pattern) == 0) ||
               strcasecmp(domain, pattern + 1) == 0;
    return strcasecmp(domain, pattern) == 0;
}

bool br_policy_host_allowed(const struct br_policy_list *list, const char *host)
{
    if (!host)
        return true;
    char domain[BR_POLICY_MAX_LEN + 1];
    if (!split_domain(host, domain))
        return false;
    for (int i = 0; i < list->n; i++)
        if (strcmp(list->item[i], "*") == 0 || same_domain(domain, list->item[i]))
            return true;
    return false;
}

bool br_policy_origin_allowed(const struct br_policy_list *list, const char *origin)
{
    if (!origin || !*origin)
        return false;
    for (int i = 0; i < list->n; i++)
        if (strcmp(list->item[i], origin) == 0)
            return true;
    return false;
}
