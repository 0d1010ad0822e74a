/*
 * websocket.c - WebSocket connections (see websocket.h): the RFC 6455
 * handshake, then libwslay's event API on the upgraded socket, watched on
 * the loop.
 *
 * Life of one:
 *   accept    sb_ws_accept checks the handshake headers and answers 101
 *             through an MHD upgrade response; the conn keeps it as
 *             pending (conn->ws) until MHD hands the socket over, so a
 *             client that leaves first still gets on_close.
 *   open      on_upgrade: the socket (made non-blocking), the bytes MHD read
 *             past the headers (fed to wslay first), a wslay server context,
 *             and a loop watch: EPOLLIN while wslay wants to read, EPOLLOUT
 *             while it has something to write.
 *   close     when wslay wants neither (the close handshake is done; or we
 *             closed for the client's fault, then the client is read out
 *             first: on_ws_drain), or an I/O error (the peer vanished), or
 *             CLOSE_WAIT_MS after our close went unanswered: unwatch,
 *             MHD_upgrade_action(CLOSE) (MHD owns the fd), on_close, free.
 * Callbacks into the handler run inside wslay_event_recv; they may send or
 * close (which only queue and ask for EPOLLOUT), and the connection is only
 * ever freed after wslay has returned (ws_settle).
 *
 * Owns: the wslay context, the copy of MHD's extra bytes, the close and
 * ping timers.
 * Loop thread only.
 */
#include "http/websocket.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "core/utf8.h"
#include "http/conn.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"     /* RFC 6455, 1.3 */
#define WS_KEY_LEN 24                   /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28                /* base64 of a SHA-1 */
#define WS_DEFAULT_MAX_MESSAGE (1024 * 1024)
#define WS_CLOSE_WAIT_MS 5000
#define WS_NO_STATUS 1005
#define WS_INVALID_DATA 1007

struct sb_ws {
    struct sb_loop *loop;
    struct sb_ws **list;                /* the server's open WebSockets */
    struct sb_ws *prev, *next;
    struct sb_http_conn *pending;       /* the conn, until on_upgrade */
    struct sb_ws_handlers handlers;
    void *arg;
    size_t max_message;

    wslay_event_context_ptr ctx;        /* NULL until on_upgrade */
    int fd;
    struct MHD_UpgradeResponseHandle *urh;
    char *extra;                        /* bytes MHD read past the headers */
    size_t extra_len, extra_off;

    uint32_t watching;                  /* current epoll mask, 0 = not watched */
    int in_io;                          /* inside wslay_event_recv/send */
    int draining;                       /* closed by us, reading the client out */
    int read_paused;                    /* sb_ws_pause_reading */
    int close_code;                     /* from the client's close frame */
    int going_away;                     /* closed by shutdown */
    uint64_t close_timer;
    uint64_t ping_ms;                   /* heartbeat interval, 0 = off */
    uint64_t ping_timer;
    uint64_t last_send_ms;              /* when wslay last wrote to the socket */
    int close_pending;                  /* sb_ws_close waits for the messages queued before it */
    uint16_t close_out_code;
    char close_out_reason[124];
    sb_ws_drain_fn drain_cb;            /* sb_ws_on_drain: NULL when none is asked */
    void *drain_arg;
    size_t drain_low;
    uint64_t drain_timer;
};

/* ---- the handshake ---- */

/* Whether the comma-separated header value holds token (case-insensitive). */
static int header_has_token(const char *value, const char *token)
{
    size_t len = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t trimmed = n;
        while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == len && strncasecmp(p, token, len) == 0)
            return 1;
        p += n;
    }
    return 0;
}

static int key_valid(const char *key)
{
    if (!key || strlen(key) != WS_KEY_LEN || strcmp(key + 22, "==") != 0)
        return 0;
    for (int i = 0; i < 22; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", key[i]))
            return 0;
    return 1;
}

static int check_handshake(struct sb_request *req, struct sb_err *err)
{
    if (strcmp(req->method, "GET") != 0)
        return sb_err_set(err, 400, "a WebSocket upgrade must be a GET, not %s", req->method);
    const char *upgrade = sb_request_header(req, "Upgrade");
    const char *connection = sb_request_header(req, "Connection");
    if (!upgrade || !header_has_token(upgrade, "websocket") || !connection ||
        !header_has_token(connection, "upgrade"))
        return sb_err_set(err, 400, "%s is a WebSocket: send `Upgrade: websocket` and "
                          "`Connection: Upgrade`", req->path);
    const char *version = sb_request_header(req, "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13") != 0)
        return sb_err_set(err, 426, "unsupported WebSocket version %.16s: use "
                          "Sec-WebSocket-Version: 13", version ? version : "(none)");
    if (!key_valid(sb_request_header(req, "Sec-WebSocket-Key")))
        return sb_err_set(err, 400, "Sec-WebSocket-Key must be 16 bytes in base64");
    return 0;
}

