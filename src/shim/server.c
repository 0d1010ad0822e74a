/*
 * server.c - the shim's epoll loop and request handlers (see server.h and
 * proto/proto.h for the wire format).
 *
 * Owns client connections, their output queues and attachments. Output goes
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

#include <dirent.h>
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
#include "shim/pty.h"

struct sb_client {
    int fd;
    struct sb_shim_watch watch;
    uint32_t events;                /* currently registered epoll interest */
    struct sb_frame_reader in;
    uint8_t *out;                   /* owned: queued bytes out[out_off, out_len) */
    size_t out_off, out_len, out_cap;
    struct sb_attach *attaches;     /* owned */
    int stalled;                    /* a stdin frame waits for room: stop reading */
    int dead;                       /* dropped; freed at the end of the loop iteration */
    struct sb_client *next;
};

struct sb_wait {
    struct sb_client *client;
    json_int_t seq;
    uint32_t proc;
    struct sb_wait *next;
};

/* ---- client output ---- */

static void client_drop(struct sb_shim_server *s, struct sb_client *cl);
static void destroy_sandbox(struct sb_shim_server *s, struct sb_client *requester, json_int_t seq);

/* Reserves n bytes at the end of cl's output queue. NULL (and the client is
 * dropped) past the hard limit. */
static uint8_t *out_reserve(struct sb_shim_server *s, struct sb_client *cl, size_t n)
{
    if (cl->out_off > 0 && cl->out_off == cl->out_len)
        cl->out_off = cl->out_len = 0;
    if (cl->out_len + n > cl->out_cap && cl->out_off > 0) {
        memmove(cl->out, cl->out + cl->out_off, cl->out_len - cl->out_off);
        cl->out_len -= cl->out_off;
        cl->out_off = 0;
    }
    if (cl->out_len + n > cl->out_cap) {
        size_t cap = cl->out_cap ? cl->out_cap : 64 * 1024;
        while (cap < cl->out_len + n)
            cap *= 2;
        uint8_t *grown = cap <= SB_SHIM_CLIENT_HARD_OUT ? realloc(cl->out, cap) : NULL;
        if (!grown) {
            sb_warn("shim: client output queue over %u bytes: dropping the client", SB_SHIM_CLIENT_HARD_OUT);
            client_drop(s, cl);
            return NULL;
        }
        cl->out = grown;
        cl->out_cap = cap;
    }
    uint8_t *p = cl->out + cl->out_len;
    cl->out_len += n;
    return p;
}

static size_t out_queued(const struct sb_client *cl)
{
    return cl->out_len - cl->out_off;
}

static void send_json(struct sb_shim_server *s, struct sb_client *cl, json_t *obj)
{
    size_t len;
    uint8_t *frame = sb_frame_json(obj, &len);
    json_decref(obj);
    if (!frame) {
        sb_error("shim: cannot encode an answer");
        return;
    }
    uint8_t *dst = cl->dead ? NULL : out_reserve(s, cl, len);
    if (dst)
        memcpy(dst, frame, len);
    free(frame);
}

static void respond_ok(struct sb_shim_server *s, struct sb_client *cl, json_int_t seq, json_t *fields)
{
    json_t *o = fields ? fields : json_object();
    json_object_set_new(o, "seq", json_integer(seq));
    json_object_set_new(o, "ok", json_true());
    send_json(s, cl, o);
}

static void respond_err(struct sb_shim_server *s, struct sb_client *cl, json_int_t seq,
                        const struct sb_err *err)
{
    send_json(s, cl, json_pack("{s:I, s:b, s:i, s:s}", "seq", seq, "ok", 0,
                               "status", err->status ? err->status : 500, "error", err->msg));
}

static void client_update_events(struct sb_shim_server *s, struct sb_client *cl)
{
    if (cl->dead)
        return;
    uint32_t want = 0;
    if (!cl->stalled && out_queued(cl) < SB_SHIM_CLIENT_SOFT_OUT)
        want |= EPOLLIN;
    if (out_queued(cl) > 0)
        want |= EPOLLOUT;
    if (want == cl->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = &cl->watch};
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, cl->fd, &ev) == 0)
        cl->events = want;
}

