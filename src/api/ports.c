/*
 * ports.c - the front of the port proxy (see ports.h): recognising a port
 * request, checking the sandbox and its traffic token, and having the
 * runtime open the socket inside the sandbox; api/port_proxy.c then
 * carries the bytes.
 *
 * On the loop the handler reads the target (400 for a bad id or port),
 * copies the token header and starts the proxy (which takes the body as it
 * comes). A bodiless request to a port with an idle keep-alive connection
 * (port_pool.c) is checked on the loop (one store read) and sent on it;
 * otherwise a worker reads the row (org-scoped for the path form),
 * refuses a sandbox that is not running (404 path form, 502 otherwise, as
 * E2B's proxy; paused says how to resume) or whose token does not match
 * (403, constant-time compare), and opens the socket (port_connect.c); the
 * result is posted back to the loop.
 *
 * Owns: the configured URL parts (set once before serving, read-only after).
 */
#include "api/ports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/app.h"
#include "api/port_grants.h"
#include "api/port_pool.h"
#include "api/port_proxy.h"
#include "api/validate.h"
#include "core/log.h"
#include "runtime/netpolicy.h"
#include "runtime/port_connect.h"

#define TOKEN_HEADER "E2b-Traffic-Access-Token"

static char ports_domain[128] = "localhost";
static char ports_domain_port[160] = "localhost";
static unsigned ports_api_port;

void api_ports_configure(const char *domain, unsigned api_port)
{
    snprintf(ports_domain, sizeof ports_domain, "%s", domain);
    ports_api_port = api_port;
    snprintf(ports_domain_port, sizeof ports_domain_port, "%s:%u", domain, api_port);
}

const char *api_ports_domain(void) { return ports_domain_port; }

void api_ports_on_event(void *arg, const struct sb_event *ev) { port_grants_on_event(arg, ev); }

json_t *api_ports_json(const char *id)
{
    char url[256], path_url[256];
    snprintf(url, sizeof url, "http://{port}-%s.%s:%u", id, ports_domain, ports_api_port);
    snprintf(path_url, sizeof path_url, "http://%s:%u/sandboxes/%s/ports/{port}/", ports_domain,
             ports_api_port, id);
    return json_pack("{s:s, s:s, s:s}", "url", url, "pathUrl", path_url, "domain", ports_domain_port);
}

/* ---- which requests ---- */

static int header_pair(const struct sb_request *req, char id[API_PORT_ID_MAX], unsigned *port)
{
    const char *sid = sb_request_header(req, "E2b-Sandbox-Id");
    const char *sport = sb_request_header(req, "E2b-Sandbox-Port");
    if (!sid || !sport || api_port_number(sport, strlen(sport), port) < 0 || *port == API_ENVD_PORT)
        return 0;
    if (api_port_id(sid, strlen(sid), id) < 0)
        snprintf(id, API_PORT_ID_MAX, "?");     /* a bad id: the handler says so */
    return 1;
}

int api_port_form(const struct sb_app *app, const struct sb_request *req)
{
    char id[API_PORT_ID_MAX];
    unsigned port;
    const char *rest;
    if (api_port_parse_host(sb_request_header(req, "Host"), app->cfg.domain, id, &port))
        return API_PORT_HOST;
    if (header_pair(req, id, &port))
        return API_PORT_HEADERS;
    if (api_port_parse_path(sb_request_raw_target(req), id, &port, &rest) != 0)
        return API_PORT_PATH;
    return API_PORT_NONE;
}

/* ---- the worker's part ---- */

struct port_job {
    struct sb_app *app;
    struct port_proxy *proxy;
    int path_form;
    char org_id[SB_ORG_ID_MAX];     /* path form: the caller's org */
    char id[API_PORT_ID_MAX];
    unsigned port;
    char token[128];
    int has_token;
    /* the result */
    int fd, pending;
    struct sb_err err;
};

/* What the row says (running; its org and traffic settings) as a grant,
 * or why the proxy may not go to it. */
static int read_grant(struct port_job *job, struct port_grant *grant, struct sb_err *err)
{
    struct sb_sandbox_rec rec;
    const char *org = job->path_form ? job->org_id : NULL;
    int not_found_status = job->path_form ? 404 : 502;
    if (store_sandbox_get(job->app->store, org, job->id, &rec, err) < 0) {
        if (err->status == 404)
            sb_err_set(err, not_found_status, "sandbox not found: %s", job->id);
        return -1;
    }
    int rc = 0;
    struct sb_err perr = {0};
    if (rec.status == SB_SANDBOX_PAUSED)
        rc = sb_err_set(err, job->path_form ? 409 : 502,
                        "sandbox %s is paused: connect to it (POST /sandboxes/%s/connect) to resume it "
                        "before reaching its ports", rec.id, rec.id);
    else if (rec.status != SB_SANDBOX_RUNNING)
        rc = sb_err_set(err, not_found_status, "sandbox not found: %s%s", rec.id,
                        rec.status == SB_SANDBOX_STOPPED ? " (it was stopped)" : "");
    else if (netpolicy_traffic_from_text(rec.network_json, &grant->public_traffic, grant->token,
                                         sizeof grant->token, &perr) < 0)
        rc = sb_err_set(err, 500, "sandbox %s: %s", rec.id, perr.msg);
    snprintf(grant->org_id, sizeof grant->org_id, "%s", rec.org_id);
    store_sandbox_rec_clear(&rec);
    return rc;
}

