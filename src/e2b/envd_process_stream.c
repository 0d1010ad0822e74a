/*
 * envd_process_stream.c - envd's server-streaming process methods, Start
 * and Connect, as encodings of the runtime's attachments
 * (registry_proc_start / registry_proc_attach) on e2b/rpc_stream.c.
 *
 * Each call is one Connect stream of ProcessEvents: StartEvent {pid} once
 * the process is started (Start) or attached to (Connect: from the start of
 * the output the shim's ring still holds, as envd replays it), DataEvents
 * with the bytes of stdout / stderr (a terminal's one stream: pty) as they
 * come, then EndEvent {exitCode, exited, status, error} in the words of
 * Go's os/exec ("exit status 2", "signal: killed" with exitCode -1), and
 * the end of the stream. keepalive events fill silences. Errors before the
 * first event (a bad message, an unknown process, a command that cannot
 * start) go in band as the stream's only envelope, as Connect wants.
 *
 * Start's deadline (Connect-Timeout-Ms) kills the process's tree and ends
 * the stream with deadline_exceeded; the shim's own timeout, the deadline
 * rounded up to a second, kills it as well when the client left first
 * (envd's process context ends at the deadline whoever still listens). A
 * client that leaves ends its attachment only: the process runs on.
 *
 * Back-pressure as process_sse.c: past WINDOW queued bytes the attachment
 * pauses and the process waits; it resumes on drain.
 *
 * Owns each call's struct proc_stream, freed when the stream is over (its
 * closed handler). Loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/validate.h"
#include "core/base64.h"
#include "e2b/e2b.h"
#include "e2b/envd.h"
#include "http/connect.h"
#include "runtime/registry_procs.h"

#define WINDOW (1024u * 1024u)      /* queued bytes before the attachment pauses */
#define LOW_WATER (256u * 1024u)
#define MAX_ARGS 4096
#define MAX_CWD 4095
#define MAX_TIMEOUT_S (86400 * 366)

struct proc_stream {
    struct e2b_rpc_stream *rs;
    struct registry_proc *rp;       /* NULL until started, and once closed */
    struct sb_registry *reg;
    int pty;                        /* output is DataEvent.pty */
    int exited;                     /* the exit event came */
    char sel[E2B_SELECTOR_MAX];     /* Connect: the process asked for */
};

/* ---- events ---- */

static void send_event(struct proc_stream *ps, const char *kind, json_t *body)
{
    json_t *msg = json_pack("{s:{s:o}}", "event", kind, body);
    if (msg)
        e2b_rpc_stream_send(ps->rs, msg);
    json_decref(msg);
}

/* Go's name of a signal (syscall.Signal.String), as envd's status says it. */
static const char *signal_name(int sig, char buf[16])
{
    static const char *const names[] = {
        NULL, "hangup", "interrupt", "quit", "illegal instruction", "trace/breakpoint trap", "aborted",
        "bus error", "floating point exception", "killed", "user defined signal 1", "segmentation fault",
        "user defined signal 2", "broken pipe", "alarm clock", "terminated",
    };
    if (sig > 0 && (size_t)sig < sizeof names / sizeof names[0])
        return names[sig];
    snprintf(buf, 16, "signal %d", sig);
    return buf;
}

/* EndEvent of a shim exit event: os/exec's view of how it ended. */
static json_t *end_event(json_t *ev)
{
    int sig = (int)json_integer_value(json_object_get(ev, "signal"));
    int code = (int)json_integer_value(json_object_get(ev, "exit_code"));
    char status[64], buf[16];
    if (sig)
        snprintf(status, sizeof status, "signal: %s", signal_name(sig, buf));
    else
        snprintf(status, sizeof status, "exit status %d", code);
    json_t *end = json_pack("{s:i, s:b, s:s}", "exitCode", sig ? -1 : code, "exited", !sig, "status", status);
    if (end && (sig || code))
        json_object_set_new(end, "error", json_string(status));
    return end;
}

/* ---- the attachment's handlers ---- */

static void on_started(void *arg, json_t *info)
{
    struct proc_stream *ps = arg;
    if (json_object_get(info, "pty"))
        ps->pty = json_is_object(json_object_get(info, "pty"));
    send_event(ps, "start", json_pack("{s:O}", "pid", json_object_get(info, "pid")));
}

static void on_drained(void *arg)
{
    struct proc_stream *ps = arg;
    if (ps->rp)
        registry_proc_pause(ps->rp, 0);
}

static void on_output(void *arg, const struct registry_output *ch)
{
    struct proc_stream *ps = arg;
    if (ch->stream != REGISTRY_STDOUT && ch->stream != REGISTRY_STDERR)
        return;
    char *b64 = sb_base64_encode_alloc(ch->data, ch->len);
    const char *kind = ps->pty ? "pty" : ch->stream == REGISTRY_STDOUT ? "stdout" : "stderr";
    if (b64)
        send_event(ps, "data", json_pack("{s:s}", kind, b64));
    free(b64);
    if (e2b_rpc_stream_queued(ps->rs) > WINDOW) {
        registry_proc_pause(ps->rp, 1);
        e2b_rpc_stream_on_drain(ps->rs, LOW_WATER, on_drained, ps);
    }
}

