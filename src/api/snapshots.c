/*
 * snapshots.c - the snapshot and fork routes over registry_snapshot
 * (runtime/registry.h): validation on the loop thread, copies and creates
 * on a worker (api_run_async). See snapshots.h.
 *
 * Owns each job's arguments until the job has run.
 */
#include "api/snapshots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/async.h"
#include "api/validate.h"
#include "core/id.h"
#include "runtime/registry.h"

struct snapshot_job {
    char org_id[SB_ORG_ID_MAX];
    char id[SB_TEMPLATE_NAME_MAX];      /* a sandbox id, or a snapshot's */
    char label[SB_TEMPLATE_NAME_MAX];   /* "" = none */
    int count, timeout_s;
    api_sandbox_shape_fn shape;
    api_fork_prepare_fn prepare;
};

static struct snapshot_job *job_new(struct sb_request *req, const char *id)
{
    struct snapshot_job *j = calloc(1, sizeof *j);
    if (!j) {
        struct sb_err err;
        sb_err_set(&err, 500, "out of memory");
        sb_respond_error(req, &err);
        return NULL;
    }
    snprintf(j->org_id, sizeof j->org_id, "%s", req->org_id);
    snprintf(j->id, sizeof j->id, "%s", id);
    return j;
}

static json_t *snapshot_shape(const struct sb_template *t)
{
    json_t *names = json_array();
    if (t->snapshot_name[0])
        json_array_append_new(names, json_string(t->snapshot_name));
    return json_pack("{s:s, s:o, s:s, s:s, s:s}", "snapshotID", t->name, "names", names, "sandboxID",
                     t->snapshot_of, "templateID", t->name, "createdAt", t->created_at);
}

/* ---- create */

static void create_job(struct sb_request *req, void *p)
{
    struct snapshot_job *j = p;
    struct sb_app *app = api_app(req);
    struct sb_err err = {0};
    char name[SB_TEMPLATE_NAME_MAX];
    struct sb_template tpl;
    if (registry_snapshot(app->registry, j->org_id, j->id, j->label[0] ? j->label : NULL, name, &err) < 0 ||
        template_load(app->cfg.data_dir, name, &tpl, &err) < 0) {
        sb_request_complete_error(req, &err);
        return;
    }
    sb_request_complete_json(req, 201, snapshot_shape(&tpl));
    template_clear(&tpl);
}

void api_snapshot_create(struct sb_request *req)
{
    static const char *const fields[] = {"name", NULL};
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    const char *label = NULL;
    json_t *body = NULL;
    if (api_check_sandbox_id(id, &err) < 0 || !(body = sb_request_json(req, 1, &err)) ||
        api_check_fields(body, fields, "POST /sandboxes/:id/snapshots", &err) < 0 ||
        api_field_string(body, "name", 0, NULL, &label, &err) < 0 ||
        (label && !sb_name_valid(label) &&
         sb_err_set(&err, 400, "invalid snapshot name '%.64s': use " SB_NAME_RULE, label) < 0)) {
        json_decref(body);
        sb_respond_error(req, &err);
        return;
    }
    struct snapshot_job *j = job_new(req, id);
    if (j && label)
        snprintf(j->label, sizeof j->label, "%s", label);
    json_decref(body);
    if (j)
        api_run_async(req, create_job, j, free);
}

/* ---- list */

