/*
 * processes.c - POST /sandboxes/:id/processes: run one command to completion
 * and answer its output, as the SandBase docs describe, or, with
 * "background", start it and answer 202 {processID, pid} at once, or, with
 * "stream" (or Accept: text/event-stream), stream its output as events
 * (api/process_sse.c). Runs on the loop thread: the request is deferred
 * while the process runs (no thread waits for it). A client that leaves a
 * synchronous call has its process tree killed; background and streamed
 * processes run on (E2B's semantics).
 *
 * The command runs directly (no shell). 200 for any exit code; 502 when it
 * could not start ("command not found: X") or timed out ("timed out after
 * Ns", with the partial stdout/stderr in the body next to code and message).
 * 502 is the code the SandBase docs give both; the messages say plainly that
 * the command, not the sandbox, failed, and what to change. Output bytes
 * that are not UTF-8 are replaced by U+FFFD.
 *
 * Everything the exec will carry is checked before anything is encoded for
 * the shim: cmd, args and envVars together stay within API_EXEC_ARGV_ENV_MAX
 * (validate.h), so a client's oversized command is its 400, never a 500 of
 * the runtime or an E2BIG of every later exec.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/exec_response.h"
#include "api/process_json.h"
#include "api/process_sse.h"
#include "api/validate.h"
#include "core/utf8.h"
#include "runtime/registry.h"
#include "runtime/registry_procs.h"

#define MAX_ARGS 4096
#define MAX_PROCESS_TIMEOUT_S 86400
#define MAX_CWD 4095                /* PATH_MAX less its NUL */

enum process_mode { MODE_SYNC, MODE_BACKGROUND, MODE_STREAM };

struct process_args {
    struct sb_request *req;
    struct registry_exec *rx;       /* running; NULL once answered */
    json_t *body;                   /* owned; the strings below point into it */
    const char **args;
    struct sb_process_request preq;
    enum process_mode mode;
};

static void free_process_args(void *p)
{
    struct process_args *a = p;
    free(a->args);
    free((char *)a->preq.env_json);
    json_decref(a->body);
    free(a);
}

/* The answer's fields but stdout and stderr (api_exec_respond adds them). */
static json_t *result_head(const struct sb_exec_result *res)
{
    char pid[16];
    snprintf(pid, sizeof pid, "%d", res->pid);
    json_t *out = json_pack("{s:s, s:i, s:I, s:b, s:b}", "processID", pid, "exitCode", res->exit_code,
                            "durationMs", (json_int_t)res->duration_ms, "oomKilled", res->oom_killed,
                            "truncated", res->truncated);
    if (out && res->signal)
        json_object_set_new(out, "signal", json_integer(res->signal));
    return out;
}

/* A command that could not start: say it is the command, and the usual
 * cause when cmd holds a whole command line. */
static void explain_start_error(const struct process_args *a, struct sb_err *err)
{
    if (err->status != 502 || (strncmp(err->msg, "command not found: ", 19) != 0 &&
                               strncmp(err->msg, "permission denied: ", 19) != 0))
        return;
    char msg[SB_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    if (strpbrk(a->preq.cmd, " \t"))
        sb_err_set(err, 502, "%s (cmd runs without a shell; put arguments in args or use sh -c)", msg);
    else
        sb_err_set(err, 502, "%s (the command could not start; the sandbox itself is fine)", msg);
}

/* Loop thread: the process ran (res) or could not (err). */
static void on_exec_done(void *p, struct sb_exec_result *res, const struct sb_err *err)
{
    struct process_args *a = p;
    struct sb_request *req = a->req;
    sb_request_on_gone(req, NULL, NULL);
    a->rx = NULL;
    if (!res) {
        struct sb_err e = *err;
        explain_start_error(a, &e);
        sb_request_complete_error(req, &e);
        free_process_args(a);
        return;
    }
    json_t *out = result_head(res);
    int status = 200;
    if (res->timed_out && out) {
        json_object_set_new(out, "code", json_integer(502));
        char msg[160];
        snprintf(msg, sizeof msg, "timed out after %ds: the command was killed (raise timeout, up to %d; "
                 "the sandbox itself is fine)", a->preq.timeout_s, MAX_PROCESS_TIMEOUT_S);
        json_object_set_new(out, "message", json_string(msg));
        status = 502;
    }
    struct sb_registry *reg = api_app(req)->registry;
    struct sb_err e = {0};
    if (!out)
        sb_err_set(&e, 500, "out of memory");
    if (!out || api_exec_respond(req, reg, status, out, res, &e) < 0) {
        sb_request_complete_error(req, &e);
        registry_exec_result_clear(reg, res);
    }
    free_process_args(a);
}

/* Loop thread: the client left before the answer. A synchronous exec is
 * killed with its whole tree (background and streamed ones run on). */
static void on_client_gone(struct sb_request *req, void *p)
{
    struct process_args *a = p;
    registry_exec_cancel(a->rx);
    struct sb_err e;
    sb_request_complete_error(req, (sb_err_set(&e, 499, "client closed the request"), &e));
    free_process_args(a);
}

/* Fills a->args from the "args" array. */
static int parse_args(struct process_args *a, struct sb_err *err)
{
    json_t *arr = json_object_get(a->body, "args");
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return sb_err_set(err, 400, "args must be an array of strings");
    size_t n = json_array_size(arr);
    if (n > MAX_ARGS)
        return sb_err_set(err, 400, "args: at most %d arguments", MAX_ARGS);
    a->args = calloc(n + 1, sizeof *a->args);
    if (!a->args)
        return sb_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return sb_err_set(err, 400, "args[%zu] must be a string without NUL characters", i);
        a->args[i] = json_string_value(v);
    }
    a->preq.args = a->args;
    a->preq.arg_count = n;
    return 0;
}

