/*
 * files_watch.c - watching a sandbox directory with inotify, for every
 * encoding of it: SandBase's SSE route (files_watch_sse.c), envd's WatchDir
 * stream and its polling watchers (e2b/envd_watch.c). The watch calls its
 * sink (files.h) with each change: create, write, remove, rename (the old
 * name; the new one is a create) or chmod, named relative to the watched
 * directory, and says when the kernel's queue overflowed.
 *
 * A worker resolves the directory inside the sandbox as the user (so it
 * must be allowed to read it) and adds the watches through the fds it
 * opened (/proc/self/fd/N: the inode, never a path the sandbox could
 * swap); with recursive, every directory below too (at most MAX_WATCHES),
 * in at most MAX_STREAMS watches on the whole server (503 beyond), and
 * directories created later are added by a worker job as their create
 * event arrives. Then the loop owns it: the inotify fd is read on the loop
 * (non-blocking), and while the sink says it holds enough it is not read
 * (the kernel queue then overflows rather than serve's memory growing).
 * The watch is over when the watched directory goes (IN_IGNORED for it:
 * deleted, or its filesystem unmounted because the sandbox ended) or the
 * sandbox's shim is gone (checked every CHECK_MS): the sink's gone runs.
 * The owner ends it with files_watch_close, once, on the loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "api/app.h"
#include "api/files.h"
#include "core/log.h"
#include "core/utf8.h"
#include "runtime/shim_client.h"

/* inotify instances and watches are counted per user, and serve runs as
 * the host's root: the caps keep every watch stream together well inside
 * the kernel's defaults (128 instances, 8192+ watches per user), so
 * clients cannot starve the host's own services of inotify */
#define MAX_STREAMS 32
#define MAX_WATCHES 1024
#define MAX_DEPTH 32
#define CHECK_MS 2000
#define MASK (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | \
              IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

static int open_streams;    /* watches alive; atomic (workers add, the loop removes) */

struct files_watch {
    struct sb_app *app;
    const struct files_watch_sink *sink;
    void *sink_arg;
    struct sb_fs fs;                /* our own root fd, for adding watches later */
    char id[32];
    int ifd;
    int recursive;
    int reading;                    /* the loop watches ifd for input */
    int paused;                     /* the sink asked for no more until files_watch_resume */
    int gone;                       /* the sink was told the watch is over */
    uint64_t timer;
    int jobs;                       /* loop: add-watch jobs on workers */
    int busy;                       /* loop: inside a call into the sink (close must not free) */
    int closed;                     /* loop: the owner closed it */
    pthread_mutex_t lock;           /* wds and the paths, shared with add-watch jobs */
    int root_wd;
    int count;
    int wds[MAX_WATCHES];
    char *rels[MAX_WATCHES];        /* path of each watched dir relative to the root ("" = it) */
    char abs[SB_FS_PATH_MAX];       /* the watched directory */
};

static void watch_free(struct files_watch *w)
{
    __atomic_sub_fetch(&open_streams, 1, __ATOMIC_RELAXED);
    if (w->ifd >= 0)
        close(w->ifd);
    for (int i = 0; i < w->count; i++)
        free(w->rels[i]);
    sb_fs_close(&w->fs);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Adds a watch on the directory fd as rel. Caller holds w->lock. */
static int add_watch_fd(struct files_watch *w, int fd, const char *rel)
{
    if (w->count >= MAX_WATCHES)
        return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int wd = inotify_add_watch(w->ifd, proc, MASK);
    if (wd < 0)
        return -1;
    for (int i = 0; i < w->count; i++)
        if (w->wds[i] == wd)
            return wd;      /* the same directory again (a hard-linked path is not possible; a re-add) */
    char *copy = strdup(rel);
    if (!copy)
        return -1;
    w->wds[w->count] = wd;
    w->rels[w->count++] = copy;
    return wd;
}

/* Watches every directory below dir_fd (rel), depth levels; as the acting
 * user (caller entered its credentials and holds w->lock). */
static void add_below(struct files_watch *w, int dir_fd, const char *rel, int depth)
{
    if (depth > MAX_DEPTH)
        return;
    int fd = dup(dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) && w->count < MAX_WATCHES) {
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0)
            continue;
        char child[SB_FS_PATH_MAX];
        if (snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < (int)sizeof child &&
            add_watch_fd(w, sub, child) >= 0)
            add_below(w, sub, child, depth + 1);
        close(sub);
    }
    closedir(d);
}

