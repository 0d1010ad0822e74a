/*
 * process.c - the shim's process table (see process.h).
 *
 * Owns every sb_proc: its pipes, rings, stdin queue and leaf cgroup. Starting
 * a process: a child started with clone(CLONE_VM|CLONE_VFORK) (a plain fork
 * under ASan) wires stdio to pipes and calls container_enter_and_exec, which
 * joins the process's own leaf cgroup and the sandbox's namespaces and
 * clones once more into the PID namespace; the grandchild's host pid and
 * any exec errno come back over two O_CLOEXEC pipes, read synchronously
 * here. The shim is a child subreaper, so the grandchild is reparented to it
 * and reaped by proc_reap.
 *
 * A process is "finished" when its main process was reaped and the bytes
 * that were in its pipes at that moment (FIONREAD, the exit backlog) are in
 * the rings, read as attached readers allow (a pipe reading EAGAIN has no
 * backlog left). Not EOF: a background child (`python app.py &`) inherits
 * the pipes and may hold them for ever, and what a command leaves running
 * must live on, as in E2B or a shell. Not "until EAGAIN" alone either: a
 * child that keeps the pipe full (`yes &`) would never let it read EAGAIN,
 * while the backlog is bounded. So nothing is killed at exit; the pipes
 * stay open and watched after finish and are drained into the rings (newest
 * bytes kept, no back-pressure once nobody is attached) until EOF, because
 * closing them would make the children's next write fail with EPIPE and
 * kill them with SIGPIPE. They are closed at EOF, when the record is evicted
 * or when the table is freed. Attachments stop at the ring ends recorded at
 * finish, so a chatty child cannot keep a synchronous exec from returning.
 * A timeout (while the main process runs) or SIGKILL kills the whole leaf;
 * leaves still populated after finish linger until empty. Must never block
 * on a pipe or let a sandboxed process kill the shim.
 */
#include "shim/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/id.h"
#include "core/log.h"
#include "shim/pty.h"

#define ENTER_TIMEOUT_MS 10000      /* a child must report its pid / exec result within this */
#define READ_BURST (256u * 1024u)   /* bytes read from one pipe per event, for fairness */

void proc_table_init(struct sb_proc_table *t, struct sb_container *c, int epfd,
                     const struct sb_proc_callbacks *cb)
{
    memset(t, 0, sizeof *t);
    t->c = c;
    t->epfd = epfd;
    t->cb = *cb;
}

/* Adds or removes fd on the loop's epoll set so that it is registered iff want. */
static void watch_set(struct sb_proc_table *t, int fd, struct sb_shim_watch *w, uint32_t events,
                      int want, int *watched)
{
    if (fd < 0 || want == *watched)
        return;
    if (want) {
        struct epoll_event ev = {.events = events, .data.ptr = w};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
            *watched = 1;
        else
            sb_error("shim: epoll add fd %d: %s", fd, strerror(errno));
    } else {
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, NULL);
        *watched = 0;
    }
}

/* How many bytes stream idx may take without overwriting unsent bytes of an
 * attached reader. */
static size_t pipe_room(const struct sb_proc *p, int idx)
{
    size_t room = p->ring[idx].cap;
    for (const struct sb_attach *a = p->attached; a; a = a->next_in_proc) {
        size_t r = sb_ring_room(&p->ring[idx], a->cursor[idx]);
        if (r < room)
            room = r;
    }
    return room;
}

void proc_update_interest(struct sb_proc_table *t, struct sb_proc *p)
{
    for (int i = 0; i < 2; i++)
        watch_set(t, p->out_fd[i], &p->out_watch[i], EPOLLIN,
                  p->out_fd[i] >= 0 && pipe_room(p, i) > 0, &p->out_watched[i]);
    watch_set(t, p->in_fd, &p->in_watch, EPOLLOUT, p->in_fd >= 0 && p->in_len > 0, &p->in_watched);
}

static void close_out(struct sb_proc_table *t, struct sb_proc *p, int idx)
{
    watch_set(t, p->out_fd[idx], &p->out_watch[idx], 0, 0, &p->out_watched[idx]);
    if (p->out_fd[idx] >= 0)
        close(p->out_fd[idx]);
    p->out_fd[idx] = -1;
}