void api_snapshot_list(struct sb_request *req)
{
    struct sb_app *app = api_app(req);
    struct sb_err err = {0};
    const char *sandbox_id = sb_request_query(req, "sandboxID");
    const char *name = sb_request_query(req, "name");
    const char *limit_text = sb_request_query(req, "limit");
    const char *token = sb_request_query(req, "nextToken");
    long limit = API_SNAPSHOT_PAGE_MAX;
    if (limit_text) {
        char *end;
        limit = strtol(limit_text, &end, 10);
        if (!*limit_text || *end || limit < 1 || limit > API_SNAPSHOT_PAGE_MAX) {
            sb_err_set(&err, 400, "invalid limit: use 1-%d", API_SNAPSHOT_PAGE_MAX);
            sb_respond_error(req, &err);
            return;
        }
    }
    if (token && *token && !template_name_valid(token)) {
        sb_err_set(&err, 400, "invalid nextToken: pass the X-Next-Token of the previous page");
        sb_respond_error(req, &err);
        return;
    }
    struct sb_template *list = NULL;
    size_t count = 0;
    if (template_list(app->cfg.data_dir, &list, &count, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    long shown = 0;
    int more = 0;
    const char *last = NULL;
    for (size_t i = 0; i < count && !more; i++) {
        const struct sb_template *t = &list[i];
        if (!t->snapshot_of[0] || !template_owned_by(t, req->org_id) ||
            (sandbox_id && *sandbox_id && strcmp(t->snapshot_of, sandbox_id) != 0) ||
            (name && *name && strcmp(t->snapshot_name, name) != 0 && strcmp(t->name, name) != 0) ||
            (token && *token && strcmp(t->name, token) <= 0))
            continue;
        if (shown == limit) {
            more = 1;
            break;
        }
        json_array_append_new(arr, snapshot_shape(t));
        last = t->name;
        shown++;
    }
    char next[SB_TEMPLATE_NAME_MAX] = "";
    if (more && last)
        snprintf(next, sizeof next, "%s", last);
    template_list_free(list, count);
    sb_respond_json_header(req, 200, arr, more ? "X-Next-Token" : NULL, next);
}

/* ---- delete */

static void delete_job(struct sb_request *req, void *p)
{
    struct snapshot_job *j = p;
    struct sb_app *app = api_app(req);
    struct sb_err err = {0};
    struct sb_template tpl;
    int rc = template_load(app->cfg.data_dir, j->id, &tpl, &err);
    if (rc < 0 || !template_visible(&tpl, j->org_id)) {
        sb_err_set(&err, 404, "snapshot %s not found", j->id);
        rc = -1;
    } else if (!tpl.org_id[0]) {
        sb_err_set(&err, 403, "template %s is shared by every org: an administrator removes it "
                              "(`sandbase template rm %s`)", j->id, j->id);
        rc = -1;
    }
    template_clear(&tpl);       /* safe after any template_load */
    if (rc == 0)
        rc = template_remove(app->cfg.data_dir, j->id, &err);
    if (rc < 0)
        sb_request_complete_error(req, &err);
    else
        sb_request_complete_empty(req, 204);
}

void api_snapshot_delete(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    if (!id || !template_name_valid(id)) {
        sb_err_set(&err, 404, "snapshot %.64s not found", id ? id : "");
        sb_respond_error(req, &err);
        return;
    }
    struct snapshot_job *j = job_new(req, id);
    if (j)
        api_run_async(req, delete_job, j, free);
}

/* ---- fork */

static json_t *fork_error(const struct sb_err *err)
{
    return json_pack("{s:{s:i, s:s}}", "error", "code", err->status ? err->status : 500, "message", err->msg);
}

/* One sandbox from the snapshot, made like its source (metadata, env,
 * network settings, with an address and a traffic token of its own). */
static json_t *fork_one(struct sb_request *req, const struct snapshot_job *j, const struct sb_sandbox_rec *src,
                        const char *snapshot)
{
    struct sb_err err = {0};
    struct sb_net_policy net;
    if (netpolicy_from_text(src->network_json, &net, &err) < 0)
        return fork_error(&err);
    net.address[0] = '\0';
    net.traffic_token[0] = '\0';
    struct api_create c;
    memset(&c, 0, sizeof c);
    snprintf(c.org_id, sizeof c.org_id, "%s", j->org_id);
    snprintf(c.template_id, sizeof c.template_id, "%s", snapshot);
    c.timeout_s = j->timeout_s;
    c.shape = j->shape;
    if (j->prepare)
        j->prepare(src, &c);
    struct sb_create_request creq = {
        .org_id = c.org_id, .template_id = c.template_id, .timeout_s = c.timeout_s,
        .metadata_json = src->metadata_json, .env_json = src->env_json, .e2b_json = c.e2b_json,
        .envd_token = c.envd_token, .pause_on_timeout = src->pause_on_timeout, .network = &net,
    };
    struct sb_sandbox_rec rec;
    json_t *item;
    if (registry_create(api_app(req)->registry, &creq, &rec, &err) < 0) {
        item = fork_error(&err);
    } else {
        item = json_pack("{s:o}", "sandbox", j->shape(&rec));
        store_sandbox_rec_clear(&rec);
    }
    free(c.e2b_json);
    return item;
}

static void fork_job(struct sb_request *req, void *p)
{
    struct snapshot_job *j = p;
    struct sb_app *app = api_app(req);
    struct sb_err err = {0};
    char snapshot[SB_TEMPLATE_NAME_MAX];
    struct sb_sandbox_rec src;
    if (registry_snapshot(app->registry, j->org_id, j->id, NULL, snapshot, &err) < 0 ||
        store_sandbox_get(app->store, j->org_id, j->id, &src, &err) < 0) {
        sb_request_complete_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < j->count; i++)
        json_array_append_new(arr, fork_one(req, j, &src, snapshot));
    store_sandbox_rec_clear(&src);
    sb_request_complete_json(req, 201, arr);
}

void api_fork(struct sb_request *req, api_sandbox_shape_fn shape, api_fork_prepare_fn prepare)
{
    static const char *const fields[] = {"timeout", "count", NULL};
    struct sb_app *app = api_app(req);
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    long long timeout = 0, count = 0;
    json_t *body = NULL;
    if (api_check_sandbox_id(id, &err) < 0 || !(body = sb_request_json(req, 1, &err)) ||
        api_check_fields(body, fields, "POST /sandboxes/:id/fork", &err) < 0 ||
        api_field_int(body, "timeout", app->cfg.default_timeout_s, 1, app->cfg.max_timeout_s, &timeout, &err) < 0 ||
        api_field_int(body, "count", 1, 1, API_FORK_MAX, &count, &err) < 0) {
        json_decref(body);
        sb_respond_error(req, &err);
        return;
    }
    json_decref(body);
    struct snapshot_job *j = job_new(req, id);
    if (!j)
        return;
    j->count = (int)count;
    j->timeout_s = (int)timeout;
    j->shape = shape;
    j->prepare = prepare;
    api_run_async(req, fork_job, j, free);
}