static void attach_unlink(struct sb_client *cl, struct sb_attach *a)
{
    for (struct sb_attach **pp = &a->proc->attached; *pp; pp = &(*pp)->next_in_proc)
        if (*pp == a) {
            *pp = a->next_in_proc;
            break;
        }
    for (struct sb_attach **pp = &cl->attaches; *pp; pp = &(*pp)->next_in_client)
        if (*pp == a) {
            *pp = a->next_in_client;
            break;
        }
}

static void send_exit_event(struct sb_shim_server *s, struct sb_client *cl, struct sb_proc *p)
{
    json_t *o = proc_describe(p);
    if (!o)
        return;
    json_object_set_new(o, "event", json_string("exit"));
    send_json(s, cl, o);
}

/* Moves one chunk of stream idx from the ring to cl's queue. 1 if it did. */
static int pump_chunk(struct sb_shim_server *s, struct sb_client *cl, struct sb_attach *a, int idx)
{
    struct sb_ring *r = &a->proc->ring[idx];
    uint64_t end = proc_stream_end(a->proc, idx);
    if (a->cursor[idx] < r->start)
        a->cursor[idx] = r->start;  /* bytes lost before this client attached */
    if (a->cursor[idx] >= end)
        return 0;
    size_t n = (size_t)(end - a->cursor[idx]);
    if (n > SB_PROTO_CHUNK)
        n = SB_PROTO_CHUNK;
    uint8_t *dst = out_reserve(s, cl, SB_PROTO_HEADER + SB_PROTO_OUTPUT_HEADER + n);
    if (!dst)
        return 0;
    uint64_t from;
    size_t got = sb_ring_copy(r, a->cursor[idx], dst + SB_PROTO_HEADER + SB_PROTO_OUTPUT_HEADER, n, &from);
    sb_frame_output_header(dst, a->proc->id, (uint8_t)(idx + 1), from, (uint32_t)got);
    a->cursor[idx] = from + got;
    return 1;
}

/* Fills cl's queue from its attachments (alternating streams) up to the soft
 * limit, ends attachments of finished processes with the exit event once
 * they reached the ends recorded at finish, and lets the processes read
 * their pipes again. */
static void pump_client(struct sb_shim_server *s, struct sb_client *cl)
{
    int progress = 1;
    while (progress && !cl->dead && out_queued(cl) < SB_SHIM_CLIENT_SOFT_OUT) {
        progress = 0;
        for (struct sb_attach *a = cl->attaches; a; a = a->next_in_client)
            for (int idx = 0; idx < 2 && out_queued(cl) < SB_SHIM_CLIENT_SOFT_OUT; idx++) {
                progress |= pump_chunk(s, cl, a, idx);
                if (cl->dead)       /* dropped: its attachments are gone */
                    return;
            }
    }
    for (struct sb_attach *a = cl->attaches, *next; a && !cl->dead; a = next) {
        next = a->next_in_client;
        struct sb_proc *p = a->proc;
        if (p->finished && a->cursor[0] >= proc_stream_end(p, 0) && a->cursor[1] >= proc_stream_end(p, 1)) {
            send_exit_event(s, cl, p);
            attach_unlink(cl, a);
            free(a);
            proc_evict_finished(&s->procs);
            continue;
        }
        proc_update_interest(&s->procs, p);
    }
}

