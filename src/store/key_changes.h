/*
 * key_changes.h - telling a running server that API keys were revoked,
 * whichever process revoked them, so it may cache keys it has checked and
 * still stop honouring a revoked one at once.
 *
 * Every revocation touches <data-dir>/keys.changed after its transaction
 * committed; a server watches that file with inotify and, before it trusts
 * a cached key, drains the watch without blocking. The change is queued by
 * the kernel during the touch, so a request that arrives after `sandbase key
 * revoke` returned always sees it.
 */
#ifndef SB_STORE_KEY_CHANGES_H
#define SB_STORE_KEY_CHANGES_H

#include "core/err.h"

/* Marks that keys changed (creates the file when missing). Call after every
 * revocation has committed. */
int store_keys_changed_mark(const char *data_dir, struct sb_err *err);

struct store_key_watch;
/* Watches data_dir's marker (created when missing). Caller owns the result. */
struct store_key_watch *store_key_watch_open(const char *data_dir, struct sb_err *err);
void store_key_watch_close(struct store_key_watch *w);
/* 1 when keys may have changed since the last call (or the watch cannot
 * tell any more: then always 1), 0 when they did not. One read(2). */
int store_key_watch_changed(struct store_key_watch *w);

#endif