/* "pty": {cols, rows}, each 1..4096. */
static int parse_pty(struct process_args *a, struct sb_err *err)
{
    json_t *pty = json_object_get(a->body, "pty");
    if (!pty || json_is_null(pty))
        return 0;
    long long cols, rows;
    static const char *const fields[] = {"cols", "rows", NULL};
    if (!json_is_object(pty))
        return sb_err_set(err, 400, "pty must be an object {\"cols\": N, \"rows\": N}");
    if (api_check_fields(pty, fields, "pty", err) < 0 ||
        api_field_int(pty, "cols", 80, 1, 4096, &cols, err) < 0 ||
        api_field_int(pty, "rows", 24, 1, 4096, &rows, err) < 0)
        return -1;
    a->preq.pty = 1;
    a->preq.cols = (uint16_t)cols;
    a->preq.rows = (uint16_t)rows;
    return 0;
}

/* "stdin": a string (fed, then closed), true (kept open for later
 * writes), false/null/absent (/dev/null). */
static int parse_stdin(struct process_args *a, struct sb_err *err)
{
    json_t *in = json_object_get(a->body, "stdin");
    if (json_is_boolean(in)) {
        a->preq.stdin_open = json_is_true(in);
        return 0;
    }
    if (in && !json_is_null(in) && !json_is_string(in))
        return sb_err_set(err, 400, "stdin must be a string (written, then closed) or true (kept open)");
    if (api_field_string(a->body, "stdin", 0, NULL, &a->preq.stdin_data, err) < 0)
        return -1;
    if (a->preq.stdin_data)
        a->preq.stdin_len = strlen(a->preq.stdin_data);
    return 0;
}

/* background / stream / Accept: which answer the client wants. */
static int parse_mode(struct process_args *a, struct sb_request *req, struct sb_err *err)
{
    json_t *bg = json_object_get(a->body, "background"), *st = json_object_get(a->body, "stream");
    if ((bg && !json_is_boolean(bg)) || (st && !json_is_boolean(st)))
        return sb_err_set(err, 400, "%s must be a boolean", bg && !json_is_boolean(bg) ? "background" : "stream");
    const char *accept = sb_request_header(req, "Accept");
    int stream = json_is_true(st) || (!st && accept && strstr(accept, "text/event-stream"));
    if (json_is_true(bg) && stream)
        return sb_err_set(err, 400, "background and stream exclude each other: background answers at once, "
                          "stream answers with the output");
    a->mode = json_is_true(bg) ? MODE_BACKGROUND : stream ? MODE_STREAM : MODE_SYNC;
    if (a->mode == MODE_SYNC && a->preq.stdin_open)
        return sb_err_set(err, 400, "stdin: true needs background or stream (a synchronous call leaves "
                          "nobody to write it)");
    if (a->mode != MODE_SYNC && a->preq.stdin_data)
        return sb_err_set(err, 400, "stdin as a string is for the synchronous call; start with stdin: true "
                          "and write with POST /sandboxes/:id/processes/:pid/stdin");
    return 0;
}

