/*
 * shim_exec.c - running one process in a sandbox to completion, without a
 * thread: the start request (attached from offset 0) on the sandbox's
 * link, stdin fed in frames, output collected up to a cap per stream and
 * within the global output budget, until the exit event. The blocking
 * shim_exec (tests, tools) is the same machine on a private loop.
 *
 * Output kept in memory is bounded twice: output_cap per stream, and the
 * links' global budget, of which every exec holds what it collected; the
 * first EXEC_FLOOR bytes of each stream are kept whatever the budget says,
 * so a small command's output is never cut because big ones run beside it.
 * Bytes past either bound are drained and dropped (truncated is set).
 *
 * Owns each exec until its done callback returned or it was cancelled.
 * Loop thread only (shim_exec: any thread, its own loop).
 */
#include "runtime/shim_client.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/proto.h"
#include "runtime/shim_link.h"

#define EXEC_FLOOR (64u * 1024u)        /* bytes per stream kept regardless of the budget */
#define PRIVATE_LINK_STDIN (512u * 1024u) /* more stdin than this gets a link of its own */
#define EXEC_MARGIN_MS 30000            /* beyond the process's own timeout, for the exit event */
#define BLOCKING_CALL_TIMEOUT_MS 10000  /* shim_exec's link */

void shim_exec_result_clear(struct sb_exec_result *res)
{
    free(res->out);
    free(res->err_out);
    memset(res, 0, sizeof *res);
}

/* Output collection for one stream: keeps cap bytes, counts the rest. */
struct collect {
    char *buf;
    size_t len, cap;
    size_t budget;                      /* bytes of the global budget this stream holds */
    uint64_t seen;                      /* stream bytes received (next expected offset) */
};

struct shim_exec {
    struct shim_links *links;
    struct shim_link *link;             /* NULL once it failed */
    int private_link;                   /* link is this exec's own (large stdin) */
    struct sb_exec_request req;         /* strings borrowed from the caller */
    shim_exec_done_fn done;
    void *arg;
    uint32_t proc;
    int started, finished;
    int cancelled;                      /* the caller left before the start answer */
    struct collect col[2];
    struct sb_exec_result res;
    size_t stdin_sent;
    uint64_t deadline_timer;            /* the exit event must come by then */
};

json_t *shim_start_request(const struct sb_exec_request *req, int attach)
{
    json_t *argv = json_array();
    json_array_append_new(argv, json_string(req->cmd));
    for (size_t i = 0; i < req->arg_count; i++)
        json_array_append_new(argv, json_string(req->args[i]));
    json_t *start = json_pack("{s:s, s:o, s:s, s:I, s:b}", "op", "start", "argv", argv,
                              "stdin", req->stdin_data || req->stdin_open || req->pty ? "open" : "closed",
                              "timeout_ms", (json_int_t)(req->timeout_s > 0 ? req->timeout_s : 0) * 1000,
                              "attach", attach);
    if (!start)
        return NULL;
    if (req->tag)
        json_object_set_new(start, "tag", json_string(req->tag));
    if (req->pty)
        json_object_set_new(start, "pty", json_pack("{s:i, s:i}", "rows", req->rows, "cols", req->cols));
    if (req->env) {
        json_t *env = json_array();
        for (size_t i = 0; i < req->env_count; i++)
            json_array_append_new(env, json_string(req->env[i]));
        json_object_set_new(start, "env", env);
    }
    if (req->cwd)
        json_object_set_new(start, "cwd", json_string(req->cwd));
    if (req->user)
        json_object_set_new(start, "user", json_string(req->user));
    return start;
}

static void exec_release_output(struct shim_exec *ex)
{
    for (int i = 0; i < 2; i++) {
        shim_links_budget_give(ex->links, ex->col[i].budget);
        ex->col[i].budget = 0;
    }
}

static void exec_free(struct shim_exec *ex)
{
    sb_loop_cancel(shim_links_loop(ex->links), ex->deadline_timer);
    if (ex->link) {
        shim_link_forget_calls(ex->link, ex);
        if (ex->started && !ex->finished)
            shim_link_unwatch(ex->link, ex->proc);
        if (ex->private_link)
            shim_link_close(ex->link);
    }
    exec_release_output(ex);
    free(ex->col[0].buf);
    free(ex->col[1].buf);
    free(ex);
}

