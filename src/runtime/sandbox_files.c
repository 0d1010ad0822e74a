/*
 * sandbox_files.c - see sandbox_files.h: path resolution inside a sandbox's
 * root and the file operations built on it.
 *
 * The one way a client's path reaches the kernel is resolve(): openat2
 * from the root fd with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, retried on
 * the EAGAIN such lookups give while the tree is being renamed under them.
 * Everything else works on the fds it returns and on single names below
 * them, never on a path string put together here. Every public function
 * switches the thread to the acting user's credentials first and back
 * before it returns (creds_enter/creds_leave), on every path out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/id.h"
#include "runtime/sandbox_files.h"

#define MAX_TREE_DEPTH 256          /* recursive remove: deeper is refused, not overflowed */
#define ID_FILE_MAX (1u << 20)      /* /etc/passwd, /etc/group */

/* ---- credentials ---------------------------------------------------------- */

/* Raw syscalls: glibc's setgroups changes every thread of the process; the
 * kernel call changes only this one, which is what a worker needs. */
int sb_fs_creds_enter(const struct sb_fs *fs, struct sb_fs_creds *c, struct sb_err *err)
{
    memset(c, 0, sizeof *c);
    if (!fs->as_user)
        return 0;
    c->ngroups = getgroups(64, c->groups);
    if (c->ngroups < 0)
        return sb_err_sys(err, 500, "files: getgroups");
    c->fsgid = (gid_t)syscall(SYS_setfsgid, -1);
    c->fsuid = (uid_t)syscall(SYS_setfsuid, -1);
    gid_t g = fs->gid;
    if (syscall(SYS_setgroups, 1, &g) != 0)
        return sb_err_sys(err, 500, "files: setgroups");
    c->active = 1;
    syscall(SYS_setfsgid, fs->gid);
    syscall(SYS_setfsuid, fs->uid);
    if ((uid_t)syscall(SYS_setfsuid, -1) != fs->uid || (gid_t)syscall(SYS_setfsgid, -1) != fs->gid) {
        sb_fs_creds_leave(c);
        return sb_err_set(err, 500, "files: cannot take the sandbox user's ids");
    }
    return 0;
}

void sb_fs_creds_leave(struct sb_fs_creds *c)
{
    if (!c->active)
        return;
    syscall(SYS_setfsuid, c->fsuid);
    syscall(SYS_setfsgid, c->fsgid);
    syscall(SYS_setgroups, (size_t)c->ngroups, c->groups);
    c->active = 0;
}

/* ---- errors and paths ----------------------------------------------------- */

int sb_fs_errno(struct sb_err *err, int e, const char *what, const char *path)
{
    errno = e;
    switch (e) {
    case ENOENT:
        return sb_err_set(err, 404, "path '%s' does not exist", path);
    case ENOTDIR:
        return sb_err_set(err, 400, "%s '%s': a component of the path is not a directory", what, path);
    case EISDIR:
        return sb_err_set(err, 400, "path '%s' is a directory", path);
    case EACCES:
    case EPERM:
        return sb_err_set(err, 403, "%s '%s': permission denied", what, path);
    case EROFS:
        return sb_err_set(err, 403, "%s '%s': read-only file system", what, path);
    case EEXIST:
        return sb_err_set(err, 409, "path '%s' already exists", path);
    case ENOTEMPTY:
        return sb_err_set(err, 400, "directory '%s' is not empty (pass recursive=true to delete it "
                          "with everything in it)", path);
    case ELOOP:
        return sb_err_set(err, 400, "%s '%s': too many levels of symbolic links, or a link the "
                          "file API does not follow (/proc/*/root, /proc/*/fd/*)", what, path);
    case EXDEV:
        return sb_err_set(err, 400, "%s '%s': crosses a mount point", what, path);
    case ENAMETOOLONG:
        return sb_err_set(err, 400, "path '%s' is too long", path);
    case ENOSPC:
    case EDQUOT:
        return sb_err_set(err, 507, "%s '%s': not enough disk space in the sandbox", what, path);
    case EINVAL:
        return sb_err_set(err, 400, "%s '%s': invalid for this path", what, path);
    case EBUSY:
        return sb_err_set(err, 409, "%s '%s': busy (a mount point?)", what, path);
    default:
        return sb_err_sys(err, 500, "%s '%s'", what, path);
    }
}