static void on_exit_event(void *arg, json_t *ev)
{
    struct proc_stream *ps = arg;
    ps->exited = 1;
    send_event(ps, "end", end_event(ev));
    e2b_rpc_stream_end(ps->rs, NULL);
}

/* The call's error as envd says it: a process that Connect names and is
 * gone is not_found; a command Start cannot run (the shim's 502 "command
 * not found: X" / "permission denied: X") is the request's fault,
 * invalid_argument, not the unavailable sandbox a 502 would tell the SDK. */
static void call_error(const struct proc_stream *ps, const struct sb_err *in, struct sb_err *out)
{
    if (ps->sel[0]) {
        e2b_process_error(ps->sel, in, out);
        return;
    }
    *out = *in;
    if (in->status == 502 && (strncmp(in->msg, "command not found: ", 19) == 0 ||
                              strncmp(in->msg, "permission denied: ", 19) == 0))
        out->status = 400;
}

static void on_failed(void *arg, const struct sb_err *err)
{
    struct proc_stream *ps = arg;
    struct sb_err e;
    call_error(ps, err, &e);
    e2b_rpc_stream_end(ps->rs, &e);
}

/* ---- the stream's handlers ---- */

/* Start's deadline: the process's whole tree goes, as envd's context does. */
static void on_deadline(void *arg)
{
    struct proc_stream *ps = arg;
    struct sb_err ignored;
    if (ps->rp && !ps->exited)
        registry_proc_control(ps->rp, "signal", json_pack("{s:i}", "signal", 9), &ignored);
}

static void on_closed(void *arg, enum sb_stream_end why)
{
    struct proc_stream *ps = arg;
    if (ps->rp)
        registry_proc_close(ps->rp);        /* the process runs on */
    free(ps);
}

/* ---- the request ---- */

/* Fills a StartRequest's process into preq; argv points into msg and into
 * *args (caller frees), the environment into *env (caller frees). */
static int parse_start(json_t *msg, struct sb_process_request *preq, const char ***args, char **env,
                       struct sb_err *err)
{
    json_t *proc = json_object_get(msg, "process");
    if (!json_is_object(proc))
        return sb_err_set(err, 400, "process must be a ProcessConfig {\"cmd\": ..., \"args\": [...]}");
    json_t *cmd = json_object_get(proc, "cmd");
    if (!json_is_string(cmd) || !json_string_length(cmd) || strlen(json_string_value(cmd)) != json_string_length(cmd))
        return sb_err_set(err, 400, "process.cmd must be a non-empty string without NUL characters");
    preq->cmd = json_string_value(cmd);
    json_t *arr = json_object_get(proc, "args");
    if (arr && !json_is_null(arr) && !json_is_array(arr))
        return sb_err_set(err, 400, "process.args must be an array of strings");
    size_t n = json_array_size(arr);
    if (n > MAX_ARGS)
        return sb_err_set(err, 400, "process.args: at most %d arguments", MAX_ARGS);
    if (!(*args = calloc(n + 1, sizeof **args)))
        return sb_err_set(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return sb_err_set(err, 400, "process.args[%zu] must be a string without NUL characters", i);
        (*args)[i] = json_string_value(v);
    }
    preq->args = *args;
    preq->arg_count = n;
    size_t env_bytes = 0;
    json_t *cwd = json_object_get(proc, "cwd");
    if (api_field_env(proc, "envs", API_EXEC_ARGV_ENV_MAX, env, &env_bytes, err) < 0)
        return sb_err_prefix(err, "process");
    preq->env_json = *env;
    if (api_check_exec_size(preq, env_bytes, err) < 0)
        return -1;
    if (cwd && !json_is_null(cwd) && !json_is_string(cwd))
        return sb_err_set(err, 400, "process.cwd must be a string");
    preq->cwd_from_home = 1;        /* envd: none, ~ or relative is from the user's home */
    if (json_string_length(cwd)) {
        preq->cwd = json_string_value(cwd);
        if (strlen(preq->cwd) != json_string_length(cwd) || strlen(preq->cwd) > MAX_CWD)
            return sb_err_set(err, 400, "cwd must be a path of at most %d bytes without NUL characters", MAX_CWD);
    }
    json_t *tag = json_object_get(msg, "tag"), *in = json_object_get(msg, "stdin"), *pty = json_object_get(msg, "pty");
    if (tag && !json_is_null(tag) &&
        (!json_is_string(tag) ? sb_err_set(err, 400, "tag must be a string")
                              : registry_proc_tag_check(json_string_value(tag), err)) < 0)
        return -1;
    preq->tag = json_string_value(tag);
    if (in && !json_is_null(in) && !json_is_boolean(in))
        return sb_err_set(err, 400, "stdin must be a boolean");
    preq->stdin_open = !json_is_false(in);      /* envd: a pipe unless stdin is false */
    if (pty && !json_is_null(pty)) {
        if (e2b_pty_size(pty, &preq->rows, &preq->cols, err) < 0)
            return -1;
        preq->pty = 1;
    }
    return 0;
}