/* Calls done once, with the result or err, then frees ex. */
static void exec_finish(struct shim_exec *ex, const struct sb_err *err)
{
    ex->finished = 1;
    struct sb_exec_result *res = &ex->res;
    if (!err) {
        res->out = ex->col[0].buf ? ex->col[0].buf : calloc(1, 1);
        res->out_len = ex->col[0].len;
        res->err_out = ex->col[1].buf ? ex->col[1].buf : calloc(1, 1);
        res->err_len = ex->col[1].len;
        res->budget = ex->col[0].budget + ex->col[1].budget;
        ex->col[0].buf = ex->col[1].buf = NULL;
        ex->col[0].budget = ex->col[1].budget = 0;
    }
    if (!ex->cancelled)
        ex->done(ex->arg, err ? NULL : res, err);
    if (!err) {                         /* what the callback did not take */
        shim_links_budget_give(ex->links, res->budget);
        shim_exec_result_clear(res);
    }
    exec_free(ex);
}

static int collect_chunk(struct shim_exec *ex, struct collect *col, const struct sb_output_chunk *ch)
{
    if (ch->offset != col->seen)        /* the shim never drops bytes for an attached client */
        ex->res.truncated = 1;
    col->seen = ch->offset + ch->len;
    size_t keep = col->len < col->cap ? col->cap - col->len : 0;
    if (keep > ch->len)
        keep = ch->len;
    size_t free_floor = col->len < EXEC_FLOOR ? EXEC_FLOOR - col->len : 0;
    if (keep > free_floor) {            /* beyond the floor, the budget decides */
        size_t got = shim_links_budget_take(ex->links, keep - free_floor);
        col->budget += got;
        keep = free_floor + got;
    }
    if (keep < ch->len)
        ex->res.truncated = 1;
    if (keep == 0)
        return 0;
    char *grown = realloc(col->buf, col->len + keep + 1);
    if (!grown)
        return -1;
    col->buf = grown;
    memcpy(col->buf + col->len, ch->data, keep);
    col->len += keep;
    col->buf[col->len] = '\0';
    return 0;
}

static void on_output(void *arg, const struct sb_output_chunk *ch)
{
    struct shim_exec *ex = arg;
    if (ch->stream != SB_STREAM_STDOUT && ch->stream != SB_STREAM_STDERR)
        return;
    if (collect_chunk(ex, &ex->col[ch->stream - 1], ch) < 0)
        ex->res.truncated = 1;          /* out of memory: keep what we have */
}

static void on_exit_event(void *arg, json_t *ev)
{
    struct shim_exec *ex = arg;
    struct sb_exec_result *res = &ex->res;
    res->exit_code = (int)json_integer_value(json_object_get(ev, "exit_code"));
    res->signal = (int)json_integer_value(json_object_get(ev, "signal"));
    res->timed_out = json_is_true(json_object_get(ev, "timed_out"));
    res->oom_killed = json_is_true(json_object_get(ev, "oom_killed"));
    res->duration_ms = json_integer_value(json_object_get(ev, "duration_ms"));
    if (!res->pid)
        res->pid = (int)json_integer_value(json_object_get(ev, "pid"));
    ex->started = 0;                    /* the watch is gone with the event */
    exec_finish(ex, NULL);
}

/* The shim neither ended the process at its timeout nor reported it: kill
 * it (if the shim still listens) and answer. */
static void on_exec_deadline(struct sb_loop *loop, void *arg)
{
    struct shim_exec *ex = arg;
    ex->deadline_timer = 0;
    struct sb_err err;
    sb_err_set(&err, 504, "sandbox runtime did not finish the process within its timeout (%ds) "
               "plus %d s", ex->req.timeout_s, EXEC_MARGIN_MS / 1000);
    if (ex->link && ex->started) {
        struct sb_err kerr = {0};
        shim_link_call(ex->link, json_pack("{s:s, s:I, s:i}", "op", "signal", "proc", (json_int_t)ex->proc,
                                           "signal", SIGKILL), NULL, NULL, &kerr);
    }
    exec_finish(ex, &err);
}

static void on_link_lost(void *arg, const struct sb_err *err)
{
    struct shim_exec *ex = arg;
    ex->link = NULL;
    exec_finish(ex, err);
}

/* Queues all of stdin in frames, then close_stdin. The shim's stdin queue
 * (1 MiB) holds what a shared link sends; more than PRIVATE_LINK_STDIN goes
 * on a link of this exec's own, whose reading the shim may pause. */
static int exec_feed_stdin(struct shim_exec *ex, struct sb_err *err)
{
    const struct sb_exec_request *req = &ex->req;
    while (ex->stdin_sent < req->stdin_len) {
        size_t n = req->stdin_len - ex->stdin_sent;
        if (n > SB_PROTO_CHUNK)
            n = SB_PROTO_CHUNK;
        if (shim_link_send_stdin(ex->link, ex->proc, req->stdin_data + ex->stdin_sent, n, NULL, NULL, err) < 0)
            return -1;
        ex->stdin_sent += n;
    }
    return shim_link_call(ex->link, json_pack("{s:s, s:I}", "op", "close_stdin", "proc", (json_int_t)ex->proc),
                          NULL, NULL, err);
}

