/*
 * sandboxes.c - the sandbox lifecycle routes of the SandBase REST API:
 * POST/GET /sandboxes, GET/DELETE /sandboxes/:id, and the :id/timeout,
 * :id/pause and :id/connect actions.
 *
 * Validation happens here on the loop thread; anything that waits on a
 * shim runs in the registry on a worker (api_run_async). Another org's
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
#include "api/async.h"
#include "api/validate.h"
#include "core/id.h"
#include "runtime/netpolicy.h"
#include "runtime/registry.h"
#include "runtime/template.h"

#define ENVD_VERSION "0.2.0"

static json_t *json_object_text(const char *text)
{
    json_t *obj = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    return obj;
}

/* allowInternetAccess and network {allowOut, denyOut, allowPublicTraffic,
 * address?} from the stored settings; a sandbox from before they were
 * stored had loopback only. */
static void add_network_json(json_t *obj, const char *text)
{
    json_t *net = text && *text ? json_loads(text, 0, NULL) : NULL;
    if (!obj)
        return;
    if (!json_is_object(net)) {
        json_decref(net);
        net = json_pack("{s:b, s:[], s:[], s:b}", "allowInternetAccess", 0, "allowOut", "denyOut",
                        "allowPublicTraffic", 1);
    }
    json_object_set(obj, "allowInternetAccess", json_object_get(net, "allowInternetAccess"));
    json_object_del(net, "allowInternetAccess");
    json_object_set_new(obj, "network", net);
}

/* The sandbox object: SandBase's fields plus what E2B's SDKs read. */
static json_t *sandbox_json(const struct sb_sandbox_rec *rec)
{
    char started[32], end[32];
    sb_time_rfc3339(rec->started_at, started, sizeof started);
    sb_time_rfc3339(rec->end_at, end, sizeof end);
    const char *status = sb_sandbox_status_name(rec->status);
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:n, s:i, s:i, s:i}",
                            "sandboxID", rec->id, "templateID", rec->template_id, "clientID", "sandbase",
                            "status", status, "state", status, "metadata",
                            json_object_text(rec->metadata_json), "startedAt", started, "endAt", end,
                            "envdVersion", ENVD_VERSION, "envdAccessToken", "cpuCount", rec->cpu_count,
                            "memoryMB", rec->memory_mb, "diskSizeMB", rec->disk_mb);
    add_network_json(obj, rec->network_json);
    if (obj && rec->status == SB_SANDBOX_STOPPED) {
        char stopped[32];
        sb_time_rfc3339(rec->stopped_at ? rec->stopped_at : rec->updated_at, stopped, sizeof stopped);
        json_object_set_new(obj, "stoppedAt", json_string(stopped));
        json_object_set_new(obj, "stopReason", json_string(rec->stop_reason[0] ? rec->stop_reason : "unknown"));
    }
    return obj;
}

