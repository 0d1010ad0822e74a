/*
 * envd_process.c - envd's process.Process service, its unary methods, over
 * the runtime's process calls (runtime/registry_procs.h): List, SendInput,
 * SendSignal, CloseStdin and Update, and the pieces every process method
 * shares (the ProcessSelector, envd's word for a gone process, protobuf
 * bytes). The streams, Start and Connect, are envd_process_stream.c;
 * StreamInput is envd_stream_input.c.
 *
 * Each call is one registry call on the loop thread, the request deferred
 * until its answer; the answer is the method's empty response message {}
 * (List: ListResponse). Owns nothing past a request's answer.
 *
 * List answers envd's ListResponse: the running processes, each with its
 * pid (inside the sandbox), tag and config (cmd, args; envs is {} since the
 * shim does not report a process's environment, and cwd, the directory it
 * started in).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "core/base64.h"
#include "e2b/e2b.h"
#include "e2b/envd.h"
#include "runtime/registry_procs.h"

#define PTY_SIZE_MAX 4096           /* rows and cols, as the shim takes them */

/* ---- shared pieces (envd.h) ---- */

int e2b_process_selector(json_t *msg, char sel[E2B_SELECTOR_MAX], struct sb_err *err)
{
    json_t *s = json_object_get(msg, "process");
    if (!json_is_object(s))
        return sb_err_set(err, 400, "process must be a ProcessSelector: {\"pid\": N} or {\"tag\": \"...\"}");
    json_t *pid = json_object_get(s, "pid"), *tag = json_object_get(s, "tag");
    if (json_is_null(pid))
        pid = NULL;
    if (json_is_null(tag))
        tag = NULL;
    if (!!pid == !!tag)
        return sb_err_set(err, 400, "process selector: give exactly one of pid or tag");
    if (tag) {
        if (!json_is_string(tag) || registry_proc_tag_check(json_string_value(tag), err) < 0)
            return json_is_string(tag) ? -1 : sb_err_set(err, 400, "process selector: tag must be a string");
        snprintf(sel, E2B_SELECTOR_MAX, "%s", json_string_value(tag));
        return 0;
    }
    if (json_is_integer(pid) && json_integer_value(pid) >= 0 && json_integer_value(pid) <= UINT32_MAX) {
        snprintf(sel, E2B_SELECTOR_MAX, "%lld", (long long)json_integer_value(pid));
        return 0;
    }
    const char *text = json_string_value(pid);
    char *end;
    unsigned long long v = text && text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
    if (!text || text[0] < '0' || text[0] > '9' || *end || v > UINT32_MAX)
        return sb_err_set(err, 400, "process selector: pid must be a uint32");
    snprintf(sel, E2B_SELECTOR_MAX, "%llu", v);
    return 0;
}

/* The shim's word for an op on a process that has exited (proto.h). */
static int is_exited_error(const struct sb_err *e)
{
    return e->status == 409 && strstr(e->msg, "has already exited") != NULL;
}

void e2b_process_error(const char *sel, const struct sb_err *in, struct sb_err *out)
{
    if (in->status == 404 || is_exited_error(in))
        sb_err_set(out, 404, "process with %s %s not found", sel[0] >= '0' && sel[0] <= '9' ? "pid" : "tag", sel);
    else if (out != in)
        *out = *in;
}

int e2b_proto_bytes(json_t *obj, const char *field, uint8_t **out, size_t *len, struct sb_err *err)
{
    *out = NULL;
    *len = 0;
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return sb_err_set(err, 400, "%s must be bytes as a base64 string", field);
    size_t n = json_string_length(v);
    const char *text = json_string_value(v);
    char *std = malloc(n + 4);
    uint8_t *bytes = malloc(n / 4 * 3 + 4);
    if (!std || !bytes) {
        free(std);
        free(bytes);
        return sb_err_set(err, 500, "out of memory");
    }
    size_t k = 0;                   /* URL-safe to standard, padding restored */
    for (size_t i = 0; i < n; i++)
        std[k++] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
    while (k % 4)
        std[k++] = '=';
    long got = sb_base64_decode(std, k, bytes);
    free(std);
    if (got < 0) {
        free(bytes);
        return sb_err_set(err, 400, "%s is not valid base64", field);
    }
    *out = bytes;
    *len = (size_t)got;
    return 0;
}

