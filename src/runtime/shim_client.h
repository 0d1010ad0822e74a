/*
 * shim_client.h - the server's side of the shim protocol: start a shim (which
 * builds and then owns one sandbox), and ask a running shim to exec, pause,
 * resume, report or destroy.
 *
 * Exec runs on the loop without a thread (shim_exec_start, over the
 * sandbox's link, shim_link.h). Every other call here blocks (it connects to
 * <run-dir>/sandboxes/<id>/shim.sock, sends one request and reads the
 * answer), so call it from a worker thread, never from the HTTP loop. A
 * shim outlives `sandbase serve`: after a restart
 * the server finds the shims again by listing <run-dir>/sandboxes/ and calling
 * shim_status on each.
 */
#ifndef SB_RUNTIME_SHIM_CLIENT_H
#define SB_RUNTIME_SHIM_CLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/err.h"

struct sb_spec;                         /* proto/spec.h: only shim_spawn's caller needs it */

/* Writes spec (resolved by sandbox_spec_resolve) to the sandbox's run dir,
 * starts cfg->shim_path (sandbase-shim) on it (detached: setsid, its own process group,
 * reparented away from serve) and returns once the sandbox is built and the
 * shim answers on its socket, or with the shim's set-up error (502). */
int shim_spawn(const struct sb_config *cfg, const struct sb_spec *spec, struct sb_err *err);

struct sb_exec_request {
    const char *cmd;                    /* run directly, searched in PATH if no '/' */
    const char *const *args;            /* argv[1..], arg_count of them */
    size_t arg_count;
    const char *const *env;             /* "K=V" strings, env_count of them: the full environment */
    size_t env_count;
    const char *cwd;                    /* absolute path inside the sandbox */
    const char *user;                   /* "user" (template's default) or "root" */
    const char *stdin_data;             /* NULL = stdin is /dev/null, unless stdin_open */
    size_t stdin_len;
    int stdin_open;                     /* stdin stays open for later writes */
    const char *tag;                    /* NULL = none */
    int pty;                            /* a terminal of rows x cols: stdin open, one stream */
    uint16_t rows, cols;
    int timeout_s;                      /* whole process tree killed after this; 0 = never */
    size_t output_cap;                  /* bytes kept per stream; the rest is drained and dropped */
};

struct sb_exec_result {
    int pid;                            /* pid inside the sandbox */
    int exit_code;                      /* -1 when killed by a signal */
    int signal;                         /* 0 unless killed by a signal */
    int oom_killed;                     /* the sandbox's memory limit killed it */
    int timed_out;
    int truncated;                      /* output passed output_cap on some stream */
    int64_t duration_ms;
    char *out;                          /* owned: stdout bytes (not NUL-terminated safe: use out_len) */
    size_t out_len;
    char *err_out;                      /* owned: stderr bytes */
    size_t err_len;
    size_t budget;                      /* bytes of the output budget out and err_out hold:
                                           given back by registry_exec_result_clear */
};
void shim_exec_result_clear(struct sb_exec_result *res);

struct shim_links;
struct shim_exec;

/* The shim's start request for req (new reference, NULL when out of
 * memory), attached from offset 0 when attach is set. */
json_t *shim_start_request(const struct sb_exec_request *req, int attach);

/* Called once on the loop thread: res (whose buffers the callback may take,
 * zeroing res, and then gives res->budget back with shim_links_budget_give
 * once they are freed) when the process ran, whatever its exit, with timed_out set
 * and partial output on timeout; else NULL and err: 502 "command not found:
 * X" / "permission denied: X" when it could not start, 409 when the sandbox
 * is paused, 502 when the shim is unreachable or went away, 504 when it does
 * not answer in time. */
typedef void (*shim_exec_done_fn)(void *arg, struct sb_exec_result *res, const struct sb_err *err);

/* Starts one process on id's link and collects its output without holding a
 * thread. req's strings must stay valid until done runs or the exec is
 * cancelled. done never runs inside this call. NULL with err when the
 * request cannot even be sent. Loop thread only. */
struct shim_exec *shim_exec_start(struct shim_links *links, const char *id, const struct sb_exec_request *req,
                                  shim_exec_done_fn done, void *arg, struct sb_err *err);
/* The caller gives up (its client left): the process's whole tree is killed
 * and done is never called. Not after done ran. Loop thread only. */
void shim_exec_cancel(struct shim_exec *ex);

/* shim_exec_start on a private loop, waiting for the result: for tests and
 * tools, any thread. Returns 0 with *res (caller clears it) or -1 with err. */
int shim_exec(const char *run_dir, const char *id, const struct sb_exec_request *req,
              struct sb_exec_result *res, struct sb_err *err);

/* How long the blocking calls below wait for a shim's answer (default
 * 10000 ms; serve sets cfg->shim_call_timeout_ms). A shim that takes longer
 * is stuck: pause/resume/status fail with 502, destroy kills it. */
void shim_client_set_call_timeout(int ms);

int shim_pause(const char *run_dir, const char *id, struct sb_err *err);    /* cgroup freezer */
int shim_resume(const char *run_dir, const char *id, struct sb_err *err);

struct sb_shim_status {
    pid_t shim_pid;
    pid_t init_pid;                     /* host pid of the sandbox's PID 1 */
    int paused;
    int process_count;                  /* processes in the sandbox's cgroup */
};
/* 1 when a shim listens on id's socket, 0 when none does. One non-blocking
 * connect: cheap enough for the HTTP loop (the pool's claim check). */
int shim_alive(const char *run_dir, const char *id);

/* 404 when no shim answers for id (socket missing or dead). */
int shim_status(const char *run_dir, const char *id, struct sb_shim_status *out, struct sb_err *err);

/* A pidfd (pidfd_open(2)) of id's shim process, checked to be that shim, so
 * its exit can be noticed: it becomes readable when the shim exits. Caller
 * closes *pidfd. 404 when no shim answers for id; 500 when one answers but
 * its shim.pid does not name it. */
int shim_pidfd_open(const char *run_dir, const char *id, int *pidfd, struct sb_err *err);

/* Kills every process of the sandbox, removes its cgroups, mounts and files,
 * and ends the shim. Idempotent: a sandbox whose shim is already gone has its
 * leftovers (cgroups, run dir, sandbox dir) cleaned up and returns 0. */
int shim_destroy(const struct sb_config *cfg, const char *id, struct sb_err *err);

/* Ids of every sandbox that has a run dir (live shim or leftovers). */
int shim_list_ids(const char *run_dir, char (**ids)[32], size_t *count, struct sb_err *err);

#endif
