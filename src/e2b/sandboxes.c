/*
 * sandboxes.c - E2B's control plane for one sandbox: create (v2, and v1
 * for e2b_ keys), GET (SandboxDetail), DELETE, timeout, pause and connect
 * (v2, and v1's connect and resume for e2b_ keys), and updateNetwork's
 * PUT :id/network.
 *
 * Validation and E2B's shapes are here; the flows are api/'s
 * (sandbox_flows.h), so an E2B sandbox has the one lifecycle SandBase's
 * has. Errors are E2B's {"code": <status>, "message"} with the registry's
 * statuses: 404 unknown, stopped or another org's (the SDK's
 * NotFoundError / kill() -> false), 409 pause of a paused sandbox (pause()
 * -> false), 429 the org's cap (RateLimitError), 401 from the server.
 * Fields sandbase cannot honour (mcp, iam, volumeMounts, a pause or
 * resume without memory) are 400s, never ignored; allow_internet_access
 * and network are the egress policy SandBase's create takes too.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/sandbox_flows.h"
#include "api/validate.h"
#include "e2b/e2b.h"
#include "e2b/shapes.h"
#include "api/snapshots.h"

#define TOKEN_BYTES 32

/* Booleans and objects of a create that are stored as given (e2b_json). */
static int copy_bool(json_t *body, json_t *out, const char *field, struct sb_err *err)
{
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return sb_err_set(err, 400, "%s must be a boolean", field);
    return json_object_set(out, field, v) == 0 ? 0 : sb_err_set(err, 500, "out of memory");
}

static int copy_object(json_t *body, json_t *out, const char *field, struct sb_err *err)
{
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return sb_err_set(err, 400, "%s must be an object", field);
    return json_object_set(out, field, v) == 0 ? 0 : sb_err_set(err, 500, "out of memory");
}

static int refuse_unsupported(json_t *body, struct sb_err *err)
{
    static const char *const unsupported[] = {"mcp", "iam", "volumeMounts", NULL};
    for (size_t i = 0; unsupported[i]; i++)
        if (json_object_get(body, unsupported[i]))
            return sb_err_set(err, 400, "%s is not supported by sandbase (docs/E2B.md)", unsupported[i]);
    if (json_is_true(json_object_get(body, "autoPause")) && json_is_false(json_object_get(body, "autoPauseMemory")))
        return sb_err_set(err, 400, "autoPauseMemory false is not supported: a paused sandbox always "
                                    "keeps its memory (docs/E2B.md)");
    json_t *resume = json_object_get(body, "autoResume");
    if (resume && !json_is_null(resume)) {
        json_t *enabled = json_object_get(resume, "enabled");
        if (!json_is_object(resume) || json_object_size(resume) != 1 || !json_is_boolean(enabled))
            return sb_err_set(err, 400, "autoResume must be {\"enabled\": <boolean>}");
    }
    return 0;
}

/* E2B's lifecycle settings, stored as given (autoPause is also acted on:
 * create sets pause_on_timeout from it; autoResume is not), plus whether
 * it is secure. allow_internet_access and network are the network
 * policy every create has (api_create_network). */
static char *e2b_settings(json_t *body, int secure_default, int *secure, struct sb_err *err)
{
    static const char *const bools[] = {"autoPause", "autoPauseMemory", NULL};
    static const char *const objects[] = {"autoResume", NULL};
    json_t *out = json_object();
    json_t *v = json_object_get(body, "secure");
    if (!out) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    int rc = 0;
    if (v && !json_is_null(v) && !json_is_boolean(v))
        rc = sb_err_set(err, 400, "secure must be a boolean");
    *secure = v && json_is_boolean(v) ? json_is_true(v) : secure_default;
    for (size_t i = 0; rc == 0 && bools[i]; i++)
        rc = copy_bool(body, out, bools[i], err);
    for (size_t i = 0; rc == 0 && objects[i]; i++)
        rc = copy_object(body, out, objects[i], err);
    if (rc == 0)
        json_object_set_new(out, "secure", json_boolean(*secure));
    char *text = rc == 0 ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (rc == 0 && !text)
        sb_err_set(err, 500, "out of memory");
    json_decref(out);
    return text;
}

