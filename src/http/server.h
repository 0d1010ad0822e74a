/*
 * server.h - the HTTP server: libmicrohttpd in external-epoll mode, driven by
 * an sb_loop, dispatching through an sb_router.
 *
 * For each request the server: reads the body (chunked or not) up to
 * max_body bytes (413 beyond), authenticates it unless the route is
 * SB_ROUTE_NO_AUTH (X-API-Key wins over Authorization: Bearer; 401 "missing
 * API key" / "invalid API key"), routes it (404 / 405 with Allow), calls the
 * handler, and logs one access line. Keep-alive and pipelining are MHD's.
 * Shutdown (sb_server_shutdown) stops accepting, lets in-flight and deferred
 * requests finish (bounded by a grace period) and then stops the loop.
 */
#ifndef SB_HTTP_SERVER_H
#define SB_HTTP_SERVER_H

#include <stddef.h>

#include "core/err.h"
#include "http/loop.h"
#include "http/router.h"

/* Authenticates an API key; on success copies the org id into org_id and
 * returns 0. On failure returns -1 with err set (401 + message). Runs on the
 * loop thread. */
typedef int (*sb_auth_fn)(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX],
                          struct sb_err *err);

struct sb_server_config {
    const char *listen;         /* "127.0.0.1:3000" or "[::1]:3000" */
    size_t max_body;            /* bytes; default 1 MiB */
    unsigned connection_limit;  /* default 4096 */
    unsigned idle_timeout_s;    /* keep-alive idle timeout, default 60 */
    sb_auth_fn auth;
    void *app_ctx;              /* given to auth and to handlers as req->server_ctx */
};

struct sb_server;

struct sb_server *sb_server_new(struct sb_loop *loop, struct sb_router *router,
                                const struct sb_server_config *config, struct sb_err *err);
/* The port actually bound (useful with port 0). */
unsigned sb_server_port(const struct sb_server *server);
void sb_server_shutdown(struct sb_server *server);
void sb_server_free(struct sb_server *server);

#endif
