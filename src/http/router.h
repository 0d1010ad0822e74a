/*
 * router.h - maps (method, path) to a handler, with ":name" path parameters.
 *
 * Patterns are literal segments and ":param" segments ("/sandboxes/:id/pause").
 * Literal segments win over parameters when both match. A path that matches a
 * pattern under another method gives SB_ROUTE_METHOD_NOT_ALLOWED and the Allow
 * list; no match at all gives SB_ROUTE_NOT_FOUND. The router owns copies of
 * its patterns; it knows nothing of HTTP connections.
 *
 * A route may serve some dialects only (dialects, a bit per dialect): the
 * server decides each request's dialect from its headers before routing
 * (server.h, sb_dialect_fn), and the router sees only the routes of that
 * dialect. A route for given dialects and one for every dialect (0) may
 * share a method and pattern; the first wins for its dialects. E2B's
 * control plane answers SandBase's paths in E2B's shapes this way, and
 * envd's routes share the port by a header.
 *
 * A route may also say how its errors are rendered (render_error: Connect-RPC
 * wants {"code":"not_found",...} and its own statuses), which the server
 * uses for every error of a request that matched the route's path: the
 * handler's, and 401, 405, 413 and 503. And it may take its body as a
 * stream (SB_ROUTE_STREAM_BODY, see sb_request_body_sink in request.h).
 */
#ifndef SB_HTTP_ROUTER_H
#define SB_HTTP_ROUTER_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"
#include "http/request.h"

typedef void (*sb_handler_fn)(struct sb_request *req);

/* Renders err (status already within 400-599) as a JSON body the caller
 * owns, and may change *status (which holds err's status on entry) to the
 * status to answer with. NULL (out of memory) falls back to the default
 * {"code": status, "message": msg}. Any thread (errors are completed from
 * workers); must not keep err. */
typedef json_t *(*sb_error_render_fn)(const struct sb_err *err, int *status);

enum sb_route_flags {
    SB_ROUTE_AUTH = 0,          /* default: an API key is required */
    SB_ROUTE_NO_AUTH = 1 << 0,  /* e.g. GET /health */
    SB_ROUTE_STREAM_BODY = 1 << 1,  /* the handler runs once the headers are in and
                                       takes the body as it arrives (request.h);
                                       max_body does not apply */
};

/* Everything a route can say; sb_router_add and sb_router_add_query are
 * shorthands. */
struct sb_route_spec {
    const char *method, *pattern;
    sb_handler_fn handler;
    int flags;                      /* enum sb_route_flags */
    const char *query;              /* as for sb_router_add_query; NULL: not checked */
    sb_error_render_fn render_error;    /* NULL: {"code": <status>, "message": ...} */
    unsigned dialects;              /* SB_DIALECT_BIT of each dialect served; 0: every one */
};

#define SB_DIALECT_MAX 8
#define SB_DIALECT_BIT(d) (1u << (d))

enum sb_route_result { SB_ROUTE_FOUND, SB_ROUTE_NOT_FOUND, SB_ROUTE_METHOD_NOT_ALLOWED };

struct sb_route_match {
    sb_handler_fn handler;
    int flags;
    int param_count;
    /* names point into the router; values are copies owned by the match (value_buf) */
    const char *param_names[SB_ROUTE_MAX_PARAMS];
    const char *param_values[SB_ROUTE_MAX_PARAMS];
    char value_buf[1024];
    char allow[64];             /* "GET, DELETE" for 405 answers */
    const char *query;          /* the route's accepted query parameters (see
                                   sb_router_add_query); points into the router */
    sb_error_render_fn render_error;    /* of the route, or for a 405 of the most
                                           specific route of the path; NULL: default */
};

struct sb_router;

struct sb_router *sb_router_new(void);
void sb_router_free(struct sb_router *router);
int sb_router_add(struct sb_router *router, const char *method, const char *pattern,
                  sb_handler_fn handler, int flags);
/* Like sb_router_add, and names the query parameters the route accepts:
 * "status,limit" (comma-separated), "" for none, NULL for "not checked".
 * The server answers 400 for a parameter outside the list. */
int sb_router_add_query(struct sb_router *router, const char *method, const char *pattern,
                        sb_handler_fn handler, int flags, const char *query);
/* The general form; same errors as sb_router_add (EEXIST: a route of the
 * same method and pattern shape whose dialects overlap these, or both for
 * every dialect). */
int sb_router_add_spec(struct sb_router *router, const struct sb_route_spec *spec);
/* Sends every request of dialect (1..SB_DIALECT_MAX-1), whatever its
 * method and path, to handler with flags: a dialect that is a whole
 * protocol of its own (a proxy to a sandbox's port) rather than a set of
 * routes. Replaces the routes of that dialect and of every dialect for it.
 * -1 (EINVAL) for dialect 0 or out of range. */
int sb_router_set_catch_all(struct sb_router *router, int dialect, sb_handler_fn handler, int flags);
/* Matches among the routes of every dialect (0) and of dialect. Returns
 * NOT_FOUND for a dialect outside 0..SB_DIALECT_MAX-1. */
enum sb_route_result sb_router_match_dialect(const struct sb_router *router, const char *method,
                                             const char *path, int dialect,
                                             struct sb_route_match *out);
/* sb_router_match_dialect for dialect 0. */
enum sb_route_result sb_router_match(const struct sb_router *router, const char *method,
                                     const char *path, struct sb_route_match *out);

#endif
