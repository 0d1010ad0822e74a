/*
 * fs.h - small filesystem helpers shared by the server, the CLI and the shim.
 */
#ifndef SB_CORE_FS_H
#define SB_CORE_FS_H

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

#endif
