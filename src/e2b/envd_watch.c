/*
 * envd_watch.c - envd's directory watches over the file API's watch
 * (api/files_watch.c): WatchDir, the server-streaming call the SDK's
 * watchDir makes ({"start":{}} first, then {"filesystem":{"name","type"}}
 * per change, keepalives in between), and the polling watcher trio that
 * other envd clients use: CreateWatcher (a watch held by the server),
 * GetWatcherEvents (what it saw since the last call), RemoveWatcher.
 *
 * Names are relative to the watched directory (recursive: "sub/x"), types
 * EventType names (EVENT_TYPE_CREATE, WRITE, REMOVE, RENAME, CHMOD).
 * includeEntry is not served (envdVersion 0.6.3 gates it in the SDK).
 *
 * Polling watchers live in this server's memory on the loop thread (no
 * lock): at most WATCHERS_PER_SANDBOX per sandbox, each holding at most
 * EVENTS_MAX events between polls (past it the watch is paused and the
 * kernel's queue takes the rest, then overflows). A watcher ends when it is
 * removed, or when its directory or its sandbox goes (the watch's gone,
 * within seconds of the sandbox's end): then its id is not_found. They do
 * not survive a restart of serve, as envd's do not survive its own.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/files.h"
#include "core/log.h"
#include "core/utf8.h"
#include "e2b/e2b.h"
#include "e2b/envd.h"
#include "http/connect.h"

#define WINDOW (256 * 1024)                 /* WatchDir: queued for the client before pausing */
#define WATCHERS_PER_SANDBOX 16
#define EVENTS_MAX 4096

static const char *const event_types[] = {"EVENT_TYPE_CREATE", "EVENT_TYPE_WRITE", "EVENT_TYPE_REMOVE",
                                          "EVENT_TYPE_RENAME", "EVENT_TYPE_CHMOD"};

static json_t *filesystem_event(enum files_watch_event type, const char *name)
{
    return json_pack("{s:o, s:s}", "name", sb_json_string_lossy(name, strlen(name)), "type", event_types[type]);
}

/* The request message's path and recursive, and the job that watches it
 * as the call's user; NULL with err (or answered 500). */
