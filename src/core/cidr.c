/*
 * cidr.c - IP and CIDR text parsing for network rules and config (see cidr.h).
 */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sb_cidr_parse(const char *text, struct sb_cidr *out)
{
    char buf[64];
    if (!text || strlen(text) >= sizeof buf || !*text)
        return -1;
    snprintf(buf, sizeof buf, "%s", text);
    memset(out, 0, sizeof *out);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -1;
    int max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p))
            return -1;
        out->prefix = atoi(p);
        if (out->prefix > max)
            return -1;
    }
    for (int bit = out->prefix; bit < max; bit++)   /* host bits must be zero */
        if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
            return -1;
    return 0;
}

void sb_cidr_format(const struct sb_cidr *c, char *out, unsigned len)
{
    char addr[INET6_ADDRSTRLEN] = "";
    inet_ntop(c->family, c->addr, addr, sizeof addr);
    snprintf(out, len, "%s/%d", addr, c->prefix);
}

int sb_cidr_contains(const struct sb_cidr *outer, const struct sb_cidr *inner)
{
    if (outer->family != inner->family || inner->prefix < outer->prefix)
        return 0;
    for (int bit = 0; bit < outer->prefix; bit++) {
        uint8_t mask = (uint8_t)(0x80 >> (bit % 8));
        if ((outer->addr[bit / 8] & mask) != (inner->addr[bit / 8] & mask))
            return 0;
    }
    return 1;
}

uint32_t sb_cidr_v4(const struct sb_cidr *c)
{
    uint32_t n;
    memcpy(&n, c->addr, 4);
    return ntohl(n);
}

void sb_ipv4_format(uint32_t host_order, char *out, unsigned len)
{
    struct in_addr a = {.s_addr = htonl(host_order)};
    char buf[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    snprintf(out, len, "%s", buf);
}
