/*
 * envd_stream_input.c - envd's one client-streaming method,
 * process.Process/StreamInput: a request body of Connect envelopes
 * (application/connect+json), StartEvent {process: selector} first, then
 * DataEvent {input: {stdin | pty}} and KeepAlive in any number, each
 * DataEvent's bytes written to the process's stdin in order. The answer,
 * once the body has ended and every byte is queued in the shim, is a
 * Connect stream of one StreamInputResponse {} and the end-stream {}; an
 * error (a bad envelope or message, data before start, an unknown or
 * finished process, a closed stdin) is the end-stream's error, at once, and
 * the rest of the body is read and dropped. The e2b JS SDK never calls it
 * (its browser transport cannot stream a request); other clients may.
 *
 * The body streams (SB_ROUTE_STREAM_BODY): it is paused while a registry
 * call is in flight (the StartEvent's check that the process exists, then
 * each batch of stdin, registry_proc_stdin), so a client that writes faster
 * than the process reads is slowed by TCP. One call at a time keeps the
 * bytes in order (each stdin call has a link of its own). body.c holds
 * back what libmicrohttpd offers while the body is paused; should a piece
 * still arrive during a call, it only joins the pending bytes.
 *
 * Owns each call's struct stream_input until its answer is given and no
 * registry call is in flight. Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "e2b/e2b.h"
#include "e2b/envd.h"
#include "http/connect.h"
#include "runtime/registry_procs.h"

#define MAX_MESSAGE (4u * 1024u * 1024u)   /* one envelope's JSON */

struct stream_input {
    struct sb_request *req;
    struct sb_registry *reg;
    struct sb_connect_reader *reader;
    char org_id[40], id[32];
    char sel[E2B_SELECTOR_MAX];     /* "" until the StartEvent */
    int check_pending;              /* the StartEvent came; the process is to be checked */
    uint8_t *pending;               /* stdin not yet handed to the registry */
    size_t pending_len, pending_cap;
    int busy;                       /* a registry call is in flight (the body is paused) */
    int body_done;                  /* the body ended */
    int answered;
};

static void input_free(struct stream_input *si)
{
    sb_connect_reader_free(si->reader);
    free(si->pending);
    free(si);
}

/* The call's answer (err NULL: StreamInputResponse {}), once; si is freed
 * as soon as no registry call needs it. */
static void answer(struct stream_input *si, const struct sb_err *err)
{
    if (!si->answered) {
        si->answered = 1;
        struct sb_err open_err;
        struct sb_stream *s = sb_connect_stream_open(si->req, &open_err);
        if (s) {
            json_t *empty = json_object();
            if (!err)
                sb_connect_send(s, empty);
            json_decref(empty);
            sb_connect_end(s, err);
        } else if (open_err.status != 500) {
            sb_request_complete_error(si->req, err ? err : &open_err);
        }
    }
    if (!si->busy)
        input_free(si);
}

static int append_pending(struct stream_input *si, const uint8_t *b, size_t len, struct sb_err *err)
{
    if (si->pending_len + len > si->pending_cap) {
        size_t cap = si->pending_cap ? si->pending_cap : 4096;
        while (cap < si->pending_len + len)
            cap *= 2;
        uint8_t *grown = realloc(si->pending, cap);
        if (!grown)
            return sb_err_set(err, 500, "out of memory");
        si->pending = grown;
        si->pending_cap = cap;
    }
    memcpy(si->pending + si->pending_len, b, len);
    si->pending_len += len;
    return 0;
}

/* One StreamInputRequest. */
static int on_message(void *arg, unsigned flags, json_t *msg, struct sb_err *err)
{
    struct stream_input *si = arg;
    if (flags & SB_CONNECT_FLAG_END_STREAM)
        return sb_err_set(err, 400, "bad StreamInput: a request carries no end-stream envelope");
    json_t *start = json_object_get(msg, "start"), *data = json_object_get(msg, "data");
    int kinds = !!start + !!data + !!json_object_get(msg, "keepalive");
    if (!json_is_object(msg) || kinds != 1)
        return sb_err_set(err, 400, "bad StreamInputRequest: give exactly one of start, data or keepalive");
    if (start) {
        if (si->sel[0])
            return sb_err_set(err, 400, "bad StreamInput: start came twice");
        if (e2b_process_selector(start, si->sel, err) < 0)
            return -1;
        si->check_pending = 1;
        return 0;
    }
    if (!data)
        return 0;                   /* keepalive */
    if (!si->sel[0])
        return sb_err_set(err, 400, "bad StreamInput: the first message must be start (the process)");
    uint8_t *bytes;
    size_t len;
    if (e2b_process_input(data, &bytes, &len, err) < 0)
        return -1;
    int rc = append_pending(si, bytes, len, err);
    free(bytes);
    return rc;
}