/* Appends the components of in to out (holding len bytes of an absolute
 * path) lexically. ".." goes up one (clamped at /) when clamp is set, else
 * it is refused. */
static int path_append(char *out, size_t *len, const char *in, int clamp, struct sb_err *err)
{
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        const char *start = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - start);
        if (n == 0 || (n == 1 && start[0] == '.'))
            continue;
        if (n == 2 && start[0] == '.' && start[1] == '.') {
            if (!clamp)
                return sb_err_set(err, 400, "path '%s' contains '..': name the path without it", in);
            while (*len > 1 && out[*len - 1] != '/')
                (*len)--;
            if (*len > 1)
                (*len)--;
            out[*len] = '\0';
            continue;
        }
        if (*len + 1 + n >= SB_FS_PATH_MAX)
            return sb_err_set(err, 400, "path '%.64s...' is too long (at most %d bytes)", in,
                              SB_FS_PATH_MAX - 1);
        if (*len > 1)
            out[(*len)++] = '/';
        memcpy(out + *len, start, n);
        *len += n;
        out[*len] = '\0';
    }
    return 0;
}

int sb_fs_path(const struct sb_fs *fs, const char *in, char out[SB_FS_PATH_MAX], struct sb_err *err)
{
    if (!in || !*in)
        return sb_err_set(err, 400, "path must not be empty");
    size_t len = 1;
    strcpy(out, "/");
    const char *rest = in;
    if (in[0] == '~' && (in[1] == '\0' || in[1] == '/'))
        rest = in + 1;
    if (in[0] != '/' && path_append(out, &len, fs->home, 1, err) < 0)
        return -1;
    return path_append(out, &len, rest, 0, err);
}

/* The final component of an absolute path ("" for "/") and its directory. */
static const char *split_path(const char *abs, char dir[SB_FS_PATH_MAX])
{
    const char *slash = strrchr(abs, '/');
    size_t n = (size_t)(slash - abs);
    memcpy(dir, abs, n ? n : 1);
    dir[n ? n : 1] = '\0';
    return slash + 1;
}

/* procfs and sysfs are the sandbox's view of the kernel, not its files. */
static int check_served_fs(int fd, const char *path, struct sb_err *err)
{
    struct statfs sfs;
    if (fstatfs(fd, &sfs) != 0)
        return sb_fs_errno(err, errno, "stat", path);
    if (sfs.f_type == PROC_SUPER_MAGIC || sfs.f_type == SYSFS_MAGIC)
        return sb_err_set(err, 403, "path '%s' is on /proc or /sys, which the file API does not serve",
                          path);
    return 0;
}

/* The kernel's resolution of abs inside the root (see the top comment). */
static int resolve(const struct sb_fs *fs, const char *abs, int flags, int *fd_out, struct sb_err *err,
                   const char *shown)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    long fd = -1;
    for (int tries = 0; tries < 64; tries++) {
        fd = syscall(SYS_openat2, fs->root_fd, abs, &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN)
            break;
    }
    if (fd < 0)
        return sb_fs_errno(err, errno == EAGAIN ? EBUSY : errno, "open", shown ? shown : abs);
    if (check_served_fs((int)fd, shown ? shown : abs, err) < 0) {
        close((int)fd);
        return -1;
    }
    *fd_out = (int)fd;
    return 0;
}

/* The directory holding abs, as an O_PATH fd, and abs's last name. 400 for
 * the root itself. */
static int resolve_parent(const struct sb_fs *fs, const char *abs, int *dir_fd, const char **name,
                          struct sb_err *err)
{
    char dir[SB_FS_PATH_MAX];
    *name = split_path(abs, dir);
    if (!**name)
        return sb_err_set(err, 400, "path '/' cannot be used here");
    return resolve(fs, dir, O_PATH | O_DIRECTORY, dir_fd, err, abs);
}

/* ---- entries -------------------------------------------------------------- */

void sb_fs_entry_clear(struct sb_fs_entry *e)
{
    free(e->path);
    free(e->symlink_target);
    memset(e, 0, sizeof *e);
}

