/*
 * shim_watch.c - dead shims, noticed on serve's loop thread (see shim_watch.h).
 *
 * The registry hands over a pidfd per live sandbox's shim (registry.h,
 * registry_watch_shims) from whatever thread made the sandbox live; it is
 * posted here and watched on the loop, which owns it from then on. When it
 * turns readable the shim has exited: the fd is closed and
 * registry_shim_died runs on a worker (it cleans up and writes the store).
 * This lives here, not in runtime/, because it joins the loop (http/) and
 * the registry (runtime/), which only cli/ may both call. A sandbox ended
 * on purpose fires its watch too; registry_shim_died ignores stopped rows.
 * Owns the watches (and their pidfds) from shim_watch_start on.
 */
#include "cli/shim_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/log.h"
#include "runtime/registry.h"

struct shim_watch {
    struct sb_app *app;
    char id[32];
    int pidfd;
    struct shim_watch *prev, *next;     /* in shim_watches while on the loop */
};

static struct shim_watch *shim_watches;  /* loop thread only */
static int shim_watches_closed;          /* loop thread only: stop_app ran */

static void shim_watch_unlink(struct shim_watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        shim_watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void shim_died_job(void *arg)
{
    struct shim_watch *w = arg;
    registry_shim_died(w->app->registry, w->id);
    free(w);
}

static void on_shim_exit(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct shim_watch *w = arg;
    sb_loop_unwatch(loop, fd);
    close(fd);
    shim_watch_unlink(w);
    if (sb_worker_submit(w->app->workers, shim_died_job, w) < 0)
        free(w);        /* shutting down: the next start's reconcile marks it lost */
}

static void shim_watch_add(struct sb_loop *loop, void *arg)
{
    struct shim_watch *w = arg;
    if (shim_watches_closed || sb_loop_watch(loop, w->pidfd, EPOLLIN, on_shim_exit, w) < 0) {
        if (!shim_watches_closed)
            sb_warn("cannot watch the runtime of sandbox %s: its death would go unnoticed", w->id);
        close(w->pidfd);
        free(w);
        return;
    }
    w->next = shim_watches;
    if (shim_watches)
        shim_watches->prev = w;
    shim_watches = w;
}

void shim_watch_start(void *ctx, const char *id, int pidfd)
{
    struct sb_app *app = ctx;
    struct shim_watch *w = calloc(1, sizeof *w);
    if (w) {
        w->app = app;
        w->pidfd = pidfd;
        snprintf(w->id, sizeof w->id, "%s", id);
    }
    if (!w || sb_loop_post(app->loop, shim_watch_add, w) < 0) {
        sb_warn("cannot watch the runtime of sandbox %s: out of memory", id);
        close(pidfd);
        free(w);
    }
}

void shim_watches_close(struct sb_app *app)
{
    shim_watches_closed = 1;
    while (shim_watches) {
        struct shim_watch *w = shim_watches;
        shim_watch_unlink(w);
        sb_loop_unwatch(app->loop, w->pidfd);
        close(w->pidfd);
        free(w);
    }
}

