/*
 * conn.h - private to src/http: the per-request state behind sb_request, and
 * the few functions request.c and server.c share.
 *
 * One sb_http_conn exists per HTTP request (MHD's *con_cls), not per TCP
 * connection: a keep-alive connection gets a fresh one for every request.
 * It is reference-counted on the loop thread only: one reference for MHD
 * (dropped when MHD reports the request completed) and one for a deferred
 * handler (dropped when its completion has been processed on the loop). It
 * is freed when both are gone, so a completion that arrives after the client
 * left is safe and simply discarded.
 *
 * Every answer is an MHD_Response handed to http_conn_answer(), or a stream
 * (stream.c): an MHD_create_response_from_callback response that
 * http_conn_start_stream() installs the same way, after which the stream
 * holds the reference a deferred handler would and the server tells it when
 * MHD is done (http_stream_closed) or shutdown begins (http_stream_shutdown).
 * Nothing outside src/http may include this file.
 */
#ifndef SB_HTTP_CONN_H
#define SB_HTTP_CONN_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "http/request.h"
#include "http/router.h"

struct sb_server;
struct sb_stream;
struct sb_ws;

struct sb_http_conn {
    struct sb_server *server;       /* may be freed once mhd_done: don't touch then */
    struct sb_loop *loop;           /* outlives every conn (see server.h) */
    struct MHD_Connection *mhd;     /* NULL once MHD completed the request */
    int refs;                       /* loop thread only */

    struct sb_request req;          /* what the handler sees; req.conn == this */
    struct sb_route_match match;    /* params point into match.value_buf */
    char *method, *path;            /* owned copies (MHD's die with the request) */
    const char *raw_target;         /* the target as sent (server.c owns it), NULL once done */
    char *body;                     /* owned, NUL-terminated, never NULL once dispatched */
    size_t body_len, body_cap;
    int body_too_large;             /* past max_body: the rest is discarded */
    struct sb_err early;            /* 401/404/405/503 decided from the headers */
    double start_ms;

    struct MHD_Response *response;  /* ready to queue (owned until queued) */
    int status;                     /* of the queued/ready response */
    int deferred;                   /* sb_request_defer() was called */
    int answer_arrived;             /* the deferred handler's answer reached the loop */
    int suspended;                  /* MHD connection suspended by us */
    int watched_fd;                 /* socket watched for a hang-up while suspended, or -1 */
    int hung_up;                    /* the client closed while suspended: MHD must drop it */
    sb_request_gone_fn gone_cb;     /* sb_request_on_gone(); loop thread only */
    void *gone_arg;
    struct sb_stream *stream;       /* the answer is this stream (stream.c), or NULL */
    /* a streamed request body (SB_ROUTE_STREAM_BODY, sb_request_body_sink) */
    enum { BODY_BUFFERED, BODY_SINK, BODY_PAUSED, BODY_DONE } body_state;
    sb_body_data_fn body_data;
    sb_body_end_fn body_end;
    void *body_arg;
    uint64_t body_max, body_received;
    struct sb_http_conn *stream_prev, *stream_next;  /* in the server's open streams */
    struct sb_ws *ws;               /* accepted WebSocket MHD has not upgraded yet */
    struct sb_tunnel *tunnel;       /* accepted tunnel MHD has not upgraded yet */
    int queued;                     /* response handed to MHD */
    int mhd_done;                   /* MHD reported the request completed */
    struct sb_http_conn *prev, *next;   /* in the server's suspended list */
};

/* Builders (request.c). Both return a response the caller owns, or NULL
 * when out of memory. http_json_response steals body. http_error_response
 * renders with render (the route's; NULL: the default body). */
struct MHD_Response *http_json_response(json_t *body);
struct MHD_Response *http_error_response(sb_error_render_fn render, const struct sb_err *err,
                                         int *status_out);

/* Answers the request (server.c). On the loop thread before the handler
 * has deferred, the response is queued once the handler returns; after
 * sb_request_defer(), from any thread, it is posted to the loop. Takes
 * ownership of resp (NULL means "could not build it": answers 500). */
