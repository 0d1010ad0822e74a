/*
 * nft.h - nftables through libnftables: run a batch of nft commands as one
 * atomic transaction, in this process (no `nft` per sandbox), in the
 * caller's network namespace or in another one.
 *
 * Each call uses a fresh libnftables context, so calls are independent and
 * thread-safe. libnftables reads the namespace's whole ruleset before each
 * transaction, which is why sandboxes' rules live in their own namespaces
 * (network.c): a call there costs the same whatever the number of sandboxes.
 * Blocks on netlink: workers, start-up and the DNS forwarder only.
 *
 * Owns: nothing past a call. Never: builds rules itself; callers
 * (network.c, dns_forward.c) write the commands, from validated data only.
 */
#ifndef SB_RUNTIME_NFT_H
#define SB_RUNTIME_NFT_H

#include <stddef.h>

#include "core/err.h"

/* Runs cmds (nft syntax, several lines) atomically in the network
 * namespace netns_fd (an open /proc/PID/ns/net; -1 = the caller's): all or
 * nothing. Another namespace is joined by a short-lived thread of its own,
 * never by the caller. When output is given, what nft printed (a listing)
 * is copied there (truncated to output_len). The error names what nftables
 * refused. */
int nft_run(int netns_fd, const char *cmds, char *output, size_t output_len, struct sb_err *err);

#endif
