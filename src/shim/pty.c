/*
 * pty.c - pseudo-terminals in the sandbox's devpts (see pty.h).
 *
 * The master comes from the ptmx node of the devpts instance mounted at the
 * sandbox's /dev/pts, reached beneath /proc/<init>/root with openat2
 * (RESOLVE_IN_ROOT: whatever the sandbox does to its /dev, the path cannot
 * lead to the host's devpts), and is checked to be a ptmx before use. The
 * slave is opened from the master (TIOCGPTPEER), never by name.
 */
#include "shim/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>
#include <linux/openat2.h>

#define TTY_GID 5                       /* the devpts mount's gid= inside the sandbox */

static int open_ptmx(const struct sb_container *c, struct sb_err *err)
{
    int root = open(c->root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return sb_err_sys(err, 500, "pty: open the sandbox root");
    struct open_how how = {
        .flags = O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
    };
    int fd = (int)syscall(SYS_openat2, root, "dev/pts/ptmx", &how, sizeof how);
    int e = errno;
    close(root);
    if (fd < 0) {
        errno = e;
        return sb_err_sys(err, 500, "pty: open the sandbox's /dev/pts/ptmx");
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2) {
        close(fd);
        return sb_err_set(err, 500, "pty: the sandbox's /dev/pts/ptmx is not a ptmx device");
    }
    return fd;
}

int pty_resize(int master, uint16_t rows, uint16_t cols, struct sb_err *err)
{
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    if (ioctl(master, TIOCSWINSZ, &ws) < 0)
        return sb_err_sys(err, 500, "pty: set the window size");
    return 0;
}

int pty_open(const struct sb_container *c, uint32_t uid, uint16_t rows, uint16_t cols,
             int *master, int *slave, struct sb_err *err)
{
    int m = open_ptmx(c, err);
    if (m < 0)
        return -1;
    int unlock = 0;
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0) {
        close(m);
        return sb_err_sys(err, 500, "pty: unlock");
    }
    int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        close(m);
        return sb_err_sys(err, 500, "pty: open the slave");
    }
    const struct sb_spec *spec = &c->spec;
    int rc = fchown(s, spec->uid_map.outside + uid, spec->gid_map.outside + TTY_GID) < 0 || fchmod(s, 0620) < 0
                 ? sb_err_sys(err, 500, "pty: give the terminal to its user")
                 : pty_resize(m, rows, cols, err);
    if (rc < 0) {
        close(s);
        close(m);
        return -1;
    }
    *master = m;
    *slave = s;
    return 0;
}
