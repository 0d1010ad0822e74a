/*
 * userns.c - writes /proc/<pid>/{gid,uid}_map for a sandbox.
 *
 * Owns: nothing.  Never: maps host root into a sandbox.
 */
#include "shim/userns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"

static int write_map(pid_t pid, const char *file, uint32_t base, uint32_t count, struct sb_err *err)
{
    char path[64], line[64];
    snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, file);
    snprintf(line, sizeof(line), "0 %u %u\n", base, count);
    if (sb_write_file(path, line) < 0)
        return sb_err_sys(err, 500, "userns: writing \"0 %u %u\" to %s", base, count, path);
    return 0;
}

int userns_write_maps(pid_t pid, uint32_t base, uint32_t count, struct sb_err *err)
{
    if (base == 0 || count == 0 || (uint64_t)base + count > UINT32_MAX)
        return sb_err_set(err, 400, "userns: invalid id range %u+%u (host root must never be mapped)",
                          base, count);
    if (write_map(pid, "gid_map", base, count, err) < 0)
        return -1;
    return write_map(pid, "uid_map", base, count, err);
}
