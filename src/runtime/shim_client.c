/*
 * shim_client.c - the server's side of the shim protocol (see
 * runtime/shim_client.h for the contract and proto/proto.h for the wire).
 *
 * Every call opens its own connection to <run-dir>/sandboxes/<id>/shim.sock,
 * so calls from different worker threads never share state. All socket I/O
 * is non-blocking under poll() with a deadline, so a wedged shim costs a
 * worker a bounded wait. shim_exec reads output while it writes stdin: a
 * process that echoes a large stdin back can never deadlock against us.
 *
 * Owns nothing between calls. Never runs on the HTTP loop thread.
 */
#include "runtime/shim_client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/id.h"
#include "core/fs.h"
#include "proto/proto.h"
#include "shim/cgroup.h"

#define CONTROL_TIMEOUT_MS 10000        /* pause, resume, status */
#define DESTROY_TIMEOUT_MS 60000
#define SPAWN_TIMEOUT_MS 120000         /* container_create: overlay, disk image, namespaces */
#define EXEC_MARGIN_MS 30000            /* beyond the process's own timeout */

struct conn {
    int fd;
    struct sb_frame_reader in;
    json_int_t seq;
};

/* Milliseconds left until deadline (-1 = none) for poll(). */
static int left_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - sb_mono_ms();
    return left < 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

