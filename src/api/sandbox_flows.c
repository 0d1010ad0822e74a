/*
 * sandbox_flows.c - create, the 204 actions and connect, shared by every
 * dialect of the control plane (see sandbox_flows.h).
 *
 * A create is first offered to the warm pool right here on the loop thread
 * (registry_try_create_pooled never blocks); otherwise it, like every
 * action, runs in the registry on a worker (api_run_async), which completes
 * the request. Owns each job's arguments until the job has run.
 */
#include "api/sandbox_flows.h"
#include "api/ports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/async.h"
#include "api/validate.h"
#include "runtime/registry.h"

void api_create_free(void *p)
{
    struct api_create *c = p;
    if (!c)
        return;
    free(c->metadata);
    free(c->env);
    free(c->e2b_json);
    free(c->network);
    free(c);
}

int api_create_network(json_t *body, struct api_create *c, struct sb_err *err)
{
    json_t *snake = json_object_get(body, "allow_internet_access");
    json_t *camel = json_object_get(body, "allowInternetAccess");
    json_t *network = json_object_get(body, "network");
    if (snake && camel)
        return sb_err_set(err, 400, "give allow_internet_access or allowInternetAccess, not both");
    if (!snake && !camel && !network)
        return 0;
    if (camel && !json_is_boolean(camel))
        return sb_err_set(err, 400, "invalid field allowInternetAccess: must be a boolean");
    struct sb_net_policy *p = malloc(sizeof *p);
    if (!p)
        return sb_err_set(err, 500, "out of memory");
    if (netpolicy_parse(snake ? snake : camel, network, p, err) < 0) {
        free(p);
        return -1;
    }
    free(c->network);
    c->network = p;
    return 0;
}

int api_create_parse(struct sb_request *req, json_t *body, struct api_create *c, struct sb_err *err)
{
    struct sb_app *app = api_app(req);
    const char *template_id = NULL;
    long long timeout = 0;
    if (api_field_string(body, "templateID", 1, NULL, &template_id, err) < 0 ||
        api_field_int(body, "timeout", app->cfg.default_timeout_s, 1, app->cfg.max_timeout_s, &timeout,
                      err) < 0 ||
        api_field_string_map(body, "metadata", &c->metadata, err) < 0 ||
        api_field_env(body, "envVars", API_SANDBOX_ENV_MAX, &c->env, NULL, err) < 0 ||
        api_create_network(body, c, err) < 0 || api_check_template(app, req->org_id, template_id, err) < 0)
        return -1;
    snprintf(c->org_id, sizeof c->org_id, "%s", req->org_id);
    snprintf(c->template_id, sizeof c->template_id, "%s", template_id);
    c->timeout_s = (int)timeout;
    return 0;
}

void api_create_refuse(struct sb_request *req, struct api_create *c, json_t *body, struct sb_err *err)
{
    if (!c && err->status == 0)
        sb_err_set(err, 500, "out of memory");
    api_create_free(c);
    json_decref(body);
    sb_respond_error(req, err);
}

void api_add_network_json(json_t *obj, const char *text)
{
    json_t *net = text && *text ? json_loads(text, 0, NULL) : NULL;
    if (!obj) {
        json_decref(net);
        return;
    }
    if (!json_is_object(net)) {
        json_decref(net);
        net = json_pack("{s:b, s:[], s:[], s:b}", "allowInternetAccess", 0, "allowOut", "denyOut",
                        "allowPublicTraffic", 1);
    }
    json_object_set(obj, "allowInternetAccess", json_object_get(net, "allowInternetAccess"));
    json_object_del(net, "allowInternetAccess");
    json_object_del(net, "trafficAccessToken");     /* shown at its own place, or not at all */
    json_object_set_new(obj, "network", net);
}

void api_traffic_token(const struct sb_sandbox_rec *rec, char *out, size_t len)
{
    int allowed;
    struct sb_err ignored;
    if (netpolicy_traffic_from_text(rec->network_json, &allowed, out, len, &ignored) < 0)
        out[0] = '\0';     /* unreadable settings hold no token to show */
}

void api_add_ports_json(json_t *obj, const struct sb_sandbox_rec *rec)
{
    if (!obj)
        return;
    char token[64];
    api_traffic_token(rec, token, sizeof token);
    json_object_set_new(obj, "ports", api_ports_json(rec->id));
    if (token[0])
        json_object_set_new(obj, "trafficAccessToken", json_string(token));
}

/* Only private templates (snapshots, named SB_SNAPSHOT_PREFIX...) have an
 * owner to check, so other names cost one stat(2) on the loop as before;
 * the registry checks the owner again when it loads the template. */
static int template_usable(const struct sb_app *app, const char *org_id, const char *name)
{
    uint64_t identity;
    if (template_identity(app->cfg.data_dir, name, &identity) < 0)
        return 0;
    if (strncmp(name, SB_SNAPSHOT_PREFIX, strlen(SB_SNAPSHOT_PREFIX)) != 0)
        return 1;
    struct sb_template tpl;
    struct sb_err ignored = {0};
    int ok = template_load(app->cfg.data_dir, name, &tpl, &ignored) == 0 && template_visible(&tpl, org_id);
    template_clear(&tpl);
    return ok;
}

int api_check_template(const struct sb_app *app, const char *org_id, const char *name, struct sb_err *err)
{
    if (template_usable(app, org_id, name))
        return 0;
    struct sb_template *list = NULL;
    size_t count = 0;
    struct sb_err lerr = {0};
    char names[256] = "";
    size_t used = 0;
    size_t shown = 0;
    if (template_list(app->cfg.data_dir, &list, &count, &lerr) == 0)
        for (size_t i = 0; i < count && used < sizeof names; i++)
            if (!list[i].org_id[0])     /* shared ones: an org's snapshots are listed at /snapshots */
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", shown++ ? ", " : "",
                                         list[i].name);
    template_list_free(list, count);
    if (shown == 0)
        return sb_err_set(err, 400, "unknown template: %.64s (no templates are installed; build one "
                                    "with `sandbase template build NAME --from host|debian`)", name);
    return sb_err_set(err, 400, "unknown template: %.64s (available: %s)", name, names);
}