void sb_fs_entries_free(struct sb_fs_entry *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        sb_fs_entry_clear(&list[i]);
    free(list);
}

uint32_t sb_fs_sandbox_id(const struct sb_fs *fs, uint32_t host_id)
{
    return host_id >= fs->id_base && host_id - fs->id_base < 65536u ? host_id - fs->id_base : 65534u;
}

/* Fills e for the entry name in dir_fd, shown as path. */
static int entry_at(const struct sb_fs *fs, int dir_fd, const char *name, const char *path,
                    struct sb_fs_entry *e, struct sb_err *err)
{
    struct stat st;
    memset(e, 0, sizeof *e);
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) != 0)
        return sb_fs_errno(err, errno, "stat", path);
    e->path = strdup(path);
    if (!e->path)
        return sb_err_set(err, 500, "out of memory");
    const char *slash = strrchr(e->path, '/');
    e->name = slash[1] ? slash + 1 : e->path;
    e->type = S_ISREG(st.st_mode) ? SB_FS_FILE : S_ISDIR(st.st_mode) ? SB_FS_DIR
              : S_ISLNK(st.st_mode) ? SB_FS_SYMLINK : SB_FS_OTHER;
    e->size = (uint64_t)st.st_size;
    e->mode = st.st_mode;
    e->uid = sb_fs_sandbox_id(fs, st.st_uid);
    e->gid = sb_fs_sandbox_id(fs, st.st_gid);
    e->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    if (e->type == SB_FS_SYMLINK) {
        char target[SB_FS_PATH_MAX];
        ssize_t n = readlinkat(dir_fd, name, target, sizeof target - 1);
        if (n >= 0) {
            target[n] = '\0';
            char abs[SB_FS_PATH_MAX];
            size_t len = 1;
            strcpy(abs, "/");
            struct sb_err ignored;
            if (target[0] != '/') {
                char dir[SB_FS_PATH_MAX];
                split_path(path, dir);
                path_append(abs, &len, dir, 1, &ignored);
            }
            if (path_append(abs, &len, target, 1, &ignored) == 0)
                e->symlink_target = strdup(abs);
        }
    }
    return 0;
}

