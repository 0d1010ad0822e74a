/*
 * mounts.c - builds a sandbox's root filesystem (see mounts.h), in this order:
 *
 *   1. make / MS_REC|MS_PRIVATE so nothing propagates back to the host;
 *   2. mount the sandbox's ext4 image on <sandbox_dir>/root, create upper/
 *      and work/ in it, and mount the overlay on top of that same directory
 *      (nosuid unless the template allows sudo);
 *   3. template binds (read-only, nosuid, nodev, recursive);
 *   4. /proc, its masked and read-only paths; /dev; /sys;
 *   5. /tmp, /etc/hosts and /etc/hostname when the template lacks them;
 *   6. pivot_root(".", ".") and detach the old root.
 *
 * Targets inside the new root are opened with openat2(RESOLVE_IN_ROOT) and
 * mounted on through /proc/self/fd/N (classic mount) or the fd itself
 * (open_tree + mount_setattr + move_mount for binds, which also makes the
 * read-only flag recursive). Device nodes are created with mknod rather than
 * bind-mounted from the host: we are host root in a mount namespace owned by
 * the initial user namespace, so mknod works, costs one syscall instead of
 * a mount each, and does not depend on the host's /dev.
 *
 * Owns: nothing after return.  Never: mounts anything in the host namespace.
 */
#include "shim/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define NOSUID_NODEV_NOEXEC (MS_NOSUID | MS_NODEV | MS_NOEXEC)

