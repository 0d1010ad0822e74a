/*
 * dns_forward.h - the sandboxes' DNS resolver: a small UDP forwarder in
 * `serve` on the sandboxes' gateway address (port 53). It is how allowOut
 * names are enforced: for a sandbox whose allowOut names example.com, the
 * A records upstream gives for example.com are added (with their TTL, at
 * least 5 minutes) to that sandbox's nftables set of allowed addresses
 * (set dns4 of table SB_NET_SANDBOX_TABLE in the sandbox's own namespace)
 * before the answer reaches the sandbox, so the connection that follows the
 * lookup is let through and nothing else is. Names the sandbox may not use
 * are answered REFUSED when its denyOut covers 0.0.0.0/0 (so DNS cannot
 * carry data out either); otherwise they are forwarded without granting
 * anything. Answers come only from the configured upstream, matched by a
 * fresh query id and the upstream's address, so a sandbox cannot forge one.
 *
 * Runs on a thread of its own (poll on two sockets); the add/remove calls
 * are thread-safe and never block on the network.
 */
#ifndef SB_RUNTIME_DNS_FORWARD_H
#define SB_RUNTIME_DNS_FORWARD_H

#include <stdint.h>

#include "core/err.h"
#include "runtime/netpolicy.h"

/* The table inside each sandbox's network namespace (network.c). */
#define SB_NET_SANDBOX_TABLE "sandbase"

struct sb_dns_forward;

/* Listens on listen_ip:53 (IPv4, host order; IP_FREEBIND, so it may be
 * bound before any sandbox interface carries the address) and forwards to
 * upstream ("IP" or "IP:port"; "" = the first IPv4 nameserver of
 * /etc/resolv.conf). */
struct sb_dns_forward *dns_forward_start(uint32_t listen_ip, const char *upstream, struct sb_err *err);
void dns_forward_stop(struct sb_dns_forward *fwd);
/* Serves queries from sandbox_ip (host order) under policy p (copied);
 * allowed answers go to the dns4 set in namespace netns_fd (dup'd: the
 * forwarder keeps its own until dns_forward_remove). A sandbox already
 * registered has its policy replaced in place; once this returns, no answer
 * to a query asked under the old one adds anything (one in flight is
 * waited for). */
int dns_forward_add(struct sb_dns_forward *fwd, uint32_t sandbox_ip, int netns_fd,
                    const struct sb_net_policy *p, struct sb_err *err);
void dns_forward_remove(struct sb_dns_forward *fwd, uint32_t sandbox_ip);

#endif