/* base64(SHA-1(key + GUID)) into out (WS_ACCEPT_LEN + 1 bytes). */
static void accept_value(const char *key, char out[WS_ACCEPT_LEN + 1])
{
    struct sha1_ctx sha;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&sha);
    sha1_update(&sha, strlen(key), (const uint8_t *)key);
    sha1_update(&sha, strlen(WS_GUID), (const uint8_t *)WS_GUID);
    sha1_digest(&sha, sizeof digest, digest);
    base64_encode_raw(out, sizeof digest, digest);
    out[WS_ACCEPT_LEN] = '\0';
}

/* ---- the connection's end ---- */

static void ws_unlink(struct sb_ws *ws)
{
    if (!ws->list)
        return;
    if (ws->prev)
        ws->prev->next = ws->next;
    else
        *ws->list = ws->next;
    if (ws->next)
        ws->next->prev = ws->prev;
    ws->list = NULL;
    ws->prev = ws->next = NULL;
}

/* Over: give the socket back to MHD to close, tell the handler, free. */
static void ws_finish(struct sb_ws *ws, int code)
{
    if (ws->watching)
        sb_loop_unwatch(ws->loop, ws->fd);
    if (ws->close_timer)
        sb_loop_cancel(ws->loop, ws->close_timer);
    if (ws->ping_timer)
        sb_loop_cancel(ws->loop, ws->ping_timer);
    if (ws->drain_timer)
        sb_loop_cancel(ws->loop, ws->drain_timer);
    ws_unlink(ws);
    if (ws->urh)
        MHD_upgrade_action(ws->urh, MHD_UPGRADE_ACTION_CLOSE);
    if (ws->going_away && code != SB_WS_ABNORMAL)
        code = SB_WS_GOING_AWAY;
    if (ws->handlers.on_close)
        ws->handlers.on_close(ws->arg, code);
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    free(ws->extra);
    free(ws);
}

static void on_close_timeout(struct sb_loop *loop, void *arg)
{
    struct sb_ws *ws = arg;
    ws->close_timer = 0;
    ws_finish(ws, SB_WS_ABNORMAL);
}

static void on_ws_io(struct sb_loop *loop, int fd, uint32_t events, void *arg);
static void ws_queue_close(struct sb_ws *ws);

/* After a close we sent for the client's fault (1007, 1009, a protocol
 * error), wslay reads no more; closing the socket now, with the client's
 * bytes unread, would reset the connection and could destroy the close
 * frame before the client reads it. So: FIN after the close frame, read and
 * drop until the client closes too (or CLOSE_WAIT_MS), then end. */
