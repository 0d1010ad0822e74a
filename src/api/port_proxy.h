/*
 * port_proxy.h - one proxied request to a port inside a sandbox: the
 * client's request passed on over a socket the runtime opened in the
 * sandbox's namespace, its answer streamed back, an upgrade (WebSocket)
 * turned into a byte pipe. api/ports.c decides who may reach which port;
 * this file only moves bytes, and never trusts the upstream.
 *
 * Loop thread only.
 */
#ifndef SB_API_PORT_PROXY_H
#define SB_API_PORT_PROXY_H

#include "core/err.h"
#include "http/request.h"

struct port_proxy;

/* From the handler (an SB_ROUTE_STREAM_BODY route) while it runs: copies
 * what it needs of req (method, the upstream target, the headers to pass
 * on; with strip_credentials the API key headers stay behind), takes its
 * body as a sink (so req is deferred) and waits for port_proxy_connected.
 * id and port name the upstream in messages; timeout_s bounds its silence.
 * NULL with err (req unanswered: answer it) on a bad request or no memory. */
struct port_proxy *port_proxy_start(struct sb_request *req, const char *id, unsigned port,
                                    const char *target, int strip_credentials, int timeout_s,
                                    struct sb_err *err);

/* Exactly once per started proxy, on the loop thread: the upstream socket
 * (fd >= 0, taken; pending: its connect is in progress) or why there is
 * none (err; the request is answered with it). */
void port_proxy_connected(struct port_proxy *p, int fd, int pending, const struct sb_err *err);

/* Instead of port_proxy_connected, from the handler while it runs: fd is
 * a kept-alive connection from the pool, still watched (port_pool_take). */
void port_proxy_reused(struct port_proxy *p, int fd);

#endif
