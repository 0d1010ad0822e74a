/*
 * registry_exec.c - exec in a live sandbox, on the loop thread (see
 * registry.h): the row is checked (live, running, the caller's org), the
 * environment built from the sandbox's template, and the process run over
 * the sandbox's shim link (shim_exec_start) without holding a thread.
 *
 * A failure that may mean the shim is gone (502) and a shim that no longer
 * listens sends the request to a worker, which marks the sandbox lost
 * (check_lost blocks on the store and the shim's leftovers) and posts the
 * answer back to the loop, so a lost sandbox answers 404 as everywhere else.
 *
 * Owns each registry_exec until done ran or it was cancelled.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "runtime/registry_internal.h"
#include "runtime/shim_link.h"

#define DEFAULT_CALL_TIMEOUT_MS 10000
#define DEFAULT_OUTPUT_BUDGET (128u * 1024u * 1024u)

struct registry_exec {
    struct sb_registry *reg;
    char org_id[64];
    char id[32];
    struct shim_exec *ex;           /* NULL once done or in the lost check */
    registry_exec_done_fn done;
    void *arg;
    int cancelled;                  /* during the lost check */
    struct exec_prep prep;          /* the request's cwd and env point into it */
    struct sb_err err;              /* the lost check's answer */
};

int registry_serve_on(struct sb_registry *reg, struct sb_loop *loop, struct sb_err *err)
{
    int timeout = reg->cfg->shim_call_timeout_ms > 0 ? reg->cfg->shim_call_timeout_ms : DEFAULT_CALL_TIMEOUT_MS;
    size_t budget = reg->cfg->exec_output_budget_mb > 0 ? (size_t)reg->cfg->exec_output_budget_mb << 20
                                                        : DEFAULT_OUTPUT_BUDGET;
    reg->loop = loop;
    shim_client_set_call_timeout(timeout);
    reg->links = shim_links_new(loop, reg->cfg->run_dir, timeout, budget);
    return reg->links ? 0 : sb_err_set(err, 500, "out of memory");
}

static void rx_free(struct registry_exec *rx)
{
    exec_prep_clear(&rx->prep);
    free(rx);
}

/* Loop thread: the lost check's answer. */
static void on_lost_checked(struct sb_loop *loop, void *arg)
{
    struct registry_exec *rx = arg;
    if (!rx->cancelled)
        rx->done(rx->arg, NULL, &rx->err);
    rx_free(rx);
}

/* Worker: is the sandbox lost? Then its error is the stopped sandbox's 404. */
static void lost_check_job(void *arg)
{
    struct registry_exec *rx = arg;
    check_lost(rx->reg, rx->org_id, rx->id, &rx->err);
    if (sb_loop_post(rx->reg->loop, on_lost_checked, rx) < 0)
        sb_error("exec in %s: cannot post its answer: out of memory", rx->id);
}

static void on_exec_done(void *arg, struct sb_exec_result *res, const struct sb_err *err)
{
    struct registry_exec *rx = arg;
    rx->ex = NULL;
    if (err && err->status == 502 && !shim_alive(rx->reg->cfg->run_dir, rx->id)) {
        rx->err = *err;
        if (sb_worker_submit(rx->reg->workers, lost_check_job, rx) == 0)
            return;
    }
    rx->done(rx->arg, res, err);
    rx_free(rx);
}

void exec_prep_clear(struct exec_prep *prep)
{
    free_env(prep->env);
    prep->env = NULL;
    template_clear(&prep->tpl);
}