int sb_fs_stat(struct sb_fs *fs, const char *path, struct sb_fs_entry *out, struct sb_err *err)
{
    char abs[SB_FS_PATH_MAX];
    struct sb_fs_creds c;
    if (sb_fs_path(fs, path, abs, err) < 0 || sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int rc;
    if (strcmp(abs, "/") == 0) {
        rc = entry_at(fs, fs->root_fd, "", abs, out, err);
    } else {
        int dir_fd;
        const char *name;
        rc = resolve_parent(fs, abs, &dir_fd, &name, err);
        if (rc == 0) {
            rc = entry_at(fs, dir_fd, name, abs, out, err);
            close(dir_fd);
        }
    }
    sb_fs_creds_leave(&c);
    return rc;
}

/* ---- user and group names ------------------------------------------------- */

/* The sandbox's file at abs (at most ID_FILE_MAX bytes) as a string, or NULL. */
static char *read_small_file(const struct sb_fs *fs, const char *abs)
{
    struct sb_err ignored;
    int pfd;
    if (resolve(fs, abs, O_PATH, &pfd, &ignored, NULL) < 0)
        return NULL;
    struct stat st;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
    int fd = fstat(pfd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < ID_FILE_MAX
                 ? open(proc, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) : -1;
    close(pfd);
    if (fd < 0)
        return NULL;
    char *buf = malloc(ID_FILE_MAX + 1);
    size_t len = 0;
    ssize_t n;
    while (buf && len < ID_FILE_MAX && (n = read(fd, buf + len, ID_FILE_MAX - len)) > 0)
        len += (size_t)n;
    close(fd);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* name:x:id:... lines: the name of id, or 0 when none has it. */
static int find_id_name(const char *text, uint32_t id, char *out, size_t len)
{
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *c1 = strchr(line, ':');
        const char *eol = strchrnul(line, '\n');
        if (!c1 || c1 > eol)
            continue;
        const char *c2 = strchr(c1 + 1, ':');
        if (!c2 || c2 > eol)
            continue;
        char *end;
        unsigned long v = strtoul(c2 + 1, &end, 10);
        if (end == c2 + 1 || *end != ':' || v != id)
            continue;
        snprintf(out, len, "%.*s", (int)(c1 - line), line);
        return 1;
    }
    return 0;
}

void sb_fs_id_name(struct sb_fs *fs, int group, uint32_t id, char *out, size_t len)
{
    char **cache = group ? &fs->group : &fs->passwd;
    if (!*cache) {
        /* as root: the names are for display, whoever asks */
        *cache = read_small_file(fs, group ? "/etc/group" : "/etc/passwd");
        if (!*cache)
            *cache = strdup("");
    }
    if (!*cache || !find_id_name(*cache, id, out, len))
        snprintf(out, len, "%u", id);
}

void sb_fs_close(struct sb_fs *fs)
{
    if (fs->root_fd >= 0)
        close(fs->root_fd);
    fs->root_fd = -1;
    free(fs->passwd);
    free(fs->group);
    fs->passwd = fs->group = NULL;
}

/* ---- list ----------------------------------------------------------------- */

struct entry_list {
    struct sb_fs_entry *items;
    size_t count, cap, max;
};

static int list_push(struct entry_list *l, struct sb_err *err)
{
    if (l->count >= l->max)
        return sb_err_set(err, 413, "more than %zu entries: list with a smaller depth", l->max);
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct sb_fs_entry *n = realloc(l->items, cap * sizeof *n);
        if (!n)
            return sb_err_set(err, 500, "out of memory");
        l->items = n;
        l->cap = cap;
    }
    return 0;
}

static int list_dir(const struct sb_fs *fs, int dir_fd, const char *path, int depth, struct entry_list *l,
                    struct sb_err *err)
{
    int fd = dup(dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return sb_fs_errno(err, errno, "list", path);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char child[SB_FS_PATH_MAX];
        if (snprintf(child, sizeof child, "%s/%s", strcmp(path, "/") ? path : "", de->d_name) >=
            (int)sizeof child)
            continue;   /* a name the API could not address either */
        if (list_push(l, err) < 0) {
            rc = -1;
            break;
        }
        struct sb_fs_entry *e = &l->items[l->count];
        if (entry_at(fs, dirfd(d), de->d_name, child, e, err) < 0) {
            if (err->status == 404)
                continue;   /* removed while we listed */
            rc = -1;
            break;
        }
        l->count++;
        if (depth > 1 && e->type == SB_FS_DIR) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                continue;   /* unreadable or swapped for a link: listed, not entered */
            struct sb_err skip;
            if (check_served_fs(sub, child, &skip) == 0)
                rc = list_dir(fs, sub, child, depth - 1, l, err);
            close(sub);
        }
    }
    closedir(d);
    return rc;
}

