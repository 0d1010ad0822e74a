/*
 * metrics.c - E2B's metrics routes (spec/e2b-protocol.md §2.7; E2B's
 * openapi.yml): GET /sandboxes/:id/metrics (an array of SandboxMetric,
 * `start` and `end` in Unix seconds) for keys written e2b_..., and GET
 * /sandboxes/metrics?sandbox_ids=a,b ({"sandboxes": {"<id>": SandboxMetric}}).
 *
 * The figures are the registry's (registry_metrics_many: cgroup CPU over a
 * 100 ms sample, cgroup memory against the limit, the disk image), read for
 * every sandbox of a batch at once on a worker. sandbase keeps no history:
 * the one sample is taken now, so a range that ends before the request
 * arrived, or starts after it, gets [] (E2B's answer for a range without
 * samples). Like E2B, the batch leaves out what the org cannot see (other
 * orgs' ids, unknown and stopped sandboxes) and refuses more than
 * E2B_METRICS_MAX ids, malformed or repeated ones with 400.
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/async.h"
#include "api/validate.h"
#include "core/id.h"
#include "e2b/e2b.h"
#include "e2b/shapes.h"
#include "runtime/registry.h"

#define E2B_METRICS_MAX 100     /* E2B's maxSandboxMetricsCount */
#define E2B_ID_MAX 32

/* A batch (or a single sandbox, count 1). Owned by the worker job. */
struct metrics_job {
    char org_id[SB_ORG_ID_MAX];
    size_t count;
    char ids[E2B_METRICS_MAX][E2B_ID_MAX];
    int single;                 /* /sandboxes/:id/metrics: an array, errors answered */
    int64_t start_s, end_s;     /* the range asked for; -1 = open */
    int64_t arrived_s;          /* when the request arrived (wall clock, seconds) */
};

/* A Unix-seconds query parameter: *out = -1 when absent, else 0..2^62. */
static int query_seconds(struct sb_request *req, const char *name, int64_t *out, struct sb_err *err)
{
    const char *v = sb_request_query(req, name);
    *out = -1;
    if (!v)
        return 0;
    char *end;
    unsigned long long n = (v[0] >= '0' && v[0] <= '9') ? strtoull(v, &end, 10) : 0;
    if (v[0] < '0' || v[0] > '9' || *end || n > ((unsigned long long)1 << 62))
        return sb_err_set(err, 400, "%s must be a Unix time in seconds (a non-negative integer), got '%s'",
                          name, v);
    *out = (int64_t)n;
    return 0;
}

static void metrics_job_run(struct sb_request *req, void *arg)
{
    struct metrics_job *j = arg;
    struct sb_sandbox_metrics *m = calloc(j->count, sizeof *m);
    struct sb_err *errs = calloc(j->count, sizeof *errs);
    const char *ids[E2B_METRICS_MAX];
    struct sb_err err = {0};
    for (size_t i = 0; i < j->count; i++)
        ids[i] = j->ids[i];
    if (!m || !errs ||
        registry_metrics_many(api_app(req)->registry, j->org_id, ids, j->count, m, errs) < 0) {
        sb_request_complete_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
        goto out;
    }
    if (j->single && errs[0].status != 0) {
        sb_request_complete_error(req, &errs[0]);
        goto out;
    }
    json_t *body = j->single ? json_array() : json_object();
    json_t *map = j->single ? NULL : json_object();
    int rc = body && (j->single || map) ? 0 : -1;
    if (j->single) {
        /* the sample is of the moment the request arrived */
        int in_range = (j->start_s < 0 || j->start_s <= j->arrived_s) &&
                       (j->end_s < 0 || j->end_s >= j->arrived_s);
        if (rc == 0 && in_range)
            rc = json_array_append_new(body, e2b_metric_shape(&m[0]));
    } else {
        for (size_t i = 0; rc == 0 && i < j->count; i++)
            if (errs[i].status == 0)
                rc = json_object_set_new(map, j->ids[i], e2b_metric_shape(&m[i]));
        if (rc == 0)
            rc = json_object_set_new(body, "sandboxes", map);
        else
            json_decref(map);
    }
    if (rc < 0) {
        json_decref(body);
        sb_request_complete_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
    } else {
        sb_request_complete_json(req, 200, body);
    }
out:
    free(m);
    free(errs);
}

static struct metrics_job *metrics_job_new(struct sb_request *req, struct sb_err *err)
{
    struct metrics_job *j = calloc(1, sizeof *j);
    if (!j) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    snprintf(j->org_id, sizeof j->org_id, "%s", req->org_id);
    j->start_s = j->end_s = -1;
    j->arrived_s = sb_wall_ms() / 1000;
    return j;
}

void e2b_sandbox_metrics(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    struct metrics_job *j = NULL;
    if (api_check_sandbox_id(id, &err) < 0 || !(j = metrics_job_new(req, &err)) ||
        query_seconds(req, "start", &j->start_s, &err) < 0 || query_seconds(req, "end", &j->end_s, &err) < 0)
        goto fail;
    if (j->start_s >= 0 && j->end_s >= 0 && j->start_s > j->end_s) {
        sb_err_set(&err, 400, "start (%lld) must not be after end (%lld)", (long long)j->start_s,
                   (long long)j->end_s);
        goto fail;
    }
    j->single = 1;
    j->count = 1;
    snprintf(j->ids[0], sizeof j->ids[0], "%s", id);
    api_run_async(req, metrics_job_run, j, free);
    return;
fail:
    free(j);
    sb_respond_error(req, &err);
}

struct id_list {
    struct metrics_job *job;
    struct sb_err *err;
};

/* One sandbox_ids value, "a,b,c": each a sandbox id, none repeated, at
 * most E2B_METRICS_MAX in all (the values of a repeated parameter count
 * together). */
static int add_ids(void *arg, const char *value)
{
    struct id_list *l = arg;
    struct metrics_job *j = l->job;
    const char *p = value;
    for (;;) {
        size_t len = strcspn(p, ",");
        char id[E2B_ID_MAX];
        if (len == 0 || len >= sizeof id)
            return sb_err_set(l->err, 400, "sandbox_ids must be a comma-separated list of sandbox ids, got '%s'",
                              value);
        memcpy(id, p, len);
        id[len] = '\0';
        if (api_check_sandbox_id(id, l->err) < 0)
            return -1;
        for (size_t i = 0; i < j->count; i++)
            if (strcmp(j->ids[i], id) == 0)
                return sb_err_set(l->err, 400, "sandbox_ids names %s twice", id);
        if (j->count == E2B_METRICS_MAX)
            return sb_err_set(l->err, 400, "Too many sandboxes requested, maximum is %d", E2B_METRICS_MAX);
        memcpy(j->ids[j->count++], id, len + 1);
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

void e2b_sandboxes_metrics(struct sb_request *req)
{
    struct sb_err err = {0};
    struct metrics_job *j = metrics_job_new(req, &err);
    if (j) {
        struct id_list l = {.job = j, .err = &err};
        sb_request_query_each(req, "sandbox_ids", add_ids, &l);
        if (err.status == 0 && j->count == 0)
            sb_err_set(&err, 400, "sandbox_ids is required: GET /sandboxes/metrics?sandbox_ids=<id>,<id>,...");
    }
    if (err.status != 0) {
        free(j);
        sb_respond_error(req, &err);
        return;
    }
    api_run_async(req, metrics_job_run, j, free);
}