/* The request message of a streaming call: exactly one envelope of
 * application/connect+json. */
static json_t *stream_request(const struct sb_request *req, struct sb_err *err)
{
    if (e2b_rpc_content_type(req, "application/connect+json", err) < 0)
        return NULL;
    return sb_connect_single_message(req, err);
}

/* Opens the call's stream, then starts (preq) or attaches (sel): 0, or -1
 * with err before anything was answered. */
static int stream_run(struct sb_request *req, const struct sb_sandbox_rec *rec, const struct sb_process_request *preq,
                      const char *sel, struct sb_err *err)
{
    struct proc_stream *ps = calloc(1, sizeof *ps);
    json_t *keepalive = json_pack("{s:{s:{}}}", "event", "keepalive");
    if (!ps || !keepalive) {
        free(ps);
        json_decref(keepalive);
        return sb_err_set(err, 500, "out of memory");
    }
    ps->reg = api_app(req)->registry;
    ps->pty = preq && preq->pty;
    if (sel)
        snprintf(ps->sel, sizeof ps->sel, "%s", sel);
    struct e2b_rpc_stream_handlers sh = {.deadline = preq ? on_deadline : NULL, .closed = on_closed, .arg = ps};
    ps->rs = e2b_rpc_stream_open(req, keepalive, &sh, err);
    json_decref(keepalive);
    if (!ps->rs) {
        if (err->status != 500)         /* a 500 stream was opened and ended: closed frees ps */
            free(ps);
        return err->status == 500 ? 0 : -1;
    }
    struct registry_proc_handlers h = {.started = on_started, .output = on_output, .exit = on_exit_event,
                                       .failed = on_failed, .arg = ps};
    if (preq)
        ps->rp = registry_proc_start(ps->reg, rec->org_id, rec->id, preq, &h, err);
    else
        ps->rp = registry_proc_attach(ps->reg, rec->org_id, rec->id, sel, 0, 0, &h, err);
    if (!ps->rp) {
        struct sb_err e;
        call_error(ps, err, &e);
        e2b_rpc_stream_end(ps->rs, &e);   /* in band; closed frees ps */
    }
    return 0;
}

/* What both calls start with: the sandbox, the user and the message. */
static json_t *stream_begin(struct sb_request *req, struct sb_sandbox_rec *rec, const char **user,
                            struct sb_err *err)
{
    if (e2b_envd_sandbox(req, 1, rec, err) < 0)
        return NULL;
    json_t *msg = NULL;
    if (e2b_envd_user(req, user, err) < 0 || !(msg = stream_request(req, err)))
        store_sandbox_rec_clear(rec);
    return msg;
}

static void stream_fail(struct sb_request *req, const struct sb_err *err)
{
    if (err->status == 415)
        sb_respond_error(req, err);     /* not a Connect stream at all: an HTTP answer */
    else
        e2b_rpc_stream_fail(req, err);
}

/* Start {process, pty?, tag?, stdin?} -> stream of StartResponse. */
void e2b_process_start(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    const char *user;
    json_t *msg = stream_begin(req, &rec, &user, &err);
    if (!msg) {
        stream_fail(req, &err);
        return;
    }
    struct sb_process_request preq = {.user = user};
    const char **args = NULL;
    char *env = NULL;
    uint64_t timeout_ms = 0;
    int rc = parse_start(msg, &preq, &args, &env, &err);
    if (rc == 0 && (rc = e2b_rpc_timeout_ms(sb_request_header(req, "Connect-Timeout-Ms"), &timeout_ms, &err)) == 0 &&
        timeout_ms)     /* the shim's backstop: the deadline rounded up to its second */
        preq.timeout_s = (int)((timeout_ms + 999) / 1000 < MAX_TIMEOUT_S ? (timeout_ms + 999) / 1000 : MAX_TIMEOUT_S);
    if (rc == 0)
        rc = stream_run(req, &rec, &preq, NULL, &err);
    free(args);
    free(env);
    json_decref(msg);
    store_sandbox_rec_clear(&rec);
    if (rc < 0)
        stream_fail(req, &err);
}

/* Connect {process: selector} -> stream of ConnectResponse. */
void e2b_process_connect(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    const char *user;
    json_t *msg = stream_begin(req, &rec, &user, &err);
    if (!msg) {
        stream_fail(req, &err);
        return;
    }
    char sel[E2B_SELECTOR_MAX];
    int rc = e2b_process_selector(msg, sel, &err);
    if (rc == 0)
        rc = stream_run(req, &rec, NULL, sel, &err);
    json_decref(msg);
    store_sandbox_rec_clear(&rec);
    if (rc < 0)
        stream_fail(req, &err);
}
