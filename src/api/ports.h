/*
 * ports.h - sandbox ports reachable through the server (issue 12): which
 * requests are for a port (their Host, path or E2B header pair), who may
 * reach it (the path form takes an API key of the sandbox's org; the
 * others are open, or need the sandbox's traffic token when it was created
 * with allowPublicTraffic false) and the URL pattern GET reports.
 */
#ifndef SB_API_PORTS_H
#define SB_API_PORTS_H

#include <jansson.h>

#include "api/port_target.h"
#include "http/request.h"

struct sb_app;
struct sb_event;

/* Which form a request is (enum api_port_form), from its Host, headers and
 * raw target; for the server's dialect function. Loop thread. */
int api_port_form(const struct sb_app *app, const struct sb_request *req);

/* The proxy's handlers: the Host form and the header pair (no API key),
 * and the path form (an API key; other orgs' sandboxes are 404). Both are
 * SB_ROUTE_STREAM_BODY catch-alls of their dialects. */
void api_port_proxy_open(struct sb_request *req);
void api_port_proxy_path(struct sb_request *req);

/* Set once by serve after the port is bound, before it serves: the domain
 * and the API's port that URLs are built from. */
void api_ports_configure(const char *domain, unsigned api_port);
/* The event_bus_fn serve subscribes so that the proxy's memory of sandbox
 * checks forgets them at every lifecycle event (api/port_grants.h). */
void api_ports_on_event(void *arg, const struct sb_event *ev);
/* "<domain>:<api port>", what E2B's domain field carries so that the SDK's
 * getHost(port) gives a host:port that reaches the proxy. */
const char *api_ports_domain(void);
/* {"url": "http://{port}-<id>.<domain>:<api port>", "pathUrl": ".../sandboxes/<id>/ports/{port}/"}
 * for GET's answer; caller owns it. */
json_t *api_ports_json(const char *id);

#endif