int e2b_process_input(json_t *msg, uint8_t **out, size_t *len, struct sb_err *err)
{
    json_t *in = json_object_get(msg, "input");
    if (!json_is_object(in))
        return sb_err_set(err, 400, "input must be a ProcessInput: {\"stdin\": \"<base64>\"} or {\"pty\": ...}");
    json_t *s = json_object_get(in, "stdin"), *p = json_object_get(in, "pty");
    if ((!s || json_is_null(s)) == (!p || json_is_null(p)))
        return sb_err_set(err, 400, "input: give exactly one of stdin or pty");
    return e2b_proto_bytes(in, s && !json_is_null(s) ? "stdin" : "pty", out, len, err);
}

/* ---- List ---- */

/* ProcessInfo of one shim list entry (new reference), NULL if it is not running. */
static json_t *process_info(json_t *entry)
{
    json_t *argv = json_object_get(entry, "argv");
    if (!json_is_true(json_object_get(entry, "running")) || !json_is_array(argv) || !json_array_size(argv))
        return NULL;
    json_t *args = json_array();
    for (size_t i = 1; i < json_array_size(argv); i++)
        json_array_append(args, json_array_get(argv, i));
    json_t *config = json_pack("{s:O, s:o, s:{}}", "cmd", json_array_get(argv, 0), "args", args, "envs");
    json_t *cwd = json_object_get(entry, "cwd");
    if (config && json_is_string(cwd))
        json_object_set(config, "cwd", cwd);
    json_t *info = json_pack("{s:o, s:O}", "config", config, "pid", json_object_get(entry, "pid"));
    json_t *tag = json_object_get(entry, "tag");
    if (info && json_is_string(tag))
        json_object_set(info, "tag", tag);
    return info;
}

static void on_list(void *arg, json_t *reply, const struct sb_err *err)
{
    struct sb_request *req = arg;
    if (!reply) {
        sb_request_complete_error(req, err);
        return;
    }
    json_t *processes = json_array();
    json_t *entry;
    size_t i;
    json_array_foreach(json_object_get(reply, "processes"), i, entry) {
        json_t *info = process_info(entry);
        if (info)
            json_array_append_new(processes, info);
    }
    sb_request_complete_json(req, 200, json_pack("{s:o}", "processes", processes));
}