static struct sb_create_request create_request_of(const struct api_create *c)
{
    return (struct sb_create_request){.org_id = c->org_id, .template_id = c->template_id,
                                      .timeout_s = c->timeout_s, .metadata_json = c->metadata,
                                      .env_json = c->env, .network = c->network,
                                      .e2b_json = c->e2b_json, .envd_token = c->envd_token,
                                      .pause_on_timeout = c->pause_on_timeout};
}

static void create_job(struct sb_request *req, void *p)
{
    struct api_create *c = p;
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    struct sb_create_request creq = create_request_of(c);
    if (registry_create(api_app(req)->registry, &creq, &rec, &err) < 0) {
        sb_request_complete_error(req, &err);
        return;
    }
    sb_request_complete_json(req, 201, c->shape(&rec));
    store_sandbox_rec_clear(&rec);
}

void api_create_run(struct sb_request *req, struct api_create *c)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    struct sb_create_request creq = create_request_of(c);
    int handled = registry_try_create_pooled(api_app(req)->registry, &creq, &rec, &err);
    if (handled == 0) {
        api_run_async(req, create_job, c, api_create_free);
        return;
    }
    if (handled < 0)
        sb_respond_error(req, &err);
    else
        sb_respond_json(req, 201, c->shape(&rec));
    if (handled > 0)
        store_sandbox_rec_clear(&rec);
    api_create_free(c);
}

/* ---- actions on one sandbox ---- */

struct action_args {
    char org_id[SB_ORG_ID_MAX];
    char id[32];
    enum api_action action;
    int timeout_s;                  /* -1 = not given */
    api_sandbox_shape_fn shape;     /* connect */
    int status_resumed;             /* connect */
};

static struct action_args *action_args_new(struct sb_request *req, const char *id, int timeout_s)
{
    struct action_args *a = calloc(1, sizeof *a);
    if (!a) {
        struct sb_err err;
        sb_err_set(&err, 500, "out of memory");
        sb_respond_error(req, &err);
        return NULL;
    }
    snprintf(a->org_id, sizeof a->org_id, "%s", req->org_id);
    snprintf(a->id, sizeof a->id, "%s", id);
    a->timeout_s = timeout_s;
    return a;
}

static void action_job(struct sb_request *req, void *p)
{
    struct action_args *a = p;
    struct sb_registry *reg = api_app(req)->registry;
    struct sb_err err = {0};
    int rc;
    switch (a->action) {
    case API_ACTION_DELETE: rc = registry_destroy(reg, a->org_id, a->id, "deleted", &err); break;
    case API_ACTION_TIMEOUT: rc = registry_set_timeout(reg, a->org_id, a->id, a->timeout_s, &err); break;
    case API_ACTION_PAUSE: rc = registry_pause(reg, a->org_id, a->id, &err); break;
    default: rc = sb_err_set(&err, 500, "unknown sandbox action %d", (int)a->action); break;
    }
    if (rc < 0)
        sb_request_complete_error(req, &err);
    else
        sb_request_complete_empty(req, 204);
}

void api_action_run(struct sb_request *req, const char *id, enum api_action action, int timeout_s)
{
    struct action_args *a = action_args_new(req, id, timeout_s);
    if (!a)
        return;
    a->action = action;
    api_run_async(req, action_job, a, free);
}

static void connect_job(struct sb_request *req, void *p)
{
    struct action_args *a = p;
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    int resumed = 0;
    if (registry_connect(api_app(req)->registry, a->org_id, a->id, a->timeout_s, &rec, &resumed, &err) < 0) {
        sb_request_complete_error(req, &err);
        return;
    }
    sb_request_complete_json(req, resumed ? a->status_resumed : 200, a->shape(&rec));
    store_sandbox_rec_clear(&rec);
}

void api_connect_run(struct sb_request *req, const char *id, int timeout_s, api_sandbox_shape_fn shape,
                     int status_resumed)
{
    struct action_args *a = action_args_new(req, id, timeout_s);
    if (!a)
        return;
    a->shape = shape;
    a->status_resumed = status_resumed;
    api_run_async(req, connect_job, a, free);
}

/* ---- PUT /sandboxes/:id/network ---- */

struct network_args {
    char org_id[SB_ORG_ID_MAX];
    char id[32];
    struct sb_net_policy policy;
};

static void network_job(struct sb_request *req, void *p)
{
    struct network_args *a = p;
    struct sb_err err = {0};
    if (registry_update_network(api_app(req)->registry, a->org_id, a->id, &a->policy, &err) < 0)
        sb_request_complete_error(req, &err);
    else
        sb_request_complete_empty(req, 204);
}

void api_network_update_run(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    struct network_args *a = calloc(1, sizeof *a);
    json_t *body = NULL;
    if (!a)
        sb_err_set(&err, 500, "out of memory");
    else if (api_check_sandbox_id(id, &err) == 0 && (body = sb_request_json(req, 0, &err)))
        netpolicy_parse_update(body, &a->policy, &err);
    json_decref(body);
    if (err.status) {
        free(a);
        sb_respond_error(req, &err);
        return;
    }
    snprintf(a->org_id, sizeof a->org_id, "%s", req->org_id);
    snprintf(a->id, sizeof a->id, "%s", id);
    api_run_async(req, network_job, a, free);
}
