/*
 * events_stream.c - GET /events/stream: the org's lifecycle events as
 * Server-Sent Events while they happen (http/sse.h), each as
 *     id: evt_...  event: sandbox.lifecycle.killed  data: <event object>
 * with the same `type` filter as GET /events/sandboxes, and a resume from
 * the store after the event a reconnecting client names in Last-Event-ID.
 *
 * How it never misses or repeats an event: the stream remembers the seq of
 * the last event it has passed (last_seq) and only ever writes what the
 * store holds after it, oldest first. The event bus (runtime/event_bus.h)
 * only says "there is something new": its callback, on whatever thread
 * wrote the event, posts one catch-up to the loop (at most one pending),
 * and the catch-up reads the store. Because the store commits events in
 * seq order under one lock, an event's notification comes after every
 * older event is readable; so notifications arriving out of order, or two
 * of them coalesced into one catch-up, change nothing.
 * Back-pressure: past STREAM_WINDOW bytes queued for a slow client the
 * catch-up stops and resumes when the queue drains; the store keeps the
 * events meanwhile. Loop thread only, except event_arrived.
 * Ownership: one heap object per stream, freed when the stream has closed
 * and no posted catch-up refers to it (refs).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/events.h"
#include "core/id.h"
#include "http/sse.h"
#include "runtime/event_bus.h"
#include "runtime/events.h"

#define STREAM_BATCH 100                /* events per store read */
#define STREAM_BATCHES_PER_TURN 10      /* then the loop does other work first */
#define STREAM_WINDOW (256 * 1024)      /* queued bytes before waiting for the client */

struct event_stream {
    struct sb_app *app;
    struct sb_stream *stream;       /* NULL once closed */
    uint64_t subscription;
    char org_id[SB_ORG_ID_MAX];
    struct api_event_types types;
    int64_t last_seq;               /* the newest event passed (written or filtered out) */
    atomic_int catch_up_posted;
    atomic_int refs;                /* the open stream + each posted catch-up */
};

static void stream_unref(struct event_stream *es)
{
    if (atomic_fetch_sub(&es->refs, 1) == 1)
        free(es);
}

static void catch_up(struct sb_loop *loop, void *arg);

/* Posts one catch-up unless one is already pending. Any thread. */
static void post_catch_up(struct event_stream *es)
{
    if (atomic_exchange(&es->catch_up_posted, 1))
        return;
    atomic_fetch_add(&es->refs, 1);
    if (sb_loop_post(es->app->loop, catch_up, es) < 0) {
        atomic_store(&es->catch_up_posted, 0);
        stream_unref(es);
    }
}

/* The bus callback: any thread, under the bus's lock; must return at once. */
static void event_arrived(void *arg, const struct sb_event *ev)
{
    struct event_stream *es = arg;
    if (strcmp(ev->org_id, es->org_id) == 0)
        post_catch_up(es);
}

static void drained(struct sb_stream *s, void *arg)
{
    post_catch_up(arg);
}

/* Writes one event; 0, or -1 when the stream no longer takes writes. */
static int write_event(struct event_stream *es, const struct sb_event *ev)
{
    char *data = event_payload(ev);
    int rc = data ? sb_sse_event(es->stream, ev->id, ev->type, data) : -1;
    free(data);
    return rc;
}

static void catch_up(struct sb_loop *loop, void *arg)
{
    struct event_stream *es = arg;
    atomic_store(&es->catch_up_posted, 0);
    for (int turn = 0; es->stream && turn < STREAM_BATCHES_PER_TURN; turn++) {
        if (sb_stream_queued(es->stream) > STREAM_WINDOW) {
            sb_stream_on_drain(es->stream, STREAM_WINDOW / 2, drained, es);
            break;
        }
        struct sb_event *list = NULL;
        size_t count = 0;
        struct sb_err err = {0};
        if (store_event_list_after(es->app->store, es->org_id, es->last_seq, STREAM_BATCH, &list, &count, &err) < 0) {
            sb_sse_comment(es->stream, err.msg);     /* the next event tries again */
            break;
        }
        for (size_t i = 0; i < count; i++) {
            if (api_event_types_match(&es->types, list[i].type) && write_event(es, &list[i]) < 0)
                break;      /* closing: on_close follows */
            es->last_seq = list[i].seq;
        }
        store_event_list_free(list, count);
        if (count < STREAM_BATCH)
            break;
        if (turn == STREAM_BATCHES_PER_TURN - 1)
            post_catch_up(es);      /* more to replay: after the loop's other work */
    }
    stream_unref(es);
}

static void stream_closed(void *arg, enum sb_stream_end why)
{
    struct event_stream *es = arg;
    event_bus_unsubscribe(es->app->events, es->subscription);   /* no callback after this */
    es->stream = NULL;
    stream_unref(es);
}

/* Where the stream starts: after Last-Event-ID, else after the org's newest
 * event (only what happens from now on). */
static int start_seq(struct sb_request *req, int64_t *seq, struct sb_err *err)
{
    const char *last = sb_sse_last_event_id(req);
    if (last) {
        if (!sb_id_valid("evt_", last) || store_event_seq(api_app(req)->store, req->org_id, last, seq, err) < 0)
            return sb_err_set(err, 400, "Last-Event-ID %.40s is not an event of this org (or it is older than "
                                        "the retention period): reconnect without it and read what was missed "
                                        "from GET /events/sandboxes", last);
        return 0;
    }
    struct sb_event_query q = {.org_id = req->org_id, .limit = 1};
    struct sb_event *list = NULL;
    size_t count = 0;
    if (store_event_query(api_app(req)->store, &q, &list, &count, err) < 0)
        return -1;
    *seq = count ? list[0].seq : 0;
    store_event_list_free(list, count);
    return 0;
}

void api_events_stream(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_app *app = api_app(req);
    struct event_stream *es = calloc(1, sizeof *es);
    if (!es) {
        sb_err_set(&err, 500, "out of memory");
        sb_respond_error(req, &err);
        return;
    }
    es->app = app;
    snprintf(es->org_id, sizeof es->org_id, "%s", req->org_id);
    atomic_init(&es->refs, 1);
    /* Subscribed before the start is read, so nothing committed in between
     * is missed: a notification for it finds it after last_seq. */
    if (!app->events) {
        sb_err_set(&err, 503, "live events are not available on this server");
    } else if (api_event_types_parse(req, &es->types, &err) == 0 &&
               !(es->subscription = event_bus_subscribe(app->events, event_arrived, es))) {
        sb_err_set(&err, 500, "out of memory");
    }
    if (err.status || start_seq(req, &es->last_seq, &err) < 0 || !(es->stream = sb_sse_open(req, &err))) {
        if (es->subscription)
            event_bus_unsubscribe(app->events, es->subscription);
        es->stream = NULL;
        stream_unref(es);       /* a catch-up posted meanwhile holds its own ref */
        sb_respond_error(req, &err);
        return;
    }
    sb_stream_on_close(es->stream, stream_closed, es);
    sb_sse_comment(es->stream, "sandbase events");
    post_catch_up(es);      /* what a resuming client missed, and anything since */
}
