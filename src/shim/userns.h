/*
 * userns.h - id maps of a sandbox's user namespace.
 *
 * Written by the shim (host root) for a child that has just unshared
 * CLONE_NEWUSER: sandbox ids 0..count-1 become host ids base..base+count-1.
 * Because the writer holds CAP_SETUID/CAP_SETGID in the parent namespace,
 * setgroups stays allowed inside and needs no "deny".
 *
 * Owns: nothing.  Never: maps host id 0 or any id outside [base, base+count).
 */
#ifndef SB_SHIM_USERNS_H
#define SB_SHIM_USERNS_H

#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/err.h"

#define SB_USERNS_RANGE SB_UID_RANGE

/* gid_map first, then uid_map, each "0 <base> <count>". 400 if base is 0. */
int userns_write_maps(pid_t pid, uint32_t base, uint32_t count, struct sb_err *err);

#endif
