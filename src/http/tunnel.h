/*
 * tunnel.h - an HTTP request that becomes a raw byte pipe: the handler
 * answers with an upgrade (101 and headers of its choosing) and, once
 * libmicrohttpd hands the socket over, reads and writes it itself until it
 * gives it back. What a proxy needs to pass a WebSocket (or any Upgrade)
 * through without reframing it; websocket.c is the framed counterpart.
 *
 * Everything here is for the loop thread only.
 */
#ifndef SB_HTTP_TUNNEL_H
#define SB_HTTP_TUNNEL_H

#include <stddef.h>

#include "core/err.h"
#include "http/request.h"

struct sb_tunnel;

struct sb_tunnel_handlers {
    /* The socket is the handler's (non-blocking; it must not close it):
     * early holds what the client sent past its request head, valid during
     * the call only. */
    void (*on_open)(struct sb_tunnel *t, void *arg, int fd, const char *early, size_t early_len);
    /* The server ended the tunnel: the 101 never reached the client (no
     * on_open came), or the server is stopping. The handler stops using the
     * socket (unwatch it) and the tunnel; it is freed after the call. Never
     * called after sb_tunnel_release. */
    void (*on_close)(void *arg);
};

/* Answers req (deferred or not) with status (101) and the given headers
 * (one of them must be Upgrade; Connection is libmicrohttpd's). NULL with
 * err and req unanswered when the request cannot take it (answered
 * already, client gone, shutting down) or MHD refuses a header (500). */
struct sb_tunnel *sb_tunnel_accept(struct sb_request *req, int status, const struct sb_header *headers,
                                   size_t count, const struct sb_tunnel_handlers *handlers, void *arg,
                                   struct sb_err *err);

/* The handler is done (it unwatched the socket): the socket goes back to
 * libmicrohttpd, which closes it, and t is freed. No on_close follows. */
void sb_tunnel_release(struct sb_tunnel *t);

#endif
