/*
 * websocket.h - WebSocket (RFC 6455) connections: a handler accepts the
 * upgrade, and messages then flow both ways on the loop thread.
 *
 * The handshake is checked and answered here (101 with Sec-WebSocket-Accept);
 * once libmicrohttpd hands over the socket, libwslay does the framing
 * (masking, fragmentation, ping/pong, the close handshake) and the socket is
 * watched on the loop like any other fd: no thread per connection. Messages
 * are delivered whole, text ones only if valid UTF-8 (otherwise the
 * connection is closed with 1007). Sending copies the message into wslay's
 * queue; sb_ws_queued is the writer's back-pressure signal, as for streams.
 * A ping goes out when nothing was sent for SB_WS_PING_MS (sb_ws_heartbeat),
 * so that a client that vanished without a FIN is found out by the reset
 * it gets, as for streams. Server shutdown sends every open WebSocket a
 * close (1001) and waits for the handshake within its grace period.
 *
 * Everything here is for the loop thread only.
 */
#ifndef SB_HTTP_WEBSOCKET_H
#define SB_HTTP_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/request.h"

#define SB_WS_GOING_AWAY 1001           /* shutdown */
#define SB_WS_ABNORMAL 1006             /* no close frame: the peer vanished */
#define SB_WS_PING_MS 15000             /* default heartbeat */

struct sb_ws;

struct sb_ws_handlers {
    /* Once the upgrade is done: messages sent from here on reach the
     * client (before it, sb_ws_send fails). May be NULL. */
    void (*on_open)(struct sb_ws *ws, void *arg);
    /* A whole message from the client (binary or UTF-8 text); data is valid
     * during the call only. NULL: messages are dropped. */
    void (*on_message)(struct sb_ws *ws, void *arg, int binary, const void *data, size_t len);
    /* Exactly once, when the connection is over, however it ended: code is
     * the close code the client sent (or 1005 if its close had none), or
     * SB_WS_ABNORMAL when it vanished, SB_WS_GOING_AWAY at shutdown. ws is
     * freed after it returns. May be NULL. Also called (with
     * SB_WS_ABNORMAL) when the handshake answer never reached the client. */
    void (*on_close)(void *arg, int code);
};

/* Accepts req as a WebSocket: from the handler while it runs (not for a
 * deferred request). The request must be a GET with Upgrade: websocket,
 * Connection: upgrade, Sec-WebSocket-Version: 13 and a valid
 * Sec-WebSocket-Key; otherwise returns NULL with err (400, or 426 with the
 * version to use) and req unanswered: answer it with the error. Counts as
 * the request's answer. max_message (0: 1 MiB) bounds what a client may send
 * in one message (1009 past it). handlers is copied. */
struct sb_ws *sb_ws_accept(struct sb_request *req, const struct sb_ws_handlers *handlers,
                           void *arg, size_t max_message, struct sb_err *err);

/* Queues a message (a copy) and wakes the connection. Returns -1 once the
 * connection is closing or when out of memory. */
int sb_ws_send(struct sb_ws *ws, int binary, const void *data, size_t len);

/* Sends a ping whenever nothing was sent for interval_ms (0: never; the
 * default is SB_WS_PING_MS). */
void sb_ws_heartbeat(struct sb_ws *ws, uint64_t interval_ms);

/* Stops (paused 1) or restarts (0) reading from the client: no message is
 * delivered meanwhile and the client's sends block once the socket buffers
 * are full, so a handler whose destination is slow (a shim's stdin) holds
 * back the client instead of buffering. Writing goes on. Paused from
 * inside on_message, the messages wslay already holds (at most its 4 KiB
 * read buffer) are still delivered; nothing more is read. A client that
 * hangs up while paused is noticed (SB_WS_ABNORMAL). */
void sb_ws_pause_reading(struct sb_ws *ws, int paused);

/* Bytes queued for the client and not yet written to the socket. */
size_t sb_ws_queued(const struct sb_ws *ws);

/* cb(ws, arg) runs once, on the loop thread but never inside a send or a
 * handler's callback, as soon as at most low_water bytes are queued (soon,
 * when that is already so): what a writer past its window waits for, as
 * with sb_stream_on_drain. A new request replaces the previous one; not
 * called once the connection is over (on_close is). */
typedef void (*sb_ws_drain_fn)(struct sb_ws *ws, void *arg);
void sb_ws_on_drain(struct sb_ws *ws, size_t low_water, sb_ws_drain_fn cb, void *arg);

/* Starts the close handshake with code (1000 normal) and reason (may be
 * NULL; cut to what fits a control frame). Messages queued before it are
 * sent first. on_close follows once the client answers, or it vanishes. */
void sb_ws_close(struct sb_ws *ws, uint16_t code, const char *reason);

#endif
