/*
 * fs.c - filesystem helpers (see fs.h).
 */
#include "core/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
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
