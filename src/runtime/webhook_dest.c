/*
 * webhook_dest.c - the destination policy of webhook_dest.h: address
 * classification (IPv4, IPv6 and IPv4 inside IPv6) and URL checks with
 * libcurl's URL parser (the same parser that will send the request).
 */
#include "runtime/webhook_dest.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What an IPv4 address (host order) is, or NULL for a public one. */
static const char *ipv4_kind(uint32_t a)
{
    static const struct {
        uint32_t net, mask;
        const char *kind;
    } ranges[] = {
        {0xa9fea9fe, 0xffffffff, "the cloud metadata address"},     /* 169.254.169.254 */
        {0x00000000, 0xff000000, "an unspecified (\"this network\") address"},
        {0x7f000000, 0xff000000, "a loopback address"},
        {0x0a000000, 0xff000000, "a private address"},
        {0xac100000, 0xfff00000, "a private address"},
        {0xc0a80000, 0xffff0000, "a private address"},
        {0x64400000, 0xffc00000, "a shared (CGNAT) address"},
        {0xa9fe0000, 0xffff0000, "a link-local address"},
        {0xc0000000, 0xffffff00, "a reserved (IETF) address"},
        {0xc6120000, 0xfffe0000, "a benchmarking address"},
        {0xe0000000, 0xf0000000, "a multicast address"},
        {0xf0000000, 0xf0000000, "a reserved address"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if ((a & ranges[i].mask) == ranges[i].net)
            return ranges[i].kind;
    return NULL;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What an IPv6 address is, or NULL for a public one. */
static const char *ipv6_kind(const struct in6_addr *a)
{
    const unsigned char *b = a->s6_addr;
    static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    if (IN6_IS_ADDR_V4MAPPED(a) || memcmp(b, nat64, sizeof nat64) == 0)
        return ipv4_kind(be32(b + 12));     /* the IPv4 address inside decides */
    if (IN6_IS_ADDR_UNSPECIFIED(a))
        return "an unspecified address";
    if (IN6_IS_ADDR_LOOPBACK(a))
        return "a loopback address";
    if (IN6_IS_ADDR_V4COMPAT(a))
        return "a deprecated IPv4-compatible address";
    if ((b[0] & 0xfe) == 0xfc)
        return "a unique-local (private) address";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "a link-local address";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "a site-local address";
    if (b[0] == 0xff)
        return "a multicast address";
    return NULL;
}

static int same_address(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return 0;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

/* True when addr is one of this host's interface addresses. */
static int address_is_local(const struct sockaddr *addr)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0)
        return 1;   /* cannot tell: treat as local, the safe answer */
    int local = 0;
    for (struct ifaddrs *i = list; i && !local; i = i->ifa_next)
        local = i->ifa_addr && same_address(i->ifa_addr, addr);
    freeifaddrs(list);
    return local;
}

int webhook_dest_check(const struct webhook_dest_policy *p, const struct sockaddr *addr, char *why,
                       size_t why_len)
{
    char text[INET6_ADDRSTRLEN] = "?";
    const char *kind;
    unsigned port;
    int loopback;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        kind = ipv4_kind(ntohl(in->sin_addr.s_addr));
        port = ntohs(in->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        kind = ipv6_kind(&in6->sin6_addr);
        port = ntohs(in6->sin6_port);
    } else {
        snprintf(why, why_len, "address family %d is not IP", addr->sa_family);
        return -1;
    }
    loopback = kind && (strstr(kind, "loopback") || strstr(kind, "unspecified"));
    if (p->api_port && port == p->api_port && (loopback || address_is_local(addr))) {
        snprintf(why, why_len, "%s port %u is this server's own API", text, port);
        return -1;
    }
    if (kind && !p->allow_private) {
        snprintf(why, why_len, "%s is %s (refused unless the server sets webhook_allow_private)", text, kind);
        return -1;
    }
    return 0;
}

/* The policy applied to a URL's host when it needs no DNS to answer. */
static int check_literal_host(const struct webhook_dest_policy *p, const char *host, unsigned port,
                              char *why, size_t why_len)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    char bare[256];
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof bare) {
        memcpy(bare, host + 1, len - 2);
        bare[len - 2] = '\0';
        char *zone = strchr(bare, '%');
        if (zone)
            *zone = '\0';
    } else {
        snprintf(bare, sizeof bare, "%s", host);
    }
    size_t blen = strlen(bare);
    if (strcasecmp(bare, "localhost") == 0 || (blen > 10 && strcasecmp(bare + blen - 10, ".localhost") == 0))
        snprintf(bare, sizeof bare, "127.0.0.1");
    if (inet_pton(AF_INET, bare, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, bare, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
    } else {
        return 0;   /* a name: checked on the addresses it resolves to, at connect time */
    }
    return webhook_dest_check(p, (struct sockaddr *)&ss, why, why_len);
}

int webhook_url_check(const struct webhook_dest_policy *p, const char *url, size_t max_len, struct sb_err *err)
{
    if (!url || strlen(url) < strlen("http://x"))
        return sb_err_set(err, 400, "invalid webhook url: give an http:// or https:// URL");
    if (strlen(url) >= max_len)
        return sb_err_set(err, 400, "invalid webhook url: longer than %zu characters", max_len - 1);
    CURLU *u = curl_url();
    if (!u)
        return sb_err_set(err, 500, "out of memory parsing a URL");
    char *scheme = NULL, *host = NULL, *port = NULL;
    char why[256] = "";
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
        snprintf(why, sizeof why, "not a URL");
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        snprintf(why, sizeof why, "the scheme must be http or https");
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0])
        snprintf(why, sizeof why, "no host");
    else if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        snprintf(why, sizeof why, "no port");
    else
        check_literal_host(p, host, (unsigned)strtoul(port, NULL, 10), why, sizeof why);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    if (why[0])
        return sb_err_set(err, 400, "invalid webhook url: %s", why);
    return 0;
}
