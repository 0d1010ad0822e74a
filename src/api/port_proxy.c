/*
 * port_proxy.c - moving one request and its answer between a client and a
 * server inside a sandbox (see port_proxy.h), on the loop.
 *
 * Life of one:
 *   start      the request head for the upstream is built from the client's
 *              (hop-by-hop headers dropped, X-Forwarded-For/-Host/-Proto
 *              set, Connection: close, one upstream connection per
 *              request); the body is taken as a sink and queued behind it.
 *   connected  the socket api/ports.c had the runtime open inside the
 *              sandbox's namespace; the queue is written as it takes it.
 *              Past PROXY_OUT_MAX queued, the client's body is paused, so
 *              an upload is never held whole.
 *   head       the upstream's answer head is read (at most PROXY_HEAD_MAX)
 *              and parsed strictly (http/http1.c); 1xx are skipped. It is
 *              answered once the client's body is all in (libmicrohttpd
 *              takes an answer only before a body or after it): a stream
 *              with the upstream's status and end-to-end headers, sized
 *              when it said Content-Length, else chunked.
 *   body       read from the upstream, de-chunked, written to the stream;
 *              past PROXY_WINDOW queued for the client the upstream is not
 *              read until the client has taken it down to PROXY_LOW_WATER.
 *              An upstream that ends a body short or breaks its chunking
 *              gets the client's response cut (sb_stream_abort, once what
 *              came before has been taken), never
 *              passed off as complete.
 *   upgrade    a 101 to a request that asked for an upgrade: the client's
 *              connection becomes a tunnel (http/tunnel.h) and bytes are
 *              relayed both ways without looking at them.
 * The upstream's silence is bounded by the timeout (answer head, and every
 * gap in the body while the client keeps up): 504 before the answer, a cut
 * response after. A tunnel has no timeout (a WebSocket may idle).
 *
 * Owns: the upstream socket, both queues, the timer, the tunnel's relay.
 * Freed when the request is over and the connect result has come
 * (refs: the request side and the pending connect).
 */
#include "api/port_proxy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/app.h"
#include "api/port_pool.h"
#include "core/log.h"
#include "http/http1.h"
#include "http/stream.h"
#include "http/tunnel.h"
#include "runtime/port_connect.h"

#define PROXY_HEAD_MAX (64 * 1024)          /* the upstream's answer head */
#define PROXY_REQUEST_HEAD_MAX (64 * 1024)  /* the head we send */
#define PROXY_OUT_MAX (256 * 1024)          /* request bytes waiting for the upstream */
#define PROXY_WINDOW (1024 * 1024)          /* answer bytes waiting for the client */
#define PROXY_LOW_WATER (256 * 1024)
#define PROXY_READ 65536
#define TUNNEL_BUF 65536

/* One direction of a byte queue. */
struct bytes {
    char *data;
    size_t off, len, cap;
};

struct port_proxy {
    struct sb_loop *loop;
    struct sb_request *req;         /* until answered or gone */
    int refs;
    char id[40];
    unsigned port;
    uint64_t timeout_ms;
    int is_head, wants_upgrade, body_chunked;

    int fd;                         /* upstream, -1 */
    int reusable;                   /* no stray byte seen: may go back to the pool at the end */
    uint32_t watching;              /* its epoll mask, 0: not watched */
    int connecting;
    struct bytes out;               /* to the upstream: head, then body */
    int body_done, body_paused, write_closed;

    struct bytes in;                /* from the upstream: head, then body */
    int head_done, answered;
    char *head_buf;                 /* the parsed head's strings point here */
    struct sb_http1_head head;
    struct sb_chunked chunked;
    uint64_t body_left;
    struct sb_stream *stream;
    int stream_paused;
    int cut;                        /* the answer ends as broken (proxy_finish_stream) */

    uint64_t timer;
    uint64_t last_activity;

    struct sb_tunnel *tunnel;
    int client_fd;
    uint32_t client_watching;
    struct bytes to_client;         /* tunnel: upstream -> client (in: the other way) */
    int client_eof, upstream_eof, upstream_shut, client_shut;
};

static void proxy_unref(struct port_proxy *p);
static void proxy_update_watch(struct port_proxy *p);
static void proxy_try_answer(struct port_proxy *p);
static void proxy_finish_stream(struct port_proxy *p, int cut);

/* ---- byte queues ---- */

static int bytes_reserve(struct bytes *b, size_t more)
{
    if (b->off > 0 && b->off + b->len + more > b->cap) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown)
        return -1;
    b->data = grown;
    b->cap = cap;
    return 0;
}

