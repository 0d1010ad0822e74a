/*
 * sandbox_runtime.c - the runtime endpoints of a sandbox (sandbase-rest.md
 * §4.10, what E2B's envd serves): GET /sandboxes/:id/health, /metrics and
 * /envs. Each runs on a worker (shim and store calls).
 *
 * Metrics are SandBase's one snake_case object (envd's Metrics names).
 * E2B's control plane answers the same path with an array of camelCase
 * SandboxMetric for keys written e2b_... (spec gap 18): that route is
 * E2B's, in src/e2b/metrics.c, over the same registry_metrics_many.
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/async.h"
#include "core/id.h"
#include "runtime/registry.h"

struct runtime_job {
    char org_id[SB_ORG_ID_MAX];
    char id[32];
};

/* A job for the sandbox of req, or NULL when answered (bad id, no memory). */
static struct runtime_job *runtime_job_new(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    if (!id || !sb_id_valid("sbx_", id)) {
        sb_respond_error(req, (sb_err_set(&err, 400, "invalid sandbox id: %s", id ? id : ""), &err));
        return NULL;
    }
    struct runtime_job *j = calloc(1, sizeof *j);
    if (!j) {
        sb_respond_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
        return NULL;
    }
    snprintf(j->org_id, sizeof j->org_id, "%s", req->org_id);
    snprintf(j->id, sizeof j->id, "%s", id);
    return j;
}

static void health_job(struct sb_request *req, void *arg)
{
    struct runtime_job *j = arg;
    struct sb_err err = {0};
    int paused = 0;
    if (registry_health(api_app(req)->registry, j->org_id, j->id, &paused, &err) < 0)
        sb_request_complete_error(req, &err);
    else if (paused)
        sb_request_complete_error(req, (sb_err_set(&err, 502, "sandbox %s is paused: its processes run "
                                                   "again after POST /sandboxes/%s/connect", j->id, j->id), &err));
    else
        sb_request_complete_empty(req, 204);
}

void api_sandbox_health(struct sb_request *req)
{
    struct runtime_job *j = runtime_job_new(req);
    if (j)
        api_run_async(req, health_job, j, free);
}

static json_t *metrics_json(const struct sb_sandbox_metrics *m)
{
    const json_int_t mib = 1024 * 1024;
    return json_pack("{s:I, s:i, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ts", (json_int_t)(m->ts_ms / 1000),
                     "cpu_count", m->cpu_count, "cpu_used_pct", m->cpu_used_pct, "mem_total",
                     (json_int_t)m->mem_total, "mem_used", (json_int_t)m->mem_used, "mem_cache",
                     (json_int_t)m->mem_cache, "mem_total_mib", (json_int_t)m->mem_total / mib, "mem_used_mib",
                     (json_int_t)m->mem_used / mib, "disk_total", (json_int_t)m->disk_total, "disk_used",
                     (json_int_t)m->disk_used);
}

static void metrics_job(struct sb_request *req, void *arg)
{
    struct runtime_job *j = arg;
    struct sb_err err = {0};
    struct sb_sandbox_metrics m;
    if (registry_metrics(api_app(req)->registry, j->org_id, j->id, &m, &err) < 0) {
        sb_request_complete_error(req, &err);
        return;
    }
    json_t *out = metrics_json(&m);
    if (!out)
        sb_request_complete_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
    else
        sb_request_complete_json(req, 200, out);
}

void api_sandbox_metrics(struct sb_request *req)
{
    struct runtime_job *j = runtime_job_new(req);
    if (j)
        api_run_async(req, metrics_job, j, free);
}

static void envs_job(struct sb_request *req, void *arg)
{
    struct runtime_job *j = arg;
    struct sb_err err = {0};
    char **env;
    size_t count;
    if (registry_envs(api_app(req)->registry, j->org_id, j->id, &env, &count, &err) < 0) {
        sb_request_complete_error(req, &err);
        return;
    }
    json_t *out = json_object();
    for (size_t i = 0; out && i < count; i++) {
        char *eq = strchr(env[i], '=');
        if (eq) {
            *eq = '\0';
            json_object_set_new(out, env[i], json_string(eq + 1));
        }
    }
    for (size_t i = 0; i < count; i++)
        free(env[i]);
    free(env);
    if (!out)
        sb_request_complete_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
    else
        sb_request_complete_json(req, 200, out);
}

void api_sandbox_envs(struct sb_request *req)
{
    struct runtime_job *j = runtime_job_new(req);
    if (j)
        api_run_async(req, envs_job, j, free);
}