static void on_started(void *arg, json_t *reply, const struct sb_err *err)
{
    struct shim_exec *ex = arg;
    if (!reply) {
        exec_finish(ex, err);
        return;
    }
    ex->proc = (uint32_t)json_integer_value(json_object_get(reply, "proc"));
    ex->res.pid = (int)json_integer_value(json_object_get(reply, "pid"));
    if (ex->cancelled) {                /* its caller left meanwhile: kill what started */
        ex->started = 1;
        shim_exec_cancel(ex);
        return;
    }
    struct shim_proc_watch w = {.output = on_output, .exit = on_exit_event, .lost = on_link_lost, .arg = ex};
    struct sb_err serr = {0};
    if (shim_link_watch(ex->link, ex->proc, &w) < 0) {
        sb_err_set(&serr, 500, "exec: out of memory");
        exec_finish(ex, &serr);
        return;
    }
    ex->started = 1;
    if (ex->req.stdin_data && exec_feed_stdin(ex, &serr) < 0)
        sb_warn("exec: cannot feed stdin to process %u: %s", ex->proc, serr.msg);
}

struct shim_exec *shim_exec_start(struct shim_links *links, const char *id, const struct sb_exec_request *req,
                                  shim_exec_done_fn done, void *arg, struct sb_err *err)
{
    if (!req->cmd || !req->cmd[0]) {
        sb_err_set(err, 400, "exec: empty command");
        return NULL;
    }
    struct shim_exec *ex = calloc(1, sizeof *ex);
    if (!ex) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    ex->links = links;
    ex->req = *req;
    ex->done = done;
    ex->arg = arg;
    ex->col[0].cap = ex->col[1].cap = req->output_cap;
    ex->private_link = req->stdin_len > PRIVATE_LINK_STDIN;
    ex->link = ex->private_link ? shim_link_open(links, id, err) : shim_link_get(links, id, err);
    if (!ex->link || shim_link_call(ex->link, shim_start_request(req, 1), on_started, ex, err) < 0) {
        exec_free(ex);
        return NULL;
    }
    if (req->timeout_s > 0)
        ex->deadline_timer = sb_loop_timer(shim_links_loop(links), (uint64_t)req->timeout_s * 1000 + EXEC_MARGIN_MS,
                                           on_exec_deadline, ex);
    return ex;
}

void shim_exec_cancel(struct shim_exec *ex)
{
    if (ex->link && !ex->started) {     /* the start answer decides (on_started) */
        ex->cancelled = 1;
        return;
    }
    if (ex->link) {
        struct sb_err err = {0};
        json_t *kill = json_pack("{s:s, s:I, s:i}", "op", "signal", "proc", (json_int_t)ex->proc,
                                 "signal", SIGKILL);
        if (shim_link_call(ex->link, kill, NULL, NULL, &err) < 0)
            sb_warn("exec: cannot kill process %u after its client left: %s", ex->proc, err.msg);
    }
    ex->cancelled = 1;
    exec_free(ex);
}

/* ---- the blocking form ---- */

struct blocking_exec {
    struct sb_loop *loop;
    struct sb_exec_result *res;
    struct sb_err *err;
    int rc;
};

static void on_blocking_done(void *arg, struct sb_exec_result *res, const struct sb_err *err)
{
    struct blocking_exec *b = arg;
    if (res) {
        *b->res = *res;
        memset(res, 0, sizeof *res);    /* the buffers are the caller's now */
        b->rc = 0;
    } else {
        *b->err = *err;
        b->rc = -1;
    }
    sb_loop_stop(b->loop);
}

int shim_exec(const char *run_dir, const char *id, const struct sb_exec_request *req,
              struct sb_exec_result *res, struct sb_err *err)
{
    memset(res, 0, sizeof *res);
    struct sb_loop *loop = sb_loop_new();
    struct shim_links *links = loop ? shim_links_new(loop, run_dir, BLOCKING_CALL_TIMEOUT_MS, (size_t)-1) : NULL;
    struct blocking_exec b = {.loop = loop, .res = res, .err = err, .rc = -1};
    if (!links)
        sb_err_set(err, 500, "out of memory");
    else if (shim_exec_start(links, id, req, on_blocking_done, &b, err) && sb_loop_run(loop) < 0)
        sb_err_sys(err, 500, "exec: event loop failed");
    shim_links_free(links);
    if (loop)
        sb_loop_free(loop);
    return b.rc;
}
