/*
 * process.h - the shim's process table: every process started in the
 * sandbox, its pipes, output rings, stdin queue, deadline and exit status.
 *
 * Single-threaded, driven by the shim's epoll loop (shim/server.c): the
 * table registers its pipe fds on the loop's epoll fd with a struct
 * sb_shim_watch as the event's data.ptr, and the loop hands those events
 * back here. It never talks to clients: it calls the server back when a
 * process produced output or finished. It never blocks for long (only the
 * few milliseconds a new process takes to report its pid or exec error).
 *
 * Back-pressure: clients attached to a process (struct sb_attach, owned by
 * the server) each have a cursor per stream; the table reads a pipe only as
 * far as the ring can hold without overwriting bytes an attached client has
 * not received yet. With nobody attached the ring simply keeps the latest
 * output, and pipes are always drained.
 *
 * Life of a process: running; "exited" when its main process is reaped;
 * "finished" once what was already in its pipes at that moment is in the
 * rings. A finished process's result is final: waits are answered and
 * attachments end at the stream ends recorded then (proc_stream_end). What
 * it left running lives on in its leaf cgroup and may keep writing to the
 * pipes, which stay open and drained into the rings until EOF.
 */
#ifndef SB_SHIM_PROCESS_H
#define SB_SHIM_PROCESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "shim/container.h"
#include "shim/ring.h"

/* What an epoll event's data.ptr points to, everywhere in the shim. */
enum sb_watch_kind {
    SB_WATCH_LISTEN,
    SB_WATCH_SIGNAL,
    SB_WATCH_CLIENT,
    SB_WATCH_STDOUT,
    SB_WATCH_STDERR,
    SB_WATCH_STDIN,
};
struct sb_shim_watch {
    enum sb_watch_kind kind;
    void *owner;
};

struct sb_proc;

/* One client reading one process's output. Allocated and freed by the
 * server; linked into the process's list while attached. */
struct sb_attach {
    struct sb_attach *next_in_proc;
    struct sb_attach *next_in_client;
    struct sb_proc *proc;
    void *client;
    uint64_t cursor[2];             /* next offset to send: [0] stdout, [1] stderr */
};

#define SB_PROC_STDIN_MAX (1024u * 1024u)   /* queued stdin bytes before the writer must wait */
#define SB_PROC_KEEP_FINISHED 16            /* finished processes kept for late attach/wait/list */

struct sb_proc {
    uint32_t id;                    /* the protocol's "proc" */
    pid_t host_pid;
    pid_t pid;                      /* inside the sandbox (0 if it exited before we looked) */
    char leaf[24];                  /* its leaf cgroup, "p<id>" */
    char *tag;                      /* owned; may be NULL */
    json_t *argv;                   /* owned reference, for list */
    char *cwd;                      /* owned, as given (for list) */
    int as_root;
    int pty;                        /* a terminal: out_fd[0] is its master, in_fd a dup of it,
                                       out_fd[1] is -1 (one stream) */
    uint16_t rows, cols;            /* the terminal's size */
    int64_t started_wall_ms, ended_wall_ms;     /* for list; ended once exited */
    int64_t started_ms;
    int64_t deadline_ms;            /* 0 = no timeout */

    int out_fd[2];                  /* stdout, stderr read ends; -1 after EOF or eviction */
    int out_watched[2];             /* registered on epoll right now */
    struct sb_shim_watch out_watch[2];
    struct sb_ring ring[2];
    size_t exit_backlog[2];         /* bytes in the pipe when the main process was reaped,
                                       not read yet; finishing waits for 0 (or EOF) */
    uint64_t final_end[2];          /* ring ends when it finished: where attachments stop */

    int in_fd;                      /* stdin write end; -1 when closed or never open */
    int in_watched;
    struct sb_shim_watch in_watch;
    uint8_t *in_buf;                /* owned, SB_PROC_STDIN_MAX bytes once stdin is used */
    size_t in_off, in_len;          /* queued bytes are in_buf[in_off, in_off + in_len) */
    int in_close_pending;           /* close after the queue drains */

    uint64_t oom_before;
    int exited;                     /* main process reaped */
    int finished;                   /* exited and each pipe's exit backlog read: result final */
    int evicted;                    /* dropped from the table, freed at the next proc_tick */
    int exit_code;                  /* -1 when killed by a signal */
    int signal;
    int timed_out;
    int oom_killed;
    int64_t duration_ms;

    struct sb_attach *attached;
    struct sb_proc *next;
};