/* The relative path of wd's directory, copied into out; 0 when unknown. */
static int rel_of(struct files_watch *w, int wd, char *out, size_t len)
{
    int found = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->count; i++)
        if (w->wds[i] == wd) {
            snprintf(out, len, "%s", w->rels[i]);
            found = 1;
            break;
        }
    pthread_mutex_unlock(&w->lock);
    return found;
}

/* ---- directories created later (recursive) ---- */

struct add_job {
    struct files_watch *w;
    char rel[SB_FS_PATH_MAX];
};

/* Frees a closed watch once nothing refers to it any more. */
static void maybe_free(struct files_watch *w)
{
    if (w->closed && !w->busy && !w->jobs)
        watch_free(w);
}

static void add_job_done(struct sb_loop *loop, void *arg)
{
    (void)loop;
    struct files_watch *w = arg;
    w->jobs--;
    maybe_free(w);
}

static void add_job_run(void *arg)
{
    struct add_job *j = arg;
    struct files_watch *w = j->w;
    char abs[SB_FS_PATH_MAX];
    int fd;
    struct sb_err err;
    if (snprintf(abs, sizeof abs, "%s/%s", w->abs, j->rel) < (int)sizeof abs &&
        sb_fs_open_dir(&w->fs, abs, &fd, &err) == 0) {
        struct sb_fs_creds c;
        if (sb_fs_creds_enter(&w->fs, &c, &err) == 0) {
            pthread_mutex_lock(&w->lock);
            if (add_watch_fd(w, fd, j->rel) >= 0)
                add_below(w, fd, j->rel, 1);
            pthread_mutex_unlock(&w->lock);
            sb_fs_creds_leave(&c);
        }
        close(fd);
    }
    if (sb_loop_post(w->app->loop, add_job_done, w) < 0)
        sb_error("watch: cannot post to the loop: out of memory");
    free(j);
}

static void add_later(struct files_watch *w, const char *rel)
{
    struct add_job *j = malloc(sizeof *j);
    if (!j)
        return;
    j->w = w;
    snprintf(j->rel, sizeof j->rel, "%s", rel);
    w->jobs++;
    if (sb_worker_submit(w->app->workers, add_job_run, j) < 0) {
        w->jobs--;
        free(j);
    }
}

/* ---- the loop side ---- */

static void stop_reading(struct files_watch *w)
{
    if (w->reading)
        sb_loop_unwatch(w->app->loop, w->ifd);
    w->reading = 0;
}

static void cancel_timer(struct files_watch *w)
{
    if (w->timer)
        sb_loop_cancel(w->app->loop, w->timer);
    w->timer = 0;
}

/* The watch is over: the sink hears it once, and nothing after it. */
static void watch_gone(struct files_watch *w)
{
    if (w->gone || w->closed)
        return;
    w->gone = 1;
    stop_reading(w);
    cancel_timer(w);
    w->sink->gone(w->sink_arg);
}

static void emit(struct files_watch *w, enum files_watch_event type, const char *rel)
{
    char abs[SB_FS_PATH_MAX];
    if (snprintf(abs, sizeof abs, "%s%s%s", w->abs, strcmp(w->abs, "/") && *rel ? "/" : "", rel) < 0)
        return;                         /* (a path too long is cut, as the kernel cannot exceed it) */
    if (w->sink->event(w->sink_arg, type, rel, abs))
        w->paused = 1;
}

static void handle_event(struct files_watch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        w->sink->overflow(w->sink_arg);
        return;
    }
    if (ev->mask & IN_IGNORED) {
        if (ev->wd == w->root_wd)
            watch_gone(w);      /* the directory (or the sandbox) is gone */
        return;
    }
    char dir[SB_FS_PATH_MAX], rel[SB_FS_PATH_MAX];
    if (!rel_of(w, ev->wd, dir, sizeof dir))
        return;
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        if (ev->wd == w->root_wd)
            emit(w, ev->mask & IN_DELETE_SELF ? FILES_WATCH_REMOVE : FILES_WATCH_RENAME, "");
        return;
    }
    if (!ev->len)
        return;
    if (snprintf(rel, sizeof rel, "%s%s%s", dir, *dir ? "/" : "", ev->name) < 0)
        return;
    if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
        emit(w, FILES_WATCH_CREATE, rel);
        if (w->recursive && (ev->mask & IN_ISDIR))
            add_later(w, rel);
    } else if (ev->mask & IN_MODIFY) {
        emit(w, FILES_WATCH_WRITE, rel);
    } else if (ev->mask & IN_DELETE) {
        emit(w, FILES_WATCH_REMOVE, rel);
    } else if (ev->mask & IN_MOVED_FROM) {
        emit(w, FILES_WATCH_RENAME, rel);
    } else if (ev->mask & IN_ATTRIB) {
        emit(w, FILES_WATCH_CHMOD, rel);
    }
}

