/*
 * port_pool.h - idle keep-alive connections to sandbox ports, kept for the
 * next proxied request to the same sandbox and port, so that a client's
 * keep-alive connection through the proxy does not cost the sandbox's
 * server an accept per request, nor the proxy a worker round trip to open
 * a socket in the namespace.
 *
 * Loop thread only.
 */
#ifndef SB_API_PORT_POOL_H
#define SB_API_PORT_POOL_H

struct sb_loop;

/* An idle connection to port of sandbox id that still looks open (no EOF,
 * no stray bytes), taken from the pool (the caller owns it), or -1. It is
 * still watched on the loop (for EPOLLIN): the caller takes the watch over
 * with sb_loop_rebind (or unwatches it) before the loop runs again. */
int port_pool_take(const char *id, unsigned port);

/* 1 when the pool holds a connection for id and port (cheap; no check). */
int port_pool_has(const char *id, unsigned port);

/* Gives fd (connected, at a response boundary) to the pool: closed when
 * its server closes it, after PORT_POOL_IDLE_MS unused, or at once when
 * the pool is full. watched: fd is watched on the loop already (its watch
 * is taken over, one epoll_ctl instead of two). */
void port_pool_put(struct sb_loop *loop, const char *id, unsigned port, int fd, int watched);

#endif