void http_conn_answer(struct sb_http_conn *conn, int status, struct MHD_Response *resp);
/* Same, always through the loop's post queue (any thread, deferred only). */
void http_conn_complete(struct sb_http_conn *conn, int status, struct MHD_Response *resp);
void http_conn_defer(struct sb_http_conn *conn);
void http_conn_on_gone(struct sb_http_conn *conn, sb_request_gone_fn cb, void *arg);

/* ---- request bodies (body.c) ---- */

/* sb_request_body_sink and sb_request_body_resume. */
int http_conn_body_sink(struct sb_http_conn *conn, uint64_t max_bytes, sb_body_data_fn on_data,
                        sb_body_end_fn on_end, void *arg, struct sb_err *err);
void http_conn_body_resume(struct sb_http_conn *conn);
/* A piece of body from MHD: buffered (up to max_body, then body_too_large)
 * or given to the sink. -1 when out of memory; 1 when a paused sink cannot
 * take it now: the caller leaves it unconsumed, so MHD keeps it and hands
 * it over again once the connection is resumed. */
int http_body_take(struct sb_http_conn *conn, size_t max_body, const char *data, size_t len);
/* The whole body is in: the sink's on_end(NULL). */
void http_body_complete(struct sb_http_conn *conn);
/* The request ended before its body did: the sink's on_end(499). */
void http_body_cut(struct sb_http_conn *conn);

/* ---- streams (server.c for stream.c, loop thread only) ---- */

/* 0 when conn may become a stream (or a WebSocket); -1 with err (500
 * answered already, 499 client gone, 503 shutting down) otherwise. */
int http_conn_can_stream(const struct sb_http_conn *conn, struct sb_err *err);
/* Installs resp (owned by conn from here) as conn's answer and s as its
 * stream: the stream takes the handler's reference (a new one if the
 * request was not deferred), resumes a deferred connection, and from now
 * on the server calls http_stream_closed / http_stream_shutdown for it. */
void http_conn_start_stream(struct sb_http_conn *conn, struct sb_stream *s, int status,
                            struct MHD_Response *resp);
/* The not-yet-queued response (for headers), or NULL once MHD has it. */
struct MHD_Response *http_conn_pending_response(struct sb_http_conn *conn);
/* From the content reader or the access handler only: suspend conn until
 * http_conn_wake (nothing if it is suspended already). */
void http_conn_sleep(struct sb_http_conn *conn);
/* Resumes conn if it is suspended; otherwise nothing. */
void http_conn_wake(struct sb_http_conn *conn);
/* The client hung up while the connection was suspended: the reader must
 * end the response with an error. */
int http_conn_hung_up(const struct sb_http_conn *conn);
/* Ending a hung-up connection with an error is expected: MHD's log line
 * about it is not written. */
void http_conn_quiet_drop(struct sb_http_conn *conn);
/* Drops the stream's reference (after http_stream_closed). */
void http_conn_release(struct sb_http_conn *conn);

/* The server's list of open tunnels (tunnel.c keeps it). */
struct sb_tunnel;
struct sb_tunnel **http_conn_tunnel_list(struct sb_http_conn *conn);
void http_tunnel_request_done(struct sb_tunnel *t, enum MHD_RequestTerminationCode toe);
void http_tunnel_drop_all(struct sb_tunnel **list);

/* The server's list of open WebSockets (websocket.c keeps it). */
struct sb_ws **http_conn_ws_list(struct sb_http_conn *conn);

/* websocket.c, called by server.c: the request ended (toe says how)
 * before MHD upgraded it; shutdown starts (close 1001 to each); the daemon
 * stops (drop all). */
void http_ws_request_done(struct sb_ws *ws, enum MHD_RequestTerminationCode toe);
void http_ws_going_away(struct sb_ws *list);
void http_ws_drop_all(struct sb_ws **list);

/* stream.c, called by server.c: MHD is done with the request (toe says
 * how), or shutdown starts. */
void http_stream_closed(struct sb_stream *s, enum MHD_RequestTerminationCode toe);
void http_stream_shutdown(struct sb_stream *s);

#endif
