/*
 * sandbox_flows.h - the sandbox lifecycle flows every dialect of the
 * control plane shares: create (from the warm pool on the loop, else cold on
 * a worker), the actions answered 204 (delete, timeout, pause) and connect.
 * SandBase's routes (api/sandboxes.c) and E2B's (src/e2b/) are the
 * validation before them and the shape of the answer; the registry is the
 * one lifecycle underneath. Handlers call these on the loop thread, with
 * ids and fields already validated; each answers the request.
 */
#ifndef SB_API_SANDBOX_FLOWS_H
#define SB_API_SANDBOX_FLOWS_H

#include <jansson.h>

#include "api/app.h"
#include "runtime/netpolicy.h"
#include "runtime/template.h"

/* envdVersion, the same in SandBase's sandbox object and E2B's shapes: the
 * highest envd version whose feature gates in E2B's SDKs the server serves
 * (the gates and what each needs: src/e2b/e2b.h). Raise it there first. */
#define API_ENVD_VERSION "0.5.7"

/* A dialect's JSON for a sandbox (new reference, NULL when out of memory). */
typedef json_t *(*api_sandbox_shape_fn)(const struct sb_sandbox_rec *rec);

/* A validated create. Owned by the flow once given to api_create_run. */
struct api_create {
    char org_id[SB_ORG_ID_MAX];
    char template_id[SB_TEMPLATE_NAME_MAX];
    int timeout_s;
    char *metadata;                 /* owned JSON object text; NULL = {} */
    char *env;                      /* owned JSON object text; NULL = {} */
    char *e2b_json;                 /* owned: an E2B create's own settings; NULL = none */
    char envd_token[72];            /* "" = no envd access token */
    int pause_on_timeout;           /* the timeout pauses it (E2B's autoPause) */
    struct sb_net_policy *network;  /* owned; NULL = the create said nothing about the network */
    api_sandbox_shape_fn shape;
};
void api_create_free(void *create);

/* allow_internet_access (E2B's REST spelling; allowInternetAccess also
 * taken) and network of a create body into c->network, left NULL when the
 * body has neither; 400 naming the problem (runtime/netpolicy.h). */
int api_create_network(json_t *body, struct api_create *c, struct sb_err *err);

/* Adds allowInternetAccess and network {allowOut, denyOut,
 * allowPublicTraffic, address?} from a sandbox's stored network settings
 * to obj; a sandbox from before they were stored had loopback only. */
void api_add_network_json(json_t *obj, const char *network_json);
/* Adds "ports" (the URL pattern of the sandbox's ports, api/ports.h) and,
 * when the sandbox refuses public traffic, "trafficAccessToken" to obj. */
void api_add_ports_json(json_t *obj, const struct sb_sandbox_rec *rec);
/* The sandbox's traffic token, or "" (allowPublicTraffic true). */
void api_traffic_token(const struct sb_sandbox_rec *rec, char *out, size_t len);

/* 0 when the template exists and org_id may use it (template_visible);
 * else 400 "unknown template: X (available: ...)" naming the ones that
 * org_id may use: another org's snapshot reads exactly like a name that
 * does not exist. */
int api_check_template(const struct sb_app *app, const char *org_id, const char *name, struct sb_err *err);

/* The fields every dialect's create has, from body into c: templateID
 * (checked with api_check_template for the caller's org), timeout,
 * metadata, envVars and the network (api_create_network), and c's org;
 * 400 naming the problem. The dialect checks its own field names first. */
int api_create_parse(struct sb_request *req, json_t *body, struct api_create *c, struct sb_err *err);
/* Answers a create refused before api_create_run with err (500 out of
 * memory when c is NULL and err is unset); frees c and body. */
void api_create_refuse(struct sb_request *req, struct api_create *c, json_t *body, struct sb_err *err);

/* Creates c's sandbox and answers 201 with c->shape of it, or the error
 * (429 cap, 507 disk, 502 runtime). Takes c. */
void api_create_run(struct sb_request *req, struct api_create *c);

enum api_action { API_ACTION_DELETE, API_ACTION_TIMEOUT, API_ACTION_PAUSE };
/* Runs the action on sandbox id of the caller's org on a worker: 204, or
 * the registry's error (404, 409 already paused / not running). timeout_s
 * is for API_ACTION_TIMEOUT. */
void api_action_run(struct sb_request *req, const char *id, enum api_action action, int timeout_s);

/* Resumes a paused sandbox or extends a running one (timeout_s < 0 keeps
 * its time) and answers shape of it: 200, or status_resumed when it was
 * paused. */
void api_connect_run(struct sb_request *req, const char *id, int timeout_s, api_sandbox_shape_fn shape,
                     int status_resumed);

/* PUT /sandboxes/:id/network for every dialect (the body is the same):
 * validates :id and the body (netpolicy_parse_update: 400 naming the bad
 * entry, nothing changed), replaces the sandbox's egress rules on a worker
 * (registry_update_network) and answers 204, or 404 unknown / another
 * org's, 409 not active, 502. */
void api_network_update_run(struct sb_request *req);

#endif
