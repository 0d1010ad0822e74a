/*
 * fs.c - filesystem helpers (see fs.h).
 */
#include "core/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

int sb_mkdir_p(const char *path, mode_t mode, struct sb_err *err)
{
    char buf[PATH_MAX];
    int n = snprintf(buf, sizeof buf, "%s", path ? path : "");
    if (n <= 0 || (size_t)n >= sizeof buf)
        return sb_err_set(err, 400, "directory path is empty or too long");
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return sb_err_sys(err, 500, "cannot create directory %s", buf);
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return sb_err_sys(err, 500, "cannot use directory %s", path);
    if (!S_ISDIR(st.st_mode))
        return sb_err_set(err, 500, "%s is not a directory", path);
    return 0;
}

int sb_write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(s);
    ssize_t n = write(fd, s, len);
    int saved = errno;
    close(fd);
    if (n != (ssize_t)len) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

int sb_path_absolute(const char *path, char *out, size_t len, struct sb_err *err)
{
    char joined[PATH_MAX * 2];
    if (!path || !*path)
        return sb_err_set(err, 400, "path is empty");
    if (path[0] == '/') {
        snprintf(joined, sizeof joined, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return sb_err_sys(err, 500, "cannot make %s absolute: getcwd", path);
        snprintf(joined, sizeof joined, "%s/%s", cwd, path);
    }
    /* Rebuild component by component into norm. */
    char norm[PATH_MAX];
    size_t n = 0;
    for (char *seg = joined, *next; seg; seg = next) {
        char *slash = strchr(seg, '/');
        next = slash ? slash + 1 : NULL;
        if (slash)
            *slash = '\0';
        if (*seg == '\0' || strcmp(seg, ".") == 0)
            continue;
        if (strcmp(seg, "..") == 0) {
            while (n > 0 && norm[n - 1] != '/')
                n--;
            if (n > 0)
                n--;        /* the slash before the dropped component */
            continue;
        }
        size_t seg_len = strlen(seg);
        if (n + 1 + seg_len >= sizeof norm)
            return sb_err_set(err, 400, "path %.64s... is too long", path);
        norm[n++] = '/';
        memcpy(norm + n, seg, seg_len);
        n += seg_len;
    }
    if (n == 0)
        norm[n++] = '/';
    if (n >= len)
        return sb_err_set(err, 400, "path %.64s... is too long", path);
    memcpy(out, norm, n);
    out[n] = '\0';
    return 0;
}

int sb_lock_file(const char *path, int *fd_out, pid_t *holder, struct sb_err *err)
{
    *holder = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot open lock file %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int saved = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        close(fd);
        if (saved != EWOULDBLOCK) {
            errno = saved;
            return sb_err_sys(err, 500, "cannot lock %s", path);
        }
        if (n > 0)
            *holder = (pid_t)strtol(buf, NULL, 10);
        return sb_err_set(err, 409, "%s is locked: already used by pid %d", path, (int)*holder);
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        close(fd);
        return sb_err_sys(err, 500, "cannot write our pid into %s", path);
    }
    *fd_out = fd;
    return 0;
}

#define REMOVE_MAX_DEPTH 256

/* Removes name in parent (a directory fd) and below, on device dev only. */
static int remove_at(int parent, const char *name, dev_t dev, int depth, struct sb_err *err)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if ((errno != EISDIR && errno != EPERM) || depth > REMOVE_MAX_DEPTH)
        return sb_err_sys(err, 500, "cannot remove %s", name);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return sb_err_sys(err, 500, "cannot remove %s", name);
    }
    if (st.st_dev != dev) {     /* a mount point: not ours to empty */
        close(fd);
        return sb_err_set(err, 500, "cannot remove %s: another filesystem is mounted there", name);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return sb_err_sys(err, 500, "cannot remove %s", name);
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            remove_at(dirfd(d), de->d_name, dev, depth + 1, rc < 0 ? NULL : err) < 0)
            rc = -1;        /* keep going: remove what can be removed */
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = sb_err_sys(err, 500, "cannot remove %s", name);
    return rc;
}

int sb_remove_tree(const char *path, struct sb_err *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : sb_err_sys(err, 500, "cannot remove %s", path);
    return remove_at(AT_FDCWD, path, st.st_dev, 0, err);
}

void sb_unmount_below(const char *dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return;
    /* mountinfo lists parents before children: detach in reverse. */
    char (*points)[PATH_MAX] = NULL, *line = NULL;
    size_t n = 0, cap = 0, dir_len = strlen(dir);
    while (getline(&line, &cap, f) > 0) {
        char point[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1 || strncmp(point, dir, dir_len) != 0 ||
            (point[dir_len] != '\0' && point[dir_len] != '/'))
            continue;
        char (*grown)[PATH_MAX] = realloc(points, (n + 1) * sizeof *points);
        if (!grown)
            break;
        points = grown;
        memcpy(points[n++], point, sizeof point);
    }
    free(line);
    fclose(f);
    while (n > 0)
        umount2(points[--n], MNT_DETACH);
    free(points);
}

int sb_dir_hold(const char *path, uint64_t identity, int *fd_out, struct sb_err *err)
{
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot open %s", path);
    struct stat st;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_ino != identity) {
        close(fd);
        return sb_err_set(err, 409, "%s was replaced or removed", path);
    }
    *fd_out = fd;
    return 0;
}

int sb_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
