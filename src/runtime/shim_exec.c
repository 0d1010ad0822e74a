/*
 * shim_exec.c - running one process in a sandbox to completion: the start
 * request, then on the same connection the attached output collected up to
 * a cap per stream, stdin fed in frames, until the exit event.
 *
 * shim_exec reads output while it writes stdin: a process that echoes a
 * large stdin back can never deadlock against us.
 *
 * Owns nothing between calls; the result's buffers go to the caller
 * (shim_exec_result_clear). Never runs on the HTTP loop thread.
 */
#include "runtime/shim_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/id.h"
#include "proto/proto.h"
#include "runtime/shim_conn.h"

#define EXEC_MARGIN_MS 30000            /* beyond the process's own timeout */

void shim_exec_result_clear(struct sb_exec_result *res)
{
    free(res->out);
    free(res->err_out);
    memset(res, 0, sizeof *res);
}

/* The start request for req (new reference). */
static json_t *exec_start_request(const struct sb_exec_request *req)
{
    json_t *argv = json_array();
    json_array_append_new(argv, json_string(req->cmd));
    for (size_t i = 0; i < req->arg_count; i++)
        json_array_append_new(argv, json_string(req->args[i]));
    json_t *start = json_pack("{s:s, s:o, s:s, s:I, s:b}", "op", "start", "argv", argv,
                              "stdin", req->stdin_data ? "open" : "closed",
                              "timeout_ms", (json_int_t)(req->timeout_s > 0 ? req->timeout_s : 0) * 1000,
                              "attach", 1);
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

/* Output collection for one stream: keeps cap bytes, counts the rest. */
struct collect {
    char *buf;
    size_t len, cap;
    uint64_t seen;                      /* stream bytes received (next expected offset) */
};

static int collect_chunk(struct collect *col, const struct sb_output_chunk *ch, int *truncated)
{
    if (ch->offset != col->seen)        /* the shim never drops bytes for an attached client */
        *truncated = 1;
    col->seen = ch->offset + ch->len;
    size_t keep = col->len < col->cap ? col->cap - col->len : 0;
    if (keep > ch->len)
        keep = ch->len;
    if (keep < ch->len)
        *truncated = 1;
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

/* The stdin side of an exec: frames queued one at a time, then close_stdin. */
struct stdin_feed {
    const char *data;
    size_t len, sent;
    int closed;                         /* close_stdin queued */
    uint8_t *frame;                     /* owned: the frame being written */
    size_t frame_len, frame_off;
};

static int feed_next_frame(struct conn *c, struct stdin_feed *in, uint32_t proc)
{
    free(in->frame);
    in->frame = NULL;
    in->frame_off = in->frame_len = 0;
    if (in->sent < in->len) {
        size_t n = in->len - in->sent < SB_PROTO_CHUNK ? in->len - in->sent : SB_PROTO_CHUNK;
        in->frame = malloc(SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER + n);
        if (!in->frame)
            return -1;
        sb_frame_stdin_header(in->frame, (uint32_t)++c->seq, proc, (uint32_t)n);
        memcpy(in->frame + SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER, in->data + in->sent, n);
        in->frame_len = SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER + n;
        in->sent += n;
    } else if (!in->closed) {
        json_t *req = json_pack("{s:s, s:I, s:I}", "op", "close_stdin", "seq", ++c->seq, "proc", (json_int_t)proc);
        in->frame = sb_frame_json(req, &in->frame_len);
        json_decref(req);
        in->closed = 1;
        if (!in->frame)
            return -1;
    }
    return 0;
}

/* Writes as much of the pending stdin as the socket takes right now. */
static int feed_write(struct conn *c, struct stdin_feed *in, uint32_t proc, struct sb_err *err)
{
    for (;;) {
        if (in->frame_off == in->frame_len) {
            if (in->closed)
                return 0;
            if (feed_next_frame(c, in, proc) < 0)
                return sb_err_set(err, 500, "exec: out of memory");
            if (!in->frame)
                return 0;
        }
        ssize_t n = send(c->fd, in->frame + in->frame_off, in->frame_len - in->frame_off, MSG_NOSIGNAL);
        if (n > 0)
            in->frame_off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && errno == EAGAIN)
            return 0;
        else
            return sb_err_sys(err, 502, "sandbox runtime: send stdin");
    }
}

static int feed_pending(const struct stdin_feed *in)
{
    return in->data && (in->frame_off < in->frame_len || in->sent < in->len || !in->closed);
}

static void fill_result(json_t *ev, struct sb_exec_result *res)
{
    res->exit_code = (int)json_integer_value(json_object_get(ev, "exit_code"));
    res->signal = (int)json_integer_value(json_object_get(ev, "signal"));
    res->timed_out = json_is_true(json_object_get(ev, "timed_out"));
    res->oom_killed = json_is_true(json_object_get(ev, "oom_killed"));
    res->duration_ms = json_integer_value(json_object_get(ev, "duration_ms"));
    if (!res->pid)
        res->pid = (int)json_integer_value(json_object_get(ev, "pid"));
}

/* Handles one frame of a running exec. Returns 1 when the exit event came. */
static int exec_frame(const struct sb_frame *f, uint32_t proc, struct collect col[2],
                      struct sb_exec_result *res, struct sb_err *err)
{
    if (f->type == SB_FRAME_OUTPUT) {
        struct sb_output_chunk ch;
        if (sb_frame_parse_output(f, &ch, err) < 0)
            return sb_err_prefix(err, "sandbox runtime");
        if (ch.proc == proc && collect_chunk(&col[ch.stream - 1], &ch, &res->truncated) < 0)
            return sb_err_set(err, 500, "exec: out of memory collecting output");
        return 0;
    }
    if (f->type != SB_FRAME_JSON)
        return 0;
    json_t *o = sb_frame_parse_json(f, err);
    if (!o)
        return sb_err_prefix(err, "sandbox runtime");
    int done = 0;
    const char *event = json_string_value(json_object_get(o, "event"));
    if (event && strcmp(event, "exit") == 0 && json_integer_value(json_object_get(o, "proc")) == proc) {
        fill_result(o, res);
        done = 1;
    }
    /* failed stdin writes or close (the process stopped reading): not an exec error */
    json_decref(o);
    return done;
}

/* After the start answer: feeds stdin and collects output until the exit event. */
static int exec_loop(struct conn *c, const struct sb_exec_request *req, uint32_t proc,
                     struct sb_exec_result *res, struct sb_err *err)
{
    struct collect col[2] = {{.cap = req->output_cap}, {.cap = req->output_cap}};
    struct stdin_feed in = {.data = req->stdin_data, .len = req->stdin_len};
    int64_t deadline = req->timeout_s > 0 ? sb_mono_ms() + req->timeout_s * 1000LL + EXEC_MARGIN_MS : -1;
    int rc = 0, done = 0;
    while (!done && rc == 0) {
        struct sb_frame f;
        int got;
        while (!done && rc == 0 && (got = sb_frame_reader_next(&c->in, &f, err)) != 0) {
            if (got < 0)
                rc = sb_err_prefix(err, "sandbox runtime");
            else if ((got = exec_frame(&f, proc, col, res, err)) < 0)
                rc = -1;
            else
                done = got;
        }
        if (done || rc < 0)
            break;
        if (feed_pending(&in) && (rc = feed_write(c, &in, proc, err)) < 0)
            break;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN | (feed_pending(&in) ? POLLOUT : 0)};
        int pr = poll(&pfd, 1, left_ms(deadline));
        if (pr == 0)
            rc = sb_err_set(err, 502, "sandbox runtime did not finish the process in time");
        else if (pr > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            rc = conn_fill(c, deadline, err);
    }
    free(in.frame);
    res->out = col[0].buf ? col[0].buf : calloc(1, 1);
    res->out_len = col[0].len;
    res->err_out = col[1].buf ? col[1].buf : calloc(1, 1);
    res->err_len = col[1].len;
    return rc;
}

int shim_exec(const char *run_dir, const char *id, const struct sb_exec_request *req,
              struct sb_exec_result *res, struct sb_err *err)
{
    memset(res, 0, sizeof *res);
    if (!req->cmd || !req->cmd[0])
        return sb_err_set(err, 400, "exec: empty command");
    struct conn c;
    if (conn_open(run_dir, id, &c, err) < 0)
        return -1;
    json_t *resp = NULL;
    int rc = conn_call(&c, exec_start_request(req), &resp, sb_mono_ms() + CONTROL_TIMEOUT_MS * 3, err);
    if (rc == 0) {
        uint32_t proc = (uint32_t)json_integer_value(json_object_get(resp, "proc"));
        res->pid = (int)json_integer_value(json_object_get(resp, "pid"));
        json_decref(resp);
        rc = exec_loop(&c, req, proc, res, err);
        if (rc < 0)
            shim_exec_result_clear(res);
    }
    conn_close(&c);
    return rc;
}
