/*
 * fs.h - small filesystem helpers shared by the server, the CLI and the shim.
 */
#ifndef SB_CORE_FS_H
#define SB_CORE_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

/* mkdir -p: every missing component of path is created with mode (existing
 * ones are left as they are); path must end up a directory. 400 when the
 * path is empty or too long, 500 with the errno otherwise. */
int sb_mkdir_p(const char *path, mode_t mode, struct sb_err *err);

/* Writes s to the existing file at path in one write(2), as kernel files
 * (cgroupfs, procfs, sysctls) want it. 0, or -1 with errno set (EIO for a
 * short write). Only syscalls: safe in a child that shares its parent's
 * memory (vfork-like). */
int sb_write_file(const char *path, const char *s);

/* Writes all len bytes to fd, retrying short writes and EINTR. -1 with
 * errno on the first error. */
int sb_write_all(int fd, const void *data, size_t len);

/* rm -rf: removes path and everything below it; never follows a symlink and
 * never descends into another filesystem (a mount below path is left, and
 * so is the directory holding it: call sb_unmount_below first). 0 when path
 * is gone afterwards or never existed; 500 naming the first entry that
 * could not be removed otherwise. */
int sb_remove_tree(const char *path, struct sb_err *err);

/* Detaches (MNT_DETACH) every mount at or below dir, deepest first. */
void sb_unmount_below(const char *dir);

/* Makes path absolute against the current directory, lexically: "." and
 * empty components are dropped and ".." goes up one component (the path
 * need not exist yet, so nothing is resolved on disk). Writes to out (len
 * bytes); 400 when path is empty or the result does not fit. out may be
 * path itself. */
int sb_path_absolute(const char *path, char *out, size_t len, struct sb_err *err);

/* Takes an exclusive advisory lock (flock) on path, creating it, and writes
 * our pid into it; *fd_out keeps the lock until closed (O_CLOEXEC, so no
 * child inherits it). 409 "... already used by pid N" when another process
 * holds it (*holder gets N, or 0 if unreadable); 500 otherwise. */
int sb_lock_file(const char *path, int *fd_out, pid_t *holder, struct sb_err *err);

/* Marks the directory at path as in use for as long as *fd_out stays open:
 * opens it (O_DIRECTORY, O_CLOEXEC) and takes a shared flock, which follows
 * the directory across renames, after checking that its inode is identity
 * (so the directory held is the one its holder expects). 409 when it was
 * replaced (another inode) or someone holds it exclusively; 500 when it
 * cannot be opened. The one who deletes such trees takes LOCK_EX|LOCK_NB
 * first and leaves them when that fails. */
int sb_dir_hold(const char *path, uint64_t identity, int *fd_out, struct sb_err *err);

#endif
