/*
 * shim_conn.c - the connection to one shim (see runtime/shim_client.h for
 * the contract and proto/proto.h for the wire): connect, framed I/O, one
 * request and its answer, and the short control calls built on that
 * (alive, pause, resume, status).
 *
 * Every call opens its own connection to <run-dir>/sandboxes/<id>/shim.sock,
 * so calls from different worker threads never share state. All socket I/O
 * is non-blocking under poll() with a deadline, so a wedged shim costs a
 * worker a bounded wait.
 *
 * Owns nothing between calls; a struct conn belongs to the call that opened
 * it. Never runs on the HTTP loop thread (shim_alive excepted: one
 * non-blocking connect).
 */
#include "runtime/shim_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/id.h"
#include "proto/proto.h"
#include "runtime/shim_conn.h"

static _Atomic int call_timeout_ms = 10000;

void shim_client_set_call_timeout(int ms)
{
    if (ms > 0)
        call_timeout_ms = ms;
}

int shim_call_timeout_ms(void)
{
    return call_timeout_ms;
}

/* Milliseconds left until deadline (-1 = none) for poll(). */
int left_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - sb_mono_ms();
    return left < 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

int sandbox_run_dir(char *out, size_t len, const char *run_dir, const char *id)
{
    int n = snprintf(out, len, "%s/sandboxes/%s", run_dir, id);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    sb_frame_reader_free(&c->in);
}

static int socket_addr(struct sockaddr_un *addr, const char *run_dir, const char *id)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    char dir[SB_PATH_MAX];
    if (sandbox_run_dir(dir, sizeof dir, run_dir, id) < 0 ||
        snprintf(addr->sun_path, sizeof addr->sun_path, "%s/shim.sock", dir) >= (int)sizeof addr->sun_path)
        return -1;
    return 0;
}

int shim_alive(const char *run_dir, const char *id)
{
    struct sockaddr_un addr;
    if (socket_addr(&addr, run_dir, id) < 0)
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return 1;       /* out of fds says nothing about the shim */
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int alive = rc == 0 || errno == EAGAIN;     /* EAGAIN: listening, backlog full */
    close(fd);
    return alive;
}

/* Connects to id's shim. On failure err is 502 "sandbox runtime unreachable". */
int conn_open(const char *run_dir, const char *id, struct conn *c, struct sb_err *err)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    struct sockaddr_un addr;
    if (socket_addr(&addr, run_dir, id) < 0)
        return sb_err_set(err, 502, "sandbox runtime unreachable: socket path too long");
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        return sb_err_sys(err, 502, "sandbox runtime unreachable: socket");
    int rc = connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
    if (rc < 0 && errno == EAGAIN) {    /* backlog full: wait for room, bounded */
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        int pr = poll(&pfd, 1, CONTROL_TIMEOUT_MS);
        rc = pr > 0 ? connect(c->fd, (struct sockaddr *)&addr, sizeof addr) : -1;
        if (pr == 0)
            errno = ETIMEDOUT;
    }
    if (rc < 0 && errno != EISCONN) {
        sb_err_sys(err, 502, "sandbox runtime unreachable (%s)", id);
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    if (sb_frame_reader_init(&c->in, err) < 0) {
        conn_close(c);
        return -1;
    }
    return 0;
}

static int conn_write_all(struct conn *c, const void *buf, size_t len, int64_t deadline, struct sb_err *err)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return sb_err_sys(err, 502, "sandbox runtime: send");
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        if (poll(&pfd, 1, left_ms(deadline)) == 0)
            return sb_err_set(err, 502, "sandbox runtime did not answer in time");
    }
    return 0;
}

/* Reads whatever is available into the frame reader (waiting until deadline
 * for at least one byte). */
int conn_fill(struct conn *c, int64_t deadline, struct sb_err *err)
{
    for (;;) {
        size_t room;
        uint8_t *dst = sb_frame_reader_space(&c->in, &room);
        ssize_t n = recv(c->fd, dst, room, 0);
        if (n > 0) {
            sb_frame_reader_commit(&c->in, (size_t)n);
            return 0;
        }
        if (n == 0)
            return sb_err_set(err, 502, "sandbox runtime closed the connection");
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return sb_err_sys(err, 502, "sandbox runtime: recv");
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int rc = poll(&pfd, 1, left_ms(deadline));
        if (rc == 0)
            return sb_err_set(err, 502, "sandbox runtime did not answer in time");
    }
}

int conn_next_frame(struct conn *c, struct sb_frame *f, int64_t deadline, struct sb_err *err)
{
    for (;;) {
        int rc = sb_frame_reader_next(&c->in, f, err);
        if (rc < 0)
            return sb_err_prefix(err, "sandbox runtime");
        if (rc == 1)
            return 0;
        if (conn_fill(c, deadline, err) < 0)
            return -1;
    }
}