static int sandbox_run_dir(char *out, size_t len, const char *run_dir, const char *id)
{
    int n = snprintf(out, len, "%s/sandboxes/%s", run_dir, id);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void conn_close(struct conn *c)
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
static int conn_open(const char *run_dir, const char *id, struct conn *c, struct sb_err *err)
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
static int conn_fill(struct conn *c, int64_t deadline, struct sb_err *err)
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

static int conn_next_frame(struct conn *c, struct sb_frame *f, int64_t deadline, struct sb_err *err)
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
static int conn_call(struct conn *c, json_t *req, json_t **resp, int64_t deadline, struct sb_err *err)
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

/* ---- exec ---- */

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

/* ---- spawn ---- */


struct spawn_argv {
    char nums[6][24];
    char *argv[32];
};

static void spawn_argv_build(struct spawn_argv *a, const struct sb_config *cfg,
                             const struct sb_sandbox_spec *spec)
{
    snprintf(a->nums[0], sizeof a->nums[0], "%u", cfg->uid_base);
    snprintf(a->nums[1], sizeof a->nums[1], "%d", spec->limits.cpu_count);
    snprintf(a->nums[2], sizeof a->nums[2], "%d", spec->limits.memory_mb);
    snprintf(a->nums[3], sizeof a->nums[3], "%d", spec->limits.pids);
    snprintf(a->nums[4], sizeof a->nums[4], "%d", spec->limits.disk_mb);
    snprintf(a->nums[5], sizeof a->nums[5], "%d", 3);
    char *v[] = {"sandbase", "shim", "--id", (char *)spec->id, "--data-dir", (char *)cfg->data_dir,
                 "--run-dir", (char *)cfg->run_dir, "--template", (char *)spec->tpl->name,
                 "--uid-base", a->nums[0], "--cpus", a->nums[1], "--memory-mb", a->nums[2],
                 "--pids", a->nums[3], "--disk-mb", a->nums[4], "--ready-fd", a->nums[5],
                 "--detach", NULL};
    memcpy(a->argv, v, sizeof v);
}

/* Starts the shim with posix_spawn (vfork-like: serve's address space is
 * not copied, so a spawn does not stall the server's other threads):
 * new session, default signals, stdin /dev/null, stdout/stderr to the log,
 * the ready pipe as fd 3, nothing else open, cwd /. The shim's --detach
 * then forks once so it is nobody's child; *pid is the short-lived parent. */
static int spawn_detached(int ready_fd, const char *log_path, char *const argv[], pid_t *pid)
{
    extern char **environ;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_adddup2(&fa, ready_fd, 3);   /* clears close-on-exec */
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    posix_spawn_file_actions_addchdir_np(&fa, "/");
    int rc = posix_spawn(pid, "/proc/self/exe", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

/* Reads the shim's one readiness line ("ok" / "error <status> <message>"). */
static int spawn_wait_ready(int fd, const char *log_path, struct sb_err *err)
{
    char line[SB_ERR_MSG_MAX + 64];
    size_t len = 0;
    int64_t deadline = sb_mono_ms() + SPAWN_TIMEOUT_MS;
    while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left_ms(deadline));
        if (pr == 0)
            return sb_err_set(err, 502, "sandbox runtime did not become ready in %d s (see %s)",
                              SPAWN_TIMEOUT_MS / 1000, log_path);
        if (pr < 0 && errno == EINTR)
            continue;
        ssize_t n = read(fd, line + len, sizeof line - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    line[len] = '\0';
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    if (strcmp(line, "ok") == 0)
        return 0;
    int status = 0, skip = 0;
    if (sscanf(line, "error %d %n", &status, &skip) >= 1 && skip > 0)
        return sb_err_set(err, 502, "%s", line + skip);
    return sb_err_set(err, 502, "sandbox runtime exited during set-up (see %s)", log_path);
}

int shim_spawn(const struct sb_config *cfg, const struct sb_sandbox_spec *spec, struct sb_err *err)
{
    char dir[SB_PATH_MAX], log_path[SB_PATH_MAX + 16];
    if (sandbox_run_dir(dir, sizeof dir, cfg->run_dir, spec->id) < 0)
        return sb_err_set(err, 500, "run dir path too long");
    if (sb_mkdir_p(dir, 0700, err) < 0)
        return -1;
    snprintf(log_path, sizeof log_path, "%s/shim.log", dir);
    struct spawn_argv a;
    spawn_argv_build(&a, cfg, spec);
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return sb_err_sys(err, 500, "spawn sandbox runtime: pipe");
    pid_t pid;
    int src = spawn_detached(ready[1], log_path, a.argv, &pid);
    close(ready[1]);
    if (src != 0) {
        close(ready[0]);
        errno = src;
        return sb_err_sys(err, 500, "spawn sandbox runtime");
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int rc = spawn_wait_ready(ready[0], log_path, err);
    close(ready[0]);
    return rc;
}

/* ---- destroy and leftovers ---- */

/* The pid in <dir>/shim.pid, or 0. */
static int read_shim_pid(const char *dir)
{
    char path[SB_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/shim.pid", dir);
    FILE *f = fopen(path, "re");
    int pid = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%d", &pid) != 1 || pid <= 1)
        pid = 0;
    fclose(f);
    return pid;
}

/* 1 if process pid is the shim for id (its command line names both). */
static int is_shim_of(int pid, const char *id)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return 0;
    buf[len] = '\0';
    int is_shim = 0, has_id = 0;
    for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
        is_shim |= strcmp(buf + i, "shim") == 0;
        has_id |= strcmp(buf + i, id) == 0;
    }
    return is_shim && has_id;
}

/* A shim that no longer answers but still runs is killed, if the pid file's
 * process really is the shim for id. */
static void kill_stale_shim(const char *dir, const char *id)
{
    int pid = read_shim_pid(dir);
    if (pid > 1 && is_shim_of(pid, id))
        kill(pid, SIGKILL);
}

int shim_pidfd_open(const char *run_dir, const char *id, int *pidfd, struct sb_err *err)
{
    *pidfd = -1;
    char dir[SB_PATH_MAX];
    if (sandbox_run_dir(dir, sizeof dir, run_dir, id) < 0)
        return sb_err_set(err, 500, "watch %s: run dir path too long", id);
    int pid = read_shim_pid(dir);
    int fd = pid > 1 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    /* Checked after the open: a pid reused before it no longer names the shim,
     * and one reused after cannot be, since the pidfd pins the process. */
    if (fd >= 0 && is_shim_of(pid, id) && shim_alive(run_dir, id)) {
        *pidfd = fd;
        return 0;
    }
    if (fd >= 0)
        close(fd);
    if (!shim_alive(run_dir, id))
        return sb_err_set(err, 404, "sandbox not found: no runtime answers for %s", id);
    return sb_err_set(err, 500, "watch %s: shim.pid in %s does not name its running shim", id, dir);
}

static int cleanup_leftovers(const struct sb_config *cfg, const char *id, struct sb_err *err)
{
    char dir[SB_PATH_MAX], sandbox_dir[SB_PATH_MAX];
    if (sandbox_run_dir(dir, sizeof dir, cfg->run_dir, id) < 0 ||
        snprintf(sandbox_dir, sizeof sandbox_dir, "%s/sandboxes/%s", cfg->data_dir, id) >= (int)sizeof sandbox_dir)
        return sb_err_set(err, 500, "destroy %s: path too long", id);
    kill_stale_shim(dir, id);
    const struct sb_cgroup_roots *roots;
    struct sb_cgroup *cg = NULL;
    struct sb_err cg_err = {0};
    if (cgroup_default_roots(&roots, &cg_err) == 0 && cgroup_create(roots, "sandbase", id, &cg, &cg_err) == 0) {
        cgroup_freeze(cg, NULL, 0, NULL);
        cgroup_kill(cg, NULL, NULL);
        if (cgroup_remove(cg, &cg_err) < 0)
            sb_err_set(err, 500, "destroy %s: %s", id, cg_err.msg);
        cgroup_free(cg);
    }
    sb_unmount_below(sandbox_dir);
    struct sb_err ignored;
    sb_remove_tree(sandbox_dir, &ignored);    /* best effort: leftovers of a dead shim */
    sb_remove_tree(dir, &ignored);
    struct stat st;
    if (lstat(sandbox_dir, &st) == 0)
        return sb_err_set(err, 500, "destroy %s: could not remove %s", id, sandbox_dir);
    return err && err->status ? -1 : 0;
}

/* Waits (bounded) until the shim closes the connection: it has exited. */
static void wait_closed(struct conn *c, int timeout_ms)
{
    int64_t deadline = sb_mono_ms() + timeout_ms;
    for (;;) {
        struct sb_err ignored = {0};
        struct sb_frame f;
        if (conn_next_frame(c, &f, deadline, &ignored) < 0)
            return;
    }
}

/* Waits (bounded) until the process behind pidfd has exited; SIGKILLs it
 * if it is still there after timeout_ms (it closed its socket but hangs in
 * exit, e.g. a sanitizer's leak check). Closes pidfd. */
static void wait_exited(int pidfd, int timeout_ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) == 0) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        poll(&p, 1, 1000);
    }
    close(pidfd);
}

