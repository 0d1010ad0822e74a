/*
 * mounts.h - the sandbox's root filesystem, built inside its new mount
 * namespace by its PID 1 while that process is still host root.
 *
 * Result: an overlay root (template rootfs lower, upper/work on the
 * per-sandbox ext4 image), the template's binds read-only, fresh /proc with
 * crun's masked and read-only paths, a tmpfs /dev with six device nodes,
 * devpts and /dev/shm, read-only sysfs with /sys/firmware masked, then
 * pivot_root with the old root detached. Nothing is mounted in the host's
 * namespace, so teardown needs no unmounting: the mounts die with the
 * namespace and the loop device clears itself (LO_FLAGS_AUTOCLEAR).
 *
 * Owns: nothing after return (every fd it opens is closed).
 * Never: resolves a path inside the new root without RESOLVE_IN_ROOT, so a
 * symlink in the template cannot point a mount at the host.
 */
#ifndef SB_SHIM_MOUNTS_H
#define SB_SHIM_MOUNTS_H

#include <sys/types.h>

#include "core/err.h"
#include "proto/spec.h"

struct sb_mount_plan {
    const char *sandbox_dir;        /* absolute; its root/ is the mount point */
    const char *loop_dev;           /* "/dev/loopN" holding the empty ext4 upper filesystem */
    const char *lower;              /* template rootfs, absolute */
    uid_t root_uid;                 /* host ids of the sandbox's root (uid_base) */
    gid_t root_gid;
    const struct sb_spec_bind *binds;
    int bind_count;
    const char *hostname;           /* for /etc/hosts and /etc/hostname when the template lacks them */
    int allow_setuid;               /* sudo template: the overlay root is not nosuid */
};

/* Must run in a private mount namespace (and the new PID/net namespaces, for
 * /proc and /sys) with umask 0. On success the caller's root and cwd are the
 * new root. */
int mounts_build_root(const struct sb_mount_plan *plan, struct sb_err *err);

#endif