static void on_ws_drain(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct sb_ws *ws = arg;
    char scratch[4096];
    for (;;) {
        ssize_t n = recv(ws->fd, scratch, sizeof scratch, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        ws_finish(ws, ws->close_code ? ws->close_code : SB_WS_ABNORMAL);
        return;
    }
}

static void ws_start_drain(struct sb_ws *ws)
{
    ws->draining = 1;
    shutdown(ws->fd, SHUT_WR);
    if (ws->watching)
        sb_loop_unwatch(ws->loop, ws->fd);
    ws->watching = 0;
    if (sb_loop_watch(ws->loop, ws->fd, EPOLLIN, on_ws_drain, ws) < 0) {
        ws_finish(ws, SB_WS_ABNORMAL);
        return;
    }
    ws->watching = EPOLLIN;
    if (!ws->close_timer)
        ws->close_timer = sb_loop_timer(ws->loop, WS_CLOSE_WAIT_MS, on_close_timeout, ws);
}

/* After wslay ran (or was given work): watch for what it wants next, or end
 * the connection when it wants nothing more: at once when the close
 * handshake is complete, after draining the client when only we closed. */
static void ws_settle(struct sb_ws *ws)
{
    if (ws->draining)
        return;
    int want_read = wslay_event_want_read(ws->ctx);
    uint32_t want = 0;
    if (want_read && !ws->read_paused)
        want |= EPOLLIN;
    else if (want_read)
        want |= EPOLLRDHUP;     /* paused: still notice a hang-up */
    if (wslay_event_want_write(ws->ctx))
        want |= EPOLLOUT;
    if (!want) {
        if (wslay_event_get_close_received(ws->ctx))
            ws_finish(ws, ws->close_code ? ws->close_code : WS_NO_STATUS);
        else
            ws_start_drain(ws);
        return;
    }
    if (want == ws->watching)
        return;
    int rc = ws->watching ? sb_loop_modify(ws->loop, ws->fd, want)
                          : sb_loop_watch(ws->loop, ws->fd, want, on_ws_io, ws);
    if (rc < 0) {
        sb_warn("http: cannot watch a WebSocket: %s", strerror(errno));
        ws_finish(ws, SB_WS_ABNORMAL);
        return;
    }
    ws->watching = want;
}

static void on_drain_timer(struct sb_loop *loop, void *arg)
{
    struct sb_ws *ws = arg;
    ws->drain_timer = 0;
    sb_ws_drain_fn cb = ws->drain_cb;
    if (!cb || sb_ws_queued(ws) > ws->drain_low)
        return;
    ws->drain_cb = NULL;
    cb(ws, ws->drain_arg);
}

/* The drain callback is due once the queue is at its low-water mark; it
 * runs from a timer, never inside wslay or a send. */
static void ws_check_drain(struct sb_ws *ws)
{
    if (ws->drain_cb && !ws->drain_timer && sb_ws_queued(ws) <= ws->drain_low)
        ws->drain_timer = sb_loop_timer(ws->loop, 0, on_drain_timer, ws);
}

/* Asks for EPOLLOUT after a send or close was queued; inside wslay's own
 * run ws_settle follows anyway. */
static void ws_want_write(struct sb_ws *ws)
{
    if (ws->ctx && !ws->in_io)
        ws_settle(ws);
}

static void on_ws_io(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct sb_ws *ws = arg;
    if (ws->read_paused && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        ws_finish(ws, SB_WS_ABNORMAL);      /* gone while paused: nothing more is read */
        return;
    }
    ws->in_io = 1;
    int rc = 0;
    if (!ws->read_paused && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        rc = wslay_event_recv(ws->ctx);
    if (rc == 0 && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
        rc = wslay_event_send(ws->ctx);
    else if (rc == 0 && wslay_event_want_write(ws->ctx))
        rc = wslay_event_send(ws->ctx);     /* e.g. the pong or close reply just queued */
    if (rc == 0 && ws->close_pending) {
        ws_queue_close(ws);                 /* the messages before it are out now */
        if (!ws->close_pending && wslay_event_want_write(ws->ctx))
            rc = wslay_event_send(ws->ctx);
    }
    ws->in_io = 0;
    if (rc != 0) {
        ws_finish(ws, SB_WS_ABNORMAL);
        return;
    }
    ws_check_drain(ws);
    ws_settle(ws);
}

/* ---- wslay's callbacks ---- */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    struct sb_ws *ws = user;
    if (ws->read_paused) {      /* paused from on_message: read nothing more */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (ws->extra_off < ws->extra_len) {
        size_t n = ws->extra_len - ws->extra_off < len ? ws->extra_len - ws->extra_off : len;
        memcpy(buf, ws->extra + ws->extra_off, n);
        ws->extra_off += n;
        return (ssize_t)n;
    }
    ssize_t n = recv(ws->fd, buf, len, 0);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);    /* EOF or reset */
    return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct sb_ws *ws = user;
    ssize_t n = send(ws->fd, data, len, MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
    if (n >= 0) {
        ws->last_send_ms = sb_now_ms();
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
                      void *user)
{
    struct sb_ws *ws = user;
    if (m->opcode == WSLAY_CONNECTION_CLOSE) {
        ws->close_code = m->status_code ? m->status_code : WS_NO_STATUS;
        return;
    }
    if (m->opcode != WSLAY_TEXT_FRAME && m->opcode != WSLAY_BINARY_FRAME)
        return;     /* ping/pong: wslay answers pings itself */
    int binary = m->opcode == WSLAY_BINARY_FRAME;
    if (!binary && !sb_utf8_valid((const char *)m->msg, m->msg_length)) {
        static const char why[] = "text message is not valid UTF-8";
        wslay_event_queue_close(ctx, WS_INVALID_DATA, (const uint8_t *)why, sizeof why - 1);
        return;
    }
    if (ws->handlers.on_message && wslay_event_get_write_enabled(ctx))
        ws->handlers.on_message(ws, ws->arg, binary, m->msg, m->msg_length);
}

/* ---- the heartbeat ---- */

static void on_ping_timer(struct sb_loop *loop, void *arg)
{
    struct sb_ws *ws = arg;
    ws->ping_timer = 0;
    uint64_t idle = sb_now_ms() - ws->last_send_ms;
    int ping = idle >= ws->ping_ms && wslay_event_get_write_enabled(ws->ctx) &&
               !wslay_event_get_close_sent(ws->ctx);
    if (ping)
        idle = 0;
    /* re-armed first: ws_want_write may end (and free) the connection,
     * which cancels the timer */
    ws->ping_timer = sb_loop_timer(loop, idle >= ws->ping_ms ? ws->ping_ms : ws->ping_ms - idle,
                                   on_ping_timer, ws);
    struct wslay_event_msg msg = {.opcode = WSLAY_PING};
    if (ping && wslay_event_queue_msg(ws->ctx, &msg) == 0) {
        ws->last_send_ms = sb_now_ms();     /* counts from now, sent or not */
        ws_want_write(ws);
    }
}

void sb_ws_heartbeat(struct sb_ws *ws, uint64_t interval_ms)
{
    ws->ping_ms = interval_ms;
    if (ws->ping_timer) {
        sb_loop_cancel(ws->loop, ws->ping_timer);
        ws->ping_timer = 0;
    }
    if (interval_ms && ws->ctx)
        ws->ping_timer = sb_loop_timer(ws->loop, interval_ms, on_ping_timer, ws);
}

/* ---- MHD hands the socket over ---- */

static void on_upgrade(void *cls, struct MHD_Connection *connection, void *con_cls,
                       const char *extra_in, size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
    struct sb_ws *ws = cls;
    if (ws->pending)
        ws->pending->ws = NULL;
    ws->pending = NULL;
    ws->fd = sock;
    ws->urh = urh;
    if (extra_in_size > 0 && (ws->extra = malloc(extra_in_size))) {
        memcpy(ws->extra, extra_in, extra_in_size);
        ws->extra_len = extra_in_size;
    }
    struct wslay_event_callbacks callbacks = {
        .recv_callback = ws_recv,
        .send_callback = ws_send,
        .on_msg_recv_callback = ws_on_msg,
    };
    int flags = fcntl(sock, F_GETFL);
    if ((extra_in_size > 0 && !ws->extra) || flags < 0 ||
        fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0 ||
        wslay_event_context_server_init(&ws->ctx, &callbacks, ws) != 0) {
        sb_warn("http: cannot start a WebSocket (out of memory or a bad socket)");
        ws->ctx = NULL;
        ws_finish(ws, SB_WS_ABNORMAL);
        return;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
    ws->last_send_ms = sb_now_ms();
    sb_ws_heartbeat(ws, ws->ping_ms);
    if (ws->handlers.on_open) {
        ws->in_io = 1;                  /* what it sends goes out with the settle below */
        ws->handlers.on_open(ws, ws->arg);
        ws->in_io = 0;
    }
    if (ws->extra_len > 0) {
        on_ws_io(ws->loop, ws->fd, EPOLLIN, ws);    /* what the client sent early */
        return;
    }
    ws_settle(ws);
}

/* ---- the API ---- */

struct sb_ws *sb_ws_accept(struct sb_request *req, const struct sb_ws_handlers *handlers,
                           void *arg, size_t max_message, struct sb_err *err)
{
    struct sb_http_conn *conn = req->conn;
    if (conn->deferred)
        return sb_err_set(err, 500, "%s %s: a deferred request cannot become a WebSocket",
                          req->method, req->path), NULL;
    if (http_conn_can_stream(conn, err) < 0 || check_handshake(req, err) < 0)
        return NULL;
    char accept[WS_ACCEPT_LEN + 1];
    accept_value(sb_request_header(req, "Sec-WebSocket-Key"), accept);
    struct sb_ws *ws = calloc(1, sizeof *ws);
    struct MHD_Response *resp = ws ? MHD_create_response_for_upgrade(on_upgrade, ws) : NULL;
    if (!resp ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket") != MHD_YES ||
        MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept) != MHD_YES) {
        if (resp)
            MHD_destroy_response(resp);
        free(ws);
        return sb_err_set(err, 500, "out of memory accepting a WebSocket"), NULL;
    }
    ws->loop = conn->loop;
    ws->fd = -1;
    ws->handlers = *handlers;
    ws->arg = arg;
    ws->max_message = max_message ? max_message : WS_DEFAULT_MAX_MESSAGE;
    ws->ping_ms = SB_WS_PING_MS;
    ws->pending = conn;
    ws->list = http_conn_ws_list(conn);
    ws->next = *ws->list;
    if (ws->next)
        ws->next->prev = ws;
    *ws->list = ws;
    conn->ws = ws;
    http_conn_answer(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
    return ws;
}

int sb_ws_send(struct sb_ws *ws, int binary, const void *data, size_t len)
{
    if (!ws->ctx || !wslay_event_get_write_enabled(ws->ctx) || wslay_event_get_close_sent(ws->ctx) ||
        ws->close_pending)
        return -1;
    struct wslay_event_msg msg = {
        .opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
        .msg = data,
        .msg_length = len,
    };
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0)
        return -1;
    ws_want_write(ws);
    return 0;
}

void sb_ws_pause_reading(struct sb_ws *ws, int paused)
{
    ws->read_paused = paused != 0;
    if (ws->ctx && !ws->in_io && !ws->draining)
        ws_settle(ws);
}

size_t sb_ws_queued(const struct sb_ws *ws)
{
    return ws->ctx ? wslay_event_get_queued_msg_length(ws->ctx) : 0;
}

void sb_ws_on_drain(struct sb_ws *ws, size_t low_water, sb_ws_drain_fn cb, void *arg)
{
    ws->drain_cb = cb;
    ws->drain_arg = arg;
    ws->drain_low = low_water;
    ws_check_drain(ws);
}

/* wslay sends control frames ahead of queued messages, so a close queued
 * behind messages would overtake them (and they would never be sent): the
 * close waits in the connection until wslay's message queue is empty. */
static void ws_queue_close(struct sb_ws *ws)
{
    if (!ws->close_pending || wslay_event_get_queued_msg_count(ws->ctx) > 0 ||
        wslay_event_get_close_sent(ws->ctx))
        return;
    ws->close_pending = 0;
    wslay_event_queue_close(ws->ctx, ws->close_out_code, (const uint8_t *)ws->close_out_reason,
                            strlen(ws->close_out_reason));
}

void sb_ws_close(struct sb_ws *ws, uint16_t code, const char *reason)
{
    if (!ws->ctx || wslay_event_get_close_sent(ws->ctx) || ws->close_pending)
        return;
    ws->close_pending = 1;
    ws->close_out_code = code;
    /* a control frame's payload is at most 125 bytes: the code and 123 */
    snprintf(ws->close_out_reason, sizeof ws->close_out_reason, "%s", reason ? reason : "");
    ws_queue_close(ws);
    if (!ws->close_timer)
        ws->close_timer = sb_loop_timer(ws->loop, WS_CLOSE_WAIT_MS, on_close_timeout, ws);
    ws_want_write(ws);
}

/* ---- called by server.c ---- */

void http_ws_request_done(struct sb_ws *ws, enum MHD_RequestTerminationCode toe)
{
    ws->pending = NULL;     /* the conn goes away now */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        ws_finish(ws, SB_WS_ABNORMAL);      /* the 101 never got through */
}

void http_ws_going_away(struct sb_ws *list)
{
    for (struct sb_ws *ws = list; ws; ws = ws->next) {
        ws->going_away = 1;
        sb_ws_close(ws, SB_WS_GOING_AWAY, "server shutting down");
    }
}

void http_ws_drop_all(struct sb_ws **list)
{
    while (*list) {
        struct sb_ws *ws = *list;
        if (ws->pending) {
            ws->pending->ws = NULL;
            ws->pending = NULL;
        }
        ws_finish(ws, ws->going_away ? SB_WS_GOING_AWAY : SB_WS_ABNORMAL);
    }
}