/* 64 hex characters from libsodium's CSPRNG. */
static void new_envd_token(char *out, size_t len)
{
    unsigned char raw[TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, len, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
}

static void create(struct sb_request *req, const char *route, int secure_default)
{
    struct sb_err err = {0};
    json_t *body = sb_request_json(req, 0, &err);
    struct api_create *c = calloc(1, sizeof *c);
    int secure = 0;
    static const char *const fields[] = {"templateID", "timeout", "metadata", "envVars", "secure",
                                         "autoPause", "autoPauseMemory", "autoResume",
                                         "allow_internet_access", "network", "mcp", "iam",
                                         "volumeMounts", NULL};
    if (!body || !c || api_check_fields(body, fields, route, &err) < 0 || refuse_unsupported(body, &err) < 0 ||
        !(c->e2b_json = e2b_settings(body, secure_default, &secure, &err)) ||
        api_create_parse(req, body, c, &err) < 0) {
        api_create_refuse(req, c, body, &err);
        return;
    }
    c->pause_on_timeout = json_is_true(json_object_get(body, "autoPause"));
    c->shape = e2b_sandbox_shape;
    if (secure)
        new_envd_token(c->envd_token, sizeof c->envd_token);
    json_decref(body);
    api_create_run(req, c);
}

/* SDK 2.x: every sandbox's envd is secured unless the create says otherwise. */
void e2b_sandbox_create_v2(struct sb_request *req)
{
    create(req, "POST /v2/sandboxes", 1);
}

/* v1's NewSandbox: secure only when asked. */
void e2b_sandbox_create_v1(struct sb_request *req)
{
    create(req, "POST /sandboxes", 0);
}

void e2b_sandbox_get(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    struct sb_sandbox_rec rec;
    if (api_check_sandbox_id(id, &err) < 0 ||
        store_sandbox_get(api_app(req)->store, req->org_id, id, &rec, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    /* E2B shows no sandbox that is not running or paused. */
    if (!e2b_state_name(rec.status)) {
        sb_err_set(&err, 404, "sandbox %s not found%s", id,
                   rec.status == SB_SANDBOX_STOPPED ? " (it was stopped)" : "");
        store_sandbox_rec_clear(&rec);
        sb_respond_error(req, &err);
        return;
    }
    sb_respond_json(req, 200, e2b_detail_shape(&rec));
    store_sandbox_rec_clear(&rec);
}

/* :id, and the body's fields of which only those in allowed are taken;
 * answers the error and returns NULL otherwise. Caller decrefs *body. */
static const char *parse_action(struct sb_request *req, const char *route, const char *const *allowed,
                                json_t **body)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    *body = NULL;
    if (api_check_sandbox_id(id, &err) < 0 || !(*body = sb_request_json(req, 1, &err)) ||
        api_check_fields(*body, allowed, route, &err) < 0) {
        json_decref(*body);
        *body = NULL;
        sb_respond_error(req, &err);
        return NULL;
    }
    return id;
}

/* memory: false asks for a filesystem-only snapshot; the freezer always
 * keeps memory. */
static int check_memory(json_t *body, struct sb_err *err)
{
    json_t *memory = json_object_get(body, "memory");
    if (!memory || json_is_null(memory) || json_is_true(memory))
        return 0;
    if (!json_is_boolean(memory))
        return sb_err_set(err, 400, "memory must be a boolean");
    return sb_err_set(err, 400, "memory: false (a filesystem-only snapshot, resumed by rebooting) "
                                "is not supported: pause keeps the sandbox's memory");
}

void e2b_sandbox_delete(struct sb_request *req)
{
    static const char *const none[] = {NULL};
    json_t *body;
    const char *id = parse_action(req, "DELETE /sandboxes/:id", none, &body);
    json_decref(body);
    if (id)
        api_action_run(req, id, API_ACTION_DELETE, -1);
}

void e2b_sandbox_timeout(struct sb_request *req)
{
    static const char *const fields[] = {"timeout", NULL};
    struct sb_err err = {0};
    long long timeout = 0;
    json_t *body;
    const char *id = parse_action(req, "POST /sandboxes/:id/timeout", fields, &body);
    if (!id)
        return;
    int rc = json_object_get(body, "timeout") ? 0 : sb_err_set(&err, 400, "missing field: timeout");
    if (rc == 0)
        rc = api_field_int(body, "timeout", 0, 0, api_app(req)->cfg.max_timeout_s, &timeout, &err);
    json_decref(body);
    if (rc < 0)
        sb_respond_error(req, &err);
    else
        api_action_run(req, id, API_ACTION_TIMEOUT, (int)timeout);
}

void e2b_sandbox_pause(struct sb_request *req)
{
    static const char *const fields[] = {"memory", NULL};
    struct sb_err err = {0};
    json_t *body;
    const char *id = parse_action(req, "POST /sandboxes/:id/pause", fields, &body);
    if (!id)
        return;
    int rc = check_memory(body, &err);
    json_decref(body);
    if (rc < 0)
        sb_respond_error(req, &err);
    else
        api_action_run(req, id, API_ACTION_PAUSE, -1);
}

/* SandboxNetworkUpdateConfig {allow_internet_access?, allowOut?, denyOut?}
 * is SandBase's body too (netpolicy_parse_update); egressProxy and rules
 * are 400s. 204, 404 unknown (the SDK's SandboxNotFoundError). */
void e2b_sandbox_network(struct sb_request *req)
{
    api_network_update_run(req);
}

/* 200 when it was running, 201 when this resumed it (E2B's statuses). */
void e2b_sandbox_connect(struct sb_request *req)
{
    static const char *const fields[] = {"timeout", "memory", NULL};
    struct sb_err err = {0};
    long long timeout = -1;
    json_t *body;
    const char *id = parse_action(req, "POST /v2/sandboxes/:id/connect", fields, &body);
    if (!id)
        return;
    int rc = check_memory(body, &err);
    if (rc == 0)
        rc = api_field_int(body, "timeout", -1, 0, api_app(req)->cfg.max_timeout_s, &timeout, &err);
    json_decref(body);
    if (rc < 0)
        sb_respond_error(req, &err);
    else
        api_connect_run(req, id, (int)timeout, e2b_sandbox_shape, 201);
}

/* A fork keeps its source's E2B settings and, when the source's envd is
 * secured, gets an access token of its own. */
static void fork_prepare(const struct sb_sandbox_rec *source, struct api_create *c)
{
    c->e2b_json = source->e2b_json ? strdup(source->e2b_json) : NULL;
    if (source->envd_token[0])
        new_envd_token(c->envd_token, sizeof c->envd_token);
}

void e2b_sandbox_fork(struct sb_request *req)
{
    api_fork(req, e2b_sandbox_shape, fork_prepare);
}