int exec_prepare(struct sb_registry *reg, const struct sb_sandbox_rec *rec, const struct sb_process_request *preq,
                 struct exec_prep *prep, struct sb_exec_request *ereq, struct sb_err *err)
{
    if (rec->status == SB_SANDBOX_PAUSED)
        return sb_err_set(err, 409, "sandbox is paused: resume it with POST /sandboxes/%s/connect", rec->id);
    if (rec->status != SB_SANDBOX_RUNNING)
        return sb_err_set(err, 409, "sandbox is not running (status %s)", sb_sandbox_status_name(rec->status));
    if (load_sandbox_template(reg, rec, &prep->tpl, err) < 0) {
        sb_err_prefix(err, "failed to execute command in sandbox");
        err->status = 502;
        return -1;
    }
    const char *user = preq->user ? preq->user : "user";
    const char *cwd = preq->cwd ? preq->cwd : prep->tpl.workdir;
    if (preq->cwd_from_home && (!preq->cwd || preq->cwd[0] != '/')) {
        const char *home = strcmp(user, "root") == 0 ? "/root" : prep->tpl.home;
        const char *rest = preq->cwd ? preq->cwd : "";
        if (rest[0] == '~') {
            if (rest[1] && rest[1] != '/')
                return sb_err_set(err, 400, "cwd '%.200s': only the acting user's own home (~) can be expanded",
                                  rest);
            rest += 1 + (rest[1] == '/');
        }
        if ((size_t)snprintf(prep->cwd, sizeof prep->cwd, "%s%s%s", home, *rest ? "/" : "", rest) >=
            sizeof prep->cwd)
            return sb_err_set(err, 400, "cwd is too long");
        cwd = prep->cwd;
    }
    size_t env_count = 0;
    prep->env = build_env(&prep->tpl, rec, user, preq->pty, preq->env_json, &env_count);
    if (!prep->env)
        return sb_err_set(err, 500, "out of memory");
    *ereq = (struct sb_exec_request){
        .cmd = preq->cmd,
        .args = preq->args,
        .arg_count = preq->arg_count,
        .env = (const char *const *)prep->env,
        .env_count = env_count,
        .cwd = cwd,
        .user = user,
        .stdin_data = preq->stdin_data,
        .stdin_len = preq->stdin_len,
        .stdin_open = preq->stdin_open,
        .tag = preq->tag,
        .pty = preq->pty,
        .rows = preq->rows,
        .cols = preq->cols,
        .timeout_s = preq->timeout_s,
        .output_cap = reg->cfg->exec_output_cap,
    };
    return 0;
}

struct registry_exec *registry_exec_start(struct sb_registry *reg, const char *org_id, const char *id,
                                          const struct sb_process_request *preq,
                                          registry_exec_done_fn done, void *arg, struct sb_err *err)
{
    if (!reg->links) {
        sb_err_set(err, 500, "exec: the registry is not serving on a loop");
        return NULL;
    }
    struct registry_exec *rx = calloc(1, sizeof *rx);
    if (!rx) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    rx->reg = reg;
    rx->done = done;
    rx->arg = arg;
    snprintf(rx->org_id, sizeof rx->org_id, "%s", org_id);
    struct sb_sandbox_rec rec;
    if (load_live(reg, org_id, id, &rec, err) < 0) {
        rx_free(rx);
        return NULL;
    }
    snprintf(rx->id, sizeof rx->id, "%s", rec.id);
    struct sb_exec_request ereq;
    int rc = exec_prepare(reg, &rec, preq, &rx->prep, &ereq, err);
    store_sandbox_rec_clear(&rec);
    if (rc == 0 && !(rx->ex = shim_exec_start(reg->links, rx->id, &ereq, on_exec_done, rx, err))) {
        rc = -1;
        if (err->status == 502 && !shim_alive(reg->cfg->run_dir, rx->id)) {
            rx->err = *err;         /* no shim listens: answer after the lost check */
            if (sb_worker_submit(reg->workers, lost_check_job, rx) == 0)
                return rx;
        }
    }
    if (rc < 0) {
        rx_free(rx);
        return NULL;
    }
    return rx;
}

void registry_exec_cancel(struct registry_exec *rx)
{
    if (!rx->ex) {                  /* in the lost check: its answer is dropped */
        rx->cancelled = 1;
        return;
    }
    shim_exec_cancel(rx->ex);
    rx_free(rx);
}

void registry_exec_result_clear(struct sb_registry *reg, struct sb_exec_result *res)
{
    shim_links_budget_give(reg->links, res->budget);
    shim_exec_result_clear(res);
}
