/*
 * process_control.c - the REST routes that act on processes already
 * started (issue 8): list, get, output (SSE from offsets, or wait=true for
 * the JSON result), stdin, stdin/close, signal, DELETE (kills the whole
 * tree) and resize. Each is one call over the sandbox's shim
 * (runtime/registry_procs.h) on the loop thread, the request deferred until
 * its answer; the shapes come from api/process_json.c.
 *
 * Owns nothing past a request's answer. Errors are the registry's: 404 for
 * another org's sandbox or an unknown process, 409 paused sandbox, finished
 * process or closed stdin, 400 resize of a process without a terminal.
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/process_json.h"
#include "api/process_sse.h"
#include "api/validate.h"
#include "core/base64.h"
#include "http/sse.h"
#include "runtime/registry_procs.h"


enum answer { ANSWER_LIST, ANSWER_VIEW, ANSWER_RESULT, ANSWER_EMPTY };

/* The request waits in the registry call; arg is the request itself, with
 * the answer's shape encoded in which callback runs. */
static void complete(struct sb_request *req, enum answer how, json_t *reply, const struct sb_err *err)
{
    if (!reply) {
        sb_request_complete_error(req, err);
        return;
    }
    if (how == ANSWER_EMPTY) {
        sb_request_complete_empty(req, 204);
        return;
    }
    if (how == ANSWER_LIST) {
        json_t *out = json_array();
        size_t i;
        json_t *entry;
        json_array_foreach(json_object_get(reply, "processes"), i, entry)
            json_array_append_new(out, api_process_view(entry));
        sb_request_complete_json(req, 200, out);
        return;
    }
    sb_request_complete_json(req, 200, how == ANSWER_VIEW ? api_process_view(reply) : api_process_result(reply));
}

static void on_list(void *arg, json_t *reply, const struct sb_err *err) { complete(arg, ANSWER_LIST, reply, err); }
static void on_view(void *arg, json_t *reply, const struct sb_err *err) { complete(arg, ANSWER_VIEW, reply, err); }
static void on_result(void *arg, json_t *reply, const struct sb_err *err) { complete(arg, ANSWER_RESULT, reply, err); }
static void on_empty(void *arg, json_t *reply, const struct sb_err *err) { complete(arg, ANSWER_EMPTY, reply, err); }

/* The process the path names, checked. */
static const char *path_selector(struct sb_request *req, struct sb_err *err)
{
    const char *sel = sb_request_param(req, "pid");
    if (api_check_sandbox_id(sb_request_param(req, "id"), err) < 0 || registry_proc_selector_check(sel, err) < 0)
        return NULL;
    return sel;
}

