/*
 * key_changes.c - the revocation marker and its inotify watch (see
 * key_changes.h). Owns the watch's inotify fd.
 */
#include "store/key_changes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/config.h"

#define MARKER "keys.changed"

struct store_key_watch {
    int fd;
    int broken;                 /* the marker went away: every poll says "changed" */
};

static int marker_path(char *out, size_t len, const char *data_dir, struct sb_err *err)
{
    if (snprintf(out, len, "%s/" MARKER, data_dir) >= (int)len)
        return sb_err_set(err, 500, "data dir path too long");
    return 0;
}

int store_keys_changed_mark(const char *data_dir, struct sb_err *err)
{
    char path[SB_PATH_MAX];
    if (marker_path(path, sizeof path, data_dir, err) < 0)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb_err_sys(err, 500, "cannot tell the server that keys changed (%s)", path);
    /* One byte per change; the file is truncated by the next server start. */
    ssize_t n = write(fd, "\n", 1);
    close(fd);
    return n == 1 ? 0 : sb_err_sys(err, 500, "cannot tell the server that keys changed (%s)", path);
}

struct store_key_watch *store_key_watch_open(const char *data_dir, struct sb_err *err)
{
    char path[SB_PATH_MAX];
    if (marker_path(path, sizeof path, data_dir, err) < 0)
        return NULL;
    int mfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (mfd < 0) {
        sb_err_sys(err, 500, "cannot create %s", path);
        return NULL;
    }
    close(mfd);
    struct store_key_watch *w = calloc(1, sizeof *w);
    if (!w) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0 || inotify_add_watch(w->fd, path, IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE |
                                                      IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        sb_err_sys(err, 500, "cannot watch %s", path);
        store_key_watch_close(w);
        return NULL;
    }
    return w;
}

void store_key_watch_close(struct store_key_watch *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w);
}

int store_key_watch_changed(struct store_key_watch *w)
{
    if (w->broken)
        return 1;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int changed = 0;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 && errno != EAGAIN ? (w->broken = 1) : changed;
        changed = 1;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW))
                w->broken = 1;
            p += sizeof *ev + ev->len;
        }
    }
}
