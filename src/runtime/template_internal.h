/*
 * template_internal.h - what the template files share among themselves:
 * template.c (format, layout, in use), template_tree.c (walk, rootfs writes
 * and copies, ownership shift), template_build.c (staging, commit,
 * template.json, host builds) and template_debian.c (debootstrap).
 *
 * Private to src/runtime/template*.c; everyone else uses runtime/template.h.
 */
#ifndef SB_RUNTIME_TEMPLATE_INTERNAL_H
#define SB_RUNTIME_TEMPLATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core/err.h"
#include "runtime/template.h"

/* What every built template gets (template.json and its /etc). */
#define DEFAULT_USER "user"
#define DEFAULT_UID 1000
#define DEFAULT_HOME "/home/user"
#define DEFAULT_WORKDIR "/workspace"     /* SandBase's default cwd for processes */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SANDBOX_ID_RANGE SB_UID_RANGE

/* ---- template.c: names, paths, retiring */

/* snprintf into out; 400 "path too long under the data dir" when it does not fit. */
int path_fmt(char *out, size_t len, struct sb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int mkdir_if_missing(const char *path, mode_t mode, struct sb_err *err);
/* Renames a template directory to a fresh .retired-<name>-XXXXXX beside it. */
int retire_dir(const char *data_dir, const char *name, const char *path, struct sb_err *err);

/* ---- template_tree.c: walking, writing into a rootfs, copying, shifting */

/* A rootfs being filled: `id_add` is added to every owner id written
 * (uid_base for host builds; 0 for debian builds, shifted once at the end). */
struct rootfs {
    int fd;
    uint32_t id_add;
};

/* How copied entries are owned: force_id >= 0 gives every entry that sandbox
 * id; otherwise the source's id (which must be < 65536) is kept. */
struct copy_owner {
    const struct rootfs *dst;
    long force_id;
};

/* Removes a whole tree, detaching any mounts below it first. */
int remove_tree(const char *path, struct sb_err *err);
int copy_file_data(int src, int dst);
/* The same, stopping after max bytes even if the file grows meanwhile. */
int copy_file_data_max(int src, int dst, uint64_t max);
int rootfs_chown(const struct rootfs *r, const char *path, uint32_t id, struct sb_err *err);
int rootfs_mkdir(const struct rootfs *r, const char *path, mode_t mode, uint32_t id,
                 struct sb_err *err);
int rootfs_symlink(const struct rootfs *r, const char *target, const char *path, struct sb_err *err);
/* Creates (or replaces, never following a symlink) a file with this content. */
int rootfs_write(const struct rootfs *r, const char *path, const char *text, mode_t mode,
                 uint32_t id, struct sb_err *err);
int rootfs_append(const struct rootfs *r, const char *path, const char *text, struct sb_err *err);
/* Copies a file, symlink or directory tree (other kinds are skipped),
 * keeping modes and mapping owners as `owner` says. */
int copy_entry(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
               const struct copy_owner *owner, struct sb_err *err);
/* Adds uid_base to the owner of every entry of the tree (sandbox ids -> mapped host ids). */
int shift_ownership(const char *rootfs, uint32_t uid_base, struct sb_err *err);

/* ---- template_build.c: staging and committing a build */

/* A build in progress: everything lives under `dir` until build_commit(). */
struct build {
    char dir[SB_PATH_MAX];      /* <data-dir>/templates/.build-<name>-XXXXXX */
    char final[SB_PATH_MAX];    /* <data-dir>/templates/<name> */
    char rootfs_path[SB_PATH_MAX];
    struct rootfs rootfs;
    int force;                  /* an existing template of the same name is replaced */
};

int build_begin(const char *data_dir, const char *name, uint32_t id_add, int force,
                struct build *b, struct sb_err *err);
/* Removes everything a failed build made. */
void build_abort(struct build *b);
/* Moves the finished build into place in one rename; with force, swaps out
 * and retires an existing template of the same name. */
int build_commit(struct build *b, const char *data_dir, const char *name, struct sb_err *err);
/* sudo: the template's "sudo" (template.h). */
int write_template_json(const struct build *b, const char *name, const char *kind,
                        const char *packages, int bind_usr, int sudo, struct sb_err *err);
int write_network_files(const struct rootfs *r, struct sb_err *err);
/* The default user's home, seeded from the rootfs's own etc/skel if any. */
int make_user_dirs(const struct rootfs *r, struct sb_err *err);

#endif
