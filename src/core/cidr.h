/*
 * cidr.h - IP addresses and CIDR blocks as text: parsing, normalising,
 * containment. IPv4 and IPv6, no DNS, no allocation.
 *
 * Owns: nothing. Never: resolves names or touches the network.
 */
#ifndef SB_CORE_CIDR_H
#define SB_CORE_CIDR_H

#include <stdint.h>

struct sb_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    uint8_t addr[16];           /* network byte order; IPv4 in the first 4 bytes */
    int prefix;                 /* 0..32 or 0..128 */
};

/* "10.0.0.0/8", "192.0.2.7" (a /32), "fc00::/7", "2001:db8::1" (a /128).
 * Host bits set below the prefix ("10.0.0.1/8") are refused, so a rule
 * always means what it says. 0 or -1 (not an address or CIDR). */
int sb_cidr_parse(const char *text, struct sb_cidr *out);
/* Canonical text ("10.0.0.0/8"; a single address keeps its /32 or /128). */
void sb_cidr_format(const struct sb_cidr *c, char *out, unsigned len);
/* 1 when every address of inner lies within outer (same family). */
int sb_cidr_contains(const struct sb_cidr *outer, const struct sb_cidr *inner);
/* IPv4 helpers: the address as a host-order integer and back. */
uint32_t sb_cidr_v4(const struct sb_cidr *c);
void sb_ipv4_format(uint32_t host_order, char *out, unsigned len);

#endif
