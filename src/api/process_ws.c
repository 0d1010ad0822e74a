/*
 * process_ws.c - GET /sandboxes/:id/processes/:pid/attach: a process's
 * stdin, output and controls over one WebSocket (framing in docs/API.md).
 *
 * Server to client: a text frame {"start": {...}} first (processID, pid,
 * pty, and the offsets the output starts from), {"dropped": {stdout,
 * stderr}} next if the ring had lost bytes from the offsets asked for, then
 * output as binary frames (for pipes the first byte is the stream, 1 stdout
 * or 2 stderr; a terminal's output is its bytes alone), and the exit as the
 * last text frame {"exit": {exitCode, signal, oomKilled, timedOut,
 * durationMs}} before a normal close. A control that fails gets a text
 * frame {"error": {code, message}}; a process that cannot be attached (or a
 * runtime that goes away) gets that frame and a close with code 4000 +
 * the HTTP status (4404: no such process).
 * Client to server: binary frames are stdin; text frames are controls,
 * one JSON object each: {"resize": {"cols": C, "rows": R}},
 * {"signal": "SIGINT" | N}, {"closeStdin": true}.
 *
 * The sandbox is checked before the upgrade (404, 409 answered as HTTP); the
 * attachment is asked for then, and held paused until the WebSocket is open.
 * Back-pressure both ways: past WINDOW bytes queued for the client the
 * attachment pauses (the process blocks writing) until the client drains;
 * past MAX_INFLIGHT stdin messages the shim has not acknowledged, the client
 * is not read (its sends block) until the process takes its input. Closing
 * the WebSocket leaves the process running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/process_json.h"
#include "api/validate.h"
#include "http/websocket.h"
#include "runtime/registry_procs.h"

#define WINDOW (1024u * 1024u)      /* bytes queued for the client before the attachment pauses */
#define LOW_WATER (256u * 1024u)
#define MAX_MESSAGE (64u * 1024u)   /* what a client may send in one message */
#define MAX_INFLIGHT 8              /* stdin messages not yet acknowledged before reading pauses */

struct ws_attach {
    struct sb_ws *ws;               /* NULL until accepted */
    int open;                       /* the upgrade is done: sends reach the client */
    struct registry_proc *rp;       /* NULL once closed */
    uint64_t want[2];
    json_t *start;                  /* the start frame, held until open */
    struct sb_err failure;          /* a failure before open, status 0 if none */
    int pty;
    int inflight;
    int over;                       /* the exit or a failure was sent: closing */
};

static void send_json(struct ws_attach *wa, const char *key, json_t *value)
{
    json_t *o = json_pack("{s:o}", key, value);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text)
        sb_ws_send(wa->ws, 0, text, strlen(text));
    free(text);
}

static void send_error(struct ws_attach *wa, const struct sb_err *err)
{
    send_json(wa, "error", json_pack("{s:i, s:s}", "code", err->status, "message", err->msg));
}

static void end_with(struct ws_attach *wa, const struct sb_err *err)
{
    wa->over = 1;
    send_error(wa, err);
    char reason[100];
    snprintf(reason, sizeof reason, "%.99s", err->msg);
    sb_ws_close(wa->ws, (uint16_t)(4000 + (err->status > 0 && err->status < 1000 ? err->status : 500)), reason);
}

/* ---- from the process ---- */

static void on_drained(struct sb_ws *ws, void *arg)
{
    struct ws_attach *wa = arg;
    if (wa->rp)
        registry_proc_pause(wa->rp, 0);
}

static void on_output(void *arg, const struct registry_output *ch)
{
    struct ws_attach *wa = arg;
    if (wa->pty) {
        sb_ws_send(wa->ws, 1, ch->data, ch->len);
    } else {
        uint8_t *frame = malloc(ch->len + 1);
        if (!frame)
            return;
        frame[0] = (uint8_t)ch->stream;
        memcpy(frame + 1, ch->data, ch->len);
        sb_ws_send(wa->ws, 1, frame, ch->len + 1);
        free(frame);
    }
    if (sb_ws_queued(wa->ws) > WINDOW) {
        registry_proc_pause(wa->rp, 1);
        sb_ws_on_drain(wa->ws, LOW_WATER, on_drained, wa);
    }
}

static void on_exit_event(void *arg, json_t *ev)
{
    struct ws_attach *wa = arg;
    wa->over = 1;
    send_json(wa, "exit", api_process_result(ev));
    sb_ws_close(wa->ws, 1000, "process exited");
}

static void on_failed(void *arg, const struct sb_err *err)
{
    struct ws_attach *wa = arg;
    if (!wa->open) {
        if (!wa->failure.status)
            wa->failure = *err;
        return;
    }
    end_with(wa, err);
}

static void send_start(struct ws_attach *wa)
{
    json_t *info = wa->start;
    wa->start = NULL;
    char id[16];
    api_process_id(info, id);
    uint64_t used[2] = {(uint64_t)json_integer_value(json_object_get(info, "stdout_offset")),
                        (uint64_t)json_integer_value(json_object_get(info, "stderr_offset"))};
    json_t *pty = json_object_get(info, "pty");
    send_json(wa, "start", json_pack("{s:s, s:O, s:O, s:I, s:I}", "processID", id, "pid", json_object_get(info, "pid"),
                                     "pty", pty ? pty : json_null(), "stdoutOffset", (json_int_t)used[0],
                                     "stderrOffset", (json_int_t)used[1]));
    if (used[0] > wa->want[0] || used[1] > wa->want[1])
        send_json(wa, "dropped", json_pack("{s:I, s:I}", "stdout", (json_int_t)(used[0] - wa->want[0]),
                                           "stderr", (json_int_t)(used[1] - wa->want[1])));
    json_decref(info);
    registry_proc_pause(wa->rp, 0);
}