static struct files_job *watch_job(struct sb_request *req, const struct sb_sandbox_rec *rec, json_t *msg,
                                   files_job_fn run, struct sb_err *err)
{
    const char *user, *path;
    int recursive;
    if (e2b_envd_user(req, &user, err) < 0 || !(path = e2b_msg_string(msg, "path", NULL, err)) ||
        e2b_msg_bool(msg, "recursive", NULL, &recursive, err) < 0)
        return NULL;
    if (!*path) {
        sb_err_set(err, 400, "path must not be empty");
        return NULL;
    }
    struct files_job *job = files_job_for(req, rec->org_id, rec->id, user, run);
    if (!job)
        return NULL;
    job->flag = recursive;
    if (!(job->path = strdup(path))) {
        files_job_free(job);
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    return job;
}

/* files_watch_start, with its 503s (the server's cap of watches, the
 * kernel's of inotify instances) as Connect's resource_exhausted: a
 * "sandbox unavailable" would tell the SDK the sandbox is gone. */
static int watch_start(struct files_job *job, struct sb_fs *fs, const struct files_watch_sink *sink, void *arg,
                       struct sb_err *err)
{
    int rc = files_watch_start(job, fs, sink, arg, err);
    if (rc < 0 && err->status == 503)
        err->status = 429;
    return rc;
}

/* ---- WatchDir ---- */

struct dir_stream {
    struct sb_request *req;
    struct e2b_rpc_stream *rs;
    struct files_watch *w;
};

static void stream_closed(void *arg, enum sb_stream_end why)
{
    (void)why;
    struct dir_stream *d = arg;
    if (d->w)
        files_watch_close(d->w);
    free(d);
}

static void stream_drained(void *arg)
{
    struct dir_stream *d = arg;
    files_watch_resume(d->w);
}

static void stream_started(void *arg, struct files_watch *w)
{
    struct dir_stream *d = arg;
    struct sb_err err = {0};
    d->w = w;
    json_t *keepalive = json_pack("{s:{}}", "keepalive");
    const struct e2b_rpc_stream_handlers h = {NULL, stream_closed, d};
    d->rs = keepalive ? e2b_rpc_stream_open(d->req, keepalive, &h, &err) : NULL;
    json_decref(keepalive);
    if (!d->rs) {
        files_watch_close(w);
        d->w = NULL;
        if (!err.status)
            sb_err_set(&err, 500, "out of memory");
        e2b_rpc_stream_fail(d->req, &err);  /* nothing when it was answered in band */
        /* out of memory: the stream may have been opened and ended in band,
         * and then stream_closed follows and frees d; d is left to it (or,
         * if nothing was opened, lost: a few bytes, once, under OOM) */
        if (err.status != 500)
            free(d);
        return;
    }
    json_t *start = json_pack("{s:{}}", "start");
    e2b_rpc_stream_send(d->rs, start);
    json_decref(start);
}

static int stream_event(void *arg, enum files_watch_event type, const char *name, const char *abs)
{
    (void)abs;
    struct dir_stream *d = arg;
    json_t *msg = json_pack("{s:o}", "filesystem", filesystem_event(type, name));
    if (msg)
        e2b_rpc_stream_send(d->rs, msg);
    json_decref(msg);
    if (e2b_rpc_stream_queued(d->rs) <= WINDOW)
        return 0;
    e2b_rpc_stream_on_drain(d->rs, WINDOW / 4, stream_drained, d);
    return 1;
}

static void stream_overflow(void *arg)
{
    struct dir_stream *d = arg;
    sb_warn("WatchDir in %s: the kernel's event queue overflowed; events were lost",
            sb_request_header(d->req, "E2b-Sandbox-Id"));
}

static void stream_gone(void *arg)
{
    struct dir_stream *d = arg;
    e2b_rpc_stream_end(d->rs, NULL);    /* stream_closed follows */
}

static const struct files_watch_sink stream_sink = {stream_started, stream_event, stream_overflow, stream_gone};

/* A streaming call's error from a worker: answered in band on the loop. */
struct stream_failure {
    struct sb_request *req;
    struct sb_err err;
};

static void fail_on_loop(struct sb_loop *loop, void *arg)
{
    (void)loop;
    struct stream_failure *f = arg;
    e2b_rpc_stream_fail(f->req, &f->err);
    free(f);
}

static void free_dir_stream(void *p)
{
    free(p);
}

static int run_watch_dir(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    struct dir_stream *d = job->extra;
    if (watch_start(job, fs, &stream_sink, d, err) == 0) {
        job->extra = NULL;              /* the watch's now */
        return 0;
    }
    struct stream_failure *f = malloc(sizeof *f);
    if (!f)
        return -1;                      /* answered as HTTP: the best left */
    f->req = job->req;
    f->err = *err;
    if (sb_loop_post(api_app(job->req)->loop, fail_on_loop, f) < 0) {
        free(f);
        return -1;
    }
    return 0;
}

void e2b_fs_watch_dir(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    if (e2b_envd_sandbox(req, 1, &rec, &err) < 0) {
        e2b_rpc_stream_fail(req, &err);
        return;
    }
    json_t *msg = sb_connect_single_message(req, &err);
    struct files_job *job = msg ? watch_job(req, &rec, msg, run_watch_dir, &err) : NULL;
    struct dir_stream *d = job ? calloc(1, sizeof *d) : NULL;
    json_decref(msg);
    store_sandbox_rec_clear(&rec);
    if (job && !d)
        sb_err_set(&err, 500, "out of memory");
    if (!d) {
        files_job_free(job);
        if (err.status)
            e2b_rpc_stream_fail(req, &err);
        return;
    }
    d->req = req;
    job->extra = d;
    job->free_extra = free_dir_stream;
    files_job_run(job);
}

/* ---- CreateWatcher, GetWatcherEvents, RemoveWatcher ---- */

struct watcher {
    char id[40];
    char sandbox_id[32];
    struct sb_request *create_req;  /* until started answers it */
    struct files_watch *w;
    json_t *events;                 /* FilesystemEvent messages since the last poll */
    int paused;
    struct watcher *next;
};

static struct watcher *watchers;    /* loop thread only */

static void watcher_free(struct watcher *x)
{
    if (x->w)
        files_watch_close(x->w);
    json_decref(x->events);
    free(x);
}

static void watcher_unlink(struct watcher *x)
{
    for (struct watcher **p = &watchers; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            return;
        }
}

static struct watcher *watcher_find(const char *sandbox_id, const char *id)
{
    for (struct watcher *x = watchers; x; x = x->next)
        if (strcmp(x->id, id) == 0 && strcmp(x->sandbox_id, sandbox_id) == 0)
            return x;
    return NULL;
}

static void watcher_started(void *arg, struct files_watch *w)
{
    struct watcher *x = arg;
    struct sb_request *req = x->create_req;
    x->w = w;
    x->create_req = NULL;
    size_t count = 0;
    for (struct watcher *o = watchers; o; o = o->next)
        count += strcmp(o->sandbox_id, x->sandbox_id) == 0;
    if (count >= WATCHERS_PER_SANDBOX) {
        struct sb_err err;
        sb_err_set(&err, 429, "sandbox %s has %d watchers already: remove one (RemoveWatcher) first",
                   x->sandbox_id, WATCHERS_PER_SANDBOX);
        sb_request_complete_error(req, &err);
        watcher_free(x);
        return;
    }
    x->next = watchers;
    watchers = x;
    sb_request_complete_json(req, 200, json_pack("{s:s}", "watcherId", x->id));
}

static int watcher_event(void *arg, enum files_watch_event type, const char *name, const char *abs)
{
    (void)abs;
    struct watcher *x = arg;
    json_array_append_new(x->events, filesystem_event(type, name));
    x->paused = json_array_size(x->events) >= EVENTS_MAX;
    return x->paused;
}

static void watcher_overflow(void *arg)
{
    struct watcher *x = arg;
    sb_warn("watcher %s in %s: the kernel's event queue overflowed; events were lost", x->id, x->sandbox_id);
}

static void watcher_gone(void *arg)
{
    struct watcher *x = arg;
    watcher_unlink(x);
    watcher_free(x);
}

static const struct files_watch_sink watcher_sink = {watcher_started, watcher_event, watcher_overflow,
                                                     watcher_gone};

static void free_watcher_extra(void *p)
{
    struct watcher *x = p;
    if (x)
        json_decref(x->events);
    free(x);
}

static int run_create_watcher(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    if (watch_start(job, fs, &watcher_sink, job->extra, err) < 0)
        return -1;
    job->extra = NULL;                  /* the watch's now: started answers */
    return 0;
}

void e2b_fs_create_watcher(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    if (e2b_envd_sandbox(req, 1, &rec, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *msg = e2b_rpc_unary_request(req, &err);
    struct files_job *job = msg ? watch_job(req, &rec, msg, run_create_watcher, &err) : NULL;
    struct watcher *x = job ? calloc(1, sizeof *x) : NULL;
    json_decref(msg);
    if (x && !(x->events = json_array())) {
        free(x);
        x = NULL;
    }
    if (job && !x)
        sb_err_set(&err, 500, "out of memory");
    if (!x) {
        files_job_free(job);
        store_sandbox_rec_clear(&rec);
        if (err.status)
            sb_respond_error(req, &err);
        return;
    }
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(x->id, sizeof x->id, raw, sizeof raw);
    snprintf(x->sandbox_id, sizeof x->sandbox_id, "%s", rec.id);
    store_sandbox_rec_clear(&rec);
    x->create_req = req;
    job->extra = x;
    job->free_extra = free_watcher_extra;
    files_job_run(job);
}

/* The watcher a Get or Remove names, in the request's sandbox; NULL with
 * err (answer it). */
static struct watcher *named_watcher(struct sb_request *req, struct sb_err *err)
{
    struct sb_sandbox_rec rec;
    if (e2b_envd_sandbox(req, 1, &rec, err) < 0)
        return NULL;
    json_t *msg = e2b_rpc_unary_request(req, err);
    const char *id = msg ? e2b_msg_string(msg, "watcherId", "watcher_id", err) : NULL;
    struct watcher *x = id ? watcher_find(rec.id, id) : NULL;
    if (id && !x)
        sb_err_set(err, 404, "watcher '%.64s' not found in sandbox %s (removed, or its directory is gone)",
                   id, rec.id);
    json_decref(msg);
    store_sandbox_rec_clear(&rec);
    return x;
}

void e2b_fs_get_watcher_events(struct sb_request *req)
{
    struct sb_err err = {0};
    struct watcher *x = named_watcher(req, &err);
    json_t *fresh = x ? json_array() : NULL;
    if (!fresh) {
        sb_respond_error(req, err.status ? &err : (sb_err_set(&err, 500, "out of memory"), &err));
        return;
    }
    json_t *events = x->events;
    x->events = fresh;
    sb_respond_json(req, 200, json_pack("{s:o}", "events", events));
    if (x->paused) {
        x->paused = 0;
        files_watch_resume(x->w);
    }
}

void e2b_fs_remove_watcher(struct sb_request *req)
{
    struct sb_err err = {0};
    struct watcher *x = named_watcher(req, &err);
    if (!x) {
        sb_respond_error(req, &err);
        return;
    }
    watcher_unlink(x);
    watcher_free(x);
    sb_respond_json(req, 200, json_object());
}
