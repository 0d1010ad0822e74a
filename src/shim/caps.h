/*
 * caps.h - the credentials a sandboxed process ends up with: ids,
 * capabilities, no_new_privs and resource limits.
 *
 * Everything here runs in a forked child just before exec (or in the
 * sandbox's PID 1), allocates nothing and reports failures through errno,
 * because the caller can only pass an errno back to the shim.
 *
 * Owns: nothing.
 * Never: raises a capability or a limit the caller did not have.
 */
#ifndef SB_SHIM_CAPS_H
#define SB_SHIM_CAPS_H

#include <sys/types.h>

/* What a sandboxed process holds. SB_CAPS_ROOT_DEFAULT: Docker's default set,
 * for `root`. SB_CAPS_NONE: nothing, and an empty bounding set, so no exec
 * can gain anything. SB_CAPS_NONE_MAY_SUDO: nothing now, but the bounding set
 * keeps root's default set, so a setuid-root program (sudo, in a template
 * whose processes run without no_new_privs) gets what a sandboxed `root`
 * gets, never more. */
enum sb_caps_profile { SB_CAPS_NONE, SB_CAPS_ROOT_DEFAULT, SB_CAPS_NONE_MAY_SUDO };

/* Resource limits set before entering the user namespace (raising a hard
 * limit needs host privilege): RLIMIT_NOFILE 4096/4096, RLIMIT_CORE 0/0. */
int caps_set_rlimits(void);
/* setgroups({gid}), setresgid(gid), setresuid(uid). Needs CAP_SETUID/SETGID
 * in the current user namespace. */
int caps_set_ids(uid_t uid, gid_t gid);
/* Drops every capability outside the profile from the bounding set, sets
 * effective = permitted = profile, inheritable = ambient = empty. Run after
 * caps_set_ids (setresuid may otherwise change the sets again). */
int caps_apply(enum sb_caps_profile profile);
/* PR_SET_NO_NEW_PRIVS 1. */
int caps_no_new_privs(void);

#endif