static int bytes_add(struct bytes *b, const void *data, size_t len)
{
    if (bytes_reserve(b, len) < 0)
        return -1;
    memcpy(b->data + b->off + b->len, data, len);
    b->len += len;
    return 0;
}

static void bytes_take(struct bytes *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

static void bytes_free(struct bytes *b)
{
    free(b->data);
    *b = (struct bytes){0};
}

/* ---- ending ---- */

static void proxy_close_upstream(struct port_proxy *p)
{
    if (p->fd < 0)
        return;
    if (p->watching)
        sb_loop_unwatch(p->loop, p->fd);
    p->watching = 0;
    close(p->fd);
    p->fd = -1;
}

/* The answer is complete: the upstream connection goes back to the pool
 * when it is at a clean boundary (HTTP/1.1 without close, the whole
 * request sent, nothing read past the answer), else it is closed. */
static void proxy_done_with_upstream(struct port_proxy *p)
{
    if (p->fd < 0)
        return;
    if (p->reusable && !p->head.close && !p->wants_upgrade && p->body_done && p->out.len == 0 &&
        !p->write_closed && p->in.len == 0 && p->head.framing != SB_HTTP1_UNTIL_CLOSE) {
        port_pool_put(p->loop, p->id, p->port, p->fd, p->watching != 0);
        p->watching = 0;
        p->fd = -1;
        return;
    }
    proxy_close_upstream(p);
}

static void proxy_cancel_timer(struct port_proxy *p)
{
    if (p->timer)
        sb_loop_cancel(p->loop, p->timer);
    p->timer = 0;
}

static void proxy_free(struct port_proxy *p)
{
    proxy_cancel_timer(p);
    proxy_close_upstream(p);
    bytes_free(&p->out);
    bytes_free(&p->in);
    bytes_free(&p->to_client);
    free(p->head_buf);
    free(p);
}

static void proxy_unref(struct port_proxy *p)
{
    if (--p->refs == 0)
        proxy_free(p);
}

static void on_release(struct sb_loop *loop, void *arg) { proxy_unref(arg); }

/* The request side is over. Released from a posted callback: a completion
 * posted just before is processed first, and until then the body sink may
 * still call us. */
static void proxy_request_over(struct port_proxy *p)
{
    p->req = NULL;
    proxy_cancel_timer(p);
    proxy_close_upstream(p);
    if (sb_loop_post(p->loop, on_release, p) < 0)
        sb_error("port proxy: cannot post a release (out of memory): %zu bytes leak", sizeof *p);
}

/* Answers the request with err (before any answer) and ends the proxy. */
static void proxy_fail(struct port_proxy *p, const struct sb_err *err)
{
    if (!p->req || p->answered)
        return;
    p->answered = 1;
    sb_request_complete_error(p->req, err);
    proxy_request_over(p);
}

static void proxy_failf(struct port_proxy *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void proxy_failf(struct port_proxy *p, int status, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sb_err err;
    sb_err_set(&err, status, "%s", msg);
    proxy_fail(p, &err);
}

/* ---- the upstream's silence ---- */

static void on_timer(struct sb_loop *loop, void *arg);

static void proxy_touch(struct port_proxy *p) { p->last_activity = sb_now_ms(); }

static void proxy_arm_timer(struct port_proxy *p)
{
    if (!p->timer && !p->tunnel)
        p->timer = sb_loop_timer(p->loop, p->timeout_ms, on_timer, p);
}

static void on_timer(struct sb_loop *loop, void *arg)
{
    struct port_proxy *p = arg;
    p->timer = 0;
    uint64_t idle = sb_now_ms() - p->last_activity;
    if (p->stream_paused || idle < p->timeout_ms) {
        /* the client is the slow one, or the upstream spoke meanwhile */
        p->timer = sb_loop_timer(loop, p->stream_paused ? p->timeout_ms : p->timeout_ms - idle,
                                 on_timer, p);
        return;
    }
    if (p->stream) {
        sb_warn("port proxy: port %u in sandbox %s was silent for %llu ms mid-answer: cut", p->port,
                p->id, (unsigned long long)idle);
        proxy_close_upstream(p);
        proxy_finish_stream(p, 1);
        return;
    }
    proxy_failf(p, 504, "port %u in sandbox %s did not answer within %llu s", p->port, p->id,
                (unsigned long long)(p->timeout_ms / 1000));
}

/* ---- the answer, streamed ---- */

static int hop_by_hop(const char *name)
{
    static const char *const names[] = {"Connection", "Keep-Alive", "Proxy-Connection", "TE",
                                        "Trailer", "Transfer-Encoding", "Upgrade",
                                        "Proxy-Authenticate", "Proxy-Authorization"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

static void on_stream_drain(struct sb_stream *s, void *arg);

static void on_final_drain(struct sb_stream *s, void *arg)
{
    struct port_proxy *p = arg;
    if (p->cut)
        sb_stream_abort(s);
    else
        sb_stream_end(s);
}

/* The upstream is done with this answer: end the stream (cut: as broken)
 * once what is queued has been taken, so that libmicrohttpd sends it
 * before it closes a cut answer. */
static void proxy_finish_stream(struct port_proxy *p, int cut)
{
    proxy_cancel_timer(p);
    p->cut = cut;
    if (sb_stream_queued(p->stream) == 0) {
        on_final_drain(p->stream, p);
        return;
    }
    p->stream_paused = 1;       /* nothing more is read from the upstream */
    sb_stream_on_drain(p->stream, 0, on_final_drain, p);
}

/* Takes answer body bytes (data may be modified: chunked bodies are decoded
 * in place). */
static void proxy_body(struct port_proxy *p, char *data, size_t len)
{
    struct sb_err err;
    int done = 0;
    size_t n = len;
    if (p->head.framing == SB_HTTP1_CHUNKED) {
        long got = sb_chunked_decode(&p->chunked, data, len, &done, &err);
        if (got < 0) {
            sb_warn("port proxy: port %u in sandbox %s: %s: answer cut", p->port, p->id, err.msg);
            proxy_close_upstream(p);
            proxy_finish_stream(p, 1);
            return;
        }
        n = (size_t)got;
        if (done && p->chunked.trailing)
            p->reusable = 0;
    } else if (p->head.framing == SB_HTTP1_LENGTH) {
        if (n > p->body_left) {
            n = (size_t)p->body_left;
            p->reusable = 0;    /* bytes past the answer: not at a boundary */
        }
        p->body_left -= n;
        done = p->body_left == 0;
    } else if (p->head.framing == SB_HTTP1_NO_BODY) {
        n = 0;
        done = 1;
    }
    if (n > 0 && sb_stream_write(p->stream, data, n) < 0) {
        proxy_close_upstream(p);
        sb_stream_abort(p->stream);
        return;
    }
    if (done) {
        proxy_done_with_upstream(p);
        proxy_finish_stream(p, 0);
        return;
    }
    if (sb_stream_queued(p->stream) > PROXY_WINDOW && !p->stream_paused) {
        p->stream_paused = 1;
        sb_stream_on_drain(p->stream, PROXY_LOW_WATER, on_stream_drain, p);
    }
}

static void on_stream_drain(struct sb_stream *s, void *arg)
{
    struct port_proxy *p = arg;
    p->stream_paused = 0;
    proxy_touch(p);
    proxy_update_watch(p);
}

static void on_stream_close(void *arg, enum sb_stream_end why)
{
    struct port_proxy *p = arg;
    p->stream = NULL;
    proxy_request_over(p);
}

/* The whole answer is in hand (a small one with Content-Length): answered
 * as one buffer, without a stream. */
static int proxy_answer_whole(struct port_proxy *p, const char *connection)
{
    if (p->head.framing != SB_HTTP1_LENGTH || p->in.len < p->head.length || p->head.length > PROXY_READ)
        return 0;
    struct sb_header headers[SB_HTTP1_MAX_HEADERS];
    size_t count = 0, refused;
    for (size_t i = 0; i < p->head.header_count; i++) {
        const struct sb_header *h = &p->head.headers[i];
        if (!hop_by_hop(h->name) && strcasecmp(h->name, "Content-Length") != 0 &&
            !(connection && sb_http1_has_token(connection, h->name)))
            headers[count++] = *h;
    }
    if (p->in.len > p->head.length)
        p->reusable = 0;        /* bytes past the answer */
    p->answered = 1;
    sb_request_complete_bytes(p->req, p->head.status, p->in.data + p->in.off, (size_t)p->head.length,
                              headers, count, &refused);
    if (refused)
        sb_warn("port proxy: port %u in sandbox %s: %zu header(s) not passed on", p->port, p->id, refused);
    bytes_take(&p->in, (size_t)p->head.length);
    proxy_done_with_upstream(p);
    proxy_request_over(p);
    return 1;
}

static void proxy_open_stream(struct port_proxy *p)
{
    struct sb_err err;
    struct sb_stream *s;
    const char *connection = NULL;
    for (size_t i = 0; i < p->head.header_count; i++)
        if (strcasecmp(p->head.headers[i].name, "Connection") == 0)
            connection = p->head.headers[i].value;
    if (proxy_answer_whole(p, connection))
        return;
    if (p->head.framing == SB_HTTP1_LENGTH)
        s = sb_stream_open_sized(p->req, p->head.status, NULL, p->head.length, &err);
    else if (p->head.framing == SB_HTTP1_NO_BODY && p->is_head && p->head.has_length)
        s = sb_stream_open_sized(p->req, p->head.status, NULL, p->head.length, &err);   /* MHD sends no body to HEAD */
    else if (p->head.framing == SB_HTTP1_NO_BODY)
        s = sb_stream_open_sized(p->req, p->head.status, NULL, 0, &err);
    else
        s = sb_stream_open(p->req, p->head.status, NULL, &err);
    if (!s) {
        proxy_fail(p, &err);
        return;
    }
    p->answered = 1;
    p->stream = s;
    p->body_left = p->head.length;
    for (size_t i = 0; i < p->head.header_count; i++) {
        const struct sb_header *h = &p->head.headers[i];
        if (hop_by_hop(h->name) || strcasecmp(h->name, "Content-Length") == 0 ||
            (connection && sb_http1_has_token(connection, h->name)))
            continue;
        if (sb_stream_header(s, h->name, h->value) < 0)
            sb_warn("port proxy: port %u in sandbox %s: header %.64s not passed on", p->port, p->id,
                    h->name);
    }
    sb_stream_on_close(s, on_stream_close, p);
    if (p->head.framing == SB_HTTP1_NO_BODY) {
        if (p->in.len > 0)
            p->reusable = 0;
        proxy_done_with_upstream(p);
        proxy_cancel_timer(p);
        sb_stream_end(s);
        return;
    }
    if (p->in.len > 0) {
        size_t n = p->in.len;
        char *rest = p->in.data + p->in.off;
        bytes_take(&p->in, n);
        proxy_body(p, rest, n);
    }
}

/* ---- the upgrade: a tunnel ---- */

static void tunnel_pump(struct port_proxy *p);

static void tunnel_finish(struct port_proxy *p)
{
    if (p->client_watching)
        sb_loop_unwatch(p->loop, p->client_fd);
    p->client_watching = 0;
    struct sb_tunnel *t = p->tunnel;
    p->tunnel = NULL;
    if (t)
        sb_tunnel_release(t);
    proxy_request_over(p);
}

/* Reads what fd has into b (up to TUNNEL_BUF queued); 1 at EOF, -1 on error. */
static int tunnel_read(int fd, struct bytes *b)
{
    while (b->len < TUNNEL_BUF) {
        if (bytes_reserve(b, TUNNEL_BUF - b->len) < 0)
            return -1;
        ssize_t n = recv(fd, b->data + b->off + b->len, TUNNEL_BUF - b->len, 0);
        if (n > 0) {
            b->len += (size_t)n;
            continue;
        }
        if (n == 0)
            return 1;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
    return 0;
}

/* Writes what b holds to fd; -1 on error. */
static int tunnel_write(int fd, struct bytes *b)
{
    while (b->len > 0) {
        ssize_t n = send(fd, b->data + b->off, b->len, MSG_NOSIGNAL);
        if (n > 0) {
            bytes_take(b, (size_t)n);
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    }
    return 0;
}

static void on_tunnel_client(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct port_proxy *p = arg;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        int rc = p->client_eof ? 0 : tunnel_read(fd, &p->in);
        if (rc < 0) {
            tunnel_finish(p);
            return;
        }
        p->client_eof |= rc;
    }
    tunnel_pump(p);
}

static void on_tunnel_upstream(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct port_proxy *p = arg;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        int rc = p->upstream_eof ? 0 : tunnel_read(fd, &p->to_client);
        if (rc < 0) {
            tunnel_finish(p);
            return;
        }
        p->upstream_eof |= rc;
    }
    tunnel_pump(p);
}

static int tunnel_watch(struct sb_loop *loop, int fd, uint32_t *current, uint32_t want, sb_fd_cb cb,
                        void *arg)
{
    int rc = 0;
    if (want == *current)
        return 0;
    if (!*current)
        rc = sb_loop_watch(loop, fd, want, cb, arg);
    else if (!want)
        sb_loop_unwatch(loop, fd);
    else
        rc = sb_loop_modify(loop, fd, want);
    *current = rc == 0 ? want : *current;
    return rc;
}

/* Moves what both queues hold, half-closes a side whose peer ended, and
 * settles what each socket is watched for. */
static void tunnel_pump(struct port_proxy *p)
{
    if (tunnel_write(p->fd, &p->in) < 0 || tunnel_write(p->client_fd, &p->to_client) < 0) {
        tunnel_finish(p);
        return;
    }
    if (p->client_eof && p->in.len == 0 && !p->upstream_shut) {
        shutdown(p->fd, SHUT_WR);
        p->upstream_shut = 1;
    }
    if (p->upstream_eof && p->to_client.len == 0 && !p->client_shut) {
        shutdown(p->client_fd, SHUT_WR);
        p->client_shut = 1;
    }
    if (p->upstream_shut && p->client_shut) {
        tunnel_finish(p);
        return;
    }
    uint32_t up = (!p->upstream_eof && p->to_client.len < TUNNEL_BUF ? EPOLLIN : 0) |
                  (p->in.len > 0 ? EPOLLOUT : 0);
    uint32_t client = (!p->client_eof && p->in.len < TUNNEL_BUF ? EPOLLIN : 0) |
                      (p->to_client.len > 0 ? EPOLLOUT : 0);
    if (tunnel_watch(p->loop, p->fd, &p->watching, up, on_tunnel_upstream, p) < 0 ||
        tunnel_watch(p->loop, p->client_fd, &p->client_watching, client, on_tunnel_client, p) < 0)
        tunnel_finish(p);
}

static void on_tunnel_open(struct sb_tunnel *t, void *arg, int fd, const char *early, size_t early_len)
{
    struct port_proxy *p = arg;
    p->client_fd = fd;
    /* in held the upstream's bytes after its 101: they go to the client */
    if (p->in.len > 0 && bytes_add(&p->to_client, p->in.data + p->in.off, p->in.len) < 0) {
        tunnel_finish(p);
        return;
    }
    bytes_take(&p->in, p->in.len);
    if (early_len > 0 && bytes_add(&p->in, early, early_len) < 0) {
        tunnel_finish(p);
        return;
    }
    tunnel_pump(p);
}

static void on_tunnel_close(void *arg)
{
    struct port_proxy *p = arg;
    if (p->client_watching)
        sb_loop_unwatch(p->loop, p->client_fd);
    p->client_watching = 0;
    p->tunnel = NULL;
    proxy_request_over(p);
}

static void proxy_open_tunnel(struct port_proxy *p)
{
    struct sb_err err;
    static const struct sb_tunnel_handlers handlers = {on_tunnel_open, on_tunnel_close};
    struct sb_header headers[SB_HTTP1_MAX_HEADERS];
    size_t count = 0;
    for (size_t i = 0; i < p->head.header_count; i++)
        if (strcasecmp(p->head.headers[i].name, "Upgrade") == 0 || !hop_by_hop(p->head.headers[i].name))
            headers[count++] = p->head.headers[i];
    /* the upstream is not read until the client's side is there */
    if (p->watching)
        sb_loop_unwatch(p->loop, p->fd);
    p->watching = 0;
    proxy_cancel_timer(p);
    struct sb_tunnel *t = sb_tunnel_accept(p->req, 101, headers, count, &handlers, p, &err);
    if (!t) {
        proxy_fail(p, &err);
        return;
    }
    p->answered = 1;
    p->tunnel = t;
    p->req = NULL;      /* the tunnel's now; over when it is */
}

/* Answers once the head is in and the client's body is all passed on (or
 * the upstream stopped taking it). */
static void proxy_try_answer(struct port_proxy *p)
{
    if (!p->req || p->answered || !p->head_done || !(p->body_done || p->write_closed))
        return;
    if (p->head.status == 101) {
        proxy_open_tunnel(p);
    } else {
        proxy_open_stream(p);
        proxy_update_watch(p);
    }
}

/* The head is complete in in[0..len): parse it, keep its strings. */
static void proxy_take_head(struct port_proxy *p, size_t len)
{
    struct sb_err err;
    free(p->head_buf);
    p->head_buf = malloc(len + 1);
    if (!p->head_buf) {
        sb_err_set(&err, 500, "out of memory");
        proxy_fail(p, &err);
        return;
    }
    memcpy(p->head_buf, p->in.data + p->in.off, len);
    p->head_buf[len] = '\0';
    bytes_take(&p->in, len);
    if (sb_http1_parse_response(p->head_buf, len, p->is_head, &p->head, &err) < 0) {
        sb_err_prefix(&err, "port %u in sandbox %s", p->port, p->id);
        proxy_fail(p, &err);
        return;
    }
    if (p->head.status == 101 && !p->wants_upgrade) {
        proxy_failf(p, 502, "port %u in sandbox %s switched protocols unasked", p->port, p->id);
        return;
    }
    if (p->head.status < 200 && p->head.status != 101)
        return;         /* 100 Continue, 103 Early Hints: the real answer follows */
    p->head_done = 1;
    proxy_try_answer(p);
}

/* ---- the upstream socket ---- */

static int proxy_flush(struct port_proxy *p)
{
    while (p->out.len > 0 && !p->write_closed) {
        ssize_t n = send(p->fd, p->out.data + p->out.off, p->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            bytes_take(&p->out, (size_t)n);
            proxy_touch(p);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        /* The upstream stopped taking the request (it may have answered
         * already): what is left of the body is read from the client and
         * dropped. */
        p->write_closed = 1;
        bytes_take(&p->out, p->out.len);
    }
    if (p->body_paused && p->out.len < PROXY_OUT_MAX / 2 && p->req) {
        p->body_paused = 0;
        sb_request_body_resume(p->req);
    }
    return 0;
}

static void proxy_read(struct port_proxy *p)
{
    for (int rounds = 0; rounds < 4 && p->fd >= 0; rounds++) {
        /* a head is read 16 KiB at a time (most fit), up to PROXY_HEAD_MAX */
        size_t room = p->stream ? PROXY_READ : PROXY_HEAD_MAX - p->in.len;
        if (!p->stream && room > 16384)
            room = 16384;
        if (!p->head_done && room == 0) {
            proxy_failf(p, 502, "port %u in sandbox %s sent a response head over %d KiB", p->port, p->id,
                        PROXY_HEAD_MAX / 1024);
            return;
        }
        if (bytes_reserve(&p->in, room) < 0) {
            proxy_failf(p, 500, "port %u in sandbox %s: out of memory", p->port, p->id);
            return;
        }
        ssize_t n = recv(p->fd, p->in.data + p->in.off + p->in.len, room, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) {
            int e = n < 0 ? errno : 0;
            proxy_close_upstream(p);
            if (p->stream) {
                /* short of its length or its last chunk: cut */
                proxy_finish_stream(p, p->head.framing != SB_HTTP1_UNTIL_CLOSE);
            } else if (!p->answered) {
                if (e == ECONNREFUSED) {
                    struct sb_err err;
                    port_connect_error(&err, e, p->id, p->port);
                    proxy_fail(p, &err);
                } else {
                    proxy_failf(p, 502, "port %u in sandbox %s closed the connection without an "
                                "answer%s", p->port, p->id, e ? " (reset)" : "");
                }
            }
            return;
        }
        proxy_touch(p);
        p->in.len += (size_t)n;
        if (p->stream) {
            size_t len = p->in.len;
            char *data = p->in.data + p->in.off;
            bytes_take(&p->in, len);
            proxy_body(p, data, len);
            if (p->stream_paused)
                return;
            continue;
        }
        size_t head_len;
        while (!p->head_done && p->req && (head_len = sb_http1_head_length(p->in.data + p->in.off, p->in.len)))
            proxy_take_head(p, head_len);
        if (p->head_done || !p->req)
            return;     /* answered, or held until the body is in */
    }
}

static void on_upstream_io(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct port_proxy *p = arg;
    if (p->connecting) {
        int e = 0;
        socklen_t len = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
            e = errno;
        if (e == EINPROGRESS)
            return;
        if (e) {
            struct sb_err err;
            port_connect_error(&err, e, p->id, p->port);
            proxy_fail(p, &err);
            return;
        }
        p->connecting = 0;
    }
    if (events & EPOLLOUT)
        proxy_flush(p);
    if (p->fd >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        proxy_read(p);
    if (p->fd >= 0)
        proxy_update_watch(p);
}

/* What the upstream socket is watched for: writable while something waits
 * for it (or the connect); readable unless the answer is held (until the
 * body is in) or the client is behind. */
static void proxy_update_watch(struct port_proxy *p)
{
    if (p->fd < 0 || p->tunnel)
        return;
    uint32_t want = 0;
    if (p->connecting || (p->out.len > 0 && !p->write_closed))
        want |= EPOLLOUT;
    if (!p->connecting && !(p->head_done && !p->answered) && !p->stream_paused)
        want |= EPOLLIN | EPOLLRDHUP;      /* the pool's mask too: handing over costs no epoll_ctl */
    if (want == p->watching)
        return;
    int rc;
    if (!p->watching)
        rc = sb_loop_watch(p->loop, p->fd, want, on_upstream_io, p);
    else if (!want)
        rc = (sb_loop_unwatch(p->loop, p->fd), 0);
    else
        rc = sb_loop_modify(p->loop, p->fd, want);
    if (rc < 0) {
        proxy_failf(p, 500, "port %u in sandbox %s: cannot watch the connection", p->port, p->id);
        return;
    }
    p->watching = want;
}

/* ---- the client's side ---- */

static enum sb_body_verdict on_body_data(struct sb_request *req, void *arg, const char *data, size_t len)
{
    struct port_proxy *p = arg;
    if (!p->req || p->answered)
        return SB_BODY_STOP;
    proxy_touch(p);
    if (p->write_closed)
        return SB_BODY_CONTINUE;
    char size[24];
    int rc = 0;
    if (p->body_chunked) {
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        rc = bytes_add(&p->out, size, (size_t)n);
    }
    if (rc == 0)
        rc = bytes_add(&p->out, data, len);
    if (rc == 0 && p->body_chunked)
        rc = bytes_add(&p->out, "\r\n", 2);
    if (rc < 0) {
        struct sb_err err;
        sb_err_set(&err, 500, "out of memory");
        proxy_fail(p, &err);
        return SB_BODY_STOP;
    }
    if (p->fd >= 0 && !p->connecting)
        proxy_flush(p);
    proxy_update_watch(p);
    if (p->out.len > PROXY_OUT_MAX) {
        p->body_paused = 1;
        return SB_BODY_PAUSE;
    }
    return SB_BODY_CONTINUE;
}

static void on_body_end(struct sb_request *req, void *arg, const struct sb_err *err)
{
    struct port_proxy *p = arg;
    if (!p->req || p->answered)
        return;
    if (err) {
        if (err->status != 499)
            proxy_fail(p, err);     /* 413 cannot happen (no cap); 499: on_gone follows */
        return;
    }
    p->body_done = 1;
    if (p->body_chunked && !p->write_closed && bytes_add(&p->out, "0\r\n\r\n", 5) < 0) {
        struct sb_err oom;
        sb_err_set(&oom, 500, "out of memory");
        proxy_fail(p, &oom);
        return;
    }
    if (p->fd >= 0 && !p->connecting)
        proxy_flush(p);
    proxy_update_watch(p);
    proxy_try_answer(p);
}

static void on_gone(struct sb_request *req, void *arg)
{
    struct port_proxy *p = arg;
    if (!p->req)
        return;
    p->answered = 1;
    sb_request_complete_empty(req, 499);
    proxy_request_over(p);
}

void port_proxy_connected(struct port_proxy *p, int fd, int pending, const struct sb_err *err)
{
    if (!p->req || p->answered) {
        if (fd >= 0)
            close(fd);
        proxy_unref(p);
        return;
    }
    p->refs--;      /* the connect's; the request side's stays */
    if (fd < 0) {
        proxy_fail(p, err);
        return;
    }
    p->fd = fd;
    p->reusable = 1;
    p->connecting = pending;
    proxy_touch(p);
    proxy_arm_timer(p);
    if (!pending)
        proxy_flush(p);
    proxy_update_watch(p);
}

void port_proxy_reused(struct port_proxy *p, int fd)
{
    p->refs--;      /* the connect's: there was none to wait for */
    p->fd = fd;
    if (sb_loop_rebind(p->loop, fd, EPOLLIN | EPOLLRDHUP, on_upstream_io, p) < 0) {
        sb_loop_unwatch(p->loop, fd);
        proxy_failf(p, 500, "port %u in sandbox %s: cannot watch the connection", p->port, p->id);
        return;
    }
    p->watching = EPOLLIN | EPOLLRDHUP;
    p->reusable = 1;
    proxy_touch(p);
    proxy_arm_timer(p);
    proxy_flush(p);
    proxy_update_watch(p);
}

/* ---- the request head ---- */

struct head_build {
    struct bytes *out;
    const char *connection;         /* the client's Connection: what it names is hop-by-hop */
    int strip_credentials;
    const char *forwarded_for;
    int failed;
};

static int skip_request_header(const struct head_build *hb, const char *name)
{
    static const char *const ours[] = {"Content-Length", "Expect", "X-Forwarded-For", "X-Forwarded-Host",
                                       "X-Forwarded-Proto", "E2b-Sandbox-Id", "E2b-Sandbox-Port",
                                       "E2b-Traffic-Access-Token"};
    if (hop_by_hop(name) || (hb->connection && sb_http1_has_token(hb->connection, name)))
        return 1;
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        if (strcasecmp(name, ours[i]) == 0)
            return 1;
    return hb->strip_credentials && (strcasecmp(name, "X-API-Key") == 0 ||
                                     strcasecmp(name, "Authorization") == 0);
}

static int add_header(struct bytes *out, const char *name, const char *value)
{
    if (strpbrk(value, "\r\n"))
        return 0;       /* MHD never hands one over; never pass one on */
    return bytes_add(out, name, strlen(name)) == 0 && bytes_add(out, ": ", 2) == 0 &&
                   bytes_add(out, value, strlen(value)) == 0 && bytes_add(out, "\r\n", 2) == 0
               ? 0
               : -1;
}

static int head_header(void *arg, const char *name, const char *value)
{
    struct head_build *hb = arg;
    if (skip_request_header(hb, name))
        return 0;
    if (add_header(hb->out, name, value) < 0) {
        hb->failed = 1;
        return -1;
    }
    return 0;
}

static int build_head(struct port_proxy *p, struct sb_request *req, const char *target,
                      int strip_credentials, struct sb_err *err)
{
    char client[64];
    sb_request_client_address(req, client, sizeof client);
    const char *xff = sb_request_header(req, "X-Forwarded-For");
    char forwarded[512];
    if (xff && strlen(xff) < 400)
        snprintf(forwarded, sizeof forwarded, "%s, %s", xff, client);
    else
        snprintf(forwarded, sizeof forwarded, "%s", client);
    const char *host = sb_request_header(req, "Host");
    const char *length = sb_request_header(req, "Content-Length");
    const char *te = sb_request_header(req, "Transfer-Encoding");
    const char *upgrade = sb_request_header(req, "Upgrade");
    const char *connection = sb_request_header(req, "Connection");
    p->wants_upgrade = upgrade && connection && sb_http1_has_token(connection, "upgrade");
    /* Transfer-Encoding wins over Content-Length (RFC 9112 6.3), as it does
     * for libmicrohttpd, which hands over the body de-chunked: passing the
     * client's length on with it would let a request carry a second one. */
    p->body_chunked = te != NULL;
    if (p->body_chunked)
        length = NULL;

    struct head_build hb = {.out = &p->out, .connection = connection, .strip_credentials = strip_credentials};
    char line[64];
    int rc = bytes_add(&p->out, req->method, strlen(req->method)) |
             bytes_add(&p->out, " ", 1) | bytes_add(&p->out, target, strlen(target)) |
             bytes_add(&p->out, " HTTP/1.1\r\n", 11);
    if (rc == 0) {
        sb_request_headers_each(req, head_header, &hb);
        rc = hb.failed ? -1 : 0;
    }
    if (rc == 0 && forwarded[0])
        rc = add_header(&p->out, "X-Forwarded-For", forwarded);
    if (rc == 0 && host)
        rc = add_header(&p->out, "X-Forwarded-Host", host);
    if (rc == 0)
        rc = add_header(&p->out, "X-Forwarded-Proto", "http");
    if (rc == 0 && length) {
        snprintf(line, sizeof line, "%llu", strtoull(length, NULL, 10));
        rc = add_header(&p->out, "Content-Length", line);
    } else if (rc == 0 && p->body_chunked) {
        rc = add_header(&p->out, "Transfer-Encoding", "chunked");
    }
    if (rc == 0 && p->wants_upgrade)
        rc = add_header(&p->out, "Upgrade", upgrade) | add_header(&p->out, "Connection", "Upgrade");
    /* otherwise HTTP/1.1's default, keep-alive: the connection may serve
     * the next request to this port (port_pool.c) */
    if (rc == 0)
        rc = bytes_add(&p->out, "\r\n", 2);
    if (rc < 0)
        return sb_err_set(err, 500, "out of memory building the proxied request");
    if (p->out.len > PROXY_REQUEST_HEAD_MAX)
        return sb_err_set(err, 431, "request headers too large to pass on (limit %d bytes)",
                          PROXY_REQUEST_HEAD_MAX);
    return 0;
}

struct port_proxy *port_proxy_start(struct sb_request *req, const char *id, unsigned port,
                                    const char *target, int strip_credentials, int timeout_s,
                                    struct sb_err *err)
{
    struct port_proxy *p = calloc(1, sizeof *p);
    if (!p)
        return sb_err_set(err, 500, "out of memory"), NULL;
    p->loop = api_app(req)->loop;
    p->fd = -1;
    p->client_fd = -1;
    p->port = port;
    p->timeout_ms = (uint64_t)timeout_s * 1000;
    snprintf(p->id, sizeof p->id, "%s", id);
    p->is_head = strcmp(req->method, "HEAD") == 0;
    if (build_head(p, req, target, strip_credentials, err) < 0 ||
        sb_request_body_sink(req, 0, on_body_data, on_body_end, p, err) < 0) {
        proxy_free(p);
        return NULL;
    }
    p->req = req;
    p->refs = 2;    /* the request side and the pending connect */
    sb_request_on_gone(req, on_gone, p);
    return p;
}
