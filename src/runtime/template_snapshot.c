/*
 * template_snapshot.c - a filesystem snapshot of a live sandbox: its whole
 * root as the sandbox sees it (the template's rootfs with the sandbox's
 * writable layer applied, so deleted files stay deleted) copied into a new
 * template that belongs to one org. No memory, no processes: a sandbox made
 * from it boots fresh on those files.
 *
 * The tree being read is hostile: the sandbox's root user made every entry
 * in it. So the copy
 *   - walks with *at calls on single names from directory fds opened
 *     O_NOFOLLOW, never following a symlink (links are copied as links,
 *     whatever they point at: they resolve inside the new sandbox's root);
 *   - stays on the root's mount: a directory on another one (proc, sys,
 *     dev, tmpfs, the template's read-only binds) becomes an empty
 *     directory, its contents are never read, and a file mounted over the
 *     root is left out;
 *   - copies only directories, regular files and symlinks: device nodes,
 *     FIFOs and sockets are left out, and a regular file is opened
 *     O_NONBLOCK | O_NOFOLLOW and checked again on its fd, so nothing is
 *     ever opened that could block or act;
 *   - drops set-uid/set-gid bits unless the template grants sudo (its
 *     sandboxes run setuid programs anyway, the rest never can), and copies
 *     no extended attributes (no file capabilities, no ACLs);
 *   - writes every entry with an owner inside the sandboxes' id range
 *     (an owner outside it becomes the sandbox's root), into a staging
 *     directory that only this process writes;
 *   - counts what it writes (file sizes as they claim to be, so a huge
 *     sparse file counts at its full size, and hard links once per name)
 *     against a bound and stops with 507 past it.
 *
 * Owns: the staging directory until it is committed or removed. Blocks on
 * the disk: workers only.
 */
#include "runtime/template.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/id.h"
#include "runtime/template_internal.h"

#define SNAPSHOT_MAX_DEPTH 128

struct snap_walk {
    int dry;                    /* only count */
    int keep_setid;
    uint32_t uid_base;
    dev_t dev;                  /* the root's filesystem */
    uint64_t mnt_id;            /* and its mount (statx); 0 = unknown */
    uint64_t used, max;         /* max 0 = unbounded (trusted trees) */
};

static int charge(struct snap_walk *w, uint64_t bytes, struct sb_err *err)
{
    w->used += bytes;
    if (w->max && w->used > w->max)
        return sb_err_set(err, 507, "snapshot would write more than %llu MB (the sandbox's disk size "
                                    "plus its template's): delete large or sparse files in the "
                                    "sandbox first", (unsigned long long)(w->max >> 20));
    return 0;
}

/* The mount an entry is on (statx STATX_MNT_ID), 0 when the kernel does
 * not say. Overlayfs may report a file's st_dev as its lower layer's, so
 * the mount id, not st_dev, tells a file bind-mounted over the root. */
static uint64_t mount_of(int dirfd, const char *name, int flags)
{
    struct statx stx;
    if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_MNT_ID, &stx) < 0 ||
        !(stx.stx_mask & STATX_MNT_ID))
        return 0;
    return stx.stx_mnt_id;
}

/* An entry on another mount than the root's (a mount point, a bind). */
static int on_other_mount(const struct snap_walk *w, int dirfd, const char *name, int flags)
{
    uint64_t mnt = w->mnt_id ? mount_of(dirfd, name, flags) : 0;
    return mnt && mnt != w->mnt_id;
}

/* Host ids for a sandbox entry's owner: kept when inside the sandbox range. */
static void mapped_owner(const struct snap_walk *w, const struct stat *st, uid_t *uid, gid_t *gid)
{
    *uid = st->st_uid >= w->uid_base && st->st_uid - w->uid_base < SANDBOX_ID_RANGE ? st->st_uid : w->uid_base;
    *gid = st->st_gid >= w->uid_base && st->st_gid - w->uid_base < SANDBOX_ID_RANGE ? st->st_gid : w->uid_base;
}

static int snap_dir(struct snap_walk *w, int src_dir, const char *name, int dst_dir, int depth,
                    struct sb_err *err);

static int snap_file(struct snap_walk *w, int src_dir, const char *name, const struct stat *st, int dst_dir,
                     struct sb_err *err)
{
    int src = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (src < 0)
        return sb_err_sys(err, 500, "snapshot: cannot open %s", name);
    struct stat now;
    if (fstat(src, &now) < 0 || !S_ISREG(now.st_mode) || now.st_ino != st->st_ino || now.st_dev != st->st_dev) {
        close(src);
        return 0;   /* swapped for something else since the listing: left out */
    }
    uid_t uid;
    gid_t gid;
    mapped_owner(w, st, &uid, &gid);
    mode_t mode = st->st_mode & (w->keep_setid ? 07777 : 01777);
    int dst = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = 0;
    if (dst < 0 || copy_file_data_max(src, dst, (uint64_t)st->st_size) < 0 || fchown(dst, uid, gid) < 0 ||
        fchmod(dst, mode) < 0)
        rc = sb_err_sys(err, errno == ENOSPC || errno == EDQUOT ? 507 : 500, "snapshot: cannot copy %s", name);
    close(src);
    if (dst >= 0)
        close(dst);
    return rc;
}