int shim_destroy(const struct sb_config *cfg, const char *id, struct sb_err *err)
{
    struct conn c;
    if (conn_open(cfg->run_dir, id, &c, NULL) == 0) {
        /* Pin the shim process while it still answers, so "destroyed" means
         * the process is gone, not only its socket. */
        char dir[SB_PATH_MAX];
        int pid = sandbox_run_dir(dir, sizeof dir, cfg->run_dir, id) == 0 ? read_shim_pid(dir) : 0;
        int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
        json_t *resp = NULL;
        struct sb_err call_err = {0};
        if (conn_call(&c, json_pack("{s:s}", "op", "destroy"), &resp, sb_mono_ms() + DESTROY_TIMEOUT_MS, &call_err) == 0)
            wait_closed(&c, 5000);
        json_decref(resp);
        conn_close(&c);
        if (pidfd >= 0)
            wait_exited(pidfd, 10000);
    }
    sb_err_clear(err);
    return cleanup_leftovers(cfg, id, err);
}

int shim_list_ids(const char *run_dir, char (**ids)[32], size_t *count, struct sb_err *err)
{
    *ids = NULL;
    *count = 0;
    char path[SB_PATH_MAX];
    snprintf(path, sizeof path, "%s/sandboxes", run_dir);
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return sb_err_sys(err, 500, "list %s", path);
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t name_len = strnlen(de->d_name, 32);
        if (de->d_name[0] == '.' || name_len >= 32 || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        char(*grown)[32] = realloc(*ids, (*count + 1) * sizeof **ids);
        if (!grown) {
            closedir(d);
            free(*ids);
            *ids = NULL;
            *count = 0;
            return sb_err_set(err, 500, "list %s: out of memory", path);
        }
        *ids = grown;
        memcpy((*ids)[*count], de->d_name, name_len + 1);
        (*count)++;
    }
    closedir(d);
    return 0;
}
