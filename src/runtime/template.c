/*
 * template.c - building, loading, listing and removing sandbox templates.
 *
 * A template is <data-dir>/templates/<name>/{template.json,rootfs/}. Builds
 * happen in <data-dir>/templates/.build-<name>-XXXXXX and are renamed into
 * place in one step at the end (renameat2 EXCHANGE when replacing), so a
 * reader sees either the old template or the new one, and a failed build
 * leaves nothing behind.
 *
 * Templates in use: each shim holds a shared flock on the template's
 * directory for the life of its sandbox and mounts the rootfs through that
 * fd (template_hold); the lock follows the directory across renames. Rebuilding (only with force) or removing a
 * template renames the old directory to .retired-<name>-XXXXXX; running
 * sandboxes keep the tree they mounted, and template_gc deletes a retired
 * tree once nobody holds its lock.
 *
 * Every file in a rootfs is owned by a *mapped* host id (uid_base + sandbox
 * id). `host` builds create files with mapped owners directly; `debian`
 * builds run debootstrap as root, add the user with sandbox ids, then shift
 * the whole tree by uid_base once.
 *
 * Owns: the template directories. Never prints, never follows a symlink out
 * of a rootfs when writing, never copies host secrets (only a fixed list of
 * harmless /etc entries), never runs on the HTTP loop (builds block).
 */
#include "runtime/template.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/id.h"

#define DEFAULT_USER "user"
#define DEFAULT_UID 1000
#define DEFAULT_HOME "/home/user"
#define DEFAULT_WORKDIR "/workspace"     /* SandBase's default cwd for processes */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEBIAN_SUITE "bookworm"
#define DEBIAN_MIRROR "http://deb.debian.org/debian"
#define SANDBOX_ID_RANGE 65536u

extern char **environ;

/* ---------------------------------------------------------------- names, paths */

int template_name_valid(const char *name)
{
    return sb_name_valid(name);     /* one rule for every user-chosen name (core/id.h) */
}

static int path_fmt(char *out, size_t len, struct sb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int path_fmt(char *out, size_t len, struct sb_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        return sb_err_set(err, 400, "path too long under the data dir");
    return 0;
}

static int mkdir_if_missing(const char *path, mode_t mode, struct sb_err *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return sb_err_sys(err, 500, "cannot create %s", path);
    return 0;
}

/* ---------------------------------------------------------------- tree walking */

/*
 * A post-order walk that stays on one filesystem and never follows symlinks:
 * visit() sees every entry after its children. `relpath` is the entry's path
 * relative to the walk's root ("" for the root itself). descend() (optional)
 * can refuse to enter a directory's contents.
 */
struct walk {
    int (*visit)(int dirfd, const char *name, const struct stat *st, const char *relpath,
                 void *arg, struct sb_err *err);
    int (*descend)(const char *relpath, void *arg);
    void *arg;
    dev_t dev;
    char relpath[SB_PATH_MAX];
};

static int walk_entry(int dirfd, const char *name, size_t rel_len, struct walk *w, struct sb_err *err);

static int walk_children(int dirfd, const char *name, size_t rel_len, struct walk *w, struct sb_err *err)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot open directory %s", w->relpath[0] ? w->relpath : name);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return sb_err_sys(err, 500, "cannot read directory %s", w->relpath);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (errno = 0, de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        rc = walk_entry(fd, de->d_name, rel_len, w, err);
    }
    if (rc == 0 && errno != 0)
        rc = sb_err_sys(err, 500, "cannot read directory %s", w->relpath);
    closedir(d);
    return rc;
}

/* rel_len: length of the parent's relpath; (size_t)-1 marks the walk's root. */
static int walk_entry(int dirfd, const char *name, size_t rel_len, struct walk *w, struct sb_err *err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return sb_err_sys(err, 500, "cannot stat %s", name);
    size_t my_len = 0;
    if (rel_len != (size_t)-1) {
        int n = snprintf(w->relpath + rel_len, sizeof w->relpath - rel_len, "%s%s",
                         rel_len ? "/" : "", name);
        if (n < 0 || (size_t)n >= sizeof w->relpath - rel_len)
            return sb_err_set(err, 500, "path too deep: %s", w->relpath);
        my_len = rel_len + (size_t)n;
    } else {
        w->relpath[0] = '\0';
        w->dev = st.st_dev;
    }
    int rc = 0;
    if (S_ISDIR(st.st_mode) && st.st_dev == w->dev && (!w->descend || w->descend(w->relpath, w->arg)))
        rc = walk_children(dirfd, name, my_len, w, err);
    w->relpath[my_len] = '\0';
    if (rc == 0)
        rc = w->visit(dirfd, name, &st, w->relpath, w->arg, err);
    if (rel_len != (size_t)-1)
        w->relpath[rel_len] = '\0';
    return rc;
}

static int walk_tree(const char *root, struct walk *w, struct sb_err *err)
{
    return walk_entry(AT_FDCWD, root, (size_t)-1, w, err);
}

/* Removes a whole tree. debootstrap mounts /proc and /sys in its target and
 * may leave them behind when it fails: those are detached first, so
 * removing never touches a foreign filesystem. */
static int remove_tree(const char *path, struct sb_err *err)
{
    sb_unmount_below(path);
    return sb_remove_tree(path, err);
}

/* ---------------------------------------------------------------- writing into a rootfs */

/* A rootfs being filled: `id_add` is added to every owner id written
 * (uid_base for host builds; 0 for debian builds, shifted once at the end). */
struct rootfs {
    int fd;
    uint32_t id_add;
};

static int rootfs_chown(const struct rootfs *r, const char *path, uint32_t id, struct sb_err *err)
{
    if (fchownat(r->fd, path, r->id_add + id, r->id_add + id, AT_SYMLINK_NOFOLLOW) < 0)
        return sb_err_sys(err, 500, "cannot chown rootfs/%s", path);
    return 0;
}

static int rootfs_mkdir(const struct rootfs *r, const char *path, mode_t mode, uint32_t id,
                        struct sb_err *err)
{
    if (mkdirat(r->fd, path, 0700) < 0 && errno != EEXIST)
        return sb_err_sys(err, 500, "cannot create rootfs/%s", path);
    if (rootfs_chown(r, path, id, err) < 0)
        return -1;
    /* After chown, which may clear set-id bits, and free of the umask. */
    if (fchmodat(r->fd, path, mode, 0) < 0)
        return sb_err_sys(err, 500, "cannot chmod rootfs/%s", path);
    return 0;
}

