/*
 * sandbox_files.h - file operations inside one sandbox's root filesystem,
 * done by the host without trusting anything the sandbox controls.
 *
 * The root is a directory fd (the sandbox's /, reached through
 * /proc/<init>/root: registry_fs_open). Every path a client names is made
 * absolute lexically (relative paths and "~" from the acting user's home;
 * ".." refused) and then resolved by the kernel from that fd with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): "..", absolute symlinks
 * and symlinked parents stay inside the root, magic links (/proc/N/root,
 * /proc/N/fd/M) are refused. Work below a resolved directory is done with
 * *at calls on single names and O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, so a
 * sandbox that swaps a directory for a symlink between two steps gets the
 * step refused, never followed. Files are opened O_PATH first and reopened
 * only when they are regular (a FIFO or device is never opened), and
 * nothing on procfs or sysfs is served.
 *
 * As the sandbox's user (fs->as_user) every call runs with that user's
 * host fsuid/fsgid and supplementary groups on the calling thread (which
 * drops root's capabilities for it), so the kernel enforces its
 * permissions; as root, the host's root does it and new files get the
 * sandbox root's mapped ids. Either way what is created belongs to the
 * acting user inside the sandbox. Every function blocks on the disk: call
 * from a worker, never from the loop. Errors carry the HTTP status (400 bad
 * path or wrong type, 403 permission, 404 missing, 409 exists, 507 disk
 * quota, 500 otherwise) and name the path as the client gave it.
 */
#ifndef SB_RUNTIME_SANDBOX_FILES_H
#define SB_RUNTIME_SANDBOX_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core/err.h"

#define SB_FS_PATH_MAX 4096

/* One sandbox's filesystem as one acting user sees it. Filled by
 * registry_fs_open; sb_fs_close frees it. */
struct sb_fs {
    int root_fd;                /* O_PATH of the sandbox's /, owned */
    int as_user;                /* act with uid/gid's credentials (else host root) */
    uid_t uid;                  /* host ids of the acting user: owner of what is created */
    gid_t gid;
    uint32_t id_base;           /* host id of sandbox id 0 (uid and gid maps agree) */
    char home[256];             /* relative paths start here */
    char *passwd, *group;       /* the sandbox's /etc/passwd and /etc/group, loaded on first use */
};
void sb_fs_close(struct sb_fs *fs);

enum sb_fs_type { SB_FS_FILE, SB_FS_DIR, SB_FS_SYMLINK, SB_FS_OTHER };

struct sb_fs_entry {
    char *path;                 /* owned: absolute path inside the sandbox */
    const char *name;           /* into path: its last component ("/" for the root) */
    enum sb_fs_type type;       /* of the entry itself (a symlink is SB_FS_SYMLINK) */
    uint64_t size;
    uint32_t mode;              /* st_mode */
    uint32_t uid, gid;          /* as the sandbox sees them */
    int64_t mtime_ms;
    char *symlink_target;       /* owned: for symlinks, the target made absolute; else NULL */
};
void sb_fs_entry_clear(struct sb_fs_entry *e);
void sb_fs_entries_free(struct sb_fs_entry *list, size_t count);

/* The sandbox's view of a host uid or gid (65534, nobody, for one outside
 * its range). */
uint32_t sb_fs_sandbox_id(const struct sb_fs *fs, uint32_t host_id);

/* The user or group name of a sandbox id, from the sandbox's own
 * /etc/passwd or /etc/group; the number as text when it has none. */
void sb_fs_id_name(struct sb_fs *fs, int group, uint32_t id, char *out, size_t len);

/* The lexical absolute form of a client's path (see the top comment): 400
 * for an empty path, "..", a NUL or more than SB_FS_PATH_MAX-1 bytes. */
int sb_fs_path(const struct sb_fs *fs, const char *in, char out[SB_FS_PATH_MAX], struct sb_err *err);

/* The entry at path itself (a final symlink is not followed). */
int sb_fs_stat(struct sb_fs *fs, const char *path, struct sb_fs_entry *out, struct sb_err *err);

/* The entries below the directory at path (a final symlink is followed
 * inside the root), depth levels deep (1: its children), directories before
 * their contents; symlinks are listed, not descended into. At most
 * max_entries (413 past it). *out is the caller's (sb_fs_entries_free). */
int sb_fs_list(struct sb_fs *fs, const char *path, int depth, size_t max_entries,
               struct sb_fs_entry **out, size_t *count, struct sb_err *err);

/* Opens the regular file at path for reading (a final symlink followed
 * inside the root): *fd (caller closes) and its stat. 400 for a directory or
 * anything but a regular file. */
int sb_fs_open_read(struct sb_fs *fs, const char *path, int *fd, struct stat *st, struct sb_err *err);

/* A file being written: bytes go to a temporary file beside the target,
 * which replaces the target at commit (rename), so a reader sees the old
 * file or the new one, never a part. Missing parents are created. */
struct sb_fs_writer {
    int dir_fd, fd;
    char name[256], tmp[300];
    char path[SB_FS_PATH_MAX];
    uint64_t written;
};
int sb_fs_write_begin(struct sb_fs *fs, const char *path, struct sb_fs_writer *w, struct sb_err *err);
/* 507 when the sandbox's disk is full (then abort it). */
int sb_fs_write_chunk(struct sb_fs *fs, struct sb_fs_writer *w, const void *data, size_t len,
                      struct sb_err *err);
int sb_fs_write_commit(struct sb_fs *fs, struct sb_fs_writer *w, struct sb_err *err);
/* Removes the temporary file; the target is unchanged. Safe after a failed
 * begin or a commit (does nothing then). */
void sb_fs_write_abort(struct sb_fs *fs, struct sb_fs_writer *w);
/* begin + one chunk + commit. */
int sb_fs_write(struct sb_fs *fs, const char *path, const void *data, size_t len, struct sb_err *err);

/* mkdir, or mkdir -p with parents (an existing directory is then fine;
 * without parents it is 409). */
int sb_fs_mkdir(struct sb_fs *fs, const char *path, int parents, struct sb_err *err);

/* Removes a file or symlink, or a directory: empty, or with everything in
 * it when recursive (400 "not empty" otherwise). Never follows a symlink
 * and never descends into another filesystem. */
int sb_fs_remove(struct sb_fs *fs, const char *path, int recursive, struct sb_err *err);

/* rename(2) of source to destination, creating destination's parents; 409
 * when destination exists and overwrite is not set. */
int sb_fs_move(struct sb_fs *fs, const char *source, const char *destination, int overwrite,
               struct sb_err *err);

/* Opens the directory at path (final symlink followed inside the root) for
 * reading, checked to be a directory on a served filesystem: for walkers
 * (tar, watch) that then go on with *at calls. Caller closes *fd. */
int sb_fs_open_dir(struct sb_fs *fs, const char *path, int *fd, struct sb_err *err);

/* Runs the calling thread with the acting user's credentials until
 * sb_fs_creds_leave (nothing as root). The functions above do it
 * themselves; for walkers that use raw *at calls in between. */
struct sb_fs_creds {
    int active;
    int ngroups;
    gid_t groups[64];
    uid_t fsuid;
    gid_t fsgid;
};
int sb_fs_creds_enter(const struct sb_fs *fs, struct sb_fs_creds *c, struct sb_err *err);
void sb_fs_creds_leave(struct sb_fs_creds *c);

/* Maps an errno from an operation on path to the API's status and message. */
int sb_fs_errno(struct sb_err *err, int errnum, const char *what, const char *path);

#endif