static void on_registry(void *arg, json_t *reply, const struct sb_err *err);

/* The next registry call, if one is due: 1 when it is in flight. */
static int next_call(struct stream_input *si)
{
    struct sb_err err = {0};
    int rc;
    if (si->check_pending) {
        si->check_pending = 0;
        rc = registry_proc_op(si->reg, si->org_id, si->id, si->sel, "get", NULL, on_registry, si, &err);
    } else if (si->pending_len) {
        rc = registry_proc_stdin(si->reg, si->org_id, si->id, si->sel, si->pending, si->pending_len, on_registry,
                                 si, &err);
        si->pending_len = 0;        /* copied */
    } else {
        return 0;
    }
    if (rc < 0) {
        struct sb_err e;
        e2b_process_error(si->sel, &err, &e);
        answer(si, &e);
        return -1;
    }
    si->busy = 1;
    return 1;
}

/* After a call or the body's end: the next call, the answer, or more body. */
static void go_on(struct stream_input *si)
{
    int rc = next_call(si);
    if (rc < 0 || rc == 1)
        return;
    if (!si->body_done) {
        sb_request_body_resume(si->req);
        return;
    }
    struct sb_err err;
    answer(si, si->sel[0] ? NULL : (sb_err_set(&err, 400, "bad StreamInput: no start message"), &err));
}

static void on_registry(void *arg, json_t *reply, const struct sb_err *err)
{
    struct stream_input *si = arg;
    si->busy = 0;
    if (si->answered) {             /* the client left meanwhile */
        input_free(si);
        return;
    }
    if (reply && json_object_get(reply, "running") && !json_is_true(json_object_get(reply, "running"))) {
        struct sb_err gone;
        sb_err_set(&gone, 404, "process has already exited");
        e2b_process_error(si->sel, &gone, &gone);
        answer(si, &gone);
        return;
    }
    if (!reply) {
        struct sb_err e;
        e2b_process_error(si->sel, err, &e);
        answer(si, &e);
        return;
    }
    go_on(si);
}

static enum sb_body_verdict on_body(struct sb_request *req, void *arg, const char *data, size_t len)
{
    struct stream_input *si = arg;
    struct sb_err err = {0};
    if (sb_connect_reader_feed(si->reader, data, len, on_message, si, &err) < 0) {
        answer(si, &err);
        return SB_BODY_STOP;
    }
    if (si->busy)       /* a piece MHD had read before the pause took: queued behind the call */
        return SB_BODY_PAUSE;
    int rc = next_call(si);
    return rc < 0 ? SB_BODY_STOP : rc == 1 ? SB_BODY_PAUSE : SB_BODY_CONTINUE;
}

static void on_body_end(struct sb_request *req, void *arg, const struct sb_err *err)
{
    struct stream_input *si = arg;
    struct sb_err e = {0};
    si->body_done = 1;
    if (err || sb_connect_reader_finish(si->reader, &e) < 0) {
        answer(si, err ? err : &e);
        return;
    }
    if (!si->busy)
        go_on(si);
}

void e2b_process_stream_input(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    if (e2b_envd_sandbox(req, 1, &rec, &err) < 0) {
        e2b_rpc_stream_fail(req, &err);
        return;
    }
    const char *user;
    struct stream_input *si = NULL;
    if (e2b_envd_user(req, &user, &err) < 0) {
        e2b_rpc_stream_fail(req, &err);
    } else if (e2b_rpc_content_type(req, "application/connect+json", &err) < 0) {
        sb_respond_error(req, &err);        /* not a Connect stream at all: an HTTP answer */
    } else if (!(si = calloc(1, sizeof *si)) || !(si->reader = sb_connect_reader_new(MAX_MESSAGE))) {
        free(si);
        si = NULL;
        sb_err_set(&err, 500, "out of memory");
        sb_respond_error(req, &err);
    } else {
        si->req = req;
        si->reg = api_app(req)->registry;
        memcpy(si->org_id, rec.org_id, sizeof si->org_id);
        memcpy(si->id, rec.id, sizeof si->id);
        if (sb_request_body_sink(req, 0, on_body, on_body_end, si, &err) < 0) {
            input_free(si);
            sb_respond_error(req, &err);
        }
    }
    store_sandbox_rec_clear(&rec);
}