/* Writes what the socket takes, refilling from attachments as it drains. */
static void client_flush(struct sb_shim_server *s, struct sb_client *cl)
{
    for (;;) {
        pump_client(s, cl);
        if (cl->dead || out_queued(cl) == 0)
            break;
        ssize_t n = send(cl->fd, cl->out + cl->out_off, out_queued(cl), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            cl->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        client_drop(s, cl);         /* the peer is gone */
        return;
    }
    client_update_events(s, cl);
}

static void client_drop(struct sb_shim_server *s, struct sb_client *cl)
{
    if (cl->dead)
        return;
    cl->dead = 1;
    while (cl->attaches) {
        struct sb_attach *a = cl->attaches;
        struct sb_proc *p = a->proc;
        attach_unlink(cl, a);
        free(a);
        proc_update_interest(&s->procs, p);
    }
    for (struct sb_wait **pp = &s->waits; *pp;) {
        struct sb_wait *w = *pp;
        if (w->client == cl) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, cl->fd, NULL);
    close(cl->fd);
    cl->fd = -1;
    proc_evict_finished(&s->procs);
}

static void free_dead_clients(struct sb_shim_server *s)
{
    for (struct sb_client **pp = &s->clients; *pp;) {
        struct sb_client *cl = *pp;
        if (!cl->dead) {
            pp = &cl->next;
            continue;
        }
        *pp = cl->next;
        sb_frame_reader_free(&cl->in);
        free(cl->out);
        free(cl);
        s->client_count--;
    }
}

/* ---- process table callbacks ---- */

static void on_proc_output(void *arg, struct sb_proc *p)
{
    struct sb_shim_server *s = arg;
    for (struct sb_attach *a = p->attached, *next; a; a = next) {
        next = a->next_in_proc;     /* flushing may end this attachment */
        client_flush(s, a->client);
    }
}

static void on_proc_finished(void *arg, struct sb_proc *p)
{
    struct sb_shim_server *s = arg;
    struct sb_wait *due = NULL;     /* unlinked first: answering may drop a client */
    for (struct sb_wait **pp = &s->waits; *pp;) {
        struct sb_wait *w = *pp;
        if (w->proc != p->id) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = due;
        due = w;
    }
    while (due) {
        struct sb_wait *w = due;
        due = w->next;
        if (!w->client->dead) {
            respond_ok(s, w->client, w->seq, proc_describe(p));
            client_flush(s, w->client);
        }
        free(w);
    }
    on_proc_output(arg, p);         /* attached clients now get their exit events */
}

/* ---- request handlers ----
 * Each returns 0 to answer ok with *out's fields (may stay NULL), -1 to
 * answer err, or 1 when it answered itself or the answer is deferred. */

typedef int (*op_fn)(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                     json_t **out, struct sb_err *err);

/* The process a request names: "proc" (the protocol's id), or "pid" (its
 * pid inside the sandbox) or "tag", the newest such process when several
 * match (pids are reused only after the sandbox's pid space wrapped). */
static struct sb_proc *req_proc(struct sb_shim_server *s, json_t *req, struct sb_err *err)
{
    json_t *id = json_object_get(req, "proc"), *pid = json_object_get(req, "pid");
    const char *tag = json_string_value(json_object_get(req, "tag"));
    if (!json_is_integer(id) && !json_is_integer(pid) && !tag) {
        sb_err_set(err, 400, "\"proc\" or \"pid\" (integer) or \"tag\" (string) is required");
        return NULL;
    }
    for (struct sb_proc *p = s->procs.head; p; p = p->next) {
        if (json_is_integer(id) ? p->id == (uint32_t)json_integer_value(id)
            : json_is_integer(pid) ? p->pid > 0 && p->pid == (pid_t)json_integer_value(pid)
            : p->tag && strcmp(p->tag, tag) == 0)
            return p;
    }
    if (tag && !json_is_integer(id) && !json_is_integer(pid))
        sb_err_set(err, 404, "no process tagged \"%s\" in this sandbox", tag);
    else
        sb_err_set(err, 404, "no process %lld in this sandbox",
                   (long long)json_integer_value(json_is_integer(id) ? id : pid));
    return NULL;
}

/* A NULL-terminated char* vector pointing into arr's strings (valid while
 * arr lives); caller frees the vector. */
static char **string_vector(json_t *arr, const char *field, struct sb_err *err)
{
    if (!json_is_array(arr) || json_array_size(arr) > 65536) {
        sb_err_set(err, 400, "\"%s\" must be an array of strings", field);
        return NULL;
    }
    char **v = calloc(json_array_size(arr) + 1, sizeof *v);
    if (!v) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item) {
        if (!json_is_string(item)) {
            free(v);
            sb_err_set(err, 400, "\"%s\" must be an array of strings", field);
            return NULL;
        }
        v[i] = (char *)json_string_value(item);
    }
    return v;
}

