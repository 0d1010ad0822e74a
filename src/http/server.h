/*
 * server.h - the HTTP server: libmicrohttpd in external-epoll mode, driven by
 * an sb_loop, dispatching through an sb_router.
 *
 * For each request the server: reads the body (chunked or not) up to
 * max_body bytes (413 beyond), unless the route streams its body
 * (SB_ROUTE_STREAM_BODY), authenticates it unless the route is
 * SB_ROUTE_NO_AUTH (X-API-Key wins over Authorization: Bearer; 401 "missing
 * API key" / "invalid API key"), routes it (404 / 405 with Allow), calls the
 * handler, and logs one access line. Errors are rendered by the matched
 * route's renderer, if it has one. Keep-alive and pipelining are MHD's.
 * Connections are capped overall and per client address, and one that has
 * not delivered a whole request within request_read_timeout_s is closed,
 * however slowly it keeps sending (limits.c).
 * Shutdown (sb_server_shutdown) stops accepting, ends open streams at once,
 * lets in-flight and deferred requests finish (bounded by a grace period)
 * and then stops the loop.
 */
#ifndef SB_HTTP_SERVER_H
#define SB_HTTP_SERVER_H

#include <stddef.h>

#include "core/err.h"
#include "core/loop.h"
#include "http/router.h"

/* Authenticates an API key; on success copies the org id into org_id and
 * returns 0. On failure returns -1 with err set (401 + message). Runs on the
 * loop thread. */
typedef int (*sb_auth_fn)(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX],
                          struct sb_err *err);

/* The dialect a request speaks (router.h: routes may serve some dialects
 * only), from its method, path, headers and query (req's method, path and
 * sb_request_header/_query), before it is routed or authenticated. api_key
 * is the key the request carries (X-API-Key, else Authorization: Bearer),
 * unchecked, or NULL. Returns 0..SB_DIALECT_MAX-1; anything else is 0.
 * Loop thread; must not block. */
typedef int (*sb_dialect_fn)(void *app_ctx, const struct sb_request *req, const char *api_key);

struct sb_server_config {
    const char *listen;         /* "127.0.0.1:3000" or "[::1]:3000" */
    size_t max_body;            /* bytes; default 1 MiB */
    unsigned connection_limit;  /* default 4096 (lowered to fit the fd limit) */
    unsigned per_address_limit; /* connections per client address, default 256;
                                   more are accepted and closed at once */
    unsigned idle_timeout_s;    /* keep-alive idle timeout, default 60 */
    unsigned request_read_timeout_s; /* a request's headers and body must all arrive
                                        within this (from its first byte, or the
                                        connection's start), default 30 */
    sb_auth_fn auth;
    sb_dialect_fn dialect;      /* NULL: every request is dialect 0 */
    void *app_ctx;              /* given to auth and to handlers as req->server_ctx */
    unsigned shutdown_grace_ms; /* how long shutdown waits for in-flight requests;
                                   default 10000 (added after the first contract) */
};

struct sb_server;

/* Starts listening and hooks the server into loop (an fd watch and the
 * loop's tick hook, so one server per loop). Also ignores SIGPIPE. The loop
 * must outlive the server, and every thread that may still complete a
 * deferred request (worker pool) must be joined before sb_loop_free().
 * Caller owns the result. NULL with err set (e.g. address in use). */
struct sb_server *sb_server_new(struct sb_loop *loop, struct sb_router *router,
                                const struct sb_server_config *config, struct sb_err *err);
/* The port actually bound (useful with port 0). */
unsigned sb_server_port(const struct sb_server *server);
/* Graceful stop; loop thread only (e.g. from a signalfd watcher or a
 * posted callback; a signal handler must post or use sb_loop_stop instead).
 * Closes the listen socket at once, answers new requests 503 with
 * Connection: close, ends open streams (stream.h) and refuses new ones,
 * waits up to shutdown_grace_ms for in-flight and deferred requests (and
 * streams still flushing), answers deferred ones still pending 503, stops
 * the daemon and then calls sb_loop_stop(): sb_loop_run() returns when done.
 * Calling it again is a no-op. Typical serve sequence:
 *     signalfd watcher -> sb_server_shutdown(server);
 *     sb_loop_run(loop) returns -> sb_server_free(server);
 *     sb_worker_pool_free(pool); sb_loop_free(loop);  */
void sb_server_shutdown(struct sb_server *server);
/* Stops the daemon if still running (deferred requests answered 503, no
 * grace period) and frees the server. Loop thread, loop not running. */
void sb_server_free(struct sb_server *server);

#endif
