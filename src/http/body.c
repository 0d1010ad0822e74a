/*
 * body.c - request bodies: buffered up to max_body into conn->body (every
 * route by default), or handed piece by piece to the handler's sink
 * (SB_ROUTE_STREAM_BODY routes, see sb_request_body_sink in request.h).
 *
 * server.c's access handler gives every piece MHD delivers to
 * http_body_take, says when the body is complete (http_body_complete) and
 * when the request ended without it (http_body_cut). A sink that pauses
 * suspends the connection from inside the access handler, which MHD
 * allows; MHD then reads nothing more from the socket, so the client's
 * sends block once the socket buffers are full, until
 * sb_request_body_resume resumes the connection. MHD may still offer
 * data in the same turn (the rest of a chunk, the next chunk already in
 * its buffer): a paused sink leaves it unconsumed, so it stays in MHD's
 * buffer and comes again, in order, after the resume.
 *
 * Owns: the buffered body (freed with the conn). Loop thread only; never
 * queues a response (server.c does).
 */
#include <stdlib.h>
#include <string.h>

#include "http/conn.h"
#include "http/limits.h"

int http_conn_body_sink(struct sb_http_conn *conn, uint64_t max_bytes, sb_body_data_fn on_data,
                        sb_body_end_fn on_end, void *arg, struct sb_err *err)
{
    if (!(conn->match.flags & SB_ROUTE_STREAM_BODY) || conn->body_state != BODY_BUFFERED ||
        !conn->mhd)
        return sb_err_set(err, 500, "%s %s: the route does not stream its body, or a sink "
                          "is already registered", conn->method, conn->path);
    const char *length = MHD_lookup_connection_value(conn->mhd, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (max_bytes && length && strtoull(length, NULL, 10) > max_bytes)
        return sb_err_set(err, 413, "request body too large (limit %llu bytes)",
                          (unsigned long long)max_bytes);
    conn->body_state = BODY_SINK;
    conn->body_data = on_data;
    conn->body_end = on_end;
    conn->body_arg = arg;
    conn->body_max = max_bytes;
    if (!conn->deferred)
        http_conn_defer(conn);
    /* From here the upload may take as long as the handler lets it: the
     * read deadline is for requests the server buffers. */
    http_limits_request_received(conn->mhd);
    return 0;
}

void http_conn_body_resume(struct sb_http_conn *conn)
{
    if (conn->body_state != BODY_PAUSED)
        return;
    conn->body_state = BODY_SINK;
    http_conn_wake(conn);
}

/* Ends the sink once, with err (NULL: the whole body arrived). */
static void sink_end(struct sb_http_conn *conn, const struct sb_err *err)
{
    conn->body_state = BODY_DONE;
    conn->body_end(&conn->req, conn->body_arg, err);
}

/* Whether the sink still takes data: not once it stopped or ended, nor once
 * the request has an answer (its handler's, or shutdown's). */
static int sink_open(const struct sb_http_conn *conn)
{
    return (conn->body_state == BODY_SINK || conn->body_state == BODY_PAUSED) &&
           !conn->response && !conn->answer_arrived && !conn->queued;
}

static void sink_take(struct sb_http_conn *conn, const char *data, size_t len)
{
    if (!sink_open(conn))
        return;
    if (conn->body_max && len > conn->body_max - conn->body_received) {
        struct sb_err err;
        sb_err_set(&err, 413, "request body too large (limit %llu bytes)",
                   (unsigned long long)conn->body_max);
        sink_end(conn, &err);
        return;
    }
    conn->body_received += len;
    enum sb_body_verdict verdict = conn->body_data(&conn->req, conn->body_arg, data, len);
    if (verdict == SB_BODY_STOP) {
        conn->body_state = BODY_DONE;
    } else if (verdict == SB_BODY_PAUSE && sink_open(conn)) {
        conn->body_state = BODY_PAUSED;
        http_conn_sleep(conn);
    }
}

/* Appends a piece to the buffered body, or discards it once it cannot be
 * used (an early error, or past max_body). -1 when out of memory. */
static int buffer_take(struct sb_http_conn *conn, size_t max_body, const char *data, size_t len)
{
    if (conn->early.status || conn->body_too_large)
        return 0;
    if (len > max_body - conn->body_len) {
        conn->body_too_large = 1;
        free(conn->body);
        conn->body = NULL;
        conn->body_len = conn->body_cap = 0;
        return 0;
    }
    if (conn->body_len + len + 1 > conn->body_cap) {
        size_t cap = conn->body_cap ? conn->body_cap : 1024;
        while (cap < conn->body_len + len + 1)
            cap *= 2;
        char *grown = realloc(conn->body, cap);
        if (!grown)
            return -1;
        conn->body = grown;
        conn->body_cap = cap;
    }
    memcpy(conn->body + conn->body_len, data, len);
    conn->body_len += len;
    conn->body[conn->body_len] = '\0';
    return 0;
}

int http_body_take(struct sb_http_conn *conn, size_t max_body, const char *data, size_t len)
{
    if (conn->match.flags & SB_ROUTE_STREAM_BODY) {
        if (conn->early.status)
            return 0;
        if (conn->body_state == BODY_PAUSED && sink_open(conn))
            return 1;                       /* not now: MHD keeps it */
        sink_take(conn, data, len);         /* no sink: the handler ignores the body */
        return 0;
    }
    return buffer_take(conn, max_body, data, len);
}

void http_body_complete(struct sb_http_conn *conn)
{
    if (sink_open(conn))
        sink_end(conn, NULL);
}

void http_body_cut(struct sb_http_conn *conn)
{
    if (!sink_open(conn))
        return;
    struct sb_err err;
    sb_err_set(&err, 499, "the client left before sending the whole body");
    sink_end(conn, &err);
}
