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
 * Every answer is an MHD_Response handed to http_conn_answer(); a future
 * streaming response (SSE: MHD_create_response_from_callback plus
 * suspend/resume for back-pressure) plugs in at that same seam.
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

struct sb_http_conn {
    struct sb_server *server;       /* may be freed once mhd_done: don't touch then */
    struct sb_loop *loop;           /* outlives every conn (see server.h) */
    struct MHD_Connection *mhd;     /* NULL once MHD completed the request */
    int refs;                       /* loop thread only */

    struct sb_request req;          /* what the handler sees; req.conn == this */
    struct sb_route_match match;    /* params point into match.value_buf */
    char *method, *path;            /* owned copies (MHD's die with the request) */
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
    int queued;                     /* response handed to MHD */
    int mhd_done;                   /* MHD reported the request completed */
    struct sb_http_conn *prev, *next;   /* in the server's suspended list */
};

/* Builders (request.c). Both return a response the caller owns, or NULL
 * when out of memory. http_json_response steals body. */
struct MHD_Response *http_json_response(json_t *body);
struct MHD_Response *http_error_response(const struct sb_err *err, int *status_out);

/* Answers the request (server.c). On the loop thread before the handler
 * has deferred, the response is queued once the handler returns; after
 * sb_request_defer(), from any thread, it is posted to the loop. Takes
 * ownership of resp (NULL means "could not build it": answers 500). */
void http_conn_answer(struct sb_http_conn *conn, int status, struct MHD_Response *resp);
/* Same, always through the loop's post queue (any thread, deferred only). */
void http_conn_complete(struct sb_http_conn *conn, int status, struct MHD_Response *resp);
void http_conn_defer(struct sb_http_conn *conn);
void http_conn_on_gone(struct sb_http_conn *conn, sb_request_gone_fn cb, void *arg);

#endif
