/*
 * rpc_stream.c - a server-streaming envd call (see envd.h): the Connect
 * stream of http/connect.c with what envd adds to it, the keepalive event
 * every Keepalive-Ping-Interval seconds of silence and the deadline of
 * Connect-Timeout-Ms, at which the call's own work is stopped (Start kills
 * its process, as envd's process context does) and the stream ends with
 * deadline_exceeded.
 *
 * Owns each e2b_rpc_stream and its deadline timer until the stream is over
 * (its closed handler has run). Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "e2b/envd.h"
#include "http/connect.h"

#define KEEPALIVE_DEFAULT_S 90      /* envd's, when the client asks for none */
#define KEEPALIVE_MAX_S 86400

struct e2b_rpc_stream {
    struct sb_stream *s;
    struct sb_loop *loop;
    uint64_t deadline_timer;        /* 0 = none, or fired */
    struct e2b_rpc_stream_handlers h;
    int ended;                      /* the end-stream envelope is written */
    void (*drained)(void *arg);     /* e2b_rpc_stream_on_drain's, until it runs */
    void *drained_arg;
};

static void on_stream_closed(void *arg, enum sb_stream_end why)
{
    struct e2b_rpc_stream *rs = arg;
    if (rs->deadline_timer)
        sb_loop_cancel(rs->loop, rs->deadline_timer);
    if (rs->h.closed)
        rs->h.closed(rs->h.arg, why);
    free(rs);
}

static void on_deadline(struct sb_loop *loop, void *arg)
{
    struct e2b_rpc_stream *rs = arg;
    rs->deadline_timer = 0;
    if (rs->ended)
        return;
    if (rs->h.deadline)
        rs->h.deadline(rs->h.arg);
    struct sb_err err;
    sb_err_set(&err, 504, "deadline exceeded: the call's Connect-Timeout-Ms passed");
    e2b_rpc_stream_end(rs, &err);
}

/* Keepalive-Ping-Interval in seconds (absent: envd's default). */
static int keepalive_seconds(const char *header, uint64_t *seconds, struct sb_err *err)
{
    *seconds = KEEPALIVE_DEFAULT_S;
    if (!header)
        return 0;
    char *end;
    long long v = strtoll(header, &end, 10);
    if (end == header || *end || v < 1 || v > KEEPALIVE_MAX_S)
        return sb_err_set(err, 400, "invalid Keepalive-Ping-Interval: seconds, 1 to %d", KEEPALIVE_MAX_S);
    *seconds = (uint64_t)v;
    return 0;
}

struct e2b_rpc_stream *e2b_rpc_stream_open(struct sb_request *req, const json_t *keepalive,
                                           const struct e2b_rpc_stream_handlers *h, struct sb_err *err)
{
    uint64_t timeout_ms, keepalive_s;
    if (e2b_rpc_timeout_ms(sb_request_header(req, "Connect-Timeout-Ms"), &timeout_ms, err) < 0 ||
        keepalive_seconds(sb_request_header(req, "Keepalive-Ping-Interval"), &keepalive_s, err) < 0)
        return NULL;
    struct e2b_rpc_stream *rs = calloc(1, sizeof *rs);
    if (!rs) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    rs->loop = api_app(req)->loop;
    rs->h = *h;
    rs->s = sb_connect_stream_open(req, err);
    if (!rs->s) {
        free(rs);
        return NULL;
    }
    sb_stream_on_close(rs->s, on_stream_closed, rs);
    if (sb_connect_keepalive(rs->s, keepalive_s * 1000, keepalive) < 0 ||
        (timeout_ms && !(rs->deadline_timer = sb_loop_timer(rs->loop, timeout_ms, on_deadline, rs)))) {
        sb_err_set(err, 500, "out of memory");
        e2b_rpc_stream_end(rs, err);    /* answered in band; closed follows */
        return NULL;
    }
    return rs;
}

int e2b_rpc_stream_send(struct e2b_rpc_stream *rs, const json_t *msg)
{
    return rs->ended ? -1 : sb_connect_send(rs->s, msg);
}

size_t e2b_rpc_stream_queued(const struct e2b_rpc_stream *rs)
{
    return sb_stream_queued(rs->s);
}

static void on_drained(struct sb_stream *s, void *arg)
{
    struct e2b_rpc_stream *rs = arg;
    void (*fn)(void *) = rs->drained;
    rs->drained = NULL;
    if (fn)
        fn(rs->drained_arg);
}

void e2b_rpc_stream_on_drain(struct e2b_rpc_stream *rs, size_t low_water, void (*fn)(void *arg), void *arg)
{
    rs->drained = fn;
    rs->drained_arg = arg;
    sb_stream_on_drain(rs->s, low_water, on_drained, rs);
}

void e2b_rpc_stream_end(struct e2b_rpc_stream *rs, const struct sb_err *err)
{
    if (rs->ended)
        return;
    rs->ended = 1;
    if (rs->deadline_timer) {
        sb_loop_cancel(rs->loop, rs->deadline_timer);
        rs->deadline_timer = 0;
    }
    sb_connect_end(rs->s, err);
}

void e2b_rpc_stream_fail(struct sb_request *req, const struct sb_err *err)
{
    struct sb_err open_err;
    struct sb_stream *s = sb_connect_stream_open(req, &open_err);
    if (s)
        sb_connect_end(s, err);
    else if (open_err.status == 503)    /* shutting down: no stream, an answer still */
        sb_respond_error(req, err);
    /* 499: the client left; 500: req is answered already (a stream ended in band) */
}