/* crun's / Docker's lists. Missing entries are skipped. */
static const char *const masked_paths[] = {
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

struct dev_node {
    const char *name;
    unsigned major, minor;
};
static const struct dev_node dev_nodes[] = {
    { "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
    { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};
static const char *const dev_links[][2] = {
    { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
    { "stderr", "/proc/self/fd/2" }, { "ptmx", "pts/ptmx" },
};

/* ---- helpers ------------------------------------------------------------ */

static void fd_path(char *buf, size_t len, int fd)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* Opens path (absolute, meaning inside rootfd) with symlinks resolved as if
 * rootfd were "/". Returns the fd or -1 with errno. */
static int open_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* Opens directory path inside rootfd as O_PATH, creating missing components
 * with mode and owner uid:gid. */
static int open_dir_in_root(int rootfd, const char *path, mode_t mode, uid_t uid, gid_t gid)
{
    int fd = open_in_root(rootfd, path, O_PATH | O_DIRECTORY, 0);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    char prefix[SB_PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof(prefix)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int parent = open_in_root(rootfd, "/", O_PATH | O_DIRECTORY, 0);
    for (size_t i = 1; parent >= 0 && i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        int next = open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY, 0);
        if (next < 0 && errno == ENOENT) {
            const char *name = strrchr(prefix, '/') + 1;
            if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
                break;
            if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                break;
            next = open_in_root(rootfd, prefix, O_PATH | O_DIRECTORY, 0);
        }
        close(parent);
        parent = next;
    }
    if (parent >= 0 && strlen(prefix) != len) { /* loop left early */
        close(parent);
        return -1;
    }
    return parent;
}

/* Classic mount of a new filesystem instance on the object fd refers to. */
static int mount_on_fd(int fd, const char *source, const char *type, unsigned long flags, const char *data)
{
    char target[64];
    fd_path(target, sizeof(target), fd);
    return mount(source, target, type, flags, data);
}

/* Clones the tree at (from_dfd, from_path), applies attrs recursively and
 * attaches it on the object to_fd refers to. */
static int bind_on_fd(int from_dfd, const char *from_path, int to_fd, uint64_t attrs)
{
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE;
    if (from_path[0] == '\0')
        flags |= AT_EMPTY_PATH;
    int tree = open_tree(from_dfd, from_path, flags);
    if (tree < 0)
        return -1;
    struct mount_attr attr = { .attr_set = attrs };
    int rc = 0;
    if (attrs && mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
        rc = -1;
    if (rc == 0 && move_mount(tree, "", to_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        rc = -1;
    int saved = errno;
    close(tree);
    errno = saved;
    return rc;
}

/* ---- 1-2: private propagation, upper filesystem, overlay --------------- */

static int path_ok_for_overlay(const char *path)
{
    return strpbrk(path, ",:\\") == NULL;
}

static int mount_overlay(const struct sb_mount_plan *p, struct sb_err *err)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return sb_err_sys(err, 500, "mounts: making / private");
    if (chdir(p->sandbox_dir) < 0)
        return sb_err_sys(err, 500, "mounts: chdir %s", p->sandbox_dir);
    /* noinit_itable: the image is throwaway, skip zeroing inode tables in the background. */
    if (mount(p->loop_dev, "root", "ext4", MS_NOSUID | MS_NODEV, "noinit_itable") < 0)
        return sb_err_sys(err, 500, "mounts: mounting %s (ext4) on %s/root", p->loop_dev, p->sandbox_dir);
    struct stat lower;
    if (stat(p->lower, &lower) < 0)
        return sb_err_sys(err, 500, "mounts: template rootfs %s", p->lower);
    /* The merged root takes its owner and mode from upper/. */
    if ((mkdir("root/upper", lower.st_mode & 07777) < 0 && errno != EEXIST) ||
        chown("root/upper", lower.st_uid, lower.st_gid) < 0 || chmod("root/upper", lower.st_mode & 07777) < 0 ||
        (mkdir("root/work", 0700) < 0 && errno != EEXIST))
        return sb_err_sys(err, 500, "mounts: creating upper/work in %s/root", p->sandbox_dir);
    if (!path_ok_for_overlay(p->lower))
        return sb_err_set(err, 500, "mounts: template path %s contains ',', ':' or '\\'", p->lower);
    char data[SB_PATH_MAX + 128];
    int n = snprintf(data, sizeof(data), "lowerdir=%s,upperdir=root/upper,workdir=root/work,volatile", p->lower);
    if (n < 0 || (size_t)n >= sizeof(data) || n >= 4096)
        return sb_err_set(err, 500, "mounts: overlay options too long");
    /* A sudo template's root honours setuid bits (its sudo); binds, /dev and
     * /tmp stay nosuid whatever the template says. */
    unsigned long flags = MS_NODEV | (p->allow_setuid ? 0 : MS_NOSUID);
    if (mount("overlay", "root", "overlay", flags, data) < 0)
        return sb_err_sys(err, 500, "mounts: mounting overlay (%s) on %s/root", data, p->sandbox_dir);
    return 0;
}

/* ---- 3: template binds -------------------------------------------------- */

static int mount_binds(int rootfd, const struct sb_mount_plan *p, struct sb_err *err)
{
    for (int i = 0; i < p->bind_count; i++) {
        const struct sb_spec_bind *b = &p->binds[i];
        struct stat st;
        if (stat(b->source, &st) < 0)
            return sb_err_sys(err, 500, "mounts: bind source %s", b->source);
        int target;
        if (S_ISDIR(st.st_mode)) {
            target = open_dir_in_root(rootfd, b->target, 0755, p->root_uid, p->root_gid);
        } else {
            target = open_in_root(rootfd, b->target, O_WRONLY | O_CREAT | O_NOFOLLOW, 0644);
            if (target >= 0) { /* reopen as O_PATH: move_mount needs no write access */
                int path_fd = open_in_root(rootfd, b->target, O_PATH | O_NOFOLLOW, 0);
                close(target);
                target = path_fd;
            }
        }
        if (target < 0)
            return sb_err_sys(err, 500, "mounts: bind target %s", b->target);
        uint64_t attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (b->readonly ? MOUNT_ATTR_RDONLY : 0);
        int rc = bind_on_fd(AT_FDCWD, b->source, target, attrs);
        int saved = errno;
        close(target);
        if (rc < 0) {
            errno = saved;
            return sb_err_sys(err, 500, "mounts: binding %s on %s", b->source, b->target);
        }
    }
    return 0;
}

/* ---- 4: /proc, /dev, /sys ------------------------------------------------ */

/* Mounts a fresh filesystem on dir (created if missing) inside rootfd. */
static int mount_fs_in_root(int rootfd, const struct sb_mount_plan *p, const char *dir, const char *type,
                            unsigned long flags, const char *data, struct sb_err *err)
{
    int fd = open_dir_in_root(rootfd, dir, 0755, p->root_uid, p->root_gid);
    if (fd < 0)
        return sb_err_sys(err, 500, "mounts: opening %s", dir);
    int rc = mount_on_fd(fd, type, type, flags, data);
    int saved = errno;
    close(fd);
    if (rc < 0) {
        errno = saved;
        return sb_err_sys(err, 500, "mounts: mounting %s on %s", type, dir);
    }
    return 0;
}

/* Masked file: /dev/null on top; masked directory: an empty read-only tmpfs. */
static int mask_path(int rootfd, const char *path, struct sb_err *err)
{
    int fd = open_in_root(rootfd, path, O_PATH | O_NOFOLLOW, 0);
    if (fd < 0)
        return errno == ENOENT ? 0 : sb_err_sys(err, 500, "mounts: opening %s to mask it", path);
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc == 0 && S_ISDIR(st.st_mode))
        rc = mount_on_fd(fd, "tmpfs", "tmpfs", MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=4k,nr_inodes=1,mode=555");
    else if (rc == 0)
        rc = bind_on_fd(AT_FDCWD, "/dev/null", fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    int saved = errno;
    close(fd);
    if (rc < 0) {
        errno = saved;
        return sb_err_sys(err, 500, "mounts: masking %s", path);
    }
    return 0;
}

static int make_readonly(int rootfd, const char *path, struct sb_err *err)
{
    int fd = open_in_root(rootfd, path, O_PATH | O_NOFOLLOW, 0);
    if (fd < 0)
        return errno == ENOENT ? 0 : sb_err_sys(err, 500, "mounts: opening %s", path);
    int rc = bind_on_fd(fd, "", fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    int saved = errno;
    close(fd);
    if (rc < 0) {
        errno = saved;
        return sb_err_sys(err, 500, "mounts: making %s read-only", path);
    }
    return 0;
}

static int mount_proc_sys(int rootfd, const struct sb_mount_plan *p, struct sb_err *err)
{
    if (mount_fs_in_root(rootfd, p, "/proc", "proc", NOSUID_NODEV_NOEXEC, NULL, err) < 0 ||
        mount_fs_in_root(rootfd, p, "/sys", "sysfs", MS_RDONLY | NOSUID_NODEV_NOEXEC, NULL, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(masked_paths) / sizeof(masked_paths[0]); i++)
        if (mask_path(rootfd, masked_paths[i], err) < 0)
            return -1;
    for (size_t i = 0; i < sizeof(readonly_paths) / sizeof(readonly_paths[0]); i++)
        if (make_readonly(rootfd, readonly_paths[i], err) < 0)
            return -1;
    return 0;
}

static int populate_dev(int devfd, const struct sb_mount_plan *p, struct sb_err *err)
{
    for (size_t i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
        const struct dev_node *d = &dev_nodes[i];
        if (mknodat(devfd, d->name, S_IFCHR | 0666, makedev(d->major, d->minor)) < 0 ||
            fchownat(devfd, d->name, p->root_uid, p->root_gid, AT_SYMLINK_NOFOLLOW) < 0)
            return sb_err_sys(err, 500, "mounts: creating /dev/%s", d->name);
    }
    for (size_t i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++)
        if (symlinkat(dev_links[i][1], devfd, dev_links[i][0]) < 0)
            return sb_err_sys(err, 500, "mounts: creating /dev/%s", dev_links[i][0]);
    if (mkdirat(devfd, "pts", 0755) < 0 || mkdirat(devfd, "shm", 01777) < 0)
        return sb_err_sys(err, 500, "mounts: creating /dev/pts and /dev/shm");
    return 0;
}

static int mount_dev(int rootfd, const struct sb_mount_plan *p, struct sb_err *err)
{
    char data[128];
    snprintf(data, sizeof(data), "mode=755,size=65536k,uid=%u,gid=%u", (unsigned)p->root_uid,
             (unsigned)p->root_gid);
    if (mount_fs_in_root(rootfd, p, "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, data, err) < 0)
        return -1;
    int devfd = open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY, 0);
    if (devfd < 0)
        return sb_err_sys(err, 500, "mounts: opening the new /dev");
    int rc = populate_dev(devfd, p, err);
    close(devfd);
    if (rc < 0)
        return -1;
    /* gid 5 (tty) inside the sandbox is host gid root_gid + 5. */
    snprintf(data, sizeof(data), "newinstance,ptmxmode=0666,mode=0620,gid=%u", (unsigned)p->root_gid + 5);
    if (mount_fs_in_root(rootfd, p, "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, data, err) < 0)
        return -1;
    snprintf(data, sizeof(data), "mode=1777,size=65536k,uid=%u,gid=%u", (unsigned)p->root_uid,
             (unsigned)p->root_gid);
    return mount_fs_in_root(rootfd, p, "/dev/shm", "tmpfs", NOSUID_NODEV_NOEXEC, data, err);
}

/* ---- 5: files the sandbox expects --------------------------------------- */

static int ensure_tmp(int rootfd, const struct sb_mount_plan *p, struct sb_err *err)
{
    int fd = open_in_root(rootfd, "/tmp", O_PATH | O_DIRECTORY, 0);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    fd = open_dir_in_root(rootfd, "/tmp", 01777, p->root_uid, p->root_gid);
    if (fd < 0)
        return sb_err_sys(err, 500, "mounts: creating /tmp");
    close(fd);
    return 0;
}

/* Creates path with content unless it exists (or its directory does not). */
static int write_if_missing(int rootfd, const struct sb_mount_plan *p, const char *path, const char *content,
                            struct sb_err *err)
{
    int fd = open_in_root(rootfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
    if (fd < 0)
        return (errno == EEXIST || errno == ENOENT) ? 0 : sb_err_sys(err, 500, "mounts: creating %s", path);
    size_t len = strlen(content);
    int rc = (write(fd, content, len) == (ssize_t)len && fchown(fd, p->root_uid, p->root_gid) == 0) ? 0 : -1;
    int saved = errno;
    close(fd);
    if (rc < 0) {
        errno = saved;
        return sb_err_sys(err, 500, "mounts: writing %s", path);
    }
    return 0;
}

static int ensure_etc(int rootfd, const struct sb_mount_plan *p, struct sb_err *err)
{
    char hosts[256], hostname[80];
    snprintf(hosts, sizeof(hosts), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n",
             p->hostname);
    snprintf(hostname, sizeof(hostname), "%s\n", p->hostname);
    if (write_if_missing(rootfd, p, "/etc/hosts", hosts, err) < 0)
        return -1;
    return write_if_missing(rootfd, p, "/etc/hostname", hostname, err);
}

/* ---- 6: pivot ------------------------------------------------------------ */

static int pivot(int rootfd, struct sb_err *err)
{
    if (fchdir(rootfd) < 0)
        return sb_err_sys(err, 500, "mounts: chdir to the new root");
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return sb_err_sys(err, 500, "mounts: pivot_root");
    /* The old root is now stacked on "."; detach it and everything below. */
    if (umount2(".", MNT_DETACH) < 0)
        return sb_err_sys(err, 500, "mounts: detaching the old root");
    if (chdir("/") < 0)
        return sb_err_sys(err, 500, "mounts: chdir /");
    return 0;
}

int mounts_build_root(const struct sb_mount_plan *p, struct sb_err *err)
{
    if (mount_overlay(p, err) < 0)
        return -1;
    int rootfd = open("root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return sb_err_sys(err, 500, "mounts: opening the merged root");
    int rc = -1;
    if (mount_binds(rootfd, p, err) == 0 && mount_proc_sys(rootfd, p, err) == 0 && mount_dev(rootfd, p, err) == 0 &&
        ensure_tmp(rootfd, p, err) == 0 && ensure_etc(rootfd, p, err) == 0)
        rc = pivot(rootfd, err);
    close(rootfd);
    return rc;
}