/* 400 "unknown template: X" naming the templates that do exist. */
static int unknown_template(const struct sb_app *app, const char *name, struct sb_err *err)
{
    struct sb_template *list = NULL;
    size_t count = 0;
    struct sb_err lerr = {0};
    char names[256] = "";
    size_t used = 0;
    if (template_list(app->cfg.data_dir, &list, &count, &lerr) == 0)
        for (size_t i = 0; i < count && used < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", list[i].name);
    template_list_free(list, count);
    if (count == 0)
        return sb_err_set(err, 400, "unknown template: %.64s (no templates are installed; build one "
                                    "with `sandbase template build NAME --from host|debian`)", name);
    return sb_err_set(err, 400, "unknown template: %.64s (available: %s)", name, names);
}

/* ---- POST /sandboxes ---- */

/* allow_internet_access (E2B's REST spelling; allowInternetAccess also
 * taken) and network into *out, or NULL when the body has neither. */
static int parse_network(json_t *body, struct sb_net_policy **out, struct sb_err *err)
{
    json_t *snake = json_object_get(body, "allow_internet_access");
    json_t *camel = json_object_get(body, "allowInternetAccess");
    json_t *network = json_object_get(body, "network");
    *out = NULL;
    if (snake && camel)
        return sb_err_set(err, 400, "give allow_internet_access or allowInternetAccess, not both");
    if (!snake && !camel && !network)
        return 0;
    struct sb_net_policy *p = malloc(sizeof *p);
    if (!p)
        return sb_err_set(err, 500, "out of memory");
    if (camel && !json_is_boolean(camel)) {
        free(p);
        return sb_err_set(err, 400, "invalid field allowInternetAccess: must be a boolean");
    }
    if (netpolicy_parse(snake ? snake : camel, network, p, err) < 0) {
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

struct create_args {
    char org_id[SB_ORG_ID_MAX];
    char template_id[SB_TEMPLATE_NAME_MAX];
    int timeout_s;
    char *metadata;
    char *env;
    struct sb_net_policy *network;  /* owned; NULL = the create said nothing about the network */
};

static void free_create_args(void *p)
{
    struct create_args *a = p;
    free(a->metadata);
    free(a->env);
    free(a->network);
    free(a);
}

static struct sb_create_request create_request_of(const struct create_args *a)
{
    return (struct sb_create_request){.org_id = a->org_id, .template_id = a->template_id,
                                      .timeout_s = a->timeout_s, .metadata_json = a->metadata,
                                      .env_json = a->env, .network = a->network};
}

static void create_job(struct sb_request *req, void *p)
{
    struct create_args *a = p;
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    struct sb_create_request creq = create_request_of(a);
    if (registry_create(api_app(req)->registry, &creq, &rec, &err) < 0) {
        sb_request_complete_error(req, &err);
        return;
    }
    sb_request_complete_json(req, 201, sandbox_json(&rec));
    store_sandbox_rec_clear(&rec);
}

void api_sandbox_create(struct sb_request *req)
{
    struct sb_app *app = api_app(req);
    struct sb_err err = {0};
    json_t *body = sb_request_json(req, 0, &err);
    struct create_args *a = calloc(1, sizeof *a);
    const char *template_id = NULL;
    long long timeout = 0;
    static const char *const fields[] = {"templateID", "timeout", "metadata", "envVars",
                                         "allow_internet_access", "allowInternetAccess", "network", NULL};
    if (!body || !a)
        goto fail;
    if (api_check_fields(body, fields, "POST /sandboxes", &err) < 0 ||
        api_field_string(body, "templateID", 1, NULL, &template_id, &err) < 0 ||
        api_field_int(body, "timeout", app->cfg.default_timeout_s, 1, app->cfg.max_timeout_s,
                      &timeout, &err) < 0 ||
        api_field_string_map(body, "metadata", &a->metadata, &err) < 0 ||
        api_field_env(body, "envVars", API_SANDBOX_ENV_MAX, &a->env, NULL, &err) < 0 ||
        parse_network(body, &a->network, &err) < 0)
        goto fail;
    uint64_t identity;
    if (template_identity(app->cfg.data_dir, template_id, &identity) < 0) {
        unknown_template(app, template_id, &err);
        goto fail;
    }
    snprintf(a->org_id, sizeof a->org_id, "%s", req->org_id);
    snprintf(a->template_id, sizeof a->template_id, "%s", template_id);
    a->timeout_s = (int)timeout;
    json_decref(body);
    /* A warm sandbox is handed out right here; otherwise build one on a worker. */
    struct sb_sandbox_rec rec;
    struct sb_create_request creq = create_request_of(a);
    int handled = registry_try_create_pooled(app->registry, &creq, &rec, &err);
    if (handled != 0) {
        free_create_args(a);
        if (handled < 0) {
            sb_respond_error(req, &err);
            return;
        }
        sb_respond_json(req, 201, sandbox_json(&rec));
        store_sandbox_rec_clear(&rec);
        return;
    }
    api_run_async(req, create_job, a, free_create_args);
    return;
fail:
    if (!a && err.status == 0)
        sb_err_set(&err, 500, "out of memory");
    if (a)
        free_create_args(a);
    json_decref(body);
    sb_respond_error(req, &err);
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

struct action_args;
/* A registry call for an action that answers 204 on success. */
typedef int (*action_fn)(struct sb_registry *reg, const struct action_args *a, struct sb_err *err);

struct action_args {
    char org_id[SB_ORG_ID_MAX];
    char id[32];
    int timeout_s;      /* -1 = not given */
    action_fn run;
};

/* Validates :id and (optionally) a {"timeout": N} body into a new action_args. */
static struct action_args *parse_action(struct sb_request *req, const char *route, int want_timeout,
                                        int timeout_required)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    if (api_check_sandbox_id(id, &err) < 0) {
        sb_respond_error(req, &err);
        return NULL;
    }
    long long timeout = -1;
    if (want_timeout) {
        static const char *const fields[] = {"timeout", NULL};
        json_t *body = sb_request_json(req, !timeout_required, &err);
        int rc = body ? api_check_fields(body, fields, route, &err) : -1;
        if (rc == 0 && timeout_required && !json_object_get(body, "timeout"))
            rc = sb_err_set(&err, 400, "missing field: timeout");
        if (rc == 0)
            rc = api_field_int(body, "timeout", -1, 0, api_app(req)->cfg.max_timeout_s, &timeout, &err);
        json_decref(body);
        if (rc < 0) {
            sb_respond_error(req, &err);
            return NULL;
        }
    }
    struct action_args *a = calloc(1, sizeof *a);
    if (!a) {
        sb_err_set(&err, 500, "out of memory");
        sb_respond_error(req, &err);
        return NULL;
    }
    snprintf(a->org_id, sizeof a->org_id, "%s", req->org_id);
    snprintf(a->id, sizeof a->id, "%s", id);
    a->timeout_s = (int)timeout;
    return a;
}

static void empty_action_job(struct sb_request *req, void *p)
{
    struct action_args *a = p;
    struct sb_err err = {0};
    if (a->run(api_app(req)->registry, a, &err) < 0)
        sb_request_complete_error(req, &err);
    else
        sb_request_complete_empty(req, 204);
}

/* Parses the action and runs it on a worker; answers 204 or the error. */
static void run_empty_action(struct sb_request *req, const char *route, action_fn run, int want_timeout)
{
    struct action_args *a = parse_action(req, route, want_timeout, want_timeout);
    if (!a)
        return;
    a->run = run;
    api_run_async(req, empty_action_job, a, free);
}

static int do_delete(struct sb_registry *reg, const struct action_args *a, struct sb_err *err)
{
    return registry_destroy(reg, a->org_id, a->id, "deleted", err);
}

static int do_set_timeout(struct sb_registry *reg, const struct action_args *a, struct sb_err *err)
{
    return registry_set_timeout(reg, a->org_id, a->id, a->timeout_s, err);
}

static int do_pause(struct sb_registry *reg, const struct action_args *a, struct sb_err *err)
{
    return registry_pause(reg, a->org_id, a->id, err);
}

void api_sandbox_delete(struct sb_request *req)
{
    run_empty_action(req, "DELETE /sandboxes/:id", do_delete, 0);
}

void api_sandbox_timeout(struct sb_request *req)
{
    run_empty_action(req, "POST /sandboxes/:id/timeout", do_set_timeout, 1);
}

void api_sandbox_pause(struct sb_request *req)
{
    run_empty_action(req, "POST /sandboxes/:id/pause", do_pause, 0);
}

static void connect_job(struct sb_request *req, void *p)
{
    struct action_args *a = p;
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    if (registry_connect(api_app(req)->registry, a->org_id, a->id, a->timeout_s, &rec, &err) < 0) {
        sb_request_complete_error(req, &err);
        return;
    }
    sb_request_complete_json(req, 200, sandbox_json(&rec));
    store_sandbox_rec_clear(&rec);
}

void api_sandbox_connect(struct sb_request *req)
{
    struct action_args *a = parse_action(req, "POST /sandboxes/:id/connect", 1, 0);
    if (a)
        api_run_async(req, connect_job, a, free);
}