static int rootfs_symlink(const struct rootfs *r, const char *target, const char *path, struct sb_err *err)
{
    if (unlinkat(r->fd, path, 0) < 0 && errno != ENOENT)
        return sb_err_sys(err, 500, "cannot replace rootfs/%s", path);
    if (symlinkat(target, r->fd, path) < 0)
        return sb_err_sys(err, 500, "cannot create symlink rootfs/%s", path);
    return rootfs_chown(r, path, 0, err);
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Creates (or replaces, never following a symlink) a file with this content. */
static int rootfs_write(const struct rootfs *r, const char *path, const char *text, mode_t mode,
                        uint32_t id, struct sb_err *err)
{
    if (unlinkat(r->fd, path, 0) < 0 && errno != ENOENT)
        return sb_err_sys(err, 500, "cannot replace rootfs/%s", path);
    int fd = openat(r->fd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot create rootfs/%s", path);
    int rc = 0;
    if (write_all(fd, text, strlen(text)) < 0 || fchown(fd, r->id_add + id, r->id_add + id) < 0 ||
        fchmod(fd, mode) < 0)
        rc = sb_err_sys(err, 500, "cannot write rootfs/%s", path);
    if (close(fd) < 0 && rc == 0)
        rc = sb_err_sys(err, 500, "cannot write rootfs/%s", path);
    return rc;
}

static int rootfs_append(const struct rootfs *r, const char *path, const char *text, struct sb_err *err)
{
    int fd = openat(r->fd, path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot open rootfs/%s", path);
    int rc = 0;
    if (write_all(fd, text, strlen(text)) < 0)
        rc = sb_err_sys(err, 500, "cannot append to rootfs/%s", path);
    close(fd);
    return rc;
}

static int copy_file_data(int src, int dst)
{
    for (;;) {
        ssize_t n = copy_file_range(src, NULL, dst, NULL, 1 << 20, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL)
            return -1;
        char buf[65536];
        while ((n = read(src, buf, sizeof buf)) > 0)
            if (write_all(dst, buf, (size_t)n) < 0)
                return -1;
        return n < 0 ? -1 : 0;
    }
}

/* How copied entries are owned: force_id >= 0 gives every entry that sandbox
 * id; otherwise the source's id (which must be < 65536) is kept. */
struct copy_owner {
    const struct rootfs *dst;
    long force_id;
};

static int copy_entry(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
                      const struct copy_owner *owner, struct sb_err *err);

static int copy_dir_contents(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
                             const struct copy_owner *owner, struct sb_err *err)
{
    int sfd = openat(src_dir, src_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0)
        return sb_err_sys(err, 500, "cannot open %s", src_name);
    int dfd = openat(dst_dir, dst_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = dfd < 0 ? NULL : fdopendir(sfd);
    if (!d) {
        int rc = sb_err_sys(err, 500, "cannot copy directory %s", src_name);
        close(sfd);
        if (dfd >= 0)
            close(dfd);
        return rc;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            rc = copy_entry(sfd, de->d_name, dfd, de->d_name, owner, err);
    closedir(d);
    close(dfd);
    return rc;
}

/* Copies a file, symlink or directory tree (other kinds are skipped),
 * keeping modes and mapping owners as `owner` says. */
static int copy_entry(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
                      const struct copy_owner *owner, struct sb_err *err)
{
    struct stat st;
    if (fstatat(src_dir, src_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return sb_err_sys(err, 500, "cannot stat %s", src_name);
    long uid = owner->force_id >= 0 ? owner->force_id : (long)st.st_uid;
    long gid = owner->force_id >= 0 ? owner->force_id : (long)st.st_gid;
    if (uid >= (long)SANDBOX_ID_RANGE || gid >= (long)SANDBOX_ID_RANGE)
        return sb_err_set(err, 500, "cannot copy %s: owner %ld:%ld is outside the sandbox id range",
                          src_name, uid, gid);
    uid_t duid = (uid_t)(owner->dst->id_add + (uint32_t)uid);
    gid_t dgid = (gid_t)(owner->dst->id_add + (uint32_t)gid);
    mode_t mode = st.st_mode & 07777;
    if (S_ISLNK(st.st_mode)) {
        char target[SB_PATH_MAX];
        ssize_t n = readlinkat(src_dir, src_name, target, sizeof target - 1);
        if (n < 0)
            return sb_err_sys(err, 500, "cannot read link %s", src_name);
        target[n] = '\0';
        if (symlinkat(target, dst_dir, dst_name) < 0 && errno != EEXIST)
            return sb_err_sys(err, 500, "cannot create link %s", dst_name);
        if (fchownat(dst_dir, dst_name, duid, dgid, AT_SYMLINK_NOFOLLOW) < 0)
            return sb_err_sys(err, 500, "cannot chown %s", dst_name);
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        if (mkdirat(dst_dir, dst_name, 0700) < 0 && errno != EEXIST)
            return sb_err_sys(err, 500, "cannot create %s", dst_name);
        if (copy_dir_contents(src_dir, src_name, dst_dir, dst_name, owner, err) < 0)
            return -1;
        if (fchownat(dst_dir, dst_name, duid, dgid, AT_SYMLINK_NOFOLLOW) < 0 ||
            fchmodat(dst_dir, dst_name, mode, 0) < 0)
            return sb_err_sys(err, 500, "cannot set owner of %s", dst_name);
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return 0;
    int src = openat(src_dir, src_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
        return sb_err_sys(err, 500, "cannot open %s", src_name);
    int dst = openat(dst_dir, dst_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = 0;
    if (dst < 0 || copy_file_data(src, dst) < 0 || fchown(dst, duid, dgid) < 0 || fchmod(dst, mode) < 0)
        rc = sb_err_sys(err, 500, "cannot copy %s", src_name);
    close(src);
    if (dst >= 0)
        close(dst);
    return rc;
}

/* ---------------------------------------------------------------- staging a build */

/* A build in progress: everything lives under `dir` until build_commit(). */
struct build {
    char dir[SB_PATH_MAX];      /* <data-dir>/templates/.build-<name>-XXXXXX */
    char final[SB_PATH_MAX];    /* <data-dir>/templates/<name> */
    char rootfs_path[SB_PATH_MAX];
    struct rootfs rootfs;
    int force;                  /* an existing template of the same name is replaced */
};

static int exists_error(const char *name, struct sb_err *err)
{
    return sb_err_set(err, 409, "template %s already exists; rebuild it with --force (running "
                                "sandboxes keep the tree they started from)", name);
}

static int build_begin(const char *data_dir, const char *name, uint32_t id_add, int force,
                       struct build *b, struct sb_err *err)
{
    memset(b, 0, sizeof *b);
    b->rootfs.fd = -1;
    b->rootfs.id_add = id_add;
    if (!template_name_valid(name))
        return sb_err_set(err, 400, "invalid template name '%s': use 1-63 of [a-z0-9_-], starting "
                                    "with a letter or digit", name ? name : "");
    char templates[SB_PATH_MAX], staging[SB_PATH_MAX];
    if (path_fmt(templates, sizeof templates, err, "%s/templates", data_dir) < 0 ||
        path_fmt(b->final, sizeof b->final, err, "%s/%s", templates, name) < 0 ||
        path_fmt(staging, sizeof staging, err, "%s/.build-%s-XXXXXX", templates, name) < 0)
        return -1;
    b->force = force;
    if (!force && access(b->final, F_OK) == 0)
        return exists_error(name, err);
    if (mkdir_if_missing(data_dir, 0755, err) < 0 || mkdir_if_missing(templates, 0755, err) < 0)
        return -1;
    if (!mkdtemp(staging))
        return sb_err_sys(err, 500, "cannot create build directory in %s", templates);
    memcpy(b->dir, staging, sizeof b->dir);
    /* Sandboxes' mapped root must be able to traverse to the rootfs. */
    if (chmod(b->dir, 0755) < 0 ||
        path_fmt(b->rootfs_path, sizeof b->rootfs_path, err, "%s/rootfs", b->dir) < 0 ||
        mkdir(b->rootfs_path, 0755) < 0 ||
        (b->rootfs.fd = open(b->rootfs_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return sb_err_sys(err, 500, "cannot set up build directory %s", b->dir);
    if (fchown(b->rootfs.fd, id_add, id_add) < 0 || fchmod(b->rootfs.fd, 0755) < 0)
        return sb_err_sys(err, 500, "cannot chown %s", b->rootfs_path);
    return 0;
}

/* Removes everything a failed build made. */
static void build_abort(struct build *b)
{
    if (b->rootfs.fd >= 0)
        close(b->rootfs.fd);
    b->rootfs.fd = -1;
    if (b->dir[0]) {
        struct sb_err ignored;
        remove_tree(b->dir, &ignored);
    }
    b->dir[0] = '\0';
}

/* Renames a template directory to a fresh .retired-<name>-XXXXXX beside it
 * (mkdtemp reserves the name; rename(2) may replace an empty directory). */
static int retire_dir(const char *data_dir, const char *name, const char *path, struct sb_err *err)
{
    char aside[SB_PATH_MAX];
    if (path_fmt(aside, sizeof aside, err, "%s/templates/.retired-%s-XXXXXX", data_dir, name) < 0)
        return -1;
    if (!mkdtemp(aside))
        return sb_err_sys(err, 500, "cannot set template %s aside", name);
    if (rename(path, aside) < 0) {
        int saved = errno;
        rmdir(aside);
        errno = saved;
        return sb_err_sys(err, 500, "cannot set template %s aside", name);
    }
    return 0;
}

/* Moves the finished build into place in one rename. With force, an
 * existing template of the same name is swapped out atomically and retired:
 * sandboxes running on it keep it until they end (template_gc). */
static int build_commit(struct build *b, const char *data_dir, const char *name, struct sb_err *err)
{
    close(b->rootfs.fd);
    b->rootfs.fd = -1;
    if (renameat2(AT_FDCWD, b->dir, AT_FDCWD, b->final, RENAME_NOREPLACE) == 0) {
        b->dir[0] = '\0';
        return 0;
    }
    if (errno != EEXIST)
        return sb_err_sys(err, 500, "cannot move build into %s", b->final);
    if (!b->force)
        return exists_error(name, err);
    if (renameat2(AT_FDCWD, b->dir, AT_FDCWD, b->final, RENAME_EXCHANGE) < 0)
        return sb_err_sys(err, 500, "cannot replace %s", b->final);
    /* b->dir now holds the old template and the new one is live: a failure
     * to retire the old copy only leaves a hidden .build-* behind. */
    struct sb_err ignored;
    if (retire_dir(data_dir, name, b->dir, &ignored) < 0)
        remove_tree(b->dir, &ignored);
    b->dir[0] = '\0';
    struct sb_err gc_err = {0};
    template_gc(data_dir, &gc_err);
    return 0;
}

/* ---------------------------------------------------------------- template.json */

static json_t *packages_array(const char *packages)
{
    json_t *arr = json_array();
    if (!packages)
        return arr;
    char *copy = strdup(packages), *save = NULL;
    for (char *p = copy ? strtok_r(copy, ",", &save) : NULL; p; p = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(p));
    free(copy);
    return arr;
}

static int write_template_json(const struct build *b, const char *name, const char *kind,
                               const char *packages, int bind_usr, struct sb_err *err)
{
    char created[32];
    sb_time_rfc3339(sb_wall_ms(), created, sizeof created);
    json_t *binds = json_array();
    if (bind_usr)
        json_array_append_new(binds, json_pack("{s:s, s:s, s:b}", "source", "/usr", "target", "/usr",
                                               "readonly", 1));
    /* HOME is the default user's; a sandbox run as root should use /root. */
    json_t *root = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:{s:s, s:s, s:s}, s:o, s:o, s:s}",
                             "name", name, "kind", kind, "user", DEFAULT_USER, "uid", DEFAULT_UID,
                             "gid", DEFAULT_UID, "home", DEFAULT_HOME, "workdir", DEFAULT_WORKDIR,
                             "env", "PATH", DEFAULT_PATH, "HOME", DEFAULT_HOME, "LANG", "C.UTF-8",
                             "binds", binds, "packages", packages_array(packages),
                             "createdAt", created);
    if (!root)
        return sb_err_set(err, 500, "cannot build template.json");
    char path[SB_PATH_MAX];
    int rc = path_fmt(path, sizeof path, err, "%s/template.json", b->dir);
    if (rc == 0 && json_dump_file(root, path, JSON_INDENT(2)) < 0)
        rc = sb_err_sys(err, 500, "cannot write %s", path);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- /etc contents */

static int write_network_files(const struct rootfs *r, struct sb_err *err)
{
    if (rootfs_write(r, "etc/hostname", "sandbox\n", 0644, 0, err) < 0 ||
        rootfs_write(r, "etc/hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                     0644, 0, err) < 0 ||
        rootfs_write(r, "etc/resolv.conf", "# sandboxes have loopback-only networking\nnameserver 127.0.0.1\n",
                     0644, 0, err) < 0)
        return -1;
    return 0;
}

static int write_host_etc(const struct rootfs *r, struct sb_err *err)
{
    const char *shell = access("/usr/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
    char passwd[512];
    snprintf(passwd, sizeof passwd,
             "root:x:0:0:root:/root:%s\n"
             DEFAULT_USER ":x:%d:%d::" DEFAULT_HOME ":%s\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
             shell, DEFAULT_UID, DEFAULT_UID, shell);
    char group[256];
    snprintf(group, sizeof group,
             "root:x:0:\ntty:x:5:\nusers:x:100:" DEFAULT_USER "\n" DEFAULT_USER ":x:%d:\nnogroup:x:65534:\n",
             DEFAULT_UID);
    if (rootfs_write(r, "etc/passwd", passwd, 0644, 0, err) < 0 ||
        rootfs_write(r, "etc/group", group, 0644, 0, err) < 0 ||
        rootfs_write(r, "etc/nsswitch.conf",
                     "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                     "networks: files\nprotocols: files\nservices: files\n", 0644, 0, err) < 0 ||
        rootfs_write(r, "etc/profile",
                     "# sandbase host template: login shell environment\n"
                     "export PATH=\"" DEFAULT_PATH "\"\nexport LANG=C.UTF-8\numask 022\n",
                     0644, 0, err) < 0 ||
        rootfs_write(r, "etc/sandbase-template",
                     "This root was assembled from the host's /usr (read-only bind).\n"
                     "Install nothing here: build a debian template for that.\n", 0644, 0, err) < 0 ||
        rootfs_symlink(r, "../usr/lib/os-release", "etc/os-release", err) < 0 ||
        rootfs_symlink(r, "../proc/self/mounts", "etc/mtab", err) < 0)
        return -1;
    return write_network_files(r, err);
}

/*
 * Host /etc entries that programs from /usr need to run sanely: the dynamic
 * linker cache, Debian's alternatives symlink farm (/usr/bin/awk -> ...),
 * CA certificates (never /etc/ssl/private), python's site config, terminfo.
 * A fixed list, so no host secret can leak into a template.
 */
static const char *const host_etc_copies[] = {
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl/certs", "ssl/openssl.cnf",
    "python3", "python3.11", "python3.12", "python3.13", "bash.bashrc", "inputrc", "protocols",
    "services", "mime.types", "localtime", "timezone", "debian_version", "terminfo", "gai.conf",
    "host.conf", "skel",
};

static int copy_host_etc(const struct rootfs *r, struct sb_err *err)
{
    int host_etc = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dst_etc = openat(r->fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = 0;
    if (host_etc < 0 || dst_etc < 0)
        rc = sb_err_sys(err, 500, "cannot open /etc for copying");
    struct copy_owner owner = {.dst = r, .force_id = -1};
    for (size_t i = 0; rc == 0 && i < sizeof host_etc_copies / sizeof host_etc_copies[0]; i++) {
        const char *name = host_etc_copies[i];
        if (faccessat(host_etc, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (strncmp(name, "ssl/", 4) == 0 && mkdirat(dst_etc, "ssl", 0755) == 0)
            rc = rootfs_chown(r, "etc/ssl", 0, err);
        if (rc == 0)
            rc = copy_entry(host_etc, name, dst_etc, name, &owner, err);
    }
    if (host_etc >= 0)
        close(host_etc);
    if (dst_etc >= 0)
        close(dst_etc);
    return rc;
}

/* The default user's home, seeded from the rootfs's own etc/skel if any. */
static int make_user_dirs(const struct rootfs *r, struct sb_err *err)
{
    if (rootfs_mkdir(r, "home", 0755, 0, err) < 0 ||
        rootfs_mkdir(r, "home/user", 0755, DEFAULT_UID, err) < 0 ||
        rootfs_mkdir(r, "workspace", 0755, DEFAULT_UID, err) < 0)
        return -1;
    if (faccessat(r->fd, "etc/skel", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    struct copy_owner owner = {.dst = r, .force_id = DEFAULT_UID};
    int home = openat(r->fd, "home", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int skel = openat(r->fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = home < 0 || skel < 0 ? sb_err_sys(err, 500, "cannot open rootfs/home")
                                  : copy_entry(skel, "skel", home, "user", &owner, err);
    if (home >= 0)
        close(home);
    if (skel >= 0)
        close(skel);
    /* copy_entry gave home/user skel's mode; the contract is 0755. */
    if (rc == 0 && fchmodat(r->fd, "home/user", 0755, 0) < 0)
        rc = sb_err_sys(err, 500, "cannot chmod rootfs/home/user");
    return rc;
}

/* ---------------------------------------------------------------- host builds */

struct layout_entry {
    const char *path;
    mode_t mode;        /* 0 = symlink to `target` */
    const char *target;
};

static const struct layout_entry host_layout[] = {
    {"usr", 0755, NULL},      {"bin", 0, "usr/bin"},    {"sbin", 0, "usr/sbin"},
    {"lib", 0, "usr/lib"},    {"etc", 0755, NULL},      {"tmp", 01777, NULL},
    {"root", 0700, NULL},     {"proc", 0755, NULL},     {"dev", 0755, NULL},
    {"sys", 0755, NULL},      {"run", 0755, NULL},      {"var", 0755, NULL},
    {"var/tmp", 01777, NULL}, {"opt", 0755, NULL},      {"mnt", 0755, NULL},
};

static int host_fill_rootfs(const struct rootfs *r, struct sb_err *err)
{
    for (size_t i = 0; i < sizeof host_layout / sizeof host_layout[0]; i++) {
        const struct layout_entry *e = &host_layout[i];
        int rc = e->mode ? rootfs_mkdir(r, e->path, e->mode, 0, err)
                         : rootfs_symlink(r, e->target, e->path, err);
        if (rc < 0)
            return -1;
    }
    if (access("/usr/lib64", F_OK) == 0 && rootfs_symlink(r, "usr/lib64", "lib64", err) < 0)
        return -1;
    if (copy_host_etc(r, err) < 0 || write_host_etc(r, err) < 0)
        return -1;
    return make_user_dirs(r, err);
}

int template_build_host(const char *data_dir, const char *name, uint32_t uid_base, int force,
                        struct sb_err *err)
{
    struct build b;
    if (build_begin(data_dir, name, uid_base, force, &b, err) < 0 || host_fill_rootfs(&b.rootfs, err) < 0 ||
        write_template_json(&b, name, "host", NULL, 1, err) < 0 || build_commit(&b, data_dir, name, err) < 0) {
        build_abort(&b);
        return sb_err_prefix(err, "building template %s", name ? name : "");
    }
    return 0;
}

/* ---------------------------------------------------------------- debian builds */

static int packages_valid(const char *packages)
{
    for (const char *p = packages; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("+-.,", *p))
            return 0;
    return packages[0] != ',' && !strstr(packages, ",,");
}

/* wget (debootstrap's downloader) would wait 15 minutes x 20 tries on a
 * silent mirror; a wgetrc makes it fail within minutes, so callers can fall back. */
static int write_wget_limits(const struct build *b, char *path, size_t len, struct sb_err *err)
{
    static const char limits[] = "timeout = 30\ntries = 3\n";
    if (path_fmt(path, len, err, "%s/wgetrc", b->dir) < 0)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 || write_all(fd, limits, strlen(limits)) < 0 ? -1 : 0;
    if (fd >= 0 && close(fd) < 0)
        rc = -1;
    return rc < 0 ? sb_err_sys(err, 500, "cannot write %s", path) : 0;
}

/* Starts debootstrap with stdout+stderr on one pipe; *out_fd is its read end. */
static int spawn_debootstrap(char **argv, char **envp, pid_t *pid, int *out_fd, struct sb_err *err)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return sb_err_sys(err, 500, "cannot create a pipe for debootstrap");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    int rc = posix_spawn(pid, "/usr/sbin/debootstrap", &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        errno = rc;
        return sb_err_sys(err, 500, "cannot run /usr/sbin/debootstrap (install it: scripts/install-deps)");
    }
    *out_fd = pipefd[0];
    return 0;
}

/* Feeds each line to progress until EOF (closes fd). Keeps the last "E:"
 * line (or else the last line) in `last`: it is what explains a failure. */
static void stream_lines(int fd, sb_progress_fn progress, void *arg, char *last, size_t last_len)
{
    FILE *in = fdopen(fd, "r");
    if (!in) {
        close(fd);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int have_error = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        int is_error = strncmp(line, "E:", 2) == 0;
        if (is_error || !have_error)
            snprintf(last, last_len, "%s", line);
        have_error |= is_error;
        if (progress)
            progress(arg, line);
    }
    free(line);
    fclose(in);
}

/* Runs debootstrap into the build's rootfs, streaming its output to progress. */
static int run_debootstrap(const struct build *b, const char *packages, const char *mirror,
                           const char *cache_dir, sb_progress_fn progress, void *arg, struct sb_err *err)
{
    char wgetrc_path[SB_PATH_MAX], wgetrc[SB_PATH_MAX + 8];
    if (write_wget_limits(b, wgetrc_path, sizeof wgetrc_path, err) < 0)
        return -1;
    snprintf(wgetrc, sizeof wgetrc, "WGETRC=%s", wgetrc_path);
    char include[4096] = "", cache[SB_PATH_MAX + 16];
    snprintf(cache, sizeof cache, "--cache-dir=%s", cache_dir);
    char *argv[8] = {"debootstrap", "--variant=minbase", cache};
    int argc = 3;
    if (packages && snprintf(include, sizeof include, "--include=%s", packages) < (int)sizeof include)
        argv[argc++] = include;
    argv[argc++] = DEBIAN_SUITE;
    argv[argc++] = (char *)b->rootfs_path;
    argv[argc++] = (char *)mirror;
    char *envp[8] = {"PATH=" DEFAULT_PATH, "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive", wgetrc};
    int envc = 4;
    static const char *const passed[] = {"http_proxy", "https_proxy", "no_proxy"};
    char proxy[3][1024];
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(passed[i]);
        if (v && *v && snprintf(proxy[i], sizeof proxy[i], "%s=%s", passed[i], v) < (int)sizeof proxy[i])
            envp[envc++] = proxy[i];
    }
    pid_t pid = -1;
    int out_fd = -1;
    if (spawn_debootstrap(argv, envp, &pid, &out_fd, err) < 0)
        return -1;
    char last[256] = "";
    stream_lines(out_fd, progress, arg, last, sizeof last);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    unlink(wgetrc_path);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return sb_err_set(err, 502, "debootstrap %s from %s failed (%s %d): %s", DEBIAN_SUITE, mirror,
                      WIFEXITED(status) ? "exit" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), last);
}

/* Adds `user` (uid/gid 1000) to a freshly bootstrapped system. */
static int debian_add_user(const struct rootfs *r, struct sb_err *err)
{
    const char *shell = faccessat(r->fd, "usr/bin/bash", X_OK, 0) == 0 ? "/bin/bash" : "/bin/sh";
    char line[256];
    snprintf(line, sizeof line, DEFAULT_USER ":x:%d:%d::" DEFAULT_HOME ":%s\n", DEFAULT_UID, DEFAULT_UID, shell);
    if (rootfs_append(r, "etc/passwd", line, err) < 0)
        return -1;
    snprintf(line, sizeof line, DEFAULT_USER ":x:%d:\n", DEFAULT_UID);
    if (rootfs_append(r, "etc/group", line, err) < 0 ||
        rootfs_append(r, "etc/shadow", DEFAULT_USER ":*:19000:0:99999:7:::\n", err) < 0 ||
        rootfs_append(r, "etc/gshadow", DEFAULT_USER ":!::\n", err) < 0)
        return -1;
    return make_user_dirs(r, err);
}

/* Deletes regular files in one rootfs directory whose names end in `suffix`
 * ("" = all), keeping `keep`. */
static int remove_files_in(const struct rootfs *r, const char *dir, const char *suffix,
                           const char *keep, struct sb_err *err)
{
    int fd = openat(r->fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : sb_err_sys(err, 500, "cannot open rootfs/%s", dir);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return sb_err_sys(err, 500, "cannot read rootfs/%s", dir);
    }
    int rc = 0;
    size_t suffix_len = strlen(suffix);
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_type != DT_REG || len < suffix_len || strcmp(de->d_name + len - suffix_len, suffix) != 0 ||
            (keep && strcmp(de->d_name, keep) == 0))
            continue;
        if (unlinkat(fd, de->d_name, 0) < 0)
            rc = sb_err_sys(err, 500, "cannot remove rootfs/%s/%s", dir, de->d_name);
    }
    closedir(d);
    return rc;
}

static int debian_clean(const struct rootfs *r, struct sb_err *err)
{
    if (remove_files_in(r, "var/cache/apt/archives", ".deb", NULL, err) < 0 ||
        remove_files_in(r, "var/cache/apt", ".bin", NULL, err) < 0 ||
        remove_files_in(r, "var/lib/apt/lists", "", "lock", err) < 0)
        return -1;
    return write_network_files(r, err);
}

/* Skip the contents of the kernel's directories: they are mounted over at start. */
static int shift_descend(const char *relpath, void *arg)
{
    (void)arg;
    return strcmp(relpath, "proc") != 0 && strcmp(relpath, "dev") != 0 && strcmp(relpath, "sys") != 0;
}

/* The shift walk: hard-linked files are met once per link but must be
 * shifted once, so their inodes are remembered (one filesystem per walk). */
struct shift_state {
    uint32_t base;
    ino_t *seen;
    size_t seen_count, seen_cap;
};

/* Returns 1 when the inode was already shifted, 0 after recording it, -1 on ENOMEM. */
static int shift_seen(struct shift_state *s, ino_t ino)
{
    for (size_t i = 0; i < s->seen_count; i++)
        if (s->seen[i] == ino)
            return 1;
    if (s->seen_count == s->seen_cap) {
        size_t cap = s->seen_cap ? s->seen_cap * 2 : 256;
        ino_t *grown = realloc(s->seen, cap * sizeof *grown);
        if (!grown)
            return -1;
        s->seen = grown;
        s->seen_cap = cap;
    }
    s->seen[s->seen_count++] = ino;
    return 0;
}

/* lchown by uid_base; chown clears set-id bits, so those modes are re-applied. */
static int shift_visit(int dirfd, const char *name, const struct stat *st, const char *relpath,
                       void *arg, struct sb_err *err)
{
    struct shift_state *s = arg;
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
        int seen = shift_seen(s, st->st_ino);
        if (seen < 0)
            return sb_err_set(err, 500, "out of memory");
        if (seen)
            return 0;
    }
    if (st->st_uid >= SANDBOX_ID_RANGE || st->st_gid >= SANDBOX_ID_RANGE)
        return sb_err_set(err, 500, "rootfs/%s: owner %u:%u is outside the sandbox id range", relpath,
                          (unsigned)st->st_uid, (unsigned)st->st_gid);
    if (fchownat(dirfd, name, s->base + st->st_uid, s->base + st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        return sb_err_sys(err, 500, "cannot chown rootfs/%s", relpath);
    if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID)) &&
        fchmodat(dirfd, name, st->st_mode & 07777, 0) < 0)
        return sb_err_sys(err, 500, "cannot restore mode of rootfs/%s", relpath);
    return 0;
}

static int shift_ownership(const char *rootfs, uint32_t uid_base, struct sb_err *err)
{
    struct shift_state state = {.base = uid_base};
    struct walk w = {.visit = shift_visit, .descend = shift_descend, .arg = &state};
    int rc = walk_tree(rootfs, &w, err);
    free(state.seen);
    return rc;
}

static int debian_fill_rootfs(struct build *b, const char *data_dir, uint32_t uid_base, const char *packages,
                              const char *mirror, sb_progress_fn progress, void *arg, struct sb_err *err)
{
    char cache[SB_PATH_MAX], abs_data[SB_PATH_MAX];
    if (!realpath(data_dir, abs_data))
        return sb_err_sys(err, 500, "cannot resolve %s", data_dir);
    if (path_fmt(cache, sizeof cache, err, "%s/cache", abs_data) < 0 || mkdir_if_missing(cache, 0755, err) < 0 ||
        path_fmt(cache, sizeof cache, err, "%s/cache/debootstrap", abs_data) < 0 ||
        mkdir_if_missing(cache, 0755, err) < 0)
        return -1;
    if (run_debootstrap(b, packages, mirror, cache, progress, arg, err) < 0)
        return -1;
    sb_unmount_below(b->rootfs_path);
    if (progress)
        progress(arg, "sandbase: adding user, cleaning apt caches, mapping ownership");
    if (debian_add_user(&b->rootfs, err) < 0 || debian_clean(&b->rootfs, err) < 0)
        return -1;
    return shift_ownership(b->rootfs_path, uid_base, err);
}

int template_build_debian(const char *data_dir, const char *name, uint32_t uid_base, const char *packages,
                          const char *mirror, int force, sb_progress_fn progress, void *progress_arg,
                          struct sb_err *err)
{
    if (!mirror || !*mirror)
        mirror = getenv("SANDBASE_DEBIAN_MIRROR");
    if (!mirror || !*mirror)
        mirror = DEBIAN_MIRROR;
    if (packages && *packages == '\0')
        packages = NULL;
    if (packages && !packages_valid(packages))
        return sb_err_set(err, 400, "invalid package list '%s': use comma-separated Debian package names",
                          packages);
    if (geteuid() != 0)
        return sb_err_set(err, 403, "building a debian template needs root (debootstrap chroots and mknods)");
    struct build b;
    /* Owners stay sandbox ids (id_add 0) until shift_ownership maps the whole tree. */
    if (build_begin(data_dir, name, 0, force, &b, err) < 0 ||
        debian_fill_rootfs(&b, data_dir, uid_base, packages, mirror, progress, progress_arg, err) < 0 ||
        write_template_json(&b, name, "debian", packages, 0, err) < 0 ||
        build_commit(&b, data_dir, name, err) < 0) {
        build_abort(&b);
        return sb_err_prefix(err, "building template %s", name ? name : "");
    }
    return 0;
}

/* ---------------------------------------------------------------- loading */

static int copy_json_string(char *dst, size_t len, json_t *obj, const char *key, int required,
                            const char *path, struct sb_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v && !required)
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= len)
        return sb_err_set(err, 500, "%s: \"%s\" must be a string shorter than %zu", path, key, len);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int load_id(uint32_t *out, json_t *obj, const char *key, const char *path, struct sb_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= SANDBOX_ID_RANGE)
        return sb_err_set(err, 500, "%s: \"%s\" must be an integer 0-65535", path, key);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int load_binds(struct sb_template *t, json_t *binds, const char *path, struct sb_err *err)
{
    if (!binds)
        return 0;
    if (!json_is_array(binds) || json_array_size(binds) > SB_TEMPLATE_MAX_BINDS)
        return sb_err_set(err, 500, "%s: \"binds\" must be an array of at most %d binds", path,
                          SB_TEMPLATE_MAX_BINDS);
    size_t i;
    json_t *bind;
    json_array_foreach(binds, i, bind) {
        struct sb_template_bind *out = &t->binds[i];
        json_t *ro = json_object_get(bind, "readonly");
        if (!json_is_object(bind) ||
            copy_json_string(out->source, sizeof out->source, bind, "source", 1, path, err) < 0 ||
            copy_json_string(out->target, sizeof out->target, bind, "target", 1, path, err) < 0 ||
            (ro && !json_is_boolean(ro)) || out->source[0] != '/' || out->target[0] != '/')
            return sb_err_set(err, 500, "%s: bind %zu must have absolute \"source\" and \"target\" "
                                        "and a boolean \"readonly\"", path, i);
        out->readonly = ro ? json_is_true(ro) : 1;
        t->bind_count++;
    }
    return 0;
}

static int load_limits(struct sb_limits *lim, json_t *obj, const char *path, struct sb_err *err)
{
    if (!obj)
        return 0;
    struct { const char *key; int *field; } keys[] = {
        {"cpu_count", &lim->cpu_count}, {"memory_mb", &lim->memory_mb},
        {"pids", &lim->pids}, {"disk_mb", &lim->disk_mb},
    };
    if (!json_is_object(obj))
        return sb_err_set(err, 500, "%s: \"limits\" must be an object", path);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(obj, keys[i].key);
        if (!v)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30))
            return sb_err_set(err, 500, "%s: limits.%s must be a non-negative integer", path, keys[i].key);
        *keys[i].field = (int)json_integer_value(v);
    }
    return 0;
}

static int load_fields(struct sb_template *t, json_t *root, const char *path, struct sb_err *err)
{
    json_t *env = json_object_get(root, "env");
    if (!json_is_object(root))
        return sb_err_set(err, 500, "%s: must be a JSON object", path);
    if (copy_json_string(t->kind, sizeof t->kind, root, "kind", 1, path, err) < 0 ||
        copy_json_string(t->user, sizeof t->user, root, "user", 1, path, err) < 0 ||
        copy_json_string(t->home, sizeof t->home, root, "home", 1, path, err) < 0 ||
        copy_json_string(t->workdir, sizeof t->workdir, root, "workdir", 1, path, err) < 0 ||
        copy_json_string(t->created_at, sizeof t->created_at, root, "createdAt", 0, path, err) < 0 ||
        load_id(&t->uid, root, "uid", path, err) < 0 || load_id(&t->gid, root, "gid", path, err) < 0 ||
        load_binds(t, json_object_get(root, "binds"), path, err) < 0 ||
        load_limits(&t->limits, json_object_get(root, "limits"), path, err) < 0)
        return -1;
    if (env && !json_is_object(env))
        return sb_err_set(err, 500, "%s: \"env\" must be an object of strings", path);
    const char *key;
    json_t *v;
    json_object_foreach(env, key, v)
        if (!json_is_string(v))
            return sb_err_set(err, 500, "%s: env.%s must be a string", path, key);
    t->env_json = env ? json_dumps(env, JSON_COMPACT) : strdup("{}");
    if (!t->env_json)
        return sb_err_set(err, 500, "out of memory");
    return 0;
}

/* Parses the template.json at path into out (whose dir and rootfs the
 * caller has set or left empty). */
static int load_json_file(const char *path, const char *name, struct sb_template *out, struct sb_err *err)
{
    snprintf(out->name, sizeof out->name, "%s", name);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (access(path, F_OK) < 0 && errno == ENOENT)
            return sb_err_set(err, 400, "unknown template: %s", name);
        return sb_err_set(err, 500, "%s: invalid JSON at line %d: %s (rebuild or remove the template)",
                          path, jerr.line, jerr.text);
    }
    int rc = load_fields(out, root, path, err);
    json_decref(root);
    if (rc < 0)
        template_clear(out);
    return rc;
}

int template_load(const char *data_dir, const char *name, struct sb_template *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    if (!template_name_valid(name))
        return sb_err_set(err, 400, "unknown template: %s", name ? name : "");
    char path[SB_PATH_MAX];
    if (path_fmt(out->dir, sizeof out->dir, err, "%s/templates/%s", data_dir, name) < 0 ||
        path_fmt(out->rootfs, sizeof out->rootfs, err, "%s/rootfs", out->dir) < 0 ||
        path_fmt(path, sizeof path, err, "%s/template.json", out->dir) < 0)
        return -1;
    if (load_json_file(path, name, out, err) < 0)
        return -1;
    struct stat st;
    if (stat(out->dir, &st) == 0)
        out->identity = (uint64_t)st.st_ino;
    return 0;
}

int template_snapshot(const struct sb_template *tpl, const char *dest, struct sb_err *err)
{
    char src[SB_PATH_MAX], tmp[SB_PATH_MAX];
    if (path_fmt(src, sizeof src, err, "%s/template.json", tpl->dir) < 0 ||
        path_fmt(tmp, sizeof tmp, err, "%s.tmp", dest) < 0)
        return -1;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return sb_err_sys(err, 500, "template %s: cannot read %s", tpl->name, src);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return sb_err_sys(err, 500, "template %s: cannot write %s", tpl->name, tmp);
    }
    int rc = copy_file_data(in, out);
    close(in);
    if (close(out) < 0)
        rc = -1;
    if (rc < 0 || rename(tmp, dest) < 0) {
        unlink(tmp);
        return sb_err_sys(err, 500, "template %s: cannot write %s", tpl->name, dest);
    }
    return 0;
}

int template_load_snapshot(const char *path, const char *name, struct sb_template *out,
                           struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    return load_json_file(path, name, out, err);
}

void template_clear(struct sb_template *tpl)
{
    if (!tpl)
        return;
    free(tpl->env_json);
    tpl->env_json = NULL;
}

/* ---------------------------------------------------------------- list, remove, limits */

static int compare_by_name(const void *a, const void *b)
{
    return strcmp(((const struct sb_template *)a)->name, ((const struct sb_template *)b)->name);
}

/* Opens <data-dir>/templates; *out is NULL (and 0 returned) when it does
 * not exist yet. */
static int open_templates_dir(const char *data_dir, DIR **out, struct sb_err *err)
{
    char dir[SB_PATH_MAX];
    *out = NULL;
    if (path_fmt(dir, sizeof dir, err, "%s/templates", data_dir) < 0)
        return -1;
    *out = opendir(dir);
    if (!*out && errno != ENOENT)
        return sb_err_sys(err, 500, "cannot read %s", dir);
    return 0;
}

/* Directories without template.json (not templates) and hidden build
 * directories are skipped; a corrupt template.json is an error naming it. */
int template_list(const char *data_dir, struct sb_template **out, size_t *count, struct sb_err *err)
{
    *out = NULL;
    *count = 0;
    DIR *d;
    if (open_templates_dir(data_dir, &d, err) < 0)
        return -1;
    if (!d)
        return 0;
    struct sb_template *list = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (!template_name_valid(de->d_name))
            continue;
        if (n == cap) {
            size_t new_cap = cap ? cap * 2 : 8;
            struct sb_template *grown = realloc(list, new_cap * sizeof *list);
            if (!grown) {
                rc = sb_err_set(err, 500, "out of memory");
                break;
            }
            list = grown;
            cap = new_cap;
        }
        struct sb_err load_err = {0};
        if (template_load(data_dir, de->d_name, &list[n], &load_err) == 0)
            n++;
        else if (load_err.status != 400)
            rc = sb_err_set(err, load_err.status, "%s", load_err.msg);
    }
    closedir(d);
    if (rc < 0) {
        template_list_free(list, n);
        return -1;
    }
    qsort(list, n, sizeof *list, compare_by_name);
    *out = list;
    *count = n;
    return 0;
}

void template_list_free(struct sb_template *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        template_clear(&list[i]);
    free(list);
}

int template_remove(const char *data_dir, const char *name, struct sb_err *err)
{
    if (!template_name_valid(name))
        return sb_err_set(err, 404, "unknown template: %s", name ? name : "");
    char final[SB_PATH_MAX];
    if (path_fmt(final, sizeof final, err, "%s/templates/%s", data_dir, name) < 0)
        return -1;
    struct stat st;
    if (lstat(final, &st) < 0 || !S_ISDIR(st.st_mode))
        return sb_err_set(err, 404, "unknown template: %s", name);
    /* Retired first, so nobody loads a half-deleted template and running
     * sandboxes keep their tree; template_gc deletes it once unused. */
    if (retire_dir(data_dir, name, final, err) < 0)
        return -1;
    return template_gc(data_dir, err);
}

/* ---------------------------------------------------------------- in use */

int template_hold(struct sb_template *tpl, int *fd_out, struct sb_err *err)
{
    int fd = open(tpl->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sb_err_sys(err, 500, "template %s: cannot open %s", tpl->name, tpl->dir);
    /* The directory now at the path must be the version tpl was loaded
     * from; a rebuild in between means template.json and tree disagree. */
    struct stat st;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_ino != tpl->identity) {
        close(fd);
        return sb_err_set(err, 409, "template %s was rebuilt or removed while this sandbox was "
                                    "being created; try again", tpl->name);
    }
    /* From here the rootfs is reached through the held directory, never
     * the name, so a later rebuild cannot swap it. */
    char rootfs[SB_PATH_MAX];
    snprintf(rootfs, sizeof rootfs, "/proc/self/fd/%d/rootfs", fd);
    snprintf(tpl->rootfs, sizeof tpl->rootfs, "%s", rootfs);
    *fd_out = fd;
    return 0;
}

/* Deletes one retired tree if no shim holds it. */
static void gc_one(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        struct sb_err ignored;
        remove_tree(dir, &ignored);
    }
    close(fd);          /* drops the lock, or leaves it to the sandbox still running on it */
}

int template_gc(const char *data_dir, struct sb_err *err)
{
    char templates[SB_PATH_MAX];
    DIR *d;
    if (path_fmt(templates, sizeof templates, err, "%s/templates", data_dir) < 0 ||
        open_templates_dir(data_dir, &d, err) < 0)
        return -1;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char dir[SB_PATH_MAX];
        struct sb_err ignored;
        if (strncmp(de->d_name, ".retired-", 9) == 0 &&
            path_fmt(dir, sizeof dir, &ignored, "%s/%s", templates, de->d_name) == 0)
            gc_one(dir);
    }
    closedir(d);
    return 0;
}

int template_identity(const char *data_dir, const char *name, uint64_t *out)
{
    char dir[SB_PATH_MAX];
    struct stat st;
    if (!template_name_valid(name) || snprintf(dir, sizeof dir, "%s/templates/%s", data_dir, name) >= (int)sizeof dir ||
        stat(dir, &st) < 0)
        return -1;
    *out = (uint64_t)st.st_ino;
    return 0;
}

static int effective_limit(int server_default, int override, int maximum)
{
    int v = override > 0 ? override : server_default;
    return maximum > 0 && v > maximum ? maximum : v;
}

void template_effective_limits(const struct sb_template *tpl, const struct sb_config *cfg,
                               struct sb_limits *out)
{
    struct sb_limits none = {0};
    const struct sb_limits *o = tpl ? &tpl->limits : &none;
    out->cpu_count = effective_limit(cfg->defaults.cpu_count, o->cpu_count, cfg->maxima.cpu_count);
    out->memory_mb = effective_limit(cfg->defaults.memory_mb, o->memory_mb, cfg->maxima.memory_mb);
    out->pids = effective_limit(cfg->defaults.pids, o->pids, cfg->maxima.pids);
    out->disk_mb = effective_limit(cfg->defaults.disk_mb, o->disk_mb, cfg->maxima.disk_mb);
}