/* The spec's base environment as a JSON array of "K=V" (new reference). */
static json_t *spec_env(const struct sb_container *c)
{
    json_t *arr = json_array();
    json_t *obj = c->spec.env_json ? json_loads(c->spec.env_json, 0, NULL) : NULL;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        if (!json_is_string(val))
            continue;
        char *kv = NULL;
        if (asprintf(&kv, "%s=%s", key, json_string_value(val)) >= 0) {
            json_array_append_new(arr, json_string(kv));
            free(kv);
        }
    }
    json_decref(obj);
    return arr;
}

static int parse_user(const struct sb_container *c, json_t *req, int *as_root, struct sb_err *err)
{
    const char *user = json_string_value(json_object_get(req, "user"));
    *as_root = 0;
    if (!user || strcmp(user, "user") == 0 || strcmp(user, c->spec.user) == 0)
        return 0;
    if (strcmp(user, "root") == 0) {
        *as_root = 1;
        return 0;
    }
    return sb_err_set(err, 400, "unknown user \"%s\" (use \"user\" or \"root\")", user);
}

static struct sb_attach *attach_new(struct sb_client *cl, struct sb_proc *p, uint64_t out_off, uint64_t err_off)
{
    struct sb_attach *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->proc = p;
    a->client = cl;
    a->cursor[0] = out_off < p->ring[0].start ? p->ring[0].start : out_off;
    a->cursor[1] = err_off < p->ring[1].start ? p->ring[1].start : err_off;
    a->next_in_proc = p->attached;
    p->attached = a;
    a->next_in_client = cl->attaches;
    cl->attaches = a;
    return a;
}

/* rows and cols as the protocol carries them: integers 1..SB_PTY_MAX_DIM. */
static int parse_size(json_t *obj, uint16_t *rows, uint16_t *cols, struct sb_err *err)
{
    json_t *r = json_object_get(obj, "rows"), *c = json_object_get(obj, "cols");
    if (!json_is_integer(r) || !json_is_integer(c) || json_integer_value(r) < 1 || json_integer_value(c) < 1 ||
        json_integer_value(r) > SB_PTY_MAX_DIM || json_integer_value(c) > SB_PTY_MAX_DIM)
        return sb_err_set(err, 400, "\"rows\" and \"cols\" must be integers from 1 to %d", SB_PTY_MAX_DIM);
    *rows = (uint16_t)json_integer_value(r);
    *cols = (uint16_t)json_integer_value(c);
    return 0;
}

/* "pty": null/absent for pipes, or {rows, cols}. */
static int parse_pty(json_t *req, struct sb_proc_spec *spec, struct sb_err *err)
{
    json_t *pty = json_object_get(req, "pty");
    if (!pty || json_is_null(pty))
        return 0;
    if (!json_is_object(pty))
        return sb_err_set(err, 400, "\"pty\" must be an object {rows, cols}");
    spec->pty = 1;
    return parse_size(pty, &spec->rows, &spec->cols, err);
}

static int start_checks(struct sb_shim_server *s, json_t *req, struct sb_err *err)
{
    if (s->paused)
        return sb_err_set(err, 409, "sandbox is paused");
    const char *in = json_string_value(json_object_get(req, "stdin"));
    if (in && strcmp(in, "open") != 0 && strcmp(in, "closed") != 0)
        return sb_err_set(err, 400, "\"stdin\" must be \"open\" or \"closed\"");
    json_t *timeout = json_object_get(req, "timeout_ms");
    if (timeout && (!json_is_integer(timeout) || json_integer_value(timeout) < 0))
        return sb_err_set(err, 400, "\"timeout_ms\" must be a non-negative integer");
    return 0;
}