void e2b_process_list(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    if (e2b_envd_sandbox(req, 1, &rec, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *msg = e2b_rpc_unary_request(req, &err);   /* ListRequest has no fields */
    int rc = msg ? registry_proc_list(api_app(req)->registry, rec.org_id, rec.id, on_list, req, &err) : -1;
    json_decref(msg);
    store_sandbox_rec_clear(&rec);
    if (rc < 0)
        sb_respond_error(req, &err);
    else
        sb_request_defer(req);  /* on_list never runs inside the call */
}

/* ---- the calls on one process ---- */

/* A unary call on the process sel names, waiting for its registry answer. */
struct unary_call {
    struct sb_request *req;
    char sel[E2B_SELECTOR_MAX];
    char org_id[40], id[32];        /* the sandbox, for the follow-up check */
    struct sb_err refused;          /* the shim's refusal, while it is checked */
    const char *then_op;            /* unary_op_if_running's op (static), or NULL */
};

static void on_done(void *arg, json_t *reply, const struct sb_err *err);

/* After a refusal that a finished process also gets (SendInput's 409
 * "stdin closed", Update's 400 "no terminal"): a process that has finished
 * is gone, not_found as envd says; one that runs keeps the refusal. */
static void on_gone_check(void *arg, json_t *reply, const struct sb_err *err)
{
    struct unary_call *c = arg;
    struct sb_err e, gone;
    if (!reply || !json_is_true(json_object_get(reply, "running")))
        e2b_process_error(c->sel, (sb_err_set(&gone, 404, "gone"), &gone), &e);
    else
        e = c->refused;
    sb_request_complete_error(c->req, &e);
    free(c);
}

static void on_done(void *arg, json_t *reply, const struct sb_err *err)
{
    struct unary_call *c = arg;
    if (reply) {
        sb_request_complete_json(c->req, 200, json_object());
        free(c);
        return;
    }
    struct sb_err e;
    e2b_process_error(c->sel, err, &e);
    if (e.status == 409 || e.status == 400) {
        c->refused = e;
        if (registry_proc_op(api_app(c->req)->registry, c->org_id, c->id, c->sel, "get", NULL, on_gone_check, c,
                             &e) == 0)
            return;
    }
    sb_request_complete_error(c->req, &e);
    free(c);
}

/* What every call on one process starts with: the sandbox (rec, cleared
 * by the caller), the request message and its selector. NULL with err. */
static struct unary_call *unary_begin(struct sb_request *req, struct sb_sandbox_rec *rec, json_t **msg,
                                      struct sb_err *err)
{
    *msg = NULL;
    if (e2b_envd_sandbox(req, 1, rec, err) < 0)
        return NULL;
    struct unary_call *c = NULL;
    const char *user;
    if (e2b_envd_user(req, &user, err) == 0 && (*msg = e2b_rpc_unary_request(req, err)) &&
        (c = calloc(1, sizeof *c)) && e2b_process_selector(*msg, c->sel, err) == 0) {
        c->req = req;
        memcpy(c->org_id, rec->org_id, sizeof c->org_id);
        memcpy(c->id, rec->id, sizeof c->id);
        return c;
    }
    if (!c && *msg)
        sb_err_set(err, 500, "out of memory");
    free(c);
    json_decref(*msg);
    *msg = NULL;
    store_sandbox_rec_clear(rec);
    return NULL;
}

/* Runs op (fields stolen) on the call's process, answers when it is done. */
static void unary_op(struct unary_call *c, const struct sb_sandbox_rec *rec, const char *op, json_t *fields)
{
    struct sb_err err = {0};
    if (registry_proc_op(api_app(c->req)->registry, rec->org_id, rec->id, c->sel, op, fields, on_done, c,
                         &err) < 0) {
        struct sb_err e;
        e2b_process_error(c->sel, &err, &e);
        sb_respond_error(c->req, &e);
        free(c);
        return;
    }
    sb_request_defer(c->req);
}

/* After the "get" of unary_op_if_running: the op, if the process runs. */
static void on_running(void *arg, json_t *reply, const struct sb_err *err)
{
    struct unary_call *c = arg;
    struct sb_err e;
    if (!reply || !json_is_true(json_object_get(reply, "running"))) {
        e2b_process_error(c->sel, reply ? (sb_err_set(&e, 404, "gone"), &e) : err, &e);
    } else if (!c->then_op) {
        on_done(c, reply, NULL);
        return;
    } else if (registry_proc_op(api_app(c->req)->registry, c->org_id, c->id, c->sel, c->then_op, NULL, on_done, c,
                                &e) == 0) {
        return;
    }
    sb_request_complete_error(c->req, &e);
    free(c);
}

/* op (NULL: none) on the call's process once it is known to run: for the
 * ops the shim grants a finished process too (close_stdin), which envd
 * has dropped from its table. */
static void unary_op_if_running(struct unary_call *c, const struct sb_sandbox_rec *rec, const char *op)
{
    c->then_op = op;
    struct sb_err err = {0};
    if (registry_proc_op(api_app(c->req)->registry, rec->org_id, rec->id, c->sel, "get", NULL, on_running, c,
                         &err) < 0) {
        struct sb_err e;
        e2b_process_error(c->sel, &err, &e);
        sb_respond_error(c->req, &e);
        free(c);
        return;
    }
    sb_request_defer(c->req);
}

/* The end of a call that failed before its registry call. */
static void unary_fail(struct sb_request *req, struct unary_call *c, json_t *msg, struct sb_sandbox_rec *rec,
                       const struct sb_err *err)
{
    free(c);
    json_decref(msg);
    store_sandbox_rec_clear(rec);
    sb_respond_error(req, err);
}

/* SendInput {process, input: {stdin | pty}}: the bytes to the process's
 * stdin (a terminal's input is its stdin). */
void e2b_process_send_input(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    json_t *msg;
    struct unary_call *c = unary_begin(req, &rec, &msg, &err);
    if (!c) {
        sb_respond_error(req, &err);
        return;
    }
    uint8_t *bytes;
    size_t len;
    if (e2b_process_input(msg, &bytes, &len, &err) < 0) {
        unary_fail(req, c, msg, &rec, &err);
        return;
    }
    int rc = registry_proc_stdin(api_app(req)->registry, rec.org_id, rec.id, c->sel, bytes ? bytes : (uint8_t *)"",
                                 len, on_done, c, &err);
    free(bytes);
    json_decref(msg);
    store_sandbox_rec_clear(&rec);
    if (rc < 0) {
        struct sb_err e;
        e2b_process_error(c->sel, &err, &e);
        free(c);
        sb_respond_error(req, &e);
        return;
    }
    sb_request_defer(req);
}

/* envd's Signal enum: its name (protobuf JSON) or number. */
static int signal_value(json_t *v, int *sig, struct sb_err *err)
{
    static const struct { const char *name; int value; } names[] = {
        {"SIGNAL_UNSPECIFIED", 0}, {"SIGNAL_SIGTERM", 15}, {"SIGNAL_SIGKILL", 9},
    };
    *sig = 0;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
            return sb_err_set(err, 400, "signal: not an enum value");
        *sig = (int)json_integer_value(v);
        return 0;
    }
    for (size_t i = 0; json_is_string(v) && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(json_string_value(v), names[i].name) == 0) {
            *sig = names[i].value;
            return 0;
        }
    return sb_err_set(err, 400, "signal: unknown value %.40s (process.Signal is SIGNAL_SIGTERM or SIGNAL_SIGKILL)",
                      json_is_string(v) ? json_string_value(v) : "(not a string)");
}

/* SendSignal {process, signal}: SIGKILL (the whole tree) or SIGTERM; the
 * enum's other values are envd's unimplemented. */
void e2b_process_send_signal(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    json_t *msg;
    struct unary_call *c = unary_begin(req, &rec, &msg, &err);
    if (!c) {
        sb_respond_error(req, &err);
        return;
    }
    int sig;
    if (signal_value(json_object_get(msg, "signal"), &sig, &err) < 0 ||
        (sig != 9 && sig != 15 &&
         sb_err_set(&err, 501, "signal %d is not supported: send SIGNAL_SIGTERM or SIGNAL_SIGKILL", sig) < 0)) {
        unary_fail(req, c, msg, &rec, &err);
        return;
    }
    json_decref(msg);
    unary_op(c, &rec, "signal", json_pack("{s:i}", "signal", sig));
    store_sandbox_rec_clear(&rec);
}

/* CloseStdin {process}: EOF after what was written (a closed or never
 * opened stdin: done already); a finished process is not_found. */
void e2b_process_close_stdin(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    json_t *msg;
    struct unary_call *c = unary_begin(req, &rec, &msg, &err);
    if (!c) {
        sb_respond_error(req, &err);
        return;
    }
    json_decref(msg);
    unary_op_if_running(c, &rec, "close_stdin");
    store_sandbox_rec_clear(&rec);
}

int e2b_pty_size(json_t *pty, uint16_t *rows, uint16_t *cols, struct sb_err *err)
{
    json_t *size = json_object_get(pty, "size");
    json_t *r = json_object_get(size, "rows"), *c = json_object_get(size, "cols");
    if (!json_is_object(pty) || !json_is_object(size) || !json_is_integer(r) || !json_is_integer(c) ||
        json_integer_value(r) < 1 || json_integer_value(r) > PTY_SIZE_MAX || json_integer_value(c) < 1 ||
        json_integer_value(c) > PTY_SIZE_MAX)
        return sb_err_set(err, 400, "pty must be {\"size\": {\"cols\": N, \"rows\": N}}, each 1 to %d", PTY_SIZE_MAX);
    *rows = (uint16_t)json_integer_value(r);
    *cols = (uint16_t)json_integer_value(c);
    return 0;
}

/* Update {process, pty?}: the terminal's new size; without pty nothing
 * changes (the process must still exist). */
void e2b_process_update(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    json_t *msg;
    struct unary_call *c = unary_begin(req, &rec, &msg, &err);
    if (!c) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *pty = json_object_get(msg, "pty");
    uint16_t rows = 0, cols = 0;
    if (pty && !json_is_null(pty) && e2b_pty_size(pty, &rows, &cols, &err) < 0) {
        unary_fail(req, c, msg, &rec, &err);
        return;
    }
    json_decref(msg);
    if (rows)
        unary_op(c, &rec, "resize", json_pack("{s:i, s:i}", "rows", rows, "cols", cols));
    else
        unary_op_if_running(c, &rec, NULL);
    store_sandbox_rec_clear(&rec);
}
