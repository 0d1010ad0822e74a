/*
 * seccomp.h - the sandbox's syscall filter, compiled once, applied per exec.
 *
 * Policy: default ALLOW with a deny list at least as strict as Docker's
 * default profile's blocked set (module/kexec/keyring/bpf/perf/ptrace-class
 * calls, every mount-API call, setns/unshare, clone with any CLONE_NEW* flag,
 * clone3 -> ENOSYS so libc falls back to clone, TIOCSTI/TIOCLINUX ioctls,
 * AF_VSOCK sockets, io_uring), personality() limited to Docker's values, and
 * every other ABI (i386, x32) killed. Two BPF programs: libseccomp's main
 * filter and a small hand-written personality filter (libseccomp cannot
 * express "arg0 not in {..}" under a default-allow policy).
 *
 * Owns: the BPF arrays of a struct sb_seccomp (seccomp_free releases them).
 * Never: loads a filter in the calling process except through seccomp_apply.
 */
#ifndef SB_SHIM_SECCOMP_H
#define SB_SHIM_SECCOMP_H

#include <linux/filter.h>

#include "core/err.h"

struct sb_seccomp {
    struct sock_fprog main;          /* filter[] malloc'd */
    struct sock_fprog personality;   /* filter[] points into static storage */
};

/* Compiles the policy. On success the caller owns out (seccomp_free). */
int seccomp_build(struct sb_seccomp *out, struct sb_err *err);
void seccomp_free(struct sb_seccomp *f);
/* The policy built once per process (first call compiles it); never freed. */
int seccomp_default(const struct sb_seccomp **out, struct sb_err *err);
/* Loads both programs into the calling thread. no_new_privs must already be
 * set. Allocates nothing. Returns 0 or -1 with errno. */
int seccomp_apply(const struct sb_seccomp *f);

#endif
