/*
 * server.c - the shim's epoll loop (see server.h and proto/proto.h for the
 * wire format): accepting clients, reading their frames, signals, set-up.
 * The client queues are in server_clients.c, the handlers in server_ops.c.
 *
 * Together they own client connections, their output queues and attachments. Output goes
 * from a process's ring straight into an attached client's queue, one
 * SB_PROTO_CHUNK at a time, only while that queue is under
 * SB_SHIM_CLIENT_SOFT_OUT; the process table in turn reads a pipe only as far
 * as no attached cursor would be overwritten. So a slow client slows the
 * process down instead of losing output or growing memory. A client whose
 * queue is over the soft limit is not read from either (it must drain its
 * answers first), and one that sends stdin faster than the process consumes
 * it is paused until the stdin queue has room.
 *
 * Answers: every request gets exactly one response with its seq; "wait" is
 * answered when the process finishes (its main process exited and what was
 * in its pipes then was read, see process.c); an attachment ends with the
 * "exit" event after the last byte before the end recorded at finish
 * (proc_stream_end), not the live ring end: children the process left
 * running may keep writing, and must not keep a synchronous exec open.
 */
#include "shim/server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "proto/proto.h"
#include "shim/server_internal.h"

/* ---- reading requests ---- */

static void handle_stdin_frame(struct sb_shim_server *s, struct sb_client *cl, const struct sb_frame *f)
{
    struct sb_stdin_chunk in;
    struct sb_err err = {0};
    if (sb_frame_parse_stdin(f, &in, &err) < 0) {
        srv_client_drop(s, cl);
        return;
    }
    struct sb_proc *p = proc_find(&s->procs, in.proc);
    if (!p) {
        sb_err_set(&err, 404, "no process %u", in.proc);
    } else if (p->in_fd >= 0 && !p->in_close_pending && in.len > proc_stdin_room(p)) {
        cl->stalled = 1;            /* retried by resume_stalled once the queue drains */
        cl->in.consumed -= SB_PROTO_HEADER + f->len;
        return;
    } else if (proc_stdin_write(&s->procs, p, in.data, in.len, &err) == 0) {
        srv_respond_ok(s, cl, in.seq, NULL);
        return;
    }
    srv_respond_err(s, cl, in.seq, &err);
}

static void process_frames(struct sb_shim_server *s, struct sb_client *cl)
{
    struct sb_frame f;
    struct sb_err err = {0};
    while (!cl->dead && !cl->stalled && !s->destroyed && srv_out_queued(cl) < SB_SHIM_CLIENT_SOFT_OUT) {
        int rc = sb_frame_reader_next(&cl->in, &f, &err);
        if (rc == 0)
            break;
        if (rc < 0 || f.type == SB_FRAME_OUTPUT) {
            sb_warn("shim: dropping a client: %s", rc < 0 ? err.msg : "it sent an output frame");
            srv_client_drop(s, cl);
            return;
        }
        if (f.type == SB_FRAME_STDIN)
            handle_stdin_frame(s, cl, &f);
        else
            srv_handle_request(s, cl, &f);
    }
}

static void client_read(struct sb_shim_server *s, struct sb_client *cl)
{
    size_t room;
    uint8_t *dst = sb_frame_reader_space(&cl->in, &room);
    ssize_t n = read(cl->fd, dst, room);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        srv_client_drop(s, cl);
        return;
    }
    if (n > 0) {
        sb_frame_reader_commit(&cl->in, (size_t)n);
        process_frames(s, cl);
    }
}

/* Clients paused on a full stdin queue (or a full output queue) continue
 * once there is room again. */
static void resume_clients(struct sb_shim_server *s)
{
    for (struct sb_client *cl = s->clients; cl; cl = cl->next) {
        if (cl->dead)
            continue;
        cl->stalled = 0;
        process_frames(s, cl);
        srv_client_flush(s, cl);
    }
}

static void accept_clients(struct sb_shim_server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct sb_client *cl = s->client_count < SB_SHIM_MAX_CLIENTS ? calloc(1, sizeof *cl) : NULL;
        if (!cl || sb_frame_reader_init(&cl->in, NULL) < 0) {
            sb_warn("shim: refusing a client (%d connected)", s->client_count);
            free(cl);
            close(fd);
            continue;
        }
        cl->fd = fd;
        cl->watch = (struct sb_shim_watch){SB_WATCH_CLIENT, cl};
        cl->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cl->watch};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            sb_frame_reader_free(&cl->in);
            free(cl);
            close(fd);
            continue;
        }
        cl->next = s->clients;
        s->clients = cl;
        s->client_count++;
    }
}

