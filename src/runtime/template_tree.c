/*
 * template_tree.c - the file operations a template build is made of: a
 * post-order tree walk, writes and copies into a rootfs being filled, and the
 * ownership shift that maps a whole tree into the sandboxes' uid range.
 *
 * Every file in a rootfs is owned by a *mapped* host id (uid_base + sandbox
 * id). `host` builds create files with mapped owners directly (struct
 * rootfs's id_add); `debian` builds write sandbox ids and shift the whole
 * tree by uid_base once (shift_ownership).
 *
 * Owns nothing beyond one call. Never follows a symlink out of a rootfs when
 * writing, never leaves the walk's filesystem.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "runtime/template_internal.h"

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
int remove_tree(const char *path, struct sb_err *err)
{
    sb_unmount_below(path);
    return sb_remove_tree(path, err);
}

/* ---------------------------------------------------------------- writing into a rootfs */


int rootfs_chown(const struct rootfs *r, const char *path, uint32_t id, struct sb_err *err)
{
    if (fchownat(r->fd, path, r->id_add + id, r->id_add + id, AT_SYMLINK_NOFOLLOW) < 0)
        return sb_err_sys(err, 500, "cannot chown rootfs/%s", path);
    return 0;
}

int rootfs_mkdir(const struct rootfs *r, const char *path, mode_t mode, uint32_t id,
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

int rootfs_symlink(const struct rootfs *r, const char *target, const char *path, struct sb_err *err)
{
    if (unlinkat(r->fd, path, 0) < 0 && errno != ENOENT)
        return sb_err_sys(err, 500, "cannot replace rootfs/%s", path);
    if (symlinkat(target, r->fd, path) < 0)
        return sb_err_sys(err, 500, "cannot create symlink rootfs/%s", path);
    return rootfs_chown(r, path, 0, err);
}

/* Creates (or replaces, never following a symlink) a file with this content. */
int rootfs_write(const struct rootfs *r, const char *path, const char *text, mode_t mode,
                 uint32_t id, struct sb_err *err)
{
    if (unlinkat(r->fd, path, 0) < 0 && errno != ENOENT)
        return sb_err_sys(err, 500, "cannot replace rootfs/%s", path);
    int fd = openat(r->fd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot create rootfs/%s", path);
    int rc = 0;
    if (sb_write_all(fd, text, strlen(text)) < 0 || fchown(fd, r->id_add + id, r->id_add + id) < 0 ||
        fchmod(fd, mode) < 0)
        rc = sb_err_sys(err, 500, "cannot write rootfs/%s", path);
    if (close(fd) < 0 && rc == 0)
        rc = sb_err_sys(err, 500, "cannot write rootfs/%s", path);
    return rc;
}

int rootfs_append(const struct rootfs *r, const char *path, const char *text, struct sb_err *err)
{
    int fd = openat(r->fd, path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot open rootfs/%s", path);
    int rc = 0;
    if (sb_write_all(fd, text, strlen(text)) < 0)
        rc = sb_err_sys(err, 500, "cannot append to rootfs/%s", path);
    close(fd);
    return rc;
}

int copy_file_data_max(int src, int dst, uint64_t max)
{
    char buf[65536];
    int plain = 0;      /* copy_file_range cannot do these two: read and write */
    while (max > 0) {
        size_t want = max < (1u << 20) ? (size_t)max : (1u << 20);
        ssize_t n = plain ? -1 : copy_file_range(src, NULL, dst, NULL, want, 0);
        if (n < 0 && (plain || errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
            plain = 1;
            n = read(src, buf, want < sizeof buf ? want : sizeof buf);
            if (n > 0 && sb_write_all(dst, buf, (size_t)n) < 0)
                return -1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        max -= (uint64_t)n;
    }
    return 0;
}

int copy_file_data(int src, int dst)
{
    return copy_file_data_max(src, dst, UINT64_MAX);
}

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
int copy_entry(int src_dir, const char *src_name, int dst_dir, const char *dst_name,
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

/* ---------------------------------------------------------------- ownership shift */

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

int shift_ownership(const char *rootfs, uint32_t uid_base, struct sb_err *err)
{
    struct shift_state state = {.base = uid_base};
    struct walk w = {.visit = shift_visit, .descend = shift_descend, .arg = &state};
    int rc = walk_tree(rootfs, &w, err);
    free(state.seen);
    return rc;
}