static void close_in(struct sb_proc_table *t, struct sb_proc *p)
{
    watch_set(t, p->in_fd, &p->in_watch, 0, 0, &p->in_watched);
    if (p->in_fd >= 0)
        close(p->in_fd);
    p->in_fd = -1;
    p->in_len = 0;
    p->in_off = 0;
    p->in_close_pending = 0;
}

/* Forgets a leaf whose processes are gone, or remembers it to retry later. */
static void leaf_release(struct sb_proc_table *t, const char *leaf)
{
    if (container_leaf_count(t->c, leaf) == 0) {
        container_leaf_remove(t->c, leaf);
        return;
    }
    char(*grown)[24] = realloc(t->lingering, (t->lingering_count + 1) * sizeof *grown);
    if (!grown) {
        sb_error("shim: out of memory remembering leaf %s", leaf);
        return;
    }
    t->lingering = grown;
    snprintf(t->lingering[t->lingering_count++], sizeof *grown, "%s", leaf);
}

static void proc_finish(struct sb_proc_table *t, struct sb_proc *p)
{
    p->finished = 1;
    for (int i = 0; i < 2; i++)
        p->final_end[i] = p->ring[i].end;
    close_in(t, p);
    free(p->in_buf);
    p->in_buf = NULL;
    leaf_release(t, p->leaf);
    sb_debug("shim: proc %u finished (exit %d, signal %d)", p->id, p->exit_code, p->signal);
    if (t->cb.finished)
        t->cb.finished(t->cb.arg, p);
    proc_evict_finished(t);
}

/* Finishes p once its main process was reaped and each pipe is at EOF or
 * has given up its exit backlog. May free p (eviction): call it last. */
static void maybe_finish(struct sb_proc_table *t, struct sb_proc *p)
{
    if (!p->exited || p->finished)
        return;
    for (int i = 0; i < 2; i++)
        if (p->out_fd[i] >= 0 && p->exit_backlog[i] > 0)
            return;
    proc_finish(t, p);
}

/* Counts bytes read after the main process exited against the exit backlog. */
static void count_backlog(struct sb_proc *p, int idx, size_t n)
{
    if (p->exited && !p->finished)
        p->exit_backlog[idx] -= n < p->exit_backlog[idx] ? n : p->exit_backlog[idx];
}

static void read_pipe(struct sb_proc_table *t, struct sb_proc *p, int idx)
{
    uint8_t buf[64 * 1024];
    size_t room = pipe_room(p, idx), total = 0;
    while (room > 0 && total < READ_BURST && p->out_fd[idx] >= 0) {
        ssize_t n = read(p->out_fd[idx], buf, room < sizeof buf ? room : sizeof buf);
        if (n > 0) {
            sb_ring_append(&p->ring[idx], buf, (size_t)n);
            count_backlog(p, idx, (size_t)n);
            room -= (size_t)n;
            total += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            count_backlog(p, idx, SIZE_MAX);   /* an empty pipe holds no backlog */
            break;
        } else {
            close_out(t, p, idx);   /* EOF, or an error that will not go away */
        }
    }
    if (total > 0 && t->cb.output)
        t->cb.output(t->cb.arg, p);
    proc_update_interest(t, p);
    maybe_finish(t, p);
}

static void write_stdin(struct sb_proc_table *t, struct sb_proc *p)
{
    while (p->in_fd >= 0 && p->in_len > 0) {
        ssize_t n = write(p->in_fd, p->in_buf + p->in_off, p->in_len);
        if (n > 0) {
            p->in_off += (size_t)n;
            p->in_len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            close_in(t, p);         /* EPIPE: the reader is gone, queued bytes are moot */
        }
    }
    if (p->in_len == 0)
        p->in_off = 0;
    if (p->in_fd >= 0 && p->in_len == 0 && p->in_close_pending)
        close_in(t, p);
    proc_update_interest(t, p);
}

void proc_handle_event(struct sb_proc_table *t, struct sb_shim_watch *w, uint32_t events)
{
    struct sb_proc *p = w->owner;
    if (p->evicted)                 /* an event of the same epoll batch; its fds are closed */
        return;
    switch (w->kind) {
    case SB_WATCH_STDOUT:
        read_pipe(t, p, 0);
        break;
    case SB_WATCH_STDERR:
        read_pipe(t, p, 1);
        break;
    case SB_WATCH_STDIN:
        if (events & EPOLLERR)
            close_in(t, p);
        else
            write_stdin(t, p);
        break;
    default:
        break;
    }
}

