/*
 * init.h - the sandbox's PID 1: it only reaps.
 *
 * Orphans inside the sandbox's PID namespace are re-parented to PID 1; it
 * waits for them so they never pile up as zombies. It installs no signal
 * handler, so nothing inside the sandbox can signal it (the kernel drops
 * signals to a namespace's init that has no handler); the shim ends it with
 * SIGKILL from outside, which tears down the whole namespace.
 *
 * Owns: nothing.  Never: returns, or runs anything but the embedded reaper.
 */
#ifndef SB_SHIM_INIT_H
#define SB_SHIM_INIT_H

/* Becomes src/init/sandbox_init.c, the embedded few-KiB static reaper, by
 * exec'ing it from a memfd: PID 1 then no longer holds a copy-on-write copy
 * of the shim's memory. If that exec fails, reaps in this process instead:
 * blocks SIGCHLD (so it is queued, not discarded) and reaps forever. */
__attribute__((noreturn)) void init_reap_forever(void);

#endif