int sb_fs_open_dir(struct sb_fs *fs, const char *path, int *fd, struct sb_err *err)
{
    char abs[SB_FS_PATH_MAX];
    struct sb_fs_creds c;
    if (sb_fs_path(fs, path, abs, err) < 0 || sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int rc = resolve(fs, abs, O_RDONLY | O_DIRECTORY, fd, err, path);
    sb_fs_creds_leave(&c);
    return rc;
}

int sb_fs_list(struct sb_fs *fs, const char *path, int depth, size_t max_entries,
               struct sb_fs_entry **out, size_t *count, struct sb_err *err)
{
    char abs[SB_FS_PATH_MAX];
    struct sb_fs_creds c;
    struct entry_list l = {.max = max_entries};
    if (sb_fs_path(fs, path, abs, err) < 0 || sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int fd, rc = resolve(fs, abs, O_RDONLY | O_DIRECTORY, &fd, err, abs);
    if (rc == 0) {
        rc = list_dir(fs, fd, abs, depth < 1 ? 1 : depth, &l, err);
        close(fd);
    }
    sb_fs_creds_leave(&c);
    if (rc < 0) {
        sb_fs_entries_free(l.items, l.count);
        return -1;
    }
    *out = l.items;
    *count = l.count;
    return 0;
}

/* ---- read ----------------------------------------------------------------- */

/* Reopens an O_PATH fd of a regular file for reading, with the thread's
 * (the acting user's) permissions checked. */
static int reopen_regular(int pfd, int flags, const char *path, int *fd, struct stat *st, struct sb_err *err)
{
    if (fstat(pfd, st) != 0)
        return sb_fs_errno(err, errno, "stat", path);
    if (S_ISDIR(st->st_mode))
        return sb_err_set(err, 400, "path '%s' is a directory", path);
    if (!S_ISREG(st->st_mode))
        return sb_err_set(err, 400, "path '%s' is not a regular file", path);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
    *fd = open(proc, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (*fd < 0)
        return sb_fs_errno(err, errno, "open", path);
    return 0;
}

int sb_fs_open_read(struct sb_fs *fs, const char *path, int *fd, struct stat *st, struct sb_err *err)
{
    char abs[SB_FS_PATH_MAX];
    struct sb_fs_creds c;
    if (sb_fs_path(fs, path, abs, err) < 0 || sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int pfd, rc = resolve(fs, abs, O_PATH, &pfd, err, abs);
    if (rc == 0) {
        rc = reopen_regular(pfd, O_RDONLY, abs, fd, st, err);
        close(pfd);
    }
    sb_fs_creds_leave(&c);
    return rc;
}

/* ---- mkdir ---------------------------------------------------------------- */

/* What root creates is given the acting user's ids (as the user, the kernel
 * already made them its own). */
static void own_at(const struct sb_fs *fs, int dir_fd, const char *name)
{
    if (!fs->as_user)
        (void)fchownat(dir_fd, name, fs->uid, fs->gid, AT_SYMLINK_NOFOLLOW);
}

/* mkdir -p of abs, each component found or made from the root again, so a
 * component swapped for a symlink is followed only inside the root. */
static int mkdir_parents(const struct sb_fs *fs, const char *abs, const char *shown, struct sb_err *err)
{
    char prefix[SB_FS_PATH_MAX];
    size_t len = strlen(abs);
    for (size_t i = 1; i <= len; i++) {
        if (abs[i] != '/' && abs[i] != '\0')
            continue;
        memcpy(prefix, abs, i);
        prefix[i] = '\0';
        int fd;
        struct sb_err e = {0};
        if (resolve(fs, prefix, O_PATH | O_DIRECTORY, &fd, &e, shown) == 0) {
            close(fd);
            continue;
        }
        if (e.status != 404) {
            *err = e;
            return -1;
        }
        int dir_fd;
        const char *name;
        if (resolve_parent(fs, prefix, &dir_fd, &name, err) < 0)
            return -1;
        int rc = mkdirat(dir_fd, name, 0755);
        if (rc == 0)
            own_at(fs, dir_fd, name);
        int saved = errno;
        close(dir_fd);
        if (rc != 0 && saved != EEXIST)
            return sb_fs_errno(err, saved, "mkdir", shown);
        if (resolve(fs, prefix, O_PATH | O_DIRECTORY, &fd, err, shown) < 0)
            return -1;
        close(fd);
    }
    return 0;
}

static int parents_of(const struct sb_fs *fs, const char *abs, struct sb_err *err)
{
    char dir[SB_FS_PATH_MAX];
    split_path(abs, dir);
    return mkdir_parents(fs, dir, abs, err);
}

int sb_fs_mkdir(struct sb_fs *fs, const char *path, int parents, struct sb_err *err)
{
    char abs[SB_FS_PATH_MAX];
    struct sb_fs_creds c;
    if (sb_fs_path(fs, path, abs, err) < 0 || sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int rc;
    if (parents) {
        rc = mkdir_parents(fs, abs, abs, err);
    } else {
        int dir_fd;
        const char *name;
        rc = resolve_parent(fs, abs, &dir_fd, &name, err);
        if (rc == 0) {
            rc = mkdirat(dir_fd, name, 0755);
            if (rc == 0)
                own_at(fs, dir_fd, name);
            else
                sb_fs_errno(err, errno, "mkdir", abs);
            close(dir_fd);
        }
    }
    sb_fs_creds_leave(&c);
    return rc;
}

/* ---- write ---------------------------------------------------------------- */

static int write_begin(const struct sb_fs *fs, const char *abs, struct sb_fs_writer *w, struct sb_err *err)
{
    const char *name;
    if (parents_of(fs, abs, err) < 0 || resolve_parent(fs, abs, &w->dir_fd, &name, err) < 0)
        return -1;
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(w->path, sizeof w->path, "%s", abs);
    mode_t mode = 0644;
    struct stat st;
    if (fstatat(w->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISDIR(st.st_mode))
            return sb_err_set(err, 400, "path '%s' is a directory", abs);
        if (S_ISREG(st.st_mode))
            mode = st.st_mode & 07777;
        /* replacing is a write of the file: the user must be allowed to write it,
         * not only its directory (AT_EACCESS: checked with the fsuid) */
        if (S_ISREG(st.st_mode) && fs->as_user &&
            faccessat(w->dir_fd, name, W_OK, AT_EACCESS | AT_SYMLINK_NOFOLLOW) != 0)
            return sb_fs_errno(err, errno, "write", abs);
    }
    for (int tries = 0; tries < 16; tries++) {
        char rnd[32];
        sb_id_new("", rnd, sizeof rnd);
        snprintf(w->tmp, sizeof w->tmp, ".%.200s.sbtmp-%.10s", name, rnd);
        w->fd = openat(w->dir_fd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (w->fd >= 0 || errno != EEXIST)
            break;
    }
    if (w->fd < 0) {
        w->tmp[0] = '\0';
        return sb_fs_errno(err, errno, "write", abs);
    }
    if (!fs->as_user && fchown(w->fd, fs->uid, fs->gid) != 0)
        return sb_fs_errno(err, errno, "write", abs);
    if (fchmod(w->fd, mode) != 0)
        return sb_fs_errno(err, errno, "write", abs);
    return 0;
}

int sb_fs_write_begin(struct sb_fs *fs, const char *path, struct sb_fs_writer *w, struct sb_err *err)
{
    char abs[SB_FS_PATH_MAX];
    struct sb_fs_creds c;
    memset(w, 0, sizeof *w);
    w->dir_fd = w->fd = -1;
    if (sb_fs_path(fs, path, abs, err) < 0 || sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int rc = write_begin(fs, abs, w, err);
    sb_fs_creds_leave(&c);
    if (rc < 0)
        sb_fs_write_abort(fs, w);
    return rc;
}

/* The fd is already open: writing needs no credentials. */
int sb_fs_write_chunk(struct sb_fs *fs, struct sb_fs_writer *w, const void *data, size_t len,
                      struct sb_err *err)
{
    (void)fs;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sb_fs_errno(err, n < 0 ? errno : ENOSPC, "write", w->path);
        p += n;
        len -= (size_t)n;
        w->written += (uint64_t)n;
    }
    return 0;
}

int sb_fs_write_commit(struct sb_fs *fs, struct sb_fs_writer *w, struct sb_err *err)
{
    struct sb_fs_creds c;
    if (close(w->fd) != 0) {
        w->fd = -1;
        return sb_fs_errno(err, errno, "write", w->path);
    }
    w->fd = -1;
    if (sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int rc = renameat(w->dir_fd, w->tmp, w->dir_fd, w->name);
    int saved = errno;
    sb_fs_creds_leave(&c);
    if (rc != 0)
        return sb_fs_errno(err, saved, "write", w->path);
    w->tmp[0] = '\0';
    close(w->dir_fd);
    w->dir_fd = -1;
    return 0;
}

void sb_fs_write_abort(struct sb_fs *fs, struct sb_fs_writer *w)
{
    struct sb_fs_creds c;
    struct sb_err ignored;
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    if (w->dir_fd >= 0 && w->tmp[0] && sb_fs_creds_enter(fs, &c, &ignored) == 0) {
        unlinkat(w->dir_fd, w->tmp, 0);
        sb_fs_creds_leave(&c);
    }
    w->tmp[0] = '\0';
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    w->dir_fd = -1;
}

int sb_fs_write(struct sb_fs *fs, const char *path, const void *data, size_t len, struct sb_err *err)
{
    struct sb_fs_writer w;
    if (sb_fs_write_begin(fs, path, &w, err) < 0)
        return -1;
    if (sb_fs_write_chunk(fs, &w, data, len, err) < 0 || sb_fs_write_commit(fs, &w, err) < 0) {
        sb_fs_write_abort(fs, &w);
        return -1;
    }
    return 0;
}

/* ---- remove --------------------------------------------------------------- */

/* Empties the directory name in parent_fd and removes it, never following
 * a link and never leaving its filesystem (dev). */
static int remove_tree_at(int parent_fd, const char *name, dev_t dev, int depth, const char *path,
                          struct sb_err *err)
{
    if (depth > MAX_TREE_DEPTH)
        return sb_err_set(err, 400, "directory '%s' is nested more than %d levels deep: delete it in parts",
                          path, MAX_TREE_DEPTH);
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sb_fs_errno(err, errno, "delete", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != dev) {
        close(fd);
        return sb_fs_errno(err, EBUSY, "delete", path);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return sb_fs_errno(err, errno, "delete", path);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno == ENOENT)
            continue;
        if (errno == EISDIR || errno == EPERM)   /* EPERM: what Linux says for unlink of a dir */
            rc = remove_tree_at(dirfd(d), de->d_name, dev, depth + 1, path, err);
        else
            rc = sb_fs_errno(err, errno, "delete", path);
    }
    closedir(d);
    if (rc == 0 && unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = sb_fs_errno(err, errno, "delete", path);
    return rc;
}

int sb_fs_remove(struct sb_fs *fs, const char *path, int recursive, struct sb_err *err)
{
    char abs[SB_FS_PATH_MAX];
    struct sb_fs_creds c;
    if (sb_fs_path(fs, path, abs, err) < 0 || sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int dir_fd;
    const char *name;
    int rc = resolve_parent(fs, abs, &dir_fd, &name, err);
    if (rc == 0) {
        struct stat st;
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            rc = sb_fs_errno(err, errno, "delete", abs);
        else if (!S_ISDIR(st.st_mode))
            rc = unlinkat(dir_fd, name, 0) == 0 ? 0 : sb_fs_errno(err, errno, "delete", abs);
        else if (!recursive)
            rc = unlinkat(dir_fd, name, AT_REMOVEDIR) == 0 ? 0 : sb_fs_errno(err, errno, "delete", abs);
        else
            rc = remove_tree_at(dir_fd, name, st.st_dev, 0, abs, err);
        close(dir_fd);
    }
    sb_fs_creds_leave(&c);
    return rc;
}

/* ---- move ----------------------------------------------------------------- */

int sb_fs_move(struct sb_fs *fs, const char *source, const char *destination, int overwrite,
               struct sb_err *err)
{
    char src[SB_FS_PATH_MAX], dst[SB_FS_PATH_MAX];
    struct sb_fs_creds c;
    if (sb_fs_path(fs, source, src, err) < 0 || sb_fs_path(fs, destination, dst, err) < 0 ||
        sb_fs_creds_enter(fs, &c, err) < 0)
        return -1;
    int sfd = -1, dfd = -1;
    const char *sname, *dname;
    int rc = resolve_parent(fs, src, &sfd, &sname, err);
    struct stat st;
    if (rc == 0 && fstatat(sfd, sname, &st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = sb_fs_errno(err, errno, "move", src);
    if (rc == 0)
        rc = parents_of(fs, dst, err);
    if (rc == 0)
        rc = resolve_parent(fs, dst, &dfd, &dname, err);
    if (rc == 0 && renameat2(sfd, sname, dfd, dname, overwrite ? 0 : RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST)
            rc = sb_err_set(err, 409, "destination '%s' already exists (pass overwrite=true to replace it)", dst);
        else if (errno == EINVAL)
            rc = sb_err_set(err, 400, "cannot move '%s' into itself ('%s')", src, dst);
        else
            rc = sb_fs_errno(err, errno, "move", errno == ENOENT ? src : dst);
    }
    if (sfd >= 0)
        close(sfd);
    if (dfd >= 0)
        close(dfd);
    sb_fs_creds_leave(&c);
    return rc;
}