struct sb_proc_callbacks {
    void (*output)(void *arg, struct sb_proc *p);     /* new bytes in p's rings */
    void (*finished)(void *arg, struct sb_proc *p);   /* p->finished just became 1 */
    void *arg;
};

struct sb_proc_table {
    struct sb_container *c;
    int epfd;
    uint32_t next_id;
    struct sb_proc *head;           /* newest first; owned */
    struct sb_proc *evicted;        /* owned; dropped records kept until the epoll batch that
                                       may still point at them is over (see proc_tick) */
    struct sb_proc_callbacks cb;
    char (*lingering)[24];          /* leaves of finished processes whose daemons live on */
    size_t lingering_count;
    int64_t linger_check_ms;        /* next time lingering leaves are looked at */
    int init_exited;                /* the sandbox's PID 1 is gone */
};

struct sb_proc_spec {
    char *const *argv;              /* NULL-terminated; argv[0] = cmd */
    char *const *envp;              /* NULL-terminated */
    const char *cwd;
    int as_root;
    int stdin_open;                 /* 0: stdin is /dev/null */
    const char *tag;                /* may be NULL */
    int64_t timeout_ms;             /* 0 = none */
    int pty;                        /* a terminal of rows x cols instead of pipes (stdin open) */
    uint16_t rows, cols;
};

void proc_table_init(struct sb_proc_table *t, struct sb_container *c, int epfd,
                     const struct sb_proc_callbacks *cb);
/* Kills every process's leaf and frees the table. Attachments must be gone. */
void proc_table_free(struct sb_proc_table *t);

/* Forks, enters the sandbox and execs. On success *out is in the table.
 * 502 "command not found: X" / "permission denied: X" when exec failed. */
int proc_start(struct sb_proc_table *t, const struct sb_proc_spec *spec, struct sb_proc **out,
               struct sb_err *err);
struct sb_proc *proc_find(struct sb_proc_table *t, uint32_t id);

/* An epoll event on one of the table's watches. */
void proc_handle_event(struct sb_proc_table *t, struct sb_shim_watch *w, uint32_t events);
/* Reaps every exited child (call on SIGCHLD). */
void proc_reap(struct sb_proc_table *t);
/* Deadlines, lingering leaves and freeing evicted records; call after each
 * batch of epoll events and at least every proc_next_timeout_ms() ms. */
void proc_tick(struct sb_proc_table *t);
int proc_next_timeout_ms(struct sb_proc_table *t);
/* Re-evaluates whether p's pipes may be read (after attached cursors moved
 * or an attachment came or went). */
void proc_update_interest(struct sb_proc_table *t, struct sb_proc *p);

/* Room left in p's stdin queue (0 = the writer must wait). */
size_t proc_stdin_room(const struct sb_proc *p);
/* Queues bytes for p's stdin: 409 when stdin is closed, never partial. */
int proc_stdin_write(struct sb_proc_table *t, struct sb_proc *p, const void *data, size_t len,
                     struct sb_err *err);
/* Closes stdin once the queued bytes are written; for a terminal, an EOF
 * character (^D) is written first, which ends input in canonical mode. */
int proc_stdin_close(struct sb_proc_table *t, struct sb_proc *p, struct sb_err *err);
/* Sets a terminal's size (the foreground group gets SIGWINCH): 400 when p
 * has no terminal, 409 once it has exited. */
int proc_resize(struct sb_proc_table *t, struct sb_proc *p, uint16_t rows, uint16_t cols, struct sb_err *err);
/* SIGKILL kills p's whole leaf (the process and everything it started);
 * any other signal goes to the main process alone, which may handle it.
 * 409 once the main process has exited. */
int proc_signal(struct sb_proc_table *t, struct sb_proc *p, int sig, struct sb_err *err);
/* Where an attachment's stream idx ends: the live ring end while the
 * process runs, the end recorded at finish afterwards. */
uint64_t proc_stream_end(const struct sb_proc *p, int idx);

/* Drops old finished processes nobody is attached to, keeping the newest
 * SB_PROC_KEEP_FINISHED. A dropped record's pipes are closed, so anything it
 * left running that still writes to them gets EPIPE (SIGPIPE) from then on. */
void proc_evict_finished(struct sb_proc_table *t);
/* A JSON description for list/wait/exit answers (new reference). */
json_t *proc_describe(const struct sb_proc *p);
int proc_running_count(const struct sb_proc_table *t);


#endif
