/*
 * files_watch_sse.c - GET /sandboxes/:id/filesystem/watch?path=&recursive=:
 * a directory's changes (files_watch.c) as Server-Sent Events.
 *
 * Each event is `data: {"type": create|write|remove|rename|chmod, "name":
 * <path relative to the watched directory>, "path": <absolute>}` (E2B's
 * WatchDir names; "rename" is the old name, the new one is a "create"),
 * after a first `event: start`. An `overflow` event says the kernel's queue
 * overflowed and events were lost. While more than WINDOW of events wait
 * for the client the watch is paused; the stream ends when the client
 * leaves or the watch is gone (the directory or the sandbox went).
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/files.h"
#include "core/utf8.h"
#include "http/sse.h"

#define WINDOW (1024 * 1024)

struct sse_watch {
    struct sb_request *req;
    struct sb_stream *stream;
    struct files_watch *w;
};

static const char *const type_names[] = {"create", "write", "remove", "rename", "chmod"};

static void on_close(void *arg, enum sb_stream_end why)
{
    (void)why;
    struct sse_watch *s = arg;
    files_watch_close(s->w);
    free(s);
}

static void on_drained(struct sb_stream *stream, void *arg)
{
    (void)stream;
    struct sse_watch *s = arg;
    files_watch_resume(s->w);
}

static void started(void *arg, struct files_watch *w)
{
    struct sse_watch *s = arg;
    struct sb_err err = {0};
    s->w = w;
    s->stream = sb_sse_open(s->req, &err);
    if (!s->stream) {
        sb_request_complete_error(s->req, &err);
        files_watch_close(w);
        free(s);
        return;
    }
    sb_stream_on_close(s->stream, on_close, s);
    sb_sse_event(s->stream, NULL, "start", "{}");
}

static int event(void *arg, enum files_watch_event type, const char *name, const char *abs)
{
    struct sse_watch *s = arg;
    json_t *o = json_pack("{s:s, s:o, s:o}", "type", type_names[type], "name",
                          sb_json_string_lossy(name, strlen(name)), "path", sb_json_string_lossy(abs, strlen(abs)));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        sb_sse_event(s->stream, NULL, NULL, text);
    free(text);
    json_decref(o);
    if (sb_stream_queued(s->stream) <= WINDOW)
        return 0;
    sb_stream_on_drain(s->stream, WINDOW / 4, on_drained, s);
    return 1;
}

static void overflow(void *arg)
{
    struct sse_watch *s = arg;
    sb_sse_event(s->stream, NULL, "overflow", "{\"type\":\"overflow\"}");
}

static void gone(void *arg)
{
    struct sse_watch *s = arg;
    sb_stream_end(s->stream);       /* on_close follows and closes the watch */
}

static const struct files_watch_sink sse_sink = {started, event, overflow, gone};

static void free_sse_watch(void *p)
{
    free(p);
}

static int run_watch(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    struct sse_watch *s = job->extra;
    if (files_watch_start(job, fs, &sse_sink, s, err) < 0)
        return -1;
    job->extra = NULL;      /* the watch's now: freed when its stream closes */
    return 0;
}

void api_files_watch(struct sb_request *req)
{
    struct files_job *job = files_job_new(req, run_watch);
    struct sb_err err = {0};
    if (!job)
        return;
    struct sse_watch *s = calloc(1, sizeof *s);
    job->extra = s;
    job->free_extra = free_sse_watch;
    if (!s)
        sb_err_set(&err, 500, "out of memory");
    else
        s->req = req;
    if (err.status || files_query_copy(req, "path", 1, &job->path, &err) < 0 ||
        files_query_bool(req, "recursive", 0, &job->flag, &err) < 0) {
        files_job_free(job);
        sb_respond_error(req, &err);
        return;
    }
    files_job_run(job);
}
