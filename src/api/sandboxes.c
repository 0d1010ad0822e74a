/*
 * sandboxes.c - the sandbox lifecycle routes of the SandBase REST API:
 * POST/GET /sandboxes, GET/DELETE /sandboxes/:id, the :id/timeout,
 * :id/pause and :id/connect actions and PUT :id/network (its egress rules).
 *
 * Validation and SandBase's shape are here, on the loop thread; the flows
 * (create, actions, connect: api/sandbox_flows.c) are shared with E2B's
 * control plane (src/e2b/), which answers the same paths in E2B's shapes to
 * keys written e2b_... (docs/API.md). Another org's
 * sandbox is always "404 sandbox not found". Body fields and query
 * parameters that are not understood are 400s, never ignored.
 *
 * One sandbox model: `status` and `state` are the same word (creating,
 * running, paused, stopped) in list, get and every answer; a stopped sandbox
 * is still shown by GET, with stoppedAt and stopReason, until the retention
 * period (config retention_days) ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/sandbox_flows.h"
#include "api/snapshots.h"
#include "api/validate.h"
#include "core/id.h"
#include "runtime/registry.h"
#include "runtime/template.h"

static json_t *json_object_text(const char *text)
{
    json_t *obj = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    return obj;
}

/* The sandbox object: SandBase's fields plus what E2B's SDKs read. */
static json_t *sandbox_json(const struct sb_sandbox_rec *rec)
{
    char started[32], end[32];
    sb_time_rfc3339(rec->started_at, started, sizeof started);
    sb_time_rfc3339(rec->end_at, end, sizeof end);
    const char *status = sb_sandbox_status_name(rec->status);
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:o, s:i, s:i, s:i}",
                            "sandboxID", rec->id, "templateID", rec->template_id, "clientID", "sandbase",
                            "status", status, "state", status, "metadata",
                            json_object_text(rec->metadata_json), "startedAt", started, "endAt", end,
                            "envdVersion", API_ENVD_VERSION, "envdAccessToken",
                            rec->envd_token[0] ? json_string(rec->envd_token) : json_null(), "cpuCount", rec->cpu_count,
                            "memoryMB", rec->memory_mb, "diskSizeMB", rec->disk_mb);
    api_add_network_json(obj, rec->network_json);
    api_add_ports_json(obj, rec);
    if (obj && rec->status == SB_SANDBOX_STOPPED) {
        char stopped[32];
        sb_time_rfc3339(rec->stopped_at ? rec->stopped_at : rec->updated_at, stopped, sizeof stopped);
        json_object_set_new(obj, "stoppedAt", json_string(stopped));
        json_object_set_new(obj, "stopReason", json_string(rec->stop_reason[0] ? rec->stop_reason : "unknown"));
    }
    return obj;
}

/* ---- POST /sandboxes ---- */

void api_sandbox_create(struct sb_request *req)
{
    struct sb_err err = {0};
    json_t *body = sb_request_json(req, 0, &err);
    struct api_create *c = calloc(1, sizeof *c);
    static const char *const fields[] = {"templateID", "timeout", "metadata", "envVars",
                                         "allow_internet_access", "allowInternetAccess", "network", NULL};
    if (!body || !c || api_check_fields(body, fields, "POST /sandboxes", &err) < 0 ||
        api_create_parse(req, body, c, &err) < 0) {
        api_create_refuse(req, c, body, &err);
        return;
    }
    c->shape = sandbox_json;
    json_decref(body);
    api_create_run(req, c);
}

/* ---- GET /sandboxes, GET /sandboxes/:id ---- */

#define MAX_FILTERS 8

struct status_filter {
    unsigned statuses;              /* SB_SANDBOX_STATUS_BIT of each value; 0 = none given */
    size_t count;                   /* values given, repeats included */
    char buf[256];                  /* the values, split at commas */
    size_t used;
    struct sb_err *err;
};

