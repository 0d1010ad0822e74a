/*
 * registry.h - the sandbox lifecycle as the API sees it: create (from the
 * warm pool or cold), exec, pause, resume, timeout, destroy, the TTL reaper
 * and start-up reconciliation with the shims that survived a restart.
 *
 * The store row is the truth for status and TTL; the shim is the truth for
 * whether the sandbox still exists. Every state change is written to the
 * store and appends a lifecycle event (sandbox.lifecycle.*).
 *
 * Every function here except registry_try_create_pooled and
 * registry_watch_shims blocks (shim calls, disk): call them from a worker
 * thread, never from the HTTP loop. All are thread-safe. Errors carry the
 * HTTP status to answer with (404 "sandbox not found" also for other orgs'
 * sandboxes and for stopped ones, a sandbox whose shim died included, 409
 * for wrong states, 429 for the per-org cap, 507 when the data dir cannot
 * promise a new sandbox's disk, 502 for runtime failures).
 */
#ifndef SB_RUNTIME_REGISTRY_H
#define SB_RUNTIME_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "core/worker.h"
#include "core/loop.h"
#include "runtime/netpolicy.h"
#include "runtime/shim_client.h"
#include "runtime/template.h"
#include "store/store.h"

struct sb_registry;

/* cfg and store must outlive the registry. */
struct sb_registry *registry_new(const struct sb_config *cfg, struct sb_store *store,
                                 struct sb_worker_pool *workers, struct sb_err *err);
/* Stops refilling the pool and destroys the pooled (never handed out)
 * sandboxes when destroy_pool is set; live sandboxes are left to their shims. */
void registry_free(struct sb_registry *reg, int destroy_pool);

/* Watching shims: each time a sandbox becomes live (created cold, claimed
 * from the pool, re-adopted by reconcile) the registry calls fn with a
 * pidfd of its shim (pidfd_open(2): readable once the shim exits), from
 * whichever thread did it (a worker, the HTTP loop, or start-up), so fn
 * must not block. fn owns pidfd; when it becomes readable, call
 * registry_shim_died on a worker. Set it before registry_reconcile; none
 * set = nobody watches (dead shims are then noticed by failing calls). */
typedef void (*sb_shim_watch_fn)(void *ctx, const char *id, int pidfd);
void registry_watch_shims(struct sb_registry *reg, sb_shim_watch_fn fn, void *ctx);
/* id's shim exited: unless its sandbox was stopped meanwhile (a DELETE or
 * the TTL killed it: it keeps that reason) or its shim still answers (it
 * is watched afresh), clean up its leftovers and mark it stopped with
 * reason "lost" and a killed event. Blocks: call from a worker. */
void registry_shim_died(struct sb_registry *reg, const char *id);

/* Start-up: re-adopts sandboxes whose shim answers, marks the rest stopped
 * (event killed, reason "lost"), destroys shims nobody owns. Then starts
 * filling the warm pools in the background. */
int registry_reconcile(struct sb_registry *reg, struct sb_err *err);

struct sb_create_request {
    const char *org_id;
    const char *template_id;
    int timeout_s;
    const char *metadata_json;      /* object text; NULL = {} */
    const char *env_json;           /* object text; NULL = {} */
    const struct sb_net_policy *network;    /* as parsed from the create (netpolicy_parse); NULL = not given */
    const char *e2b_json;           /* an E2B create's own settings, stored as given; NULL = "" */
    const char *envd_token;         /* a secure sandbox's envd access token; NULL = none */
    int pause_on_timeout;           /* the timeout pauses it instead of killing it (E2B's autoPause) */
};
int registry_create(struct sb_registry *reg, const struct sb_create_request *creq,
                    struct sb_sandbox_rec *out, struct sb_err *err);
