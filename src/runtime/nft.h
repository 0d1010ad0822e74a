/*
 * nft.h - nftables through libnftables: run a batch of nft commands as one
 * atomic transaction, in this process (no `nft` per sandbox).
 *
 * One libnftables context for the process, behind a mutex (a context is not
 * thread-safe). Thread-safe; blocks on the netlink round trip (well under a
 * millisecond for a sandbox's table): workers and the DNS forwarder only.
 *
 * Owns: the context (nft_shutdown frees it). Never: builds rules itself;
 * callers (network.c) write the commands, from validated data only.
 */
#ifndef SB_RUNTIME_NFT_H
#define SB_RUNTIME_NFT_H

#include "core/err.h"

/* Runs cmds (nft syntax, several lines) atomically: all or nothing. The
 * error names what nftables refused. */
int nft_run(const char *cmds, struct sb_err *err);
/* 1 when table `inet name` exists, 0 when not, -1 on error. */
int nft_table_exists(const char *name, struct sb_err *err);
void nft_shutdown(void);

#endif