static int op_start(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                    json_t **out, struct sb_err *err)
{
    struct sb_proc_spec spec = {0};
    if (start_checks(s, req, err) < 0 || parse_user(s->c, req, &spec.as_root, err) < 0 ||
        parse_pty(req, &spec, err) < 0)
        return -1;
    json_t *env = json_object_get(req, "env");
    json_t *env_arr = env ? json_incref(env) : spec_env(s->c);
    char **argv = string_vector(json_object_get(req, "argv"), "argv", err);
    char **envp = argv ? string_vector(env_arr, "env", err) : NULL;
    int rc = -1;
    if (argv && envp) {
        const char *cwd = json_string_value(json_object_get(req, "cwd"));
        spec.argv = argv;
        spec.envp = envp;
        spec.cwd = cwd ? cwd : s->c->spec.workdir[0] ? s->c->spec.workdir : "/";
        const char *in = json_string_value(json_object_get(req, "stdin"));
        spec.stdin_open = in && strcmp(in, "open") == 0;
        spec.tag = json_string_value(json_object_get(req, "tag"));
        spec.timeout_ms = json_integer_value(json_object_get(req, "timeout_ms"));
        struct sb_proc *p;
        rc = proc_start(&s->procs, &spec, &p, err);
        if (rc == 0 && json_is_true(json_object_get(req, "attach")) && !attach_new(cl, p, 0, 0))
            sb_error("shim: out of memory attaching to proc %u", p->id);
        if (rc == 0)
            *out = json_pack("{s:I, s:i, s:i}", "proc", (json_int_t)p->id, "pid", (int)p->pid,
                             "host_pid", (int)p->host_pid);
    }
    free(argv);
    free(envp);
    json_decref(env_arr);
    return rc;
}

static int op_list(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                   json_t **out, struct sb_err *err)
{
    json_t *arr = json_array();
    for (struct sb_proc *p = s->procs.head; p; p = p->next)
        json_array_append_new(arr, proc_describe(p));
    *out = json_pack("{s:o}", "processes", arr);
    return 0;
}

static int op_get(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                  json_t **out, struct sb_err *err)
{
    struct sb_proc *p = req_proc(s, req, err);
    if (!p)
        return -1;
    *out = proc_describe(p);
    return 0;
}

static int op_attach(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                     json_t **out, struct sb_err *err)
{
    struct sb_proc *p = req_proc(s, req, err);
    if (!p)
        return -1;
    for (struct sb_attach *a = cl->attaches; a; a = a->next_in_client)
        if (a->proc == p)
            return sb_err_set(err, 409, "already attached to process %u", p->id);
    json_int_t o = json_integer_value(json_object_get(req, "stdout_offset"));
    json_int_t e = json_integer_value(json_object_get(req, "stderr_offset"));
    struct sb_attach *a = attach_new(cl, p, o > 0 ? (uint64_t)o : 0, e > 0 ? (uint64_t)e : 0);
    if (!a)
        return sb_err_set(err, 500, "out of memory");
    *out = proc_describe(p);
    json_object_set_new(*out, "stdout_offset", json_integer((json_int_t)a->cursor[0]));
    json_object_set_new(*out, "stderr_offset", json_integer((json_int_t)a->cursor[1]));
    return 0;
}

static int op_detach(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                     json_t **out, struct sb_err *err)
{
    struct sb_proc *p = req_proc(s, req, err);
    if (!p)
        return -1;
    for (struct sb_attach *a = cl->attaches; a; a = a->next_in_client)
        if (a->proc == p) {
            attach_unlink(cl, a);
            free(a);
            proc_update_interest(&s->procs, p);
            return 0;
        }
    return sb_err_set(err, 409, "not attached to process %u", p->id);
}

static int op_close_stdin(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                          json_t **out, struct sb_err *err)
{
    struct sb_proc *p = req_proc(s, req, err);
    return p ? proc_stdin_close(&s->procs, p, err) : -1;
}

static int op_signal(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                     json_t **out, struct sb_err *err)
{
    struct sb_proc *p = req_proc(s, req, err);
    if (!p)
        return -1;
    json_int_t sig = json_integer_value(json_object_get(req, "signal"));
    if (sig < 1 || sig > 64)
        return sb_err_set(err, 400, "\"signal\" must be a signal number (1-64)");
    if (s->paused)                  /* a frozen tree cannot die: SIGKILL would stall the loop */
        return sb_err_set(err, 409, "sandbox is paused");
    return proc_signal(&s->procs, p, (int)sig, err);
}

