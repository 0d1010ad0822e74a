/*
 * server_ops.c - the shim protocol's request handlers (proto/proto.h lists
 * the ops), dispatched by srv_handle_request. Owns nothing: processes belong
 * to the process table, clients and attachments to server_clients.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/env.h"
#include "core/log.h"
#include "shim/cgroup.h"
#include "shim/pty.h"
#include "shim/server_internal.h"

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
    size_t n = 0;
    char **kv = sb_env_strings(obj, &n);
    for (size_t i = 0; kv && i < n; i++)
        json_array_append_new(arr, json_string(kv[i]));
    sb_env_free(kv);
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
        if (rc == 0 && json_is_true(json_object_get(req, "attach")) && !srv_attach_new(cl, p, 0, 0))
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
    struct sb_attach *a = srv_attach_new(cl, p, o > 0 ? (uint64_t)o : 0, e > 0 ? (uint64_t)e : 0);
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
            srv_attach_unlink(cl, a);
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

/* What the sandbox uses now, for GET /sandboxes/:id/metrics. */
static int op_stats(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                    json_t **out, struct sb_err *err)
{
    struct sb_cgroup_usage u;
    if (container_usage(s->c, &u, err) < 0)
        return -1;
    *out = json_pack("{s:I, s:I, s:I}", "mem_used", (json_int_t)u.mem_used, "mem_cache",
                     (json_int_t)u.mem_cache, "cpu_ns", (json_int_t)u.cpu_ns);
    return *out ? 0 : sb_err_set(err, 500, "out of memory");
}

/* Writes cl's queue with a short blocking deadline: the last answer before exit. */
static void client_flush_final(struct sb_client *cl)
{
    struct timeval tv = {.tv_sec = 2};
    int fl = fcntl(cl->fd, F_GETFL);
    fcntl(cl->fd, F_SETFL, fl & ~O_NONBLOCK);
    setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    while (srv_out_queued(cl) > 0) {
        ssize_t n = send(cl->fd, cl->out + cl->out_off, srv_out_queued(cl), MSG_NOSIGNAL);
        if (n <= 0 && errno != EINTR)
            break;
        if (n > 0)
            cl->out_off += (size_t)n;
    }
}

/* Ends every process, tears the sandbox down and makes the loop stop.
 * requester (may be NULL) gets the answer; everyone else is disconnected. */
void srv_destroy_sandbox(struct sb_shim_server *s, struct sb_client *requester, json_int_t seq)
{
    for (struct sb_client *cl = s->clients; cl; cl = cl->next)
        if (cl != requester)
            srv_client_drop(s, cl);
    if (requester) {
        while (requester->attaches) {
            struct sb_attach *a = requester->attaches;
            srv_attach_unlink(requester, a);
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
            srv_respond_ok(s, requester, seq, NULL);
        else
            srv_respond_err(s, requester, seq, &err);
        if (!requester->dead)
            client_flush_final(requester);
    }
}

static int op_destroy(struct sb_shim_server *s, struct sb_client *cl, json_t *req, json_int_t seq,
                      json_t **out, struct sb_err *err)
{
    srv_destroy_sandbox(s, cl, seq);
    return 1;
}

static const struct {
    const char *name;
    op_fn fn;
} ops[] = {
    {"start", op_start},   {"list", op_list},       {"get", op_get},       {"attach", op_attach}, {"detach", op_detach},
    {"close_stdin", op_close_stdin}, {"signal", op_signal}, {"resize", op_resize},
    {"wait", op_wait},     {"pause", op_pause},     {"resume", op_resume}, {"status", op_status},
    {"stats", op_stats},
    {"destroy", op_destroy},
};

void srv_handle_request(struct sb_shim_server *s, struct sb_client *cl, const struct sb_frame *f)
{
    struct sb_err err = {0};
    json_t *req = sb_frame_parse_json(f, &err);
    if (!req) {
        srv_respond_err(s, cl, 0, &err);
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
        srv_respond_ok(s, cl, seq, out);
    else if (rc < 0)
        srv_respond_err(s, cl, seq, &err);
    json_decref(req);
}
