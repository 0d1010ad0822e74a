/*
 * container_disk.c - sparse ext4 images and loop devices for sandbox upper layers.
 *
 * A blank image per size lives at <data-dir>/cache/ext4-<MB>m.img. It is
 * built once with mkfs.ext4 (no journal: the image is throwaway; -m 0: the
 * sandbox's root is not host root, reserved blocks would only shrink the
 * quota; lazy inode tables, mounted later with noinit_itable), renamed into
 * place atomically, and then copied for each sandbox with SEEK_DATA/SEEK_HOLE
 * + copy_file_range so only the formatted metadata is copied.
 *
 * Owns: cache files and the images it creates.
 * Never: passes the caller's environment to mkfs, or keeps a loop device it
 * failed to configure.
 */
#include "shim/container_disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"

#define LOOP_ATTEMPTS 32

static int run_mkfs(const char *image, struct sb_err *err)
{
    static const char *const candidates[] = { "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4" };
    const char *mkfs = NULL;
    for (size_t i = 0; i < 2 && !mkfs; i++)
        if (access(candidates[i], X_OK) == 0)
            mkfs = candidates[i];
    if (!mkfs)
        return sb_err_set(err, 500, "disk: mkfs.ext4 not found (install e2fsprogs)");
    char *const argv[] = {
        (char *)"mkfs.ext4", (char *)"-q", (char *)"-F", (char *)"-m", (char *)"0", (char *)"-b",
        (char *)"4096", (char *)"-i", (char *)"8192", (char *)"-O", (char *)"^has_journal",
        (char *)"-E", (char *)"lazy_itable_init=1,nodiscard", (char *)image, NULL,
    };
    char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C", NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int fd = 0; fd < 3; fd++)
        posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd ? O_WRONLY : O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, mkfs, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        errno = rc;
        return sb_err_sys(err, 500, "disk: starting %s", mkfs);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return sb_err_sys(err, 500, "disk: waiting for mkfs.ext4");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return sb_err_set(err, 500, "disk: mkfs.ext4 %s failed (status 0x%x)", image, status);
    return 0;
}

static int make_dir(const char *path, struct sb_err *err)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return sb_err_sys(err, 500, "disk: creating %s", path);
    return 0;
}

/* Makes sure <data_dir>/cache/ext4-<mb>m.img exists; writes its path to out. */
static int blank_image(const char *data_dir, int disk_mb, char *out, size_t len, struct sb_err *err)
{
    char dir[SB_PATH_MAX], tmp[SB_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/cache", data_dir);
    int n = snprintf(out, len, "%s/ext4-%dm.img", dir, disk_mb);
    int m = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", out, (long)getpid());
    if (n < 0 || (size_t)n >= len || m < 0 || (size_t)m >= sizeof(tmp))
        return sb_err_set(err, 500, "disk: data dir path too long");
    if (access(out, F_OK) == 0)
        return 0;
    if (make_dir(data_dir, err) < 0 || make_dir(dir, err) < 0)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb_err_sys(err, 500, "disk: creating %s", tmp);
    int rc = ftruncate(fd, (off_t)disk_mb << 20);
    close(fd);
    if (rc < 0) {
        unlink(tmp);
        return sb_err_sys(err, 500, "disk: sizing %s", tmp);
    }
    /* Concurrent builders each format their own tmp file; the last rename wins, both are valid. */
    if (run_mkfs(tmp, err) < 0) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, out) < 0) {
        sb_err_sys(err, 500, "disk: renaming %s", tmp);
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Copies src to dst keeping holes: only the data extents are copied. */
static int copy_sparse(int src, int dst, off_t size)
{
    if (ftruncate(dst, size) < 0)
        return -1;
    off_t data = 0;
    while (data < size) {
        data = lseek(src, data, SEEK_DATA);
        if (data < 0)
            return errno == ENXIO ? 0 : -1; /* no more data */
        off_t hole = lseek(src, data, SEEK_HOLE);
        if (hole < 0)
            return -1;
        off_t in = data, out = data;
        while (in < hole) {
            ssize_t n = copy_file_range(src, &in, dst, &out, (size_t)(hole - in), 0);
            if (n <= 0)
                return n < 0 ? -1 : (errno = EIO, -1);
        }
        data = hole;
    }
    return 0;
}

int disk_image_create(const char *data_dir, const char *image_path, int disk_mb, struct sb_err *err)
{
    if (disk_mb < 16)
        return sb_err_set(err, 400, "disk: disk_mb must be at least 16 (got %d)", disk_mb);
    char blank[SB_PATH_MAX];
    if (blank_image(data_dir, disk_mb, blank, sizeof(blank), err) < 0)
        return -1;
    int src = open(blank, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        return sb_err_sys(err, 500, "disk: opening %s", blank);
    unlink(image_path);
    int dst = open(image_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (dst < 0) {
        close(src);
        return sb_err_sys(err, 500, "disk: creating %s", image_path);
    }
    int rc = copy_sparse(src, dst, (off_t)disk_mb << 20);
    int saved = errno;
    close(src);
    close(dst);
    if (rc < 0) {
        unlink(image_path);
        errno = saved;
        return sb_err_sys(err, 500, "disk: copying %s to %s", blank, image_path);
    }
    return 0;
}

int disk_loop_attach(const char *image_path, int *loop_fd, char *dev, size_t dev_len, struct sb_err *err)
{
    int img = open(image_path, O_RDWR | O_CLOEXEC);
    if (img < 0)
        return sb_err_sys(err, 500, "disk: opening %s", image_path);
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        close(img);
        return sb_err_sys(err, 500, "disk: opening /dev/loop-control");
    }
    struct loop_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.fd = (unsigned)img;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", image_path);
    int rc = -1, reported = 0;
    for (int attempt = 0; attempt < LOOP_ATTEMPTS && rc < 0 && !reported; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            reported = sb_err_sys(err, 500, "disk: LOOP_CTL_GET_FREE");
            continue;
        }
        snprintf(dev, dev_len, "/dev/loop%d", n);
        int fd = open(dev, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            reported = sb_err_sys(err, 500, "disk: opening %s", dev);
            continue;
        }
        if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
            *loop_fd = fd;
            rc = 0;
        } else {
            int saved = errno;
            close(fd);
            if (saved != EBUSY) { /* EBUSY: another process took this device first */
                errno = saved;
                reported = sb_err_sys(err, 500, "disk: LOOP_CONFIGURE %s", dev);
            }
        }
    }
    if (rc < 0 && !reported)
        sb_err_set(err, 500, "disk: no free loop device after %d attempts", LOOP_ATTEMPTS);
    close(ctl);
    close(img);
    return rc;
}
