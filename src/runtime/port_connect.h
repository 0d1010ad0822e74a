/*
 * port_connect.h - a TCP connection to a port inside a sandbox, for the
 * port proxy: the socket is created inside the sandbox's own network
 * namespace and connected to its loopback, so it reaches what the sandbox
 * serves on 127.0.0.1 or 0.0.0.0 whether or not it has egress, and
 * nothing else (see port_connect.c for why it cannot go anywhere else).
 */
#ifndef SB_RUNTIME_PORT_CONNECT_H
#define SB_RUNTIME_PORT_CONNECT_H

#include "core/err.h"

struct sb_registry;

/* Opens a non-blocking TCP socket in live sandbox id's network namespace
 * and starts connecting it to 127.0.0.1:port. *fd is the caller's; *pending
 * is 1 when the connect is still in progress (wait for writability, then
 * SO_ERROR), 0 when it is done. 502 naming the port when nothing listens
 * there, 502 when the sandbox's runtime does not answer. Blocks briefly
 * (a shim call on a cache miss): workers only. */
int port_connect(struct sb_registry *reg, const char *id, unsigned port, int *fd, int *pending,
                 struct sb_err *err);

/* The message of a connect that failed with errno e (ECONNREFUSED: nobody
 * listens), as a 502. */
int port_connect_error(struct sb_err *err, int e, const char *id, unsigned port);

#endif