/* Whether the request may use the grant: its org (path form) and token. */
static int grant_allows(const struct port_job *job, const struct port_grant *grant, struct sb_err *err)
{
    if (job->path_form && strcmp(grant->org_id, job->org_id) != 0)
        return sb_err_set(err, 404, "sandbox not found: %s", job->id);
    if (!grant->public_traffic &&
        (!grant->token[0] || !api_token_matches(grant->token, job->has_token ? job->token : NULL)))
        return sb_err_set(err, 403, "sandbox %s does not allow public traffic: send its "
                          "trafficAccessToken in the e2b-traffic-access-token header", job->id);
    return 0;
}

/* The row's verdict: 0 when the proxy may go to it. Any thread. */
static int check_sandbox(struct port_job *job, struct sb_err *err)
{
    struct port_grant grant;
    return read_grant(job, &grant, err) < 0 ? -1 : grant_allows(job, &grant, err);
}

/* The same on the loop, through the grants' memory (port_grants.h). */
static int check_sandbox_on_loop(struct port_job *job, struct sb_err *err)
{
    struct port_grant grant;
    if (!port_grants_lookup(job->id, &grant)) {
        unsigned long long epoch = port_grants_epoch();
        if (read_grant(job, &grant, err) < 0)
            return -1;
        port_grants_remember(job->id, &grant, epoch);
    }
    return grant_allows(job, &grant, err);
}

static void on_connected(struct sb_loop *loop, void *arg)
{
    struct port_job *job = arg;
    port_proxy_connected(job->proxy, job->fd, job->pending, &job->err);
    free(job);
}

static void connect_job(void *arg)
{
    struct port_job *job = arg;
    job->fd = -1;
    if (check_sandbox(job, &job->err) == 0)
        port_connect(job->app->registry, job->id, job->port, &job->fd, &job->pending, &job->err);
    if (sb_loop_post(job->app->loop, on_connected, job) < 0) {
        sb_error("port proxy: cannot post a connect result (out of memory)");
        if (job->fd >= 0)
            close(job->fd);
        free(job);
    }
}

/* ---- the handlers ---- */

static void proxy_request(struct sb_request *req, int form)
{
    struct sb_app *app = api_app(req);
    struct sb_err err = {0};
    struct port_job *job = calloc(1, sizeof *job);
    if (!job) {
        sb_err_set(&err, 500, "out of memory");
        sb_respond_error(req, &err);
        return;
    }
    job->app = app;
    job->path_form = form == API_PORT_PATH;
    const char *raw = sb_request_raw_target(req);
    const char *target = raw && raw[0] == '/' ? raw : "/";
    char path_target[8192];
    int ok = 0;
    if (form == API_PORT_HOST) {
        ok = api_port_parse_host(sb_request_header(req, "Host"), app->cfg.domain, job->id, &job->port);
    } else if (form == API_PORT_HEADERS) {
        ok = header_pair(req, job->id, &job->port) && strcmp(job->id, "?") != 0;
    } else {
        const char *rest = "";
        ok = api_port_parse_path(raw, job->id, &job->port, &rest) == 1;
        if (ok && snprintf(path_target, sizeof path_target, "%s%s", rest[0] == '/' ? "" : "/", rest) >=
                      (int)sizeof path_target)
            ok = 0;
        target = path_target;
        snprintf(job->org_id, sizeof job->org_id, "%s", req->org_id);
    }
    if (!ok) {
        free(job);
        sb_err_set(&err, 400, "bad sandbox port target: expected a sandbox id (sbx_... or sbx-...) "
                   "and a port 1-65535");
        sb_respond_error(req, &err);
        return;
    }
    const char *token = sb_request_header(req, TOKEN_HEADER);
    if (token && strlen(token) < sizeof job->token) {
        snprintf(job->token, sizeof job->token, "%s", token);
        job->has_token = 1;
    }
    job->proxy = port_proxy_start(req, job->id, job->port, target, job->path_form,
                                  app->cfg.ports_timeout_s, &err);
    if (!job->proxy) {
        free(job);
        sb_respond_error(req, &err);
        return;
    }
    /* A bodiless request to a port with an idle connection: checked and
     * sent here, no worker (a request with a body always gets a fresh
     * connection, so that a pooled one its server closes at this moment
     * costs nothing that cannot be asked again). */
    const char *length = sb_request_header(req, "Content-Length");
    int bodiless = !sb_request_header(req, "Transfer-Encoding") && (!length || strcmp(length, "0") == 0);
    if (bodiless && port_pool_has(job->id, job->port)) {
        if (check_sandbox_on_loop(job, &err) < 0) {
            port_proxy_connected(job->proxy, -1, 0, &err);
            free(job);
            return;
        }
        int fd = port_pool_take(job->id, job->port);
        if (fd >= 0) {
            port_proxy_reused(job->proxy, fd);
            free(job);
            return;
        }
    }
    if (sb_worker_submit(app->workers, connect_job, job) < 0) {
        sb_err_set(&err, 503, "server is busy: try again");
        port_proxy_connected(job->proxy, -1, 0, &err);
        free(job);
    }
}

void api_port_proxy_open(struct sb_request *req)
{
    char id[API_PORT_ID_MAX];
    unsigned port;
    int form = api_port_parse_host(sb_request_header(req, "Host"), api_app(req)->cfg.domain, id, &port)
                   ? API_PORT_HOST
                   : API_PORT_HEADERS;
    proxy_request(req, form);
}

void api_port_proxy_path(struct sb_request *req) { proxy_request(req, API_PORT_PATH); }
