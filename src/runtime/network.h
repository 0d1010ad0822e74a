/*
 * network.h - sandbox egress: a veth pair per sandbox with internet
 * access, an address from config network.range, NAT to network.uplink, one
 * nftables table of the server's in the host namespace (what is always
 * blocked, NAT) and one in each sandbox's own namespace (its allowOut,
 * denyOut and DNS-granted addresses); see network.c.
 *
 * Addressing (point-to-point, one gateway for all): the range's first
 * address G is the gateway, put on every sandbox's host-side veth
 * (sb<hex of the sandbox address>) as G/32 peer S/32; inside, eth0 has
 * S/32 peer G/32 and a default route via G. The DNS forwarder listens on
 * G:53 once for every sandbox.
 *
 * Attached when a sandbox is handed to a create (warm pools are built
 * before the create's settings are known, so pooled sandboxes stay
 * loopback-only until claimed): root in serve creates the veth with its
 * peer directly inside the sandbox's network namespace (/proc/<init>/ns/net,
 * owned by the host's initial user namespace, so sandboxed root cannot
 * change it) and configures it there through a netlink socket opened in
 * that namespace. A sandbox without egress gets no interface at all.
 *
 * Thread-safe; every call blocks on netlink/nftables: workers and start-up only.
 */
#ifndef SB_RUNTIME_NETWORK_H
#define SB_RUNTIME_NETWORK_H


#include "core/config.h"
#include "core/err.h"
#include "runtime/netpolicy.h"

struct sb_network;

/* cfg must outlive it. With an uplink configured, starts the DNS forwarder. */
struct sb_network *network_new(const struct sb_config *cfg, struct sb_err *err);
void network_free(struct sb_network *net);
/* Picks a free address for a new sandbox into p->address (503 when the
 * range is full). Released by network_release. */
int network_reserve(struct sb_network *net, struct sb_net_policy *p, struct sb_err *err);
/* Gives sandbox id (built, its shim answering) its interface, rules,
 * resolver and DNS registration for p (p->address reserved). On failure
 * the interface is removed again; the caller releases the address. */
int network_attach(struct sb_network *net, const char *id, const struct sb_net_policy *p, struct sb_err *err);
/* 1 when a create with this request policy (NULL = said nothing) may need
 * an interface: an uplink is configured and egress was not refused. */
int network_may_attach(const struct sb_network *net, const struct sb_net_policy *requested);
/* After a restart: takes p->address again, re-installs the sandbox's table
 * in its namespace when it is missing (an existing one is kept, with what
 * DNS added to it) and registers it with the DNS forwarder. */
int network_adopt(struct sb_network *net, const char *id, const struct sb_net_policy *p, struct sb_err *err);
/* Gives sandbox id the rules of p in place of old's (its stored policy).
 * With an interface (old->address set) its table is replaced in one
 * nftables transaction, its DNS registration replaced and its conntrack
 * entries flushed, so open connections the new rules forbid are cut (their
 * next packet is dropped) and allowed ones carry on; on failure old's
 * rules stay. Without one, p gets an address and an interface attached
 * (network_reserve, network_attach) unless p lets nothing out (denyOut
 * 0.0.0.0/0 and no allowOut); 400 when the server has no uplink. Fills
 * p->address. The always-blocked destinations are the host table's and
 * stay blocked whatever p says. */
int network_update(struct sb_network *net, const char *id, const struct sb_net_policy *old,
                   struct sb_net_policy *p, struct sb_err *err);
/* Removes the host-side veth (the sandbox's table goes with its
 * namespace), its conntrack entries and DNS registration, and frees the
 * address; idempotent, also for a sandbox never attached (p->address ""). */
void network_release(struct sb_network *net, const char *id, const struct sb_net_policy *p);
/* network_adopt and network_release for a stored policy (the sandbox
 * row's network_json; "" = no egress, nothing to do). */
int network_adopt_stored(struct sb_network *net, const char *id, const char *text, struct sb_err *err);
void network_release_stored(struct sb_network *net, const char *id, const char *text);

#endif
