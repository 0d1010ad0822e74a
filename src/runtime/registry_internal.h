/*
 * registry_internal.h - what the files of the registry share (registry.c:
 * lifecycle; registry_exec.c: exec on the loop; registry_procs.c: interactive
 * processes). Private to them.
 */
#ifndef SB_RUNTIME_REGISTRY_INTERNAL_H
#define SB_RUNTIME_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/worker.h"
#include "runtime/registry.h"
#include "runtime/template.h"

struct sb_registry {
    const struct sb_config *cfg;
    struct sb_store *store;
    struct sb_pool *pool;
    struct sb_network *net;         /* egress: veths, rules, DNS (network.h) */
    pthread_mutex_t state_lock;     /* creates' cap check + insert */
    struct sb_sandbox_locks *locks; /* every other transition, per sandbox */
    int64_t next_prune_ms;          /* reaper thread only */
    sb_shim_watch_fn watch;         /* set before reconcile; NULL = nobody watches */
    void *watch_ctx;
    struct shim_links *links;       /* registry_serve_on: exec's shim links, loop thread */
    struct sb_loop *loop;
    struct sb_worker_pool *workers;
};

/* Loads a sandbox the API may act on: 404 for other orgs and stopped ones. */
int load_live(struct sb_registry *reg, const char *org_id, const char *id,
              struct sb_sandbox_rec *rec, struct sb_err *err);
/* After a shim call on a live sandbox failed with err: when its shim is
 * gone, the sandbox is lost now and err becomes the 404 of a stopped
 * sandbox (1); else 0. Blocks: workers only. */
int check_lost(struct sb_registry *reg, const char *org_id, const char *id, struct sb_err *err);
/* The template as the sandbox started with it. */
int load_sandbox_template(struct sb_registry *reg, const struct sb_sandbox_rec *rec,
                          struct sb_template *tpl, struct sb_err *err);
/* The process environment as a NULL-terminated "K=V" array (free_env), or
 * NULL. A terminal's process gets TERM=xterm-256color unless the sandbox or
 * the request sets TERM. */
char **build_env(const struct sb_template *tpl, const struct sb_sandbox_rec *rec,
                 const char *user, int pty, const char *request_env, size_t *count);
void free_env(char **env);

/* What an exec request points into while its process starts. */
struct exec_prep {
    struct sb_template tpl;
    char **env;
    char cwd[4352];                 /* a cwd resolved from the user's home (cwd_from_home) */
};
/* The shim request for preq in rec's sandbox: 409 unless it is running,
 * 502 when its pinned template cannot be read. ereq points into prep (and
 * preq); clear prep with exec_prep_clear once the start was sent. Loop
 * thread (registry_exec.c, registry_procs.c). */
int exec_prepare(struct sb_registry *reg, const struct sb_sandbox_rec *rec, const struct sb_process_request *preq,
                 struct exec_prep *prep, struct sb_exec_request *ereq, struct sb_err *err);
void exec_prep_clear(struct exec_prep *prep);

#endif