/* The fast path, safe on the HTTP loop (no shim call, no waiting on locks):
 * hands out a pooled sandbox. 1 = created (out filled); 0 = nothing ready
 * or the registry is busy, nothing changed: call registry_create on a
 * worker; -1 = error (err set, e.g. 429). The template must have been
 * validated by name; an unknown template simply has no pool. */
int registry_try_create_pooled(struct sb_registry *reg, const struct sb_create_request *creq,
                               struct sb_sandbox_rec *out, struct sb_err *err);
int registry_destroy(struct sb_registry *reg, const char *org_id, const char *id,
                     const char *reason, struct sb_err *err);
int registry_pause(struct sb_registry *reg, const char *org_id, const char *id, struct sb_err *err);
/* Resumes a paused sandbox (or just extends a running one); timeout_s < 0
 * keeps the remaining time. Fills out with the updated record, and
 * *resumed (may be NULL) with whether it was paused. */
int registry_connect(struct sb_registry *reg, const char *org_id, const char *id, int timeout_s,
                     struct sb_sandbox_rec *out, int *resumed, struct sb_err *err);
int registry_set_timeout(struct sb_registry *reg, const char *org_id, const char *id,
                         int timeout_s, struct sb_err *err);
/* Replaces the egress rules of a running or paused sandbox with update
 * (netpolicy_parse_update; its allowPublicTraffic and traffic token are
 * the sandbox's and stay): network_update applies them (a paused sandbox's
 * too: they hold when it resumes), then the row's network settings are
 * rewritten with a sandbox.lifecycle.updated event {"network": ...}, so a
 * restart re-adopts them. 404 as everywhere, 409 a creating one, 400 when
 * egress is asked of a server without uplink, 502 runtime failures. */
int registry_update_network(struct sb_registry *reg, const char *org_id, const char *id,
                            const struct sb_net_policy *update, struct sb_err *err);
/* Destroys running sandboxes whose end_at has passed and pooled ones whose
 * template was rebuilt or removed; once a minute also
 * forgets sandboxes stopped longer ago than cfg->retention_days. Call from
 * one thread at a time. */
void registry_reap_expired(struct sb_registry *reg);

/* Takes a filesystem snapshot of live sandbox id (runtime/template.h,
 * template_snapshot): a running sandbox is frozen for the copy and thawed
 * after, a paused one stays paused. The copy is bounded by the sandbox's
 * disk_mb plus its template's size and admitted by the disk budget (507).
 * label: the user's name for it (NULL = none). Fills name_out with the new
 * template's name (SB_SNAPSHOT_PREFIX + 20 random chars), owned by org_id.
 * 404 as everywhere, 409 when its template is gone, 429 when the org keeps
 * SB_SNAPSHOTS_PER_ORG_MAX snapshots already. */
#define SB_SNAPSHOTS_PER_ORG_MAX 100
int registry_snapshot(struct sb_registry *reg, const char *org_id, const char *id, const char *label,
                      char name_out[SB_TEMPLATE_NAME_MAX], struct sb_err *err);

/* The sandbox's root filesystem for the file API (runtime/sandbox_files.h),
 * acting as user: NULL, "" or "user" (or the template's user name) for the
 * template's user, "root" for root; 400 for any other. 404 as everywhere;
 * 502 when the sandbox's runtime does not answer. Paused sandboxes work.
 * fs is the caller's (sb_fs_close), also after a failure. */
struct sb_fs;
int registry_fs_open(struct sb_registry *reg, const char *org_id, const char *id, const char *user,
                     struct sb_fs *fs, struct sb_err *err);
/* An fd of the network namespace of live sandbox id (its PID 1's; the
 * caller closes it). No org check: the caller has done it. 502 when the
 * sandbox's runtime does not answer. Blocks (a shim call on a cache
 * miss): workers only. */
int registry_netns_open(struct sb_registry *reg, const char *id, int *netns_fd, struct sb_err *err);
/* The sandbox-wide environment a process of its user gets (template, HOME,
 * USER, E2B variables, the sandbox's envVars) as "K=V" strings (free_env
 * layout: NULL-terminated, each and the array freed by the caller). */
