/*
 * webhook_dest.h - where a webhook may be sent (the SSRF policy).
 *
 * By default only public unicast addresses: loopback, private (RFC 1918,
 * CGNAT, unique-local), link-local (with the cloud metadata address
 * 169.254.169.254), unspecified, multicast and reserved ranges are refused.
 * webhook_allow_private lifts that for a receiver on the same host or LAN;
 * the server's own API port on a local address stays refused either way.
 * The delivery worker checks every address curl is about to connect to
 * (after DNS, so a name that resolves to 10.0.0.1 is refused too); the API
 * checks URLs whose host is an address literal when a webhook is written.
 */
#ifndef SB_RUNTIME_WEBHOOK_DEST_H
#define SB_RUNTIME_WEBHOOK_DEST_H

#include <stddef.h>
#include <sys/socket.h>

#include "core/err.h"

struct webhook_dest_policy {
    int allow_private;      /* config webhook_allow_private */
    unsigned api_port;      /* this server's own port: never a destination */
};

/* 0 when a delivery may connect to addr (AF_INET or AF_INET6, with port);
 * -1 otherwise, with the reason in why ("127.0.0.1 is a loopback address"). */
int webhook_dest_check(const struct webhook_dest_policy *p, const struct sockaddr *addr, char *why,
                       size_t why_len);
/* 0 when url is an http or https URL with a host, at most max_len - 1
 * bytes, whose host (when an address literal, or "localhost") passes
 * webhook_dest_check; 400 "invalid webhook url: <why>" otherwise. */
int webhook_url_check(const struct webhook_dest_policy *p, const char *url, size_t max_len, struct sb_err *err);

#endif