static int op_resize(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                     json_t **out, struct sb_err *err)
{
    struct sb_proc *p = req_proc(s, req, err);
    uint16_t rows, cols;
    if (!p || parse_size(req, &rows, &cols, err) < 0)
        return -1;
    return proc_resize(&s->procs, p, rows, cols, err);
}

static int op_wait(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                   json_t **out, struct sb_err *err)
{
    struct sb_proc *p = req_proc(s, req, err);
    if (!p)
        return -1;
    if (p->finished) {
        *out = proc_describe(p);
        return 0;
    }
    struct sb_wait *w = calloc(1, sizeof *w);
    if (!w)
        return sb_err_set(err, 500, "out of memory");
    *w = (struct sb_wait){.client = cl, .seq = seq, .proc = p->id, .next = s->waits};
    s->waits = w;
    return 1;
}

static int op_pause(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                    json_t **out, struct sb_err *err)
{
    if (s->paused)
        return 0;
    if (container_freeze(s->c, err) < 0) {
        container_thaw(s->c, NULL);     /* never leave the sandbox half frozen */
        return sb_err_prefix(err, "pause");
    }
    s->paused = 1;
    return 0;
}

static int op_resume(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                     json_t **out, struct sb_err *err)
{
    if (container_thaw(s->c, err) < 0)
        return sb_err_prefix(err, "resume");
    s->paused = 0;
    return 0;
}

/* Processes in the sandbox: those whose pid namespace is the sandbox's. */
static int count_sandbox_processes(const struct sb_container *c)
{
    struct stat ns;
    if (fstat(c->ns_fds[SB_NS_PID], &ns) < 0)
        return -1;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[300];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%s/ns/pid", de->d_name);
        if (stat(path, &st) == 0 && st.st_ino == ns.st_ino && st.st_dev == ns.st_dev)
            count++;
    }
    closedir(d);
    return count;
}

static int op_status(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                     json_t **out, struct sb_err *err)
{
    *out = json_pack("{s:s, s:i, s:i, s:b, s:b, s:i, s:i, s:s, s:s}",
                     "id", s->c->id, "shim_pid", (int)getpid(), "init_pid", (int)s->c->init_pid,
                     "init_running", !s->procs.init_exited, "paused", s->paused,
                     "process_count", s->procs.init_exited ? 0 : count_sandbox_processes(s->c),
                     "running_procs", proc_running_count(&s->procs),
                     "root_dir", s->c->root_dir, "sandbox_dir", s->c->sandbox_dir);
    return 0;
}

/* Writes cl's queue with a short blocking deadline: the last answer before exit. */
static void client_flush_final(struct sb_client *cl)
{
    struct timeval tv = {.tv_sec = 2};
    int fl = fcntl(cl->fd, F_GETFL);
    fcntl(cl->fd, F_SETFL, fl & ~O_NONBLOCK);
    setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    while (out_queued(cl) > 0) {
        ssize_t n = send(cl->fd, cl->out + cl->out_off, out_queued(cl), MSG_NOSIGNAL);
        if (n <= 0 && errno != EINTR)
            break;
        if (n > 0)
            cl->out_off += (size_t)n;
    }
}

/* Ends every process, tears the sandbox down and makes the loop stop.
 * requester (may be NULL) gets the answer; everyone else is disconnected. */
static void destroy_sandbox(struct sb_shim_server *s, struct sb_client *requester, json_int_t seq)
{
    for (struct sb_client *cl = s->clients; cl; cl = cl->next)
        if (cl != requester)
            client_drop(s, cl);
    if (requester) {
        while (requester->attaches) {
            struct sb_attach *a = requester->attaches;
            attach_unlink(requester, a);
            free(a);
        }
    }
    while (s->waits) {
        struct sb_wait *w = s->waits;
        s->waits = w->next;
        free(w);
    }
    if (s->paused)
        container_thaw(s->c, NULL);     /* frozen processes cannot die */
    proc_table_free(&s->procs);
    struct sb_err err = {0};
    int rc = container_destroy(s->c, &err);
    if (rc < 0)
        sb_error("shim: destroying sandbox %s: %s", s->c->id, err.msg);
    s->destroyed = 1;
    if (requester && !requester->dead) {
        if (rc == 0)
            respond_ok(s, requester, seq, NULL);
        else
            respond_err(s, requester, seq, &err);
        if (!requester->dead)
            client_flush_final(requester);
    }
}