/* One ?status= value, which may itself list several: "running,paused". */
static int add_status(void *arg, const char *value)
{
    struct status_filter *f = arg;
    size_t len = strlen(value);
    if (f->used + len + 1 > sizeof f->buf)
        return sb_err_set(f->err, 400, "invalid status filter: too long");
    char *copy = memcpy(f->buf + f->used, value, len + 1);
    f->used += len + 1;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        enum sb_sandbox_status status;
        if (sb_sandbox_status_parse(tok, &status) < 0)
            return sb_err_set(f->err, 400, "invalid status filter: %.64s", tok);
        if (f->count == MAX_FILTERS)
            return sb_err_set(f->err, 400, "invalid status filter: at most %d values", MAX_FILTERS);
        f->count++;
        f->statuses |= SB_SANDBOX_STATUS_BIT(status);
    }
    if (len == 0)
        return sb_err_set(f->err, 400, "invalid status filter: empty");
    return 0;
}

void api_sandbox_list(struct sb_request *req)
{
    struct sb_err err = {0};
    struct status_filter filter = {.err = &err};
    sb_request_query_each(req, "status", add_status, &filter);
    if (err.status) {
        sb_respond_error(req, &err);
        return;
    }
    struct sb_sandbox_rec *list = NULL;
    size_t count = 0;
    if (store_sandbox_list(api_app(req)->store, req->org_id, filter.statuses, &list, &count, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(arr, sandbox_json(&list[i]));
    store_sandbox_list_free(list, count);
    sb_respond_json(req, 200, arr);
}

void api_sandbox_get(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    struct sb_sandbox_rec rec;
    if (api_check_sandbox_id(id, &err) < 0 ||
        store_sandbox_get(api_app(req)->store, req->org_id, id, &rec, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    if (rec.status == SB_SANDBOX_ERROR) {       /* a failed create of an old version */
        store_sandbox_rec_clear(&rec);
        sb_err_set(&err, 404, "sandbox not found");
        sb_respond_error(req, &err);
        return;
    }
    sb_respond_json(req, 200, sandbox_json(&rec));
    store_sandbox_rec_clear(&rec);
}

/* ---- actions on one sandbox ---- */

/* Validates :id and, when want_timeout, a {"timeout": N} body (required
 * when timeout_required); answers the error and returns -1 otherwise. */
static int parse_action(struct sb_request *req, const char *route, int want_timeout, int timeout_required,
                        const char **id, long long *timeout)
{
    struct sb_err err = {0};
    *id = sb_request_param(req, "id");
    *timeout = -1;
    int rc = api_check_sandbox_id(*id, &err);
    if (rc == 0 && want_timeout) {
        static const char *const fields[] = {"timeout", NULL};
        json_t *body = sb_request_json(req, !timeout_required, &err);
        rc = body ? api_check_fields(body, fields, route, &err) : -1;
        if (rc == 0 && timeout_required && !json_object_get(body, "timeout"))
            rc = sb_err_set(&err, 400, "missing field: timeout");
        if (rc == 0)
            rc = api_field_int(body, "timeout", -1, 0, api_app(req)->cfg.max_timeout_s, timeout, &err);
        json_decref(body);
    }
    if (rc < 0)
        sb_respond_error(req, &err);
    return rc;
}

static void run_action(struct sb_request *req, const char *route, enum api_action action, int want_timeout)
{
    const char *id;
    long long timeout;
    if (parse_action(req, route, want_timeout, want_timeout, &id, &timeout) == 0)
        api_action_run(req, id, action, (int)timeout);
}

void api_sandbox_delete(struct sb_request *req)
{
    run_action(req, "DELETE /sandboxes/:id", API_ACTION_DELETE, 0);
}

void api_sandbox_timeout(struct sb_request *req)
{
    run_action(req, "POST /sandboxes/:id/timeout", API_ACTION_TIMEOUT, 1);
}

void api_sandbox_pause(struct sb_request *req)
{
    run_action(req, "POST /sandboxes/:id/pause", API_ACTION_PAUSE, 0);
}

void api_sandbox_connect(struct sb_request *req)
{
    const char *id;
    long long timeout;
    if (parse_action(req, "POST /sandboxes/:id/connect", 1, 0, &id, &timeout) == 0)
        api_connect_run(req, id, (int)timeout, sandbox_json, 200);
}

void api_sandbox_network(struct sb_request *req)
{
    api_network_update_run(req);
}

/* POST /sandboxes/:id/fork: the forks are made like their source. */
void api_sandbox_fork(struct sb_request *req)
{
    api_fork(req, sandbox_json, NULL);
}
