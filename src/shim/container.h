/*
 * container.h - building one sandbox and putting processes into it.
 *
 * Used only by the shim process (host side, root, single-threaded). The shim
 * calls container_create() once; from then on it holds the sandbox's
 * namespace fds and cgroup, and every process enters with
 * container_enter_and_exec() in a child the shim has just started. Nothing
 * here talks to clients or the server.
 *
 * Set-up order (see docs/SECURITY.md): overlay root (template lower,
 * per-sandbox upper/work on a size-capped filesystem), new mount/pid/uts/ipc/
 * net/cgroup namespaces and a user namespace mapping sandbox ids 0-65535 to
 * host uid_base.., pivot_root with the old root detached, fresh /proc with
 * masked and read-only paths, minimal /dev, loopback up, a PID 1 that only
 * reaps, cgroup limits (v1 or v2 behind cgroup.h).
 */
#ifndef SB_SHIM_CONTAINER_H
#define SB_SHIM_CONTAINER_H

#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/err.h"
#include "proto/spec.h"

enum sb_ns_index { SB_NS_USER, SB_NS_MNT, SB_NS_PID, SB_NS_UTS, SB_NS_IPC, SB_NS_NET, SB_NS_CGROUP, SB_NS_COUNT };

struct sb_container {
    char id[32];
    pid_t init_pid;                     /* host pid of the sandbox's PID 1 */
    int ns_fds[SB_NS_COUNT];            /* opened from /proc/<init_pid>/ns/<name>, O_CLOEXEC */
    char sandbox_dir[SB_PATH_MAX];      /* <data-dir>/sandboxes/<id> (upper, work, disk image) */
    char root_dir[SB_PATH_MAX];         /* the merged root as the host sees it (for file APIs) */
    struct sb_spec spec;                /* copy of what it was built from; owns spec.env_json */
    void *cgroup;                       /* struct sb_cgroup *, see cgroup.h */
};

/* spec: the resolved spec (proto/spec.h); id, dirs, ids, user, binds and
 * limits all come from it. rootfs: the lower layer to mount, normally
 * /proc/self/fd/N/rootfs through the template dir the caller holds
 * (sb_dir_hold), so the tree mounted is the one held. Only the id maps
 * serve writes are supported: sandbox ids 0..SB_UID_RANGE-1, the same
 * range for gids (400 otherwise). */
struct sb_container_config {
    const struct sb_spec *spec;
    const char *rootfs;
};

int container_create(const struct sb_container_config *cfg, struct sb_container *out, struct sb_err *err);

/* What a process needs to start inside the sandbox. */
struct sb_container_exec {
    const char *path;                   /* cmd: searched in the sandbox's PATH if it has no '/' */
    char *const *argv;                  /* NULL-terminated, argv[0] = cmd */
    char *const *envp;                  /* NULL-terminated */
    const char *cwd;
    int as_root;                        /* 0: the spec's user, no capabilities */
    const char *cgroup_leaf;            /* the process's own leaf cgroup (container_leaf_create) */
    int ctty;                           /* stdin is a terminal: make it the controlling one */
};

/* Called in a child the shim has just started (stdio already set up): joins
 * the leaf cgroup ex->cgroup_leaf and the sandbox's namespaces, clones once
 * more (CLONE_VM|CLONE_VFORK) to land inside the PID namespace (the intermediate exits at once; the grandchild's host pid is
 * written to pid_report_fd as a pid_t before exec), sets ids, drops
 * capabilities, sets no_new_privs, rlimits and the seccomp filter, and execs.
 * On failure before exec writes the errno (int) to err_fd, which must be
 * O_CLOEXEC, and _exit(127). Never returns.
 * The caller must be a child subreaper (PR_SET_CHILD_SUBREAPER): the
 * grandchild is re-parented to it when the intermediate exits. Signal
 * dispositions and the mask are reset here; fds >= 3 other than err_fd are
 * closed at exec. A missing command or cwd reports ENOENT, a
 * non-executable one EACCES (no /bin/sh fallback). */
__attribute__((noreturn))
void container_enter_and_exec(const struct sb_container *c, const struct sb_container_exec *ex,
                              int pid_report_fd, int err_fd);

/* Per-process leaf cgroups under the sandbox's cgroup, so a process tree
 * (grandchildren and setsid'd daemons included) can be counted and killed as
 * one, while the sandbox-wide limits still hold for the sum. */
int container_leaf_create(struct sb_container *c, const char *leaf, struct sb_err *err);
/* Freeze, SIGKILL everything in the leaf, thaw (v1); cgroup.kill (v2). */
int container_leaf_kill(struct sb_container *c, const char *leaf, struct sb_err *err);
int container_leaf_count(struct sb_container *c, const char *leaf);   /* processes left, -1 on error */
void container_leaf_remove(struct sb_container *c, const char *leaf);

int container_freeze(struct sb_container *c, struct sb_err *err);
int container_thaw(struct sb_container *c, struct sb_err *err);
/* 1 if the cgroup recorded an OOM kill since the last call, 0 if not, -1 on
 * error; *count is the total so far. */
int container_oom_events(struct sb_container *c, uint64_t *count);
/* Kills everything, removes cgroups and the sandbox dir, frees c's fds,
 * cgroup and spec.env_json. Mounts need no unmounting: they exist only in the
 * sandbox's mount namespace, which dies with its processes and fds, and the
 * loop device detaches itself. PID 1 finishes exiting only once the shim
 * has reaped every process it started in the sandbox; destroy reaps PID 1
 * only if it is already gone (WNOHANG), otherwise the shim's reaper does. */
int container_destroy(struct sb_container *c, struct sb_err *err);

#endif
