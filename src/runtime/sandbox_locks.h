/*
 * sandbox_locks.h - one lock per sandbox id, for the registry's state
 * transitions (pause, resume, destroy, a dead shim's stop, TTL kill), so a
 * slow or stuck shim call holds up only its own sandbox.
 *
 * A set of held ids under one mutex, waiters on one condition variable:
 * nothing is allocated per sandbox while nobody holds its lock. Thread-safe;
 * not reentrant (locking an id twice from one thread deadlocks).
 */
#ifndef SB_RUNTIME_SANDBOX_LOCKS_H
#define SB_RUNTIME_SANDBOX_LOCKS_H

struct sb_sandbox_locks;

struct sb_sandbox_locks *sandbox_locks_new(void);   /* NULL when out of memory */
void sandbox_locks_free(struct sb_sandbox_locks *locks);
/* Blocks until id is free, then holds it. -1 only when out of memory. */
int sandbox_lock(struct sb_sandbox_locks *locks, const char *id);
void sandbox_unlock(struct sb_sandbox_locks *locks, const char *id);

#endif