int registry_envs(struct sb_registry *reg, const char *org_id, const char *id, char ***env,
                  size_t *count, struct sb_err *err);

/* 0 with *paused when id's shim answers (a live sandbox of the org); 404 as
 * everywhere, also when the shim is found gone (the sandbox is then lost). */
int registry_health(struct sb_registry *reg, const char *org_id, const char *id, int *paused,
                    struct sb_err *err);

/* A snapshot of what the sandbox uses: CPU over a 100 ms sample, as a
 * percentage of its cpu_count CPUs; memory from its cgroup against its
 * limit; disk from its disk image. Blocks about 100 ms. */
struct sb_sandbox_metrics {
    int64_t ts_ms;
    int cpu_count;
    double cpu_used_pct;
    uint64_t mem_total, mem_used, mem_cache;
    uint64_t disk_total, disk_used;
};
int registry_metrics(struct sb_registry *reg, const char *org_id, const char *id,
                     struct sb_sandbox_metrics *out, struct sb_err *err);
/* The same for count sandboxes of the org at once, with one 100 ms pause
 * for all of them: out[i] and errs[i] for ids[i], errs[i].status 0 when
 * out[i] holds its figures, else that sandbox's error (404 unknown, not
 * live or another org's; 502 its shim gone). -1 only when nothing could
 * be tried (out of memory; every errs[i] then says so). */
int registry_metrics_many(struct sb_registry *reg, const char *org_id, const char *const *ids, size_t count,
                          struct sb_sandbox_metrics *out, struct sb_err *errs);

struct sb_process_request {
    const char *cmd;
    const char *const *args;
    size_t arg_count;
    const char *env_json;           /* per-process envVars object text, or NULL */
    const char *cwd;                /* NULL = the template's workdir (/workspace) */
    int cwd_from_home;              /* envd's rule instead: a NULL, relative or "~[/...]" cwd is
                                       taken from the acting user's home; an absolute one as is */
    const char *user;               /* NULL = "user" */
    const char *stdin_data;
    size_t stdin_len;
    int timeout_s;                  /* 0 = no limit (not for the synchronous exec) */
    /* interactive processes (registry_procs.h) */
    int stdin_open;                 /* keep stdin open for later writes (stdin_data NULL) */
    const char *tag;                /* NULL = none */
    int pty;                        /* a terminal of rows x cols instead of pipes */
    uint16_t rows, cols;
};

/* Lets the registry run execs on loop (a non-blocking link per sandbox, see
 * shim_link.h), with shim calls failing after cfg->shim_call_timeout_ms.
 * Once, before serving; the loop must outlive the registry. */
int registry_serve_on(struct sb_registry *reg, struct sb_loop *loop, struct sb_err *err);

struct registry_exec;
/* Called once on the loop thread with the result (res: see shim_exec_done_fn)
 * or the error: 404 unknown or stopped (also when the sandbox was found
 * lost), 409 paused, 502/504 runtime failures. */
typedef void (*registry_exec_done_fn)(void *arg, struct sb_exec_result *res, const struct sb_err *err);
/* Runs preq in the sandbox without holding a thread. preq's strings must
 * stay valid until done runs or the exec is cancelled. NULL with err when it
 * fails at once (done is not called then). Loop thread only. */
struct registry_exec *registry_exec_start(struct sb_registry *reg, const char *org_id, const char *id,
                                          const struct sb_process_request *preq,
                                          registry_exec_done_fn done, void *arg, struct sb_err *err);
/* The client left: the process tree is killed, done is never called. */
void registry_exec_cancel(struct registry_exec *rx);
/* Frees a result a done callback took (its buffers) and gives the output
 * budget they held back. Loop thread. */
void registry_exec_result_clear(struct sb_registry *reg, struct sb_exec_result *res);

#endif