/* SIGTERM/SIGINT end the sandbox like a destroy request. */
static void handle_signals(struct sb_shim_server *s)
{
    struct signalfd_siginfo si;
    int reap = 0, stop = 0;
    while (read(s->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            reap = 1;
        else
            stop = 1;
    }
    if (reap)
        proc_reap(&s->procs);
    if (stop) {
        sb_info("shim: terminating signal: destroying sandbox %s", s->c->id);
        srv_destroy_sandbox(s, NULL, 0);
    }
}

static void dispatch(struct sb_shim_server *s, struct epoll_event *ev)
{
    struct sb_shim_watch *w = ev->data.ptr;
    switch (w->kind) {
    case SB_WATCH_LISTEN:
        accept_clients(s);
        break;
    case SB_WATCH_SIGNAL:
        handle_signals(s);
        break;
    case SB_WATCH_CLIENT: {
        struct sb_client *cl = w->owner;
        if (cl->dead)
            break;
        if (ev->events & (EPOLLERR | EPOLLHUP)) {
            srv_client_drop(s, cl);
            break;
        }
        if (ev->events & EPOLLIN)
            client_read(s, cl);
        if (!cl->dead)
            srv_client_flush(s, cl);
        break;
    }
    default:
        proc_handle_event(&s->procs, w, ev->events);
        break;
    }
}

int shim_server_run(struct sb_shim_server *s)
{
    struct epoll_event evs[64];
    while (!s->destroyed) {
        int n = epoll_wait(s->epfd, evs, 64, proc_next_timeout_ms(&s->procs));
        if (n < 0 && errno != EINTR) {
            sb_error("shim: epoll_wait: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n && !s->destroyed; i++)
            dispatch(s, &evs[i]);
        if (!s->destroyed) {
            proc_tick(&s->procs);
            resume_clients(s);
        }
        srv_free_dead_clients(s);
    }
    return 0;
}

/* ---- set-up ---- */

static int listen_socket(struct sb_shim_server *s, struct sb_err *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/shim.sock", s->sandbox_run_dir);
    if (n < 0 || (size_t)n >= sizeof addr.sun_path)
        return sb_err_set(err, 500, "socket path %s/shim.sock is longer than %zu bytes: use a shorter --run-dir",
                          s->sandbox_run_dir, sizeof addr.sun_path - 1);
    snprintf(s->sock_path, sizeof s->sock_path, "%s", addr.sun_path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return sb_err_sys(err, 500, "shim socket");
    unlink(addr.sun_path);          /* a stale socket of a dead shim */
    if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        return sb_err_sys(err, 500, "bind %s", addr.sun_path);
    if (chmod(addr.sun_path, 0600) < 0)
        return sb_err_sys(err, 500, "chmod %s", addr.sun_path);
    if (listen(s->listen_fd, SB_SHIM_MAX_CLIENTS) < 0)     /* a burst of attaches all connect at once */
        return sb_err_sys(err, 500, "listen %s", addr.sun_path);
    s->listen_watch = (struct sb_shim_watch){SB_WATCH_LISTEN, NULL};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->listen_watch};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0)
        return sb_err_sys(err, 500, "epoll add listener");
    return 0;
}

static int signal_setup(struct sb_shim_server *s, struct sb_err *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return sb_err_sys(err, 500, "block signals");
    s->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->signal_fd < 0)
        return sb_err_sys(err, 500, "signalfd");
    s->signal_watch = (struct sb_shim_watch){SB_WATCH_SIGNAL, NULL};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->signal_watch};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->signal_fd, &ev) < 0)
        return sb_err_sys(err, 500, "epoll add signalfd");
    return 0;
}

int shim_server_init(struct sb_shim_server *s, struct sb_container *c, const char *sandbox_run_dir,
                     struct sb_err *err)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->listen_fd = s->signal_fd = -1;
    snprintf(s->sandbox_run_dir, sizeof s->sandbox_run_dir, "%s", sandbox_run_dir);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        return sb_err_sys(err, 500, "epoll_create1");
    struct sb_proc_callbacks cb = {.output = srv_on_proc_output, .finished = srv_on_proc_finished, .arg = s};
    proc_table_init(&s->procs, c, s->epfd, &cb);
    if (signal_setup(s, err) < 0 || listen_socket(s, err) < 0)
        return -1;
    /* children that exited before the signalfd existed */
    proc_reap(&s->procs);
    return 0;
}

void shim_server_free(struct sb_shim_server *s)
{
    for (struct sb_client *cl = s->clients; cl; cl = cl->next)
        srv_client_drop(s, cl);
    srv_free_dead_clients(s);
    while (s->waits) {
        struct sb_wait *w = s->waits;
        s->waits = w->next;
        free(w);
    }
    if (!s->destroyed)
        proc_table_free(&s->procs);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        if (s->sock_path[0])
            unlink(s->sock_path);
    }
    if (s->signal_fd >= 0)
        close(s->signal_fd);
    if (s->epfd >= 0)
        close(s->epfd);
    s->listen_fd = s->signal_fd = s->epfd = -1;
}