/* The body as an object with only the allowed fields (an empty body is {}). */
static json_t *body_with(struct sb_request *req, const char *const *fields, const char *route, struct sb_err *err)
{
    json_t *body = sb_request_json(req, 1, err);
    if (body && api_check_fields(body, fields, route, err) < 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* Runs op on the path's process and answers with fn. fields stolen. */
static void run_op(struct sb_request *req, const char *sel, const char *op, json_t *fields, registry_reply_fn fn)
{
    struct sb_err err = {0};
    if (registry_proc_op(api_app(req)->registry, req->org_id, sb_request_param(req, "id"), sel, op, fields, fn, req,
                         &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    sb_request_defer(req);
}

void api_process_list(struct sb_request *req)
{
    struct sb_err err = {0};
    if (api_check_sandbox_id(sb_request_param(req, "id"), &err) < 0 ||
        registry_proc_list(api_app(req)->registry, req->org_id, sb_request_param(req, "id"), on_list, req, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    sb_request_defer(req);
}

void api_process_get(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *sel = path_selector(req, &err);
    if (!sel)
        sb_respond_error(req, &err);
    else
        run_op(req, sel, "get", NULL, on_view);
}

void api_process_output(struct sb_request *req)
{
    struct sb_err err = {0};
    uint64_t offsets[2];
    const char *sel = path_selector(req, &err);
    const char *wait = sb_request_query(req, "wait");
    if (!sel || api_query_offset(req, "stdoutOffset", &offsets[0], &err) < 0 ||
        api_query_offset(req, "stderrOffset", &offsets[1], &err) < 0)
        goto fail;
    if (wait && strcmp(wait, "true") != 0 && strcmp(wait, "false") != 0) {
        sb_err_set(&err, 400, "wait must be true or false");
        goto fail;
    }
    if (wait && strcmp(wait, "true") == 0) {
        run_op(req, sel, "wait", NULL, on_result);
        return;
    }
    const char *last = sb_sse_last_event_id(req);
    if (last && api_process_event_id_parse(last, &offsets[0], &offsets[1]) < 0) {
        sb_err_set(&err, 400, "Last-Event-ID must be an id this stream sent (\"<stdout offset>-<stderr offset>\")");
        goto fail;
    }
    if (api_process_stream_output(req, sel, offsets[0], offsets[1], &err) == 0)
        return;
fail:
    sb_respond_error(req, &err);
}

/* {data} (UTF-8 text) or {dataB64}: the bytes to write, malloc'd. */
static uint8_t *stdin_bytes(json_t *body, size_t *len, struct sb_err *err)
{
    json_t *data = json_object_get(body, "data"), *b64 = json_object_get(body, "dataB64");
    if (!!data == !!b64) {
        sb_err_set(err, 400, "give exactly one of data (text) or dataB64 (base64 bytes)");
        return NULL;
    }
    if (!json_is_string(data ? data : b64)) {
        sb_err_set(err, 400, "%s must be a string", data ? "data" : "dataB64");
        return NULL;
    }
    const char *text = json_string_value(data ? data : b64);
    size_t n = json_string_length(data ? data : b64);
    uint8_t *out = malloc(n + 1);
    if (!out) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    if (data) {
        memcpy(out, text, n);
        *len = n;
        return out;
    }
    long got = sb_base64_decode(text, n, out);
    if (got < 0) {
        free(out);
        sb_err_set(err, 400, "dataB64 is not valid base64 (standard alphabet, with padding)");
        return NULL;
    }
    *len = (size_t)got;
    return out;
}

void api_process_stdin(struct sb_request *req)
{
    struct sb_err err = {0};
    static const char *const fields[] = {"data", "dataB64", NULL};
    const char *sel = path_selector(req, &err);
    json_t *body = sel ? body_with(req, fields, "POST /sandboxes/:id/processes/:pid/stdin", &err) : NULL;
    size_t len = 0;
    uint8_t *bytes = body ? stdin_bytes(body, &len, &err) : NULL;
    json_decref(body);
    if (!bytes || registry_proc_stdin(api_app(req)->registry, req->org_id, sb_request_param(req, "id"), sel, bytes,
                                      len, on_empty, req, &err) < 0) {
        free(bytes);
        sb_respond_error(req, &err);
        return;
    }
    free(bytes);
    sb_request_defer(req);
}

/* The routes whose body is empty or {}: stdin/close and DELETE. */
static void empty_body_op(struct sb_request *req, const char *route, const char *op, json_t *fields)
{
    struct sb_err err = {0};
    static const char *const none[] = {NULL};
    const char *sel = path_selector(req, &err);
    json_t *body = sel ? body_with(req, none, route, &err) : NULL;
    if (!body) {
        json_decref(fields);
        sb_respond_error(req, &err);
        return;
    }
    json_decref(body);
    run_op(req, sel, op, fields, on_empty);
}

void api_process_stdin_close(struct sb_request *req)
{
    empty_body_op(req, "POST /sandboxes/:id/processes/:pid/stdin/close", "close_stdin", NULL);
}

/* SIGKILL: the shim kills the process's whole leaf cgroup, grandchildren
 * and setsid'd daemons included. */
void api_process_kill(struct sb_request *req)
{
    empty_body_op(req, "DELETE /sandboxes/:id/processes/:pid", "signal", json_pack("{s:i}", "signal", 9));
}

void api_process_signal(struct sb_request *req)
{
    struct sb_err err = {0};
    static const char *const fields[] = {"signal", NULL};
    const char *sel = path_selector(req, &err);
    json_t *body = sel ? body_with(req, fields, "POST /sandboxes/:id/processes/:pid/signal", &err) : NULL;
    int sig = 0;
    if (body && !json_object_get(body, "signal"))
        sb_err_set(&err, 400, "missing field: signal");
    else if (body && api_signal_parse(json_object_get(body, "signal"), &sig, &err) == 0) {
        json_decref(body);
        run_op(req, sel, "signal", json_pack("{s:i}", "signal", sig), on_empty);
        return;
    }
    json_decref(body);
    sb_respond_error(req, &err);
}

void api_process_resize(struct sb_request *req)
{
    struct sb_err err = {0};
    static const char *const fields[] = {"cols", "rows", NULL};
    const char *sel = path_selector(req, &err);
    json_t *body = sel ? body_with(req, fields, "POST /sandboxes/:id/processes/:pid/resize", &err) : NULL;
    long long cols, rows;
    if (body && (!json_object_get(body, "cols") || !json_object_get(body, "rows")))
        sb_err_set(&err, 400, "cols and rows are required");
    else if (body && api_field_int(body, "cols", 0, 1, 4096, &cols, &err) == 0 &&
             api_field_int(body, "rows", 0, 1, 4096, &rows, &err) == 0) {
        json_decref(body);
        run_op(req, sel, "resize", json_pack("{s:I, s:I}", "cols", cols, "rows", rows), on_empty);
        return;
    }
    json_decref(body);
    sb_respond_error(req, &err);
}