static int snap_symlink(struct snap_walk *w, int src_dir, const char *name, const struct stat *st, int dst_dir,
                        struct sb_err *err)
{
    char target[SB_PATH_MAX];
    ssize_t n = readlinkat(src_dir, name, target, sizeof target - 1);
    if (n < 0)
        return sb_err_sys(err, 500, "snapshot: cannot read link %s", name);
    target[n] = '\0';
    uid_t uid;
    gid_t gid;
    mapped_owner(w, st, &uid, &gid);
    if (symlinkat(target, dst_dir, name) < 0 || fchownat(dst_dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return sb_err_sys(err, 500, "snapshot: cannot create link %s", name);
    return 0;
}

/* One entry of a directory being copied (name is a single component). */
static int snap_entry(struct snap_walk *w, int src_dir, const char *name, int dst_dir, int depth,
                      struct sb_err *err)
{
    struct stat st;
    if (fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : sb_err_sys(err, 500, "snapshot: cannot stat %s", name);
    int kept = S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISLNK(st.st_mode);
    if (!kept)
        return 0;   /* devices, FIFOs, sockets: never copied */
    if (!S_ISDIR(st.st_mode) && on_other_mount(w, src_dir, name, 0))
        return 0;   /* a file mounted over the root: not the sandbox's */
    if (charge(w, SB_SNAPSHOT_ENTRY_BYTES + (S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0), err) < 0)
        return -1;
    if (S_ISDIR(st.st_mode))
        return snap_dir(w, src_dir, name, dst_dir, depth + 1, err);
    if (w->dry)
        return 0;
    return S_ISREG(st.st_mode) ? snap_file(w, src_dir, name, &st, dst_dir, err)
                               : snap_symlink(w, src_dir, name, &st, dst_dir, err);
}

/* A directory: its contents unless it is on another filesystem, then its
 * owner and mode (after the contents, so a read-only mode cannot stop them). */
static int snap_dir(struct snap_walk *w, int src_dir, const char *name, int dst_dir, int depth,
                    struct sb_err *err)
{
    if (depth > SNAPSHOT_MAX_DEPTH)
        return sb_err_set(err, 409, "snapshot: the sandbox has directories nested deeper than %d; "
                                    "flatten them first", SNAPSHOT_MAX_DEPTH);
    int sfd = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (sfd < 0)
        return errno == ENOENT ? 0 : sb_err_sys(err, 500, "snapshot: cannot open directory %s", name);
    struct stat st;
    if (fstat(sfd, &st) < 0) {
        close(sfd);
        return sb_err_sys(err, 500, "snapshot: cannot stat %s", name);
    }
    /* a mount point: kept empty */
    int foreign = st.st_dev != w->dev || on_other_mount(w, sfd, "", AT_EMPTY_PATH);
    int dfd = -1;
    if (!w->dry) {
        if (depth > 0 && mkdirat(dst_dir, name, 0700) < 0) {
            close(sfd);
            return sb_err_sys(err, 500, "snapshot: cannot create %s", name);
        }
        dfd = depth > 0 ? openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : dup(dst_dir);
        if (dfd < 0) {
            close(sfd);
            return sb_err_sys(err, 500, "snapshot: cannot open %s", name);
        }
    }
    int rc = 0;
    DIR *d = foreign ? NULL : fdopendir(sfd);
    if (!foreign && !d)
        rc = sb_err_sys(err, 500, "snapshot: cannot read directory %s", name);
    struct dirent *de;
    while (d && rc == 0 && (errno = 0, de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            rc = snap_entry(w, sfd, de->d_name, dfd, depth, err);
    if (d && rc == 0 && errno != 0)
        rc = sb_err_sys(err, 500, "snapshot: cannot read directory %s", name);
    if (d)
        closedir(d);        /* closes sfd */
    else
        close(sfd);
    if (rc == 0 && dfd >= 0) {
        uid_t uid;
        gid_t gid;
        mapped_owner(w, &st, &uid, &gid);
        mode_t mode = foreign ? 0755 : st.st_mode & (w->keep_setid ? 07777 : 01777);
        if (foreign)
            uid = gid = w->uid_base;
        if (fchown(dfd, uid, gid) < 0 || fchmod(dfd, mode) < 0)
            rc = sb_err_sys(err, 500, "snapshot: cannot set owner of %s", name);
    }
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* Walks root_fd's tree (as ".") into dst_fd, or only counts (dst_fd < 0). */
static int snap_walk_root(struct snap_walk *w, int root_fd, int dst_fd, struct sb_err *err)
{
    struct stat st;
    if (fstat(root_fd, &st) < 0 || !S_ISDIR(st.st_mode))
        return sb_err_sys(err, 500, "snapshot: the sandbox's root is not a directory");
    w->dev = st.st_dev;
    w->mnt_id = mount_of(root_fd, "", AT_EMPTY_PATH);
    w->dry = dst_fd < 0;
    return snap_dir(w, root_fd, ".", dst_fd, 0, err);
}

int template_snapshot_measure(int root_fd, uint64_t max_bytes, uint64_t *bytes, struct sb_err *err)
{
    struct snap_walk w = {.max = max_bytes};
    int rc = snap_walk_root(&w, root_fd, -1, err);
    *bytes = w.used;
    return rc;
}

int template_tree_bytes(const char *path, uint64_t *bytes, struct sb_err *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot open %s", path);
    int rc = template_snapshot_measure(fd, 0, bytes, err);
    close(fd);
    return rc;
}

/* The source's template.json with the snapshot's name, owner and origin. */
static int write_snapshot_json(const struct build *b, const struct sb_snapshot_request *req,
                               const char *data_dir, int *sudo, struct sb_err *err)
{
    char path[SB_PATH_MAX];
    if (path_fmt(path, sizeof path, err, "%s/templates/%s/template.json", data_dir, req->source_template) < 0)
        return -1;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return sb_err_set(err, 409, "the sandbox's template %s no longer exists; a snapshot needs it",
                          req->source_template);
    }
    char created[32];
    sb_time_rfc3339(sb_wall_ms(), created, sizeof created);
    *sudo = json_is_true(json_object_get(root, "sudo"));
    json_t *snap = json_pack("{s:s, s:s}", "sandboxID", req->sandbox_id, "template", req->source_template);
    if (snap && req->label)
        json_object_set_new(snap, "name", json_string(req->label));
    json_object_set_new(root, "name", json_string(req->name));
    json_object_set_new(root, "createdAt", json_string(created));
    json_object_set_new(root, "org", json_string(req->org_id));
    json_object_set_new(root, "snapshot", snap);
    int rc = path_fmt(path, sizeof path, err, "%s/template.json", b->dir);
    if (rc == 0 && (!snap || json_dump_file(root, path, JSON_INDENT(2)) < 0))
        rc = sb_err_sys(err, 500, "cannot write %s", path);
    json_decref(root);
    return rc;
}

/* /etc/hosts and /etc/hostname name the sandbox: each sandbox gets its own
 * when its template has none (shim/mounts.c), so the source's are not
 * carried into a snapshot of such a template. */
static int drop_per_sandbox_files(const struct build *b, const char *data_dir, const char *source,
                                  struct sb_err *err)
{
    static const char *const per_sandbox[] = {"etc/hosts", "etc/hostname"};
    for (size_t i = 0; i < sizeof per_sandbox / sizeof per_sandbox[0]; i++) {
        char path[SB_PATH_MAX];
        struct stat st;
        if (path_fmt(path, sizeof path, err, "%s/templates/%s/rootfs/%s", data_dir, source, per_sandbox[i]) < 0)
            return -1;
        if (lstat(path, &st) < 0 && errno == ENOENT && unlinkat(b->rootfs.fd, per_sandbox[i], 0) < 0 &&
            errno != ENOENT)
            return sb_err_sys(err, 500, "snapshot: cannot remove %s", per_sandbox[i]);
    }
    return 0;
}

int template_snapshot(const char *data_dir, const struct sb_snapshot_request *req, struct sb_err *err)
{
    if (strncmp(req->name, SB_SNAPSHOT_PREFIX, strlen(SB_SNAPSHOT_PREFIX)) != 0 || !template_name_valid(req->name))
        return sb_err_set(err, 400, "invalid snapshot name %s", req->name);
    struct build b;
    int sudo = 0;
    if (build_begin(data_dir, req->name, req->uid_base, 0, &b, err) < 0 ||
        write_snapshot_json(&b, req, data_dir, &sudo, err) < 0) {
        build_abort(&b);
        return -1;
    }
    struct snap_walk w = {.max = req->max_bytes, .uid_base = req->uid_base, .keep_setid = sudo};
    if (snap_walk_root(&w, req->root_fd, b.rootfs.fd, err) < 0 ||
        drop_per_sandbox_files(&b, data_dir, req->source_template, err) < 0 || build_commit(&b, data_dir, req->name, err) < 0) {
        build_abort(&b);
        return -1;
    }
    return 0;
}
