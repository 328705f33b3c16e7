/* Who the bridge answers, decided from headers alone (pure functions, unit
 * tested):
 *
 * - Host: Django's ALLOWED_HOSTS (config key allowed_hosts). An entry is a
 *   host name or address matched exactly and case-insensitively, with the
 *   request's port ignored; ".example.com" also matches every subdomain; "*"
 *   matches anything. IPv6 addresses are written in brackets ("[::1]"). A
 *   Host that is not a well-formed host[:port] never matches (not even "*").
 * - Origin: django-cors-headers' CORS_ALLOWED_ORIGINS (config key
 *   cors_allowed_origins): exact origins ("https://app.example.com"),
 *   compared byte for byte as that middleware does. */
#ifndef BR_POLICY_H
#define BR_POLICY_H

#include <stdbool.h>

#define BR_POLICY_MAX_ENTRIES 32
#define BR_POLICY_MAX_LEN     255 /* a DNS name, or an origin with a long name */

struct br_policy_list {
    int n;
    char item[BR_POLICY_MAX_ENTRIES][BR_POLICY_MAX_LEN + 1];
};

/* Splits spec (NULL: empty) at spaces and commas into out. Returns the
 * number of entries, or -1 when there are more than BR_POLICY_MAX_ENTRIES
 * or one is longer than BR_POLICY_MAX_LEN (a configuration error: refuse
 * to start rather than guess). */
int br_policy_list_parse(const char *spec, struct br_policy_list *out);

/* Is the Host header value host (NULL: absent) allowed by list? An absent
 * Host (HTTP/1.0) is allowed: the bridge then stands for its own address. */
bool br_policy_host_allowed(const struct br_policy_list *list, const char *host);

/* Is the Origin header value origin allowed by list? NULL or "": no. */
bool br_policy_origin_allowed(const struct br_policy_list *list, const char *origin);

#endif