static int conn_send_json(struct conn *c, json_t *req, int64_t deadline, struct sb_err *err)
{
    size_t len;
    uint8_t *frame = sb_frame_json(req, &len);
    if (!frame)
        return sb_err_set(err, 500, "shim request too large to encode");
    int rc = conn_write_all(c, frame, len, deadline, err);
    free(frame);
    return rc;
}

/* Turns an {"ok": false} answer into err. */
static int answer_error(json_t *resp, struct sb_err *err)
{
    json_int_t status = json_integer_value(json_object_get(resp, "status"));
    const char *msg = json_string_value(json_object_get(resp, "error"));
    return sb_err_set(err, status ? (int)status : 502, "%s", msg ? msg : "sandbox runtime error");
}

/* Sends req (steals the reference) with the next seq and returns the answer
 * with that seq in *resp (caller decrefs). Frames for other purposes are
 * skipped. An {"ok": false} answer becomes err. */
int conn_call(struct conn *c, json_t *req, json_t **resp, int64_t deadline, struct sb_err *err)
{
    json_int_t seq = ++c->seq;
    json_object_set_new(req, "seq", json_integer(seq));
    int rc = conn_send_json(c, req, deadline, err);
    json_decref(req);
    if (rc < 0)
        return -1;
    for (;;) {
        struct sb_frame f;
        if (conn_next_frame(c, &f, deadline, err) < 0)
            return -1;
        if (f.type != SB_FRAME_JSON)
            continue;
        json_t *o = sb_frame_parse_json(&f, err);
        if (!o)
            return sb_err_prefix(err, "sandbox runtime");
        if (json_object_get(o, "seq") && json_integer_value(json_object_get(o, "seq")) == seq &&
            !json_object_get(o, "event")) {
            if (!json_is_true(json_object_get(o, "ok"))) {
                answer_error(o, err);
                json_decref(o);
                return -1;
            }
            *resp = o;
            return 0;
        }
        json_decref(o);
    }
}

/* One request on a fresh connection. */
static int simple_call(const char *run_dir, const char *id, const char *op, int timeout_ms,
                       json_t **resp, struct sb_err *err)
{
    struct conn c;
    if (conn_open(run_dir, id, &c, err) < 0)
        return -1;
    json_t *out = NULL;
    int rc = conn_call(&c, json_pack("{s:s}", "op", op), &out, sb_mono_ms() + timeout_ms, err);
    conn_close(&c);
    if (rc == 0 && resp)
        *resp = out;
    else
        json_decref(out);
    return rc;
}

int shim_pause(const char *run_dir, const char *id, struct sb_err *err)
{
    return simple_call(run_dir, id, "pause", CONTROL_TIMEOUT_MS, NULL, err);
}

int shim_resume(const char *run_dir, const char *id, struct sb_err *err)
{
    return simple_call(run_dir, id, "resume", CONTROL_TIMEOUT_MS, NULL, err);
}

int shim_stats(const char *run_dir, const char *id, struct sb_shim_stats *out, struct sb_err *err)
{
    struct conn c;
    if (conn_open(run_dir, id, &c, NULL) < 0)
        return sb_err_set(err, 404, "sandbox not found: no runtime answers for %s", id);
    json_t *resp = NULL;
    int rc = conn_call(&c, json_pack("{s:s}", "op", "stats"), &resp, sb_mono_ms() + CONTROL_TIMEOUT_MS, err);
    conn_close(&c);
    if (rc < 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->mem_used = (uint64_t)json_integer_value(json_object_get(resp, "mem_used"));
    out->mem_cache = (uint64_t)json_integer_value(json_object_get(resp, "mem_cache"));
    out->cpu_ns = (uint64_t)json_integer_value(json_object_get(resp, "cpu_ns"));
    json_decref(resp);
    return 0;
}

int shim_status(const char *run_dir, const char *id, struct sb_shim_status *out, struct sb_err *err)
{
    struct conn c;
    if (conn_open(run_dir, id, &c, NULL) < 0)
        return sb_err_set(err, 404, "sandbox not found: no runtime answers for %s", id);
    json_t *resp = NULL;
    int rc = conn_call(&c, json_pack("{s:s}", "op", "status"), &resp, sb_mono_ms() + CONTROL_TIMEOUT_MS, err);
    conn_close(&c);
    if (rc < 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->shim_pid = (pid_t)json_integer_value(json_object_get(resp, "shim_pid"));
    out->init_pid = (pid_t)json_integer_value(json_object_get(resp, "init_pid"));
    out->paused = json_is_true(json_object_get(resp, "paused"));
    out->process_count = (int)json_integer_value(json_object_get(resp, "process_count"));
    json_decref(resp);
    return 0;
}
