/*
 * port_pool.c - the proxy's idle upstream connections (see port_pool.h).
 *
 * A hash of (sandbox id, port) to a list of idle sockets, newest first.
 * Each idle socket is watched on the loop for input or the peer's close:
 * either ends it (a server that speaks unasked is not reused). A sweep
 * timer, running only while something is pooled, closes what has been idle
 * for PORT_POOL_IDLE_MS, shorter than the keep-alive timeouts servers
 * commonly use (2-5 s), so a request is rarely sent on a connection its
 * server is closing at that moment. At most PORT_POOL_MAX sockets in all
 * and PORT_POOL_PER_KEY per sandbox port.
 *
 * Why a socket never outlives its sandbox for long: when the sandbox is
 * deleted its processes die and their ends close (the watch fires), and
 * nothing is kept past the idle time anyway. A pooled socket is only ever
 * handed out for the sandbox and port it was made for; the caller checks
 * the sandbox (running, org, token) before taking one.
 *
 * Owns: the idle sockets and their records. Loop thread only.
 */
#include "api/port_pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop.h"

#define PORT_POOL_IDLE_MS 1500
#define PORT_POOL_MAX 1024
#define PORT_POOL_PER_KEY 128
#define PORT_POOL_BUCKETS 256

struct idle {
    struct idle *prev, *next;       /* in its bucket */
    char id[40];
    unsigned port;
    int fd;
    uint64_t since;
};

static struct {
    struct sb_loop *loop;
    struct idle *buckets[PORT_POOL_BUCKETS];
    unsigned count;
    uint64_t sweep_timer;
} pool;

static unsigned bucket_of(const char *id, unsigned port)
{
    unsigned h = 2166136261u ^ port;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % PORT_POOL_BUCKETS;
}

/* Out of its bucket; its fd stays watched (the caller decides). */
static void idle_unlink(struct idle *e)
{
    unsigned b = bucket_of(e->id, e->port);
    if (e->prev)
        e->prev->next = e->next;
    else
        pool.buckets[b] = e->next;
    if (e->next)
        e->next->prev = e->prev;
    pool.count--;
}

static void idle_close(struct idle *e)
{
    idle_unlink(e);
    sb_loop_unwatch(pool.loop, e->fd);
    close(e->fd);
    free(e);
}

static void on_idle_event(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    idle_close(arg);    /* input, or the peer closed: either way not reusable */
}

static void on_sweep(struct sb_loop *loop, void *arg)
{
    pool.sweep_timer = 0;
    uint64_t now = sb_now_ms();
    for (unsigned b = 0; b < PORT_POOL_BUCKETS; b++)
        for (struct idle *e = pool.buckets[b], *next; e; e = next) {
            next = e->next;
            if (now - e->since >= PORT_POOL_IDLE_MS)
                idle_close(e);
        }
    if (pool.count > 0)
        pool.sweep_timer = sb_loop_timer(loop, PORT_POOL_IDLE_MS / 3, on_sweep, NULL);
}

int port_pool_has(const char *id, unsigned port)
{
    for (struct idle *e = pool.buckets[bucket_of(id, port)]; e; e = e->next)
        if (e->port == port && strcmp(e->id, id) == 0)
            return 1;
    return 0;
}

int port_pool_take(const char *id, unsigned port)
{
    struct idle *e = pool.buckets[bucket_of(id, port)];
    while (e) {
        struct idle *next = e->next;
        if (e->port == port && strcmp(e->id, id) == 0) {
            char byte;
            ssize_t n = recv(e->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                int fd = e->fd;
                idle_unlink(e);     /* still watched: the caller takes the watch over */
                free(e);
                return fd;
            }
            idle_close(e);      /* closed, or bytes nobody asked for */
        }
        e = next;
    }
    return -1;
}

void port_pool_put(struct sb_loop *loop, const char *id, unsigned port, int fd, int watched)
{
    unsigned b = bucket_of(id, port), same = 0;
    for (struct idle *e = pool.buckets[b]; e; e = e->next)
        same += e->port == port && strcmp(e->id, id) == 0;
    struct idle *e = pool.count < PORT_POOL_MAX && same < PORT_POOL_PER_KEY ? calloc(1, sizeof *e) : NULL;
    int rc = !e ? -1
             : watched ? sb_loop_rebind(loop, fd, EPOLLIN | EPOLLRDHUP, on_idle_event, e)
                       : sb_loop_watch(loop, fd, EPOLLIN | EPOLLRDHUP, on_idle_event, e);
    if (rc < 0) {
        free(e);
        if (watched)
            sb_loop_unwatch(loop, fd);
        close(fd);
        return;
    }
    pool.loop = loop;
    snprintf(e->id, sizeof e->id, "%s", id);
    e->port = port;
    e->fd = fd;
    e->since = sb_now_ms();
    e->next = pool.buckets[b];
    if (e->next)
        e->next->prev = e;
    pool.buckets[b] = e;
    pool.count++;
    if (!pool.sweep_timer)
        pool.sweep_timer = sb_loop_timer(loop, PORT_POOL_IDLE_MS / 3, on_sweep, NULL);
}