static int op_destroy(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                      json_t **out, struct sb_err *err)
{
    destroy_sandbox(s, cl, seq);
    return 1;
}

static const struct {
    const char *name;
    op_fn fn;
} ops[] = {
    {"start", op_start},   {"list", op_list},       {"get", op_get},       {"attach", op_attach}, {"detach", op_detach},
    {"close_stdin", op_close_stdin}, {"signal", op_signal}, {"resize", op_resize},
    {"wait", op_wait},     {"pause", op_pause},     {"resume", op_resume}, {"status", op_status},
    {"destroy", op_destroy},
};

static void handle_request(struct sb_shim_server *s, struct sb_client *cl, const struct sb_frame *f)
{
    struct sb_err err = {0};
    json_t *req = sb_frame_parse_json(f, &err);
    if (!req) {
        respond_err(s, cl, 0, &err);
        return;
    }
    const char *op = json_string_value(json_object_get(req, "op"));
    json_int_t seq = json_integer_value(json_object_get(req, "seq"));
    op_fn fn = NULL;
    for (size_t i = 0; op && i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i].name) == 0)
            fn = ops[i].fn;
    json_t *out = NULL;
    int rc = fn ? fn(s, cl, req, seq, &out, &err)
                : sb_err_set(&err, 400, "unknown op \"%s\"", op ? op : "(none)");
    if (rc == 0)
        respond_ok(s, cl, seq, out);
    else if (rc < 0)
        respond_err(s, cl, seq, &err);
    json_decref(req);
}

/* ---- reading requests ---- */

static void handle_stdin_frame(struct sb_shim_server *s, struct sb_client *cl, const struct sb_frame *f)
{
    struct sb_stdin_chunk in;
    struct sb_err err = {0};
    if (sb_frame_parse_stdin(f, &in, &err) < 0) {
        client_drop(s, cl);
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
        respond_ok(s, cl, in.seq, NULL);
        return;
    }
    respond_err(s, cl, in.seq, &err);
}

static void process_frames(struct sb_shim_server *s, struct sb_client *cl)
{
    struct sb_frame f;
    struct sb_err err = {0};
    while (!cl->dead && !cl->stalled && !s->destroyed && out_queued(cl) < SB_SHIM_CLIENT_SOFT_OUT) {
        int rc = sb_frame_reader_next(&cl->in, &f, &err);
        if (rc == 0)
            break;
        if (rc < 0 || f.type == SB_FRAME_OUTPUT) {
            sb_warn("shim: dropping a client: %s", rc < 0 ? err.msg : "it sent an output frame");
            client_drop(s, cl);
            return;
        }
        if (f.type == SB_FRAME_STDIN)
            handle_stdin_frame(s, cl, &f);
        else
            handle_request(s, cl, &f);
    }
}

static void client_read(struct sb_shim_server *s, struct sb_client *cl)
{
    size_t room;
    uint8_t *dst = sb_frame_reader_space(&cl->in, &room);
    ssize_t n = read(cl->fd, dst, room);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        client_drop(s, cl);
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
        client_flush(s, cl);
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
        destroy_sandbox(s, NULL, 0);
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
            client_drop(s, cl);
            break;
        }
        if (ev->events & EPOLLIN)
            client_read(s, cl);
        if (!cl->dead)
            client_flush(s, cl);
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
        free_dead_clients(s);
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
    struct sb_proc_callbacks cb = {.output = on_proc_output, .finished = on_proc_finished, .arg = s};
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
        client_drop(s, cl);
    free_dead_clients(s);
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