static void on_inotify(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    (void)loop, (void)events;
    struct files_watch *w = arg;
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    w->busy++;
    for (int rounds = 0; rounds < 16 && !w->closed && !w->gone; rounds++) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        /* a read's events all go: the kernel cannot take them back */
        for (char *p = buf; p < buf + n && !w->closed && !w->gone;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            handle_event(w, ev);
            p += sizeof *ev + ev->len;
        }
        if (w->paused) {
            stop_reading(w);
            break;
        }
    }
    w->busy--;
    maybe_free(w);
}

void files_watch_resume(struct files_watch *w)
{
    w->paused = 0;
    if (!w->reading && !w->closed && !w->gone &&
        sb_loop_watch(w->app->loop, w->ifd, EPOLLIN, on_inotify, w) == 0)
        w->reading = 1;
}

static void check_alive(struct sb_loop *loop, void *arg)
{
    struct files_watch *w = arg;
    w->timer = 0;
    if (w->closed || w->gone)
        return;
    if (!shim_alive(w->app->cfg.run_dir, w->id)) {
        w->busy++;
        watch_gone(w);
        w->busy--;
        maybe_free(w);
        return;
    }
    w->timer = sb_loop_timer(loop, CHECK_MS, check_alive, w);
}

void files_watch_close(struct files_watch *w)
{
    w->closed = 1;
    stop_reading(w);
    cancel_timer(w);
    maybe_free(w);
}

static void watch_started(struct sb_loop *loop, void *arg)
{
    struct files_watch *w = arg;
    if (sb_loop_watch(loop, w->ifd, EPOLLIN, on_inotify, w) == 0)
        w->reading = 1;
    w->timer = sb_loop_timer(loop, CHECK_MS, check_alive, w);
    w->busy++;
    w->sink->started(w->sink_arg, w);   /* may close it */
    w->busy--;
    maybe_free(w);
}

/* ---- the worker part ---- */

int files_watch_start(struct files_job *job, struct sb_fs *fs, const struct files_watch_sink *sink, void *arg,
                      struct sb_err *err)
{
    if (__atomic_add_fetch(&open_streams, 1, __ATOMIC_RELAXED) > MAX_STREAMS) {
        __atomic_sub_fetch(&open_streams, 1, __ATOMIC_RELAXED);
        return sb_err_set(err, 503, "too many directory watches open on this server (at most %d): "
                          "close one and try again", MAX_STREAMS);
    }
    struct files_watch *w = calloc(1, sizeof *w);
    if (!w) {
        __atomic_sub_fetch(&open_streams, 1, __ATOMIC_RELAXED);
        return sb_err_set(err, 500, "out of memory");
    }
    pthread_mutex_init(&w->lock, NULL);
    w->app = api_app(job->req);
    w->sink = sink;
    w->sink_arg = arg;
    w->recursive = job->flag;
    snprintf(w->id, sizeof w->id, "%s", job->id);
    w->fs = *fs;
    w->fs.passwd = w->fs.group = NULL;
    w->fs.root_fd = dup(fs->root_fd);
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int fd = -1;
    if (w->fs.root_fd < 0 || w->ifd < 0) {
        sb_err_sys(err, 503, "watch: cannot create an inotify instance (fs.inotify.max_user_instances?)");
        goto fail;
    }
    if (sb_fs_path(fs, job->path, w->abs, err) < 0 || sb_fs_open_dir(&w->fs, w->abs, &fd, err) < 0)
        goto fail;
    struct sb_fs_creds c;
    if (sb_fs_creds_enter(&w->fs, &c, err) < 0)
        goto fail;
    pthread_mutex_lock(&w->lock);
    w->root_wd = add_watch_fd(w, fd, "");
    int saved = errno;
    if (w->root_wd >= 0 && w->recursive)
        add_below(w, fd, "", 1);
    pthread_mutex_unlock(&w->lock);
    sb_fs_creds_leave(&c);
    if (w->root_wd < 0) {
        sb_fs_errno(err, saved, "watch", w->abs);
        goto fail;
    }
    close(fd);
    if (sb_loop_post(w->app->loop, watch_started, w) < 0) {
        sb_err_set(err, 500, "out of memory");
        fd = -1;
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    watch_free(w);
    return -1;
}