/* ---- starting a process ---- */

/* Reads exactly len bytes unless EOF comes first; waits at most timeout_ms.
 * Returns bytes read, or -1 on timeout or error. */
static ssize_t read_with_timeout(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = sb_mono_ms() + timeout_ms;
    while (got < len) {
        int64_t left = deadline - sb_mono_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* The sandbox-side pid from the NSpid line of /proc/<host_pid>/status (last field). */
static pid_t read_ns_pid(pid_t host_pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)host_pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    pid_t pid = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "NSpid:", 6) != 0)
            continue;
        char *last = strrchr(line, '\t');
        if (!last)
            last = line + 6;
        pid = (pid_t)strtol(last, NULL, 10);
        break;
    }
    fclose(f);
    return pid;
}

/* In the forked child, before entering the sandbox: wire stdio. Signals,
 * the signal mask and oom_score_adj are reset by container_enter_and_exec. */
static void child_prepare(int in_fd, int out_fd, int err_fd)
{
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(127);
}

struct start_fds {
    int out[2], err[2], in[2];      /* stdout, stderr, stdin pipes ([0] read end) */
    int null_in;                    /* /dev/null when stdin is closed */
    int report[2], errnum[2];       /* host pid and exec errno from the child */
};

static void start_fds_close(struct start_fds *f)
{
    int *all[] = {&f->out[0], &f->out[1], &f->err[0], &f->err[1], &f->in[0], &f->in[1],
                  &f->null_in, &f->report[0], &f->report[1], &f->errnum[0], &f->errnum[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (*all[i] >= 0)
            close(*all[i]);
        *all[i] = -1;
    }
}

/* Pipes for stdio, or for a terminal: out = {master, slave}, and stdin,
 * stdout and stderr of the child are all the slave. */
static int start_fds_open(struct sb_proc_table *t, struct start_fds *f, const struct sb_proc_spec *spec,
                          struct sb_err *err)
{
    int *pairs[] = {f->report, f->errnum, f->out, f->err};
    size_t npairs = spec->pty ? 2 : 4;
    for (size_t i = 0; i < npairs; i++)
        if (pipe2(pairs[i], O_CLOEXEC) < 0)
            return sb_err_sys(err, 500, "start process: pipe");
    if (spec->pty)
        return pty_open(t->c, spec->as_root ? 0 : t->c->spec.uid, spec->rows, spec->cols, &f->out[0], &f->out[1],
                        err);
    int stdin_open = spec->stdin_open;
    if (stdin_open && pipe2(f->in, O_CLOEXEC) < 0)
        return sb_err_sys(err, 500, "start process: stdin pipe");
    if (!stdin_open && (f->null_in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        return sb_err_sys(err, 500, "start process: open /dev/null");
    return 0;
}

/* Whether dir exists as a directory inside the sandbox, resolved beneath
 * its root (no symlink or ".." can lead out of it). */
static int sandbox_dir_exists(const struct sb_container *c, const char *dir)
{
    int root = open(c->root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return 1;                   /* cannot tell: do not blame the directory */
    struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, root, dir, &how, sizeof how);
    int missing = fd < 0 && (errno == ENOENT || errno == ENOTDIR);
    if (fd >= 0)
        close(fd);
    close(root);
    return !missing;
}

/* The child reports only an errno; ENOENT from chdir and from execve look
 * alike, so a missing working directory is told apart here. */
static int exec_error(const struct sb_container *c, int e, const struct sb_proc_spec *spec,
                      struct sb_err *err)
{
    const char *cmd = spec->argv[0];
    if (e == ENOENT && spec->cwd && !sandbox_dir_exists(c, spec->cwd))
        return sb_err_set(err, 400, "working directory not found: %s", spec->cwd);
    if (e == ENOENT)
        return sb_err_set(err, 502, "command not found: %s", cmd);
    if (e == EACCES)
        return sb_err_set(err, 502, "permission denied: %s", cmd);
    errno = e;
    return sb_err_sys(err, 502, "cannot start %s", cmd);
}

struct child_args {
    const struct sb_container *c;
    const struct sb_container_exec *ex;
    const struct start_fds *f;
    int stdin_fd, stderr_fd;
};

static int child_main(void *arg)
{
    struct child_args *a = arg;
    child_prepare(a->stdin_fd, a->f->out[1], a->stderr_fd);
    container_enter_and_exec(a->c, a->ex, a->f->report[1], a->f->errnum[1]);
}

/* Starts the child like posix_spawn does: it shares the shim's memory
 * (CLONE_VM) and the shim sleeps until it has exec'd or exited
 * (CLONE_VFORK; here: until the grandchild has exec'd and the child has
 * exited), so the shim's page tables are never copied — on small VMs a
 * fork is most of an exec's cost. The child only makes syscalls and writes
 * its own stack. Under AddressSanitizer, which cannot follow a foreign
 * stack, it is a plain fork. */
static pid_t start_child(struct child_args *a)
{
#if defined(__SANITIZE_ADDRESS__)
    pid_t pid = fork();
    if (pid == 0)
        child_main(a);
    return pid;
#else
    enum { STACK_SIZE = 256 * 1024 };
    char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -1;
    pid_t pid = clone(child_main, stack + STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
    munmap(stack, STACK_SIZE);
    return pid;
#endif
}

/* Starts the child and waits for its report: the grandchild's host pid, or
 * an errno. On success the pipes' parent ends are kept in f. */
static int spawn_child(struct sb_proc_table *t, struct sb_proc *p, const struct sb_proc_spec *spec,
                       struct start_fds *f, struct sb_err *err)
{
    struct sb_container_exec ex = {
        .path = spec->argv[0], .argv = spec->argv, .envp = spec->envp, .cwd = spec->cwd,
        .as_root = spec->as_root, .cgroup_leaf = p->leaf, .ctty = spec->pty,
    };
    struct child_args a = {.c = t->c, .ex = &ex, .f = f,
                           .stdin_fd = spec->pty ? f->out[1] : spec->stdin_open ? f->in[0] : f->null_in,
                           .stderr_fd = spec->pty ? f->out[1] : f->err[1]};
    pid_t child = start_child(&a);
    if (child < 0)
        return sb_err_sys(err, 500, "start process: fork");
    int *child_ends[] = {&f->out[1], &f->err[1], &f->in[0], &f->null_in, &f->report[1], &f->errnum[1]};
    for (size_t i = 0; i < sizeof child_ends / sizeof child_ends[0]; i++)
        if (*child_ends[i] >= 0) {
            close(*child_ends[i]);
            *child_ends[i] = -1;
        }
    pid_t host_pid = 0;
    ssize_t n = read_with_timeout(f->report[0], &host_pid, sizeof host_pid, ENTER_TIMEOUT_MS);
    int e = 0;
    ssize_t m = n < 0 ? -1 : read_with_timeout(f->errnum[0], &e, sizeof e, ENTER_TIMEOUT_MS);
    if (n < 0 || m < 0) {
        kill(child, SIGKILL);
        container_leaf_kill(t->c, p->leaf, NULL);
        return sb_err_set(err, 502, "start %s: the process did not enter the sandbox in time", spec->argv[0]);
    }
    if (m == (ssize_t)sizeof e)
        return exec_error(t->c, e, spec, err);
    if (n != (ssize_t)sizeof host_pid || host_pid <= 0)
        return sb_err_set(err, 502, "start %s: entering the sandbox failed (see shim.log)", spec->argv[0]);
    p->host_pid = host_pid;
    return 0;
}

static struct sb_proc *proc_new(struct sb_proc_table *t, const struct sb_proc_spec *spec)
{
    struct sb_proc *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    size_t ring = t->c && t->c->spec.output_ring ? t->c->spec.output_ring : SB_RING_DEFAULT_CAP;
    if (sb_ring_init(&p->ring[0], ring) < 0 || sb_ring_init(&p->ring[1], ring) < 0 ||
        (spec->tag && !(p->tag = strdup(spec->tag))) || (spec->cwd && !(p->cwd = strdup(spec->cwd)))) {
        free(p->tag);
        sb_ring_free(&p->ring[0]);
        sb_ring_free(&p->ring[1]);
        free(p);
        return NULL;
    }
    p->id = ++t->next_id;
    snprintf(p->leaf, sizeof p->leaf, "p%u", p->id);
    p->out_fd[0] = p->out_fd[1] = p->in_fd = -1;
    p->out_watch[0] = (struct sb_shim_watch){SB_WATCH_STDOUT, p};
    p->out_watch[1] = (struct sb_shim_watch){SB_WATCH_STDERR, p};
    p->in_watch = (struct sb_shim_watch){SB_WATCH_STDIN, p};
    p->exit_code = -1;
    p->as_root = spec->as_root;
    p->pty = spec->pty;
    p->rows = spec->rows;
    p->cols = spec->cols;
    p->argv = json_array();
    for (size_t i = 0; spec->argv[i]; i++)
        json_array_append_new(p->argv, json_string(spec->argv[i]));
    return p;
}

/* Frees the record only: its fds and leaf are the caller's business. */
static void proc_free(struct sb_proc *p)
{
    sb_ring_free(&p->ring[0]);
    sb_ring_free(&p->ring[1]);
    free(p->in_buf);
    free(p->tag);
    free(p->cwd);
    json_decref(p->argv);
    free(p);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int proc_start(struct sb_proc_table *t, const struct sb_proc_spec *spec, struct sb_proc **out,
               struct sb_err *err)
{
    if (t->init_exited)
        return sb_err_set(err, 502, "sandbox is no longer running (its init process exited)");
    if (!spec->argv || !spec->argv[0] || !spec->argv[0][0])
        return sb_err_set(err, 400, "start process: empty command");
    struct sb_proc *p = proc_new(t, spec);
    if (!p)
        return sb_err_set(err, 500, "start process: out of memory");
    struct start_fds f;
    memset(&f, 0xff, sizeof f);     /* every fd -1 */
    if (container_leaf_create(t->c, p->leaf, err) < 0) {
        proc_free(p);
        return sb_err_prefix(err, "start process");
    }
    uint64_t oom = 0;
    if (container_oom_events(t->c, &oom) >= 0)
        p->oom_before = oom;
    if (start_fds_open(t, &f, spec, err) < 0 || spawn_child(t, p, spec, &f, err) < 0) {
        start_fds_close(&f);
        leaf_release(t, p->leaf);
        proc_free(p);
        return -1;
    }
    p->pid = read_ns_pid(p->host_pid);
    p->started_ms = sb_mono_ms();
    p->deadline_ms = spec->timeout_ms > 0 ? p->started_ms + spec->timeout_ms : 0;
    p->started_wall_ms = sb_wall_ms();
    p->out_fd[0] = f.out[0];
    p->out_fd[1] = f.err[0];
    p->in_fd = spec->pty ? fcntl(f.out[0], F_DUPFD_CLOEXEC, 3) : f.in[1];
    f.out[0] = f.err[0] = f.in[1] = -1;
    start_fds_close(&f);
    for (int i = 0; i < 2; i++)
        set_nonblock(p->out_fd[i]);
    if (p->in_fd >= 0)
        set_nonblock(p->in_fd);
    p->next = t->head;
    t->head = p;
    proc_update_interest(t, p);
    *out = p;
    return 0;
}

struct sb_proc *proc_find(struct sb_proc_table *t, uint32_t id)
{
    for (struct sb_proc *p = t->head; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

/* ---- exits, deadlines, cleanup ---- */

/* Bytes waiting in a pipe: what the main process wrote and we have not read
 * yet (its children's writes may be mixed in). When the kernel cannot say,
 * 0: the result is final with what the ring holds, and the rest still
 * reaches the ring afterwards. */
static size_t pipe_backlog(int fd)
{
    int n = 0;
    if (fd < 0 || ioctl(fd, FIONREAD, &n) < 0 || n < 0)
        return 0;
    return (size_t)n;
}

/* The result is taken here; the process finishes once the pipes' backlog is
 * read (at once when they are empty or closed), without waiting for EOF. */
static void record_exit(struct sb_proc_table *t, struct sb_proc *p, int status)
{
    p->exited = 1;
    p->duration_ms = sb_mono_ms() - p->started_ms;
    p->ended_wall_ms = sb_wall_ms();
    if (WIFEXITED(status)) {
        p->exit_code = WEXITSTATUS(status);
        p->signal = 0;
    } else if (WIFSIGNALED(status)) {
        p->exit_code = -1;
        p->signal = WTERMSIG(status);
    }
    uint64_t oom = 0;
    if (p->signal == SIGKILL && !p->timed_out && container_oom_events(t->c, &oom) >= 0 &&
        oom > p->oom_before)
        p->oom_killed = 1;
    for (int i = 0; i < 2; i++)
        p->exit_backlog[i] = pipe_backlog(p->out_fd[i]);
    maybe_finish(t, p);
}

void proc_reap(struct sb_proc_table *t)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
        if (pid <= 0)
            return;
        if (t->c && pid == t->c->init_pid) {
            t->init_exited = 1;
            sb_error("shim: the sandbox's init (pid %d) exited with status 0x%x", (int)pid, status);
            continue;
        }
        for (struct sb_proc *p = t->head; p; p = p->next)
            if (p->host_pid == pid && !p->exited) {
                record_exit(t, p, status);
                break;
            }
        /* anything else: an intermediate child of proc_start or an orphan
         * reparented to us as subreaper; reaping it is all there is to do */
    }
}

static void check_lingering(struct sb_proc_table *t)
{
    size_t keep = 0;
    for (size_t i = 0; i < t->lingering_count; i++) {
        if (container_leaf_count(t->c, t->lingering[i]) == 0)
            container_leaf_remove(t->c, t->lingering[i]);
        else
            memmove(t->lingering[keep++], t->lingering[i], sizeof t->lingering[i]);
    }
    t->lingering_count = keep;
}

/* Evicted records may still be named by epoll events of the batch being
 * dispatched; proc_tick runs after the batch, when none is left. */
static void free_evicted(struct sb_proc_table *t)
{
    while (t->evicted) {
        struct sb_proc *p = t->evicted;
        t->evicted = p->next;
        proc_free(p);
    }
}

void proc_tick(struct sb_proc_table *t)
{
    int64_t now = sb_mono_ms();
    free_evicted(t);
    for (struct sb_proc *p = t->head; p; p = p->next) {
        if (!p->exited && p->deadline_ms && now >= p->deadline_ms && !p->timed_out) {
            p->timed_out = 1;
            struct sb_err e = {0};
            if (container_leaf_kill(t->c, p->leaf, &e) < 0)
                sb_error("shim: timeout of proc %u: %s", p->id, e.msg);
        }
    }
    if (t->lingering_count && now >= t->linger_check_ms) {
        t->linger_check_ms = now + 1000;
        check_lingering(t);
    }
}

int proc_next_timeout_ms(struct sb_proc_table *t)
{
    int64_t now = sb_mono_ms(), next = -1;
    for (struct sb_proc *p = t->head; p; p = p->next) {
        int64_t when = 0;
        if (!p->exited && p->deadline_ms && !p->timed_out)
            when = p->deadline_ms;
        if (when && (next < 0 || when - now < next))
            next = when - now < 0 ? 0 : when - now;
    }
    if (t->lingering_count && (next < 0 || next > 1000))
        next = 1000;
    return next > 60000 ? 60000 : (int)next;
}

size_t proc_stdin_room(const struct sb_proc *p)
{
    return SB_PROC_STDIN_MAX - p->in_len;
}

int proc_stdin_write(struct sb_proc_table *t, struct sb_proc *p, const void *data, size_t len,
                     struct sb_err *err)
{
    if (p->in_fd < 0 || p->in_close_pending)
        return sb_err_set(err, 409, "stdin of process %u is closed", p->id);
    if (len > proc_stdin_room(p))
        return sb_err_set(err, 413, "stdin of process %u: %zu bytes do not fit the queue", p->id, len);
    if (!p->in_buf && !(p->in_buf = malloc(SB_PROC_STDIN_MAX)))
        return sb_err_set(err, 500, "stdin: out of memory");
    if (p->in_off + p->in_len + len > SB_PROC_STDIN_MAX) {
        memmove(p->in_buf, p->in_buf + p->in_off, p->in_len);
        p->in_off = 0;
    }
    memcpy(p->in_buf + p->in_off + p->in_len, data, len);
    p->in_len += len;
    write_stdin(t, p);
    return 0;
}

int proc_stdin_close(struct sb_proc_table *t, struct sb_proc *p, struct sb_err *err)
{
    if (p->in_fd < 0 || p->in_close_pending)
        return 0;
    if (p->pty && proc_stdin_write(t, p, "\x04", 1, err) < 0)
        return -1;
    p->in_close_pending = 1;
    write_stdin(t, p);
    return 0;
}

int proc_resize(struct sb_proc_table *t, struct sb_proc *p, uint16_t rows, uint16_t cols, struct sb_err *err)
{
    if (!p->pty)
        return sb_err_set(err, 400, "process %u has no terminal (start it with a pty to resize it)", p->id);
    if (p->exited || p->out_fd[0] < 0)
        return sb_err_set(err, 409, "process %u has already exited", p->id);
    if (pty_resize(p->out_fd[0], rows, cols, err) < 0)
        return -1;
    p->rows = rows;
    p->cols = cols;
    return 0;
}

/* SIGKILL means "end it": with children living on after exit, the main
 * process alone would leave them holding the pipes, so the leaf goes. */
int proc_signal(struct sb_proc_table *t, struct sb_proc *p, int sig, struct sb_err *err)
{
    if (p->exited)
        return sb_err_set(err, 409, "process %u has already exited", p->id);
    if (sig == SIGKILL)
        return container_leaf_kill(t->c, p->leaf, err) < 0 ? sb_err_prefix(err, "kill process %u", p->id) : 0;
    if (kill(p->host_pid, sig) < 0)
        return sb_err_sys(err, 500, "signal process %u", p->id);
    return 0;
}

uint64_t proc_stream_end(const struct sb_proc *p, int idx)
{
    return p->finished ? p->final_end[idx] : p->ring[idx].end;
}

void proc_evict_finished(struct sb_proc_table *t)
{
    int kept = 0;
    for (struct sb_proc **pp = &t->head; *pp;) {
        struct sb_proc *p = *pp;
        if (p->finished && !p->attached && ++kept > SB_PROC_KEEP_FINISHED) {
            *pp = p->next;
            close_out(t, p, 0);     /* leftover children writing here now get EPIPE */
            close_out(t, p, 1);
            p->evicted = 1;
            p->next = t->evicted;
            t->evicted = p;
            continue;
        }
        pp = &p->next;
    }
}

json_t *proc_describe(const struct sb_proc *p)
{
    json_t *o = json_pack("{s:I, s:i, s:i, s:O, s:b, s:b, s:I, s:I}",
                          "proc", (json_int_t)p->id, "pid", (int)p->pid, "host_pid", (int)p->host_pid,
                          "argv", p->argv, "running", !p->finished, "exited", p->exited,
                          "stdout_end", (json_int_t)p->ring[0].end, "stderr_end", (json_int_t)p->ring[1].end);
    if (!o)
        return NULL;
    json_object_set_new(o, "tag", p->tag ? json_string(p->tag) : json_null());
    json_object_set_new(o, "cwd", p->cwd ? json_string(p->cwd) : json_null());
    json_object_set_new(o, "user", json_string(p->as_root ? "root" : "user"));
    json_object_set_new(o, "pty", p->pty ? json_pack("{s:i, s:i}", "rows", p->rows, "cols", p->cols) : json_null());
    json_object_set_new(o, "started_at_ms", json_integer(p->started_wall_ms));
    if (p->exited)
        json_object_set_new(o, "ended_at_ms", json_integer(p->ended_wall_ms));
    if (p->exited) {
        json_object_set_new(o, "exit_code", json_integer(p->exit_code));
        json_object_set_new(o, "signal", json_integer(p->signal));
        json_object_set_new(o, "timed_out", json_boolean(p->timed_out));
        json_object_set_new(o, "oom_killed", json_boolean(p->oom_killed));
        json_object_set_new(o, "duration_ms", json_integer(p->duration_ms));
    }
    return o;
}

int proc_running_count(const struct sb_proc_table *t)
{
    int n = 0;
    for (const struct sb_proc *p = t->head; p; p = p->next)
        n += !p->finished;
    return n;
}

void proc_table_free(struct sb_proc_table *t)
{
    while (t->head) {
        struct sb_proc *p = t->head;
        t->head = p->next;
        if (!p->finished)
            container_leaf_kill(t->c, p->leaf, NULL);
        close_out(t, p, 0);
        close_out(t, p, 1);
        close_in(t, p);
        container_leaf_remove(t->c, p->leaf);
        proc_free(p);
    }
    free_evicted(t);
    for (size_t i = 0; i < t->lingering_count; i++)
        container_leaf_remove(t->c, t->lingering[i]);
    free(t->lingering);
    t->lingering = NULL;
    t->lingering_count = 0;
}
