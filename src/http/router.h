/*
 * router.h - maps (method, path) to a handler, with ":name" path parameters.
 *
 * Patterns are literal segments and ":param" segments ("/sandboxes/:id/pause").
 * Literal segments win over parameters when both match. A path that matches a
 * pattern under another method gives SB_ROUTE_METHOD_NOT_ALLOWED and the Allow
 * list; no match at all gives SB_ROUTE_NOT_FOUND. The router owns copies of
 * its patterns; it knows nothing of HTTP connections.
 */
#ifndef SB_HTTP_ROUTER_H
#define SB_HTTP_ROUTER_H

#include <stddef.h>

#include "http/request.h"

typedef void (*sb_handler_fn)(struct sb_request *req);

enum sb_route_flags {
    SB_ROUTE_AUTH = 0,          /* default: an API key is required */
    SB_ROUTE_NO_AUTH = 1 << 0,  /* e.g. GET /health */
};

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
enum sb_route_result sb_router_match(const struct sb_router *router, const char *method,
                                     const char *path, struct sb_route_match *out);

#endif