static int parse_process(struct process_args *a, struct sb_request *req, struct sb_err *err)
{
    struct sb_process_request *pr = &a->preq;
    long long timeout;
    char *env = NULL;
    size_t env_bytes = 0;
    static const char *const fields[] = {"cmd", "args", "envVars", "cwd", "timeout", "user", "stdin",
                                         "background", "stream", "tag", "pty", NULL};
    if (api_check_fields(a->body, fields, "POST /sandboxes/:id/processes", err) < 0 ||
        api_field_string(a->body, "cmd", 1, NULL, &pr->cmd, err) < 0)
        return -1;
    if (pr->cmd[0] == '\0')
        return sb_err_set(err, 400, "cmd must not be empty");
    if (parse_args(a, err) < 0 || api_field_string(a->body, "cwd", 0, NULL, &pr->cwd, err) < 0 ||
        api_field_string(a->body, "user", 0, "user", &pr->user, err) < 0 || parse_stdin(a, err) < 0 ||
        api_field_string(a->body, "tag", 0, NULL, &pr->tag, err) < 0 || parse_pty(a, err) < 0 ||
        parse_mode(a, req, err) < 0 ||
        api_field_int(a->body, "timeout", 60, a->mode == MODE_SYNC ? 1 : 0, MAX_PROCESS_TIMEOUT_S, &timeout,
                      err) < 0 ||
        api_field_env(a->body, "envVars", API_EXEC_ARGV_ENV_MAX, &env, &env_bytes, err) < 0)
        return -1;
    pr->env_json = env;
    pr->timeout_s = (int)timeout;
    if (api_check_exec_size(pr, env_bytes, err) < 0)
        return -1;
    if (pr->tag && registry_proc_tag_check(pr->tag, err) < 0)
        return -1;
    if (pr->cwd && pr->cwd[0] != '/')
        return sb_err_set(err, 400, "cwd must be an absolute path");
    if (pr->cwd && strlen(pr->cwd) > MAX_CWD)
        return sb_err_set(err, 400, "cwd must be at most %d bytes", MAX_CWD);
    if (strcmp(pr->user, "user") != 0 && strcmp(pr->user, "root") != 0)
        return sb_err_set(err, 400, "user must be \"user\" or \"root\"");
    return 0;
}

/* Loop thread: the background start's answer. */
static void on_background_started(void *p, json_t *reply, const struct sb_err *err)
{
    struct process_args *a = p;
    if (!reply) {
        struct sb_err e = *err;
        explain_start_error(a, &e);
        sb_request_complete_error(a->req, &e);
    } else {
        char id[16];
        api_process_id(reply, id);
        sb_request_complete_json(a->req, 202, json_pack("{s:s, s:O}", "processID", id, "pid",
                                                        json_object_get(reply, "pid")));
    }
    free_process_args(a);
}

/* Starts a background or streamed process: 0 when req is taken care of. */
static int start_interactive(struct process_args *a, struct sb_request *req, struct sb_err *err)
{
    if (a->mode == MODE_STREAM) {
        int rc = api_process_stream_start(req, &a->preq, err);
        if (rc == 0)
            free_process_args(a);   /* the start request was built from them */
        return rc;
    }
    a->req = req;
    if (registry_proc_start_detached(api_app(req)->registry, req->org_id, sb_request_param(req, "id"), &a->preq,
                                     on_background_started, a, err) < 0)
        return -1;
    sb_request_defer(req);
    return 0;
}

void api_process_run(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    struct process_args *a = NULL;
    if (api_check_sandbox_id(id, &err) < 0)
        goto fail;
    a = calloc(1, sizeof *a);
    if (!a) {
        sb_err_set(&err, 500, "out of memory");
        goto fail;
    }
    a->body = sb_request_json(req, 0, &err);
    if (!a->body || parse_process(a, req, &err) < 0)
        goto fail;
    if (a->mode != MODE_SYNC) {
        if (start_interactive(a, req, &err) < 0)
            goto fail;
        return;
    }
    a->req = req;
    a->rx = registry_exec_start(api_app(req)->registry, req->org_id, id, &a->preq, on_exec_done, a, &err);
    if (!a->rx)
        goto fail;
    sb_request_defer(req);
    sb_request_on_gone(req, on_client_gone, a);
    return;
fail:
    if (a)
        free_process_args(a);
    sb_respond_error(req, &err);
}
