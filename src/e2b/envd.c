/*
 * envd.c - envd on sandbase's port: the dialect that tells its requests
 * from the control plane's (E2b-Sandbox-Id), the sandbox and access-token
 * check every envd route starts with, the user a call names (Basic auth),
 * GET /health, and the answer to a Connect method that is not served yet.
 *
 * Owns nothing. The token check is the only credential envd has (no API
 * key reaches it): a sandbox created secure (every v2 create by default)
 * refuses every envd call but GET /health without its X-Access-Token.
 */
#include <sodium.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/ports.h"
#include "api/validate.h"
#include "core/apikey.h"
#include "e2b/e2b.h"
#include "e2b/envd.h"

int e2b_request_dialect(void *app_ctx, const struct sb_request *req, const char *api_key)
{
    /* ports first: E2b-Sandbox-Id with a port other than envd's is the proxy's */
    switch (api_port_form(app_ctx, req)) {
    case API_PORT_HOST:
    case API_PORT_HEADERS:
        return E2B_DIALECT_PORT_OPEN;
    case API_PORT_PATH:
        return E2B_DIALECT_PORT_PATH;
    default:
        break;
    }
    if (sb_request_header(req, "E2b-Sandbox-Id"))
        return E2B_DIALECT_ENVD;
    /* a signed /files URL (uploadUrl(), downloadUrl()) fetched as it is: the
     * signature names its sandbox (envd_files.c) */
    if (req->path && strcmp(req->path, "/files") == 0 && sb_request_query(req, "signature"))
        return E2B_DIALECT_ENVD;
    return apikey_spelled_e2b(api_key) ? E2B_DIALECT_CONTROL : E2B_DIALECT_SANDBASE;
}

int e2b_envd_token_ok(const struct sb_sandbox_rec *rec, const char *given)
{
    return !rec->envd_token[0] || api_token_matches(rec->envd_token, given);
}

int e2b_envd_sandbox(const struct sb_request *req, int check_token, struct sb_sandbox_rec *rec,
                     struct sb_err *err)
{
    const char *id = sb_request_header(req, "E2b-Sandbox-Id");
    struct sb_err ignored = {0};
    if (!id || api_check_sandbox_id(id, &ignored) < 0 ||
        store_sandbox_get(api_app(req)->store, NULL, id, rec, err) < 0)
        return sb_err_set(err, 502, "sandbox %.40s not found", id ? id : "");
    int rc = 0;
    if (rec->status == SB_SANDBOX_PAUSED)
        rc = sb_err_set(err, 502, "sandbox %s is paused: connect to it to resume it", rec->id);
    else if (rec->status != SB_SANDBOX_RUNNING)
        rc = sb_err_set(err, 502, "sandbox %s not found%s", rec->id,
                        rec->status == SB_SANDBOX_STOPPED ? " (it was stopped)" : "");
    else if (check_token && !e2b_envd_token_ok(rec, sb_request_header(req, "X-Access-Token")))
        rc = sb_err_set(err, 401, "invalid or missing X-Access-Token for sandbox %s", rec->id);
    if (rc < 0)
        store_sandbox_rec_clear(rec);
    return rc;
}

static const char *const users[] = {"user", "root"};

int e2b_envd_user_name(const char *name, const char **user, struct sb_err *err)
{
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++)
        if (strcmp(name, users[i]) == 0) {
            *user = users[i];
            return 0;
        }
    return sb_err_set(err, 401, "unknown user '%.32s': this sandbox has user and root", name);
}

int e2b_basic_user(const char *authorization, const char **user, struct sb_err *err)
{
    *user = users[0];
    if (!authorization)
        return 0;
    if (strncasecmp(authorization, "Basic ", 6) != 0)
        return sb_err_set(err, 401, "invalid Authorization header: expected Basic base64(\"<user>:\")");
    const char *b64 = authorization + 6;
    char name[64];
    size_t len = 0;
    if (strlen(b64) > 4 * (sizeof name / 3) ||
        sodium_base642bin((unsigned char *)name, sizeof name - 1, b64, strlen(b64), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return sb_err_set(err, 401, "invalid Authorization header: the credentials are not base64");
    name[len] = '\0';
    char *colon = memchr(name, ':', len);
    if (!colon || colon[1] != '\0')
        return sb_err_set(err, 401, "invalid Authorization header: expected \"<user>:\" with an empty password");
    *colon = '\0';
    return e2b_envd_user_name(name, user, err);
}

int e2b_envd_user(const struct sb_request *req, const char **user, struct sb_err *err)
{
    return e2b_basic_user(sb_request_header(req, "Authorization"), user, err);
}

/* 204 while envd can be reached, 502 otherwise; no token needed. */
void e2b_envd_health(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    if (e2b_envd_sandbox(req, 0, &rec, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    store_sandbox_rec_clear(&rec);
    sb_respond_empty(req, 204);
}

/* A method envd has and sandbase does not serve yet: 501, which a Connect
 * route renders as unimplemented. */
void e2b_envd_unimplemented(struct sb_request *req)
{
    struct sb_err err;
    sb_err_set(&err, 501, "%s %s is not served by sandbase's envd yet (docs/E2B.md)", req->method, req->path);
    sb_respond_error(req, &err);
}