static void on_started(void *arg, json_t *info)
{
    struct ws_attach *wa = arg;
    wa->pty = json_is_object(json_object_get(info, "pty"));
    wa->start = json_deep_copy(info);
    registry_proc_pause(wa->rp, 1);     /* nothing is delivered before the start frame */
    if (wa->open)
        send_start(wa);
}

static void on_control_done(void *arg, const char *op, const struct sb_err *err)
{
    struct ws_attach *wa = arg;
    if (strcmp(op, "stdin") == 0 && wa->inflight > 0 && --wa->inflight < MAX_INFLIGHT && wa->ws)
        sb_ws_pause_reading(wa->ws, 0);
    if (err && wa->open && !wa->over)
        send_error(wa, err);
}

/* ---- from the client ---- */

static int control(struct ws_attach *wa, json_t *msg, struct sb_err *err)
{
    json_t *resize = json_object_get(msg, "resize"), *sig = json_object_get(msg, "signal");
    json_t *close_stdin = json_object_get(msg, "closeStdin");
    if (!json_is_object(msg) || json_object_size(msg) != 1 || (!resize && !sig && !close_stdin))
        return sb_err_set(err, 400, "a control frame is one of {\"resize\":{\"cols\":C,\"rows\":R}}, "
                          "{\"signal\":\"SIGINT\"} or {\"closeStdin\":true}");
    if (close_stdin) {
        if (!json_is_true(close_stdin))
            return sb_err_set(err, 400, "closeStdin must be true");
        return registry_proc_control(wa->rp, "close_stdin", NULL, err);
    }
    if (sig) {
        int n;
        if (api_signal_parse(sig, &n, err) < 0)
            return -1;
        return registry_proc_control(wa->rp, "signal", json_pack("{s:i}", "signal", n), err);
    }
    long long cols, rows;
    static const char *const fields[] = {"cols", "rows", NULL};
    if (!json_is_object(resize) || !json_object_get(resize, "cols") || !json_object_get(resize, "rows"))
        return sb_err_set(err, 400, "resize needs {\"cols\": C, \"rows\": R}");
    if (api_check_fields(resize, fields, "resize", err) < 0 || api_field_int(resize, "cols", 0, 1, 4096, &cols, err) < 0 ||
        api_field_int(resize, "rows", 0, 1, 4096, &rows, err) < 0)
        return -1;
    return registry_proc_control(wa->rp, "resize", json_pack("{s:I, s:I}", "cols", cols, "rows", rows), err);
}

static void on_message(struct sb_ws *ws, void *arg, int binary, const void *data, size_t len)
{
    struct ws_attach *wa = arg;
    struct sb_err err = {0};
    if (wa->over || !wa->rp)
        return;
    if (binary && len == 0)
        return;                     /* nothing to write */
    if (binary) {
        if (registry_proc_write(wa->rp, data, len, &err) == 0) {
            if (++wa->inflight >= MAX_INFLIGHT)
                sb_ws_pause_reading(ws, 1);
            return;
        }
    } else {
        json_error_t jerr;
        json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!msg)
            sb_err_set(&err, 400, "a control frame must be a JSON object: %s", jerr.text);
        else if (control(wa, msg, &err) == 0)
            err.status = 0;
        json_decref(msg);
        if (!err.status)
            return;
    }
    send_error(wa, &err);
}

static void on_open(struct sb_ws *ws, void *arg)
{
    struct ws_attach *wa = arg;
    wa->open = 1;
    if (wa->failure.status)
        end_with(wa, &wa->failure);
    else if (wa->start)
        send_start(wa);
}

static void on_close(void *arg, int code)
{
    struct ws_attach *wa = arg;
    if (wa->rp)
        registry_proc_close(wa->rp);    /* the process runs on */
    json_decref(wa->start);
    free(wa);
}

void api_process_attach(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *sel = sb_request_param(req, "pid");
    struct ws_attach *wa = NULL;
    uint64_t want[2];
    if (api_check_sandbox_id(sb_request_param(req, "id"), &err) < 0 || registry_proc_selector_check(sel, &err) < 0 ||
        api_query_offset(req, "stdoutOffset", &want[0], &err) < 0 || api_query_offset(req, "stderrOffset", &want[1], &err) < 0)
        goto fail;
    if (!(wa = calloc(1, sizeof *wa))) {
        sb_err_set(&err, 500, "out of memory");
        goto fail;
    }
    memcpy(wa->want, want, sizeof want);
    struct registry_proc_handlers h = {.started = on_started, .output = on_output, .exit = on_exit_event,
                                       .failed = on_failed, .control_done = on_control_done, .arg = wa};
    wa->rp = registry_proc_attach(api_app(req)->registry, req->org_id, sb_request_param(req, "id"), sel, want[0],
                                  want[1], &h, &err);
    if (!wa->rp)
        goto fail;
    struct sb_ws_handlers wh = {.on_open = on_open, .on_message = on_message, .on_close = on_close};
    wa->ws = sb_ws_accept(req, &wh, wa, MAX_MESSAGE, &err);
    if (!wa->ws) {
        registry_proc_close(wa->rp);
        goto fail;
    }
    return;
fail:
    free(wa);
    sb_respond_error(req, &err);
}
