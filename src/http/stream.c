/*
 * stream.c - streaming responses (see stream.h): a byte queue per stream
 * behind an MHD_create_response_from_callback response.
 *
 * How bytes move: sb_stream_write appends to the queue and wakes the
 * connection (http_conn_wake). MHD calls stream_read whenever it has room in
 * the connection's write buffer; stream_read copies from the head of the
 * queue, and when the queue is empty either ends the body (ended: MHD writes
 * the last chunk) or puts the connection to sleep (http_conn_sleep, i.e.
 * MHD_suspend_connection from the content reader) and returns 0. So an idle
 * stream costs a suspended connection and nothing else, and MHD takes bytes
 * only as fast as the socket accepts them: the queue is where a slow client
 * shows up, and the writer reads its size.
 *
 * Callbacks into the writer never run inside MHD's content reader or inside
 * a write: the drain callback is run from a zero-delay loop timer. on_close
 * runs from MHD's completion callback (via server.c's http_stream_closed),
 * after which the stream is freed.
 *
 * Owns: the queue, the heartbeat bytes and both timers; one reference on the
 * request's conn until closed. Loop thread only, like MHD.
 */
#include "http/stream.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/conn.h"

#define STREAM_BLOCK_SIZE (32 * 1024)   /* MHD's preferred read size (advisory) */
#define STREAM_MIN_CAP 4096

struct sb_stream {
    struct sb_http_conn *conn;
    struct sb_loop *loop;

    char *buf;                  /* queue: bytes [head, head + len) of buf */
    size_t head, len, cap;

    uint64_t length;            /* sized stream: the body's length; else MHD_SIZE_UNKNOWN */
    uint64_t written;           /* bytes accepted by sb_stream_write */
    int ending;                 /* no more writes: ended by the writer or shutdown */
    int by_shutdown;            /* ending was shutdown's doing */
    int aborted;                /* sb_stream_abort: cut, not ended */
    int closed;                 /* http_stream_closed is running on_close */

    sb_stream_close_fn close_cb;
    void *close_arg;

    sb_stream_drain_fn drain_cb;
    void *drain_arg;
    size_t drain_low;
    uint64_t drain_timer;

    char *heartbeat;            /* owned copy, or NULL */
    size_t heartbeat_len;
    uint64_t heartbeat_ms;
    uint64_t heartbeat_timer;
    uint64_t last_write_ms;
};

/* ---- the queue ---- */

static int queue_append(struct sb_stream *s, const void *data, size_t len)
{
    if (len > SIZE_MAX / 2 - s->len)
        return -1;
    if (s->head + s->len + len > s->cap && s->head > 0) {
        memmove(s->buf, s->buf + s->head, s->len);
        s->head = 0;
    }
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : STREAM_MIN_CAP;
        while (cap < s->len + len)
            cap *= 2;
        char *grown = realloc(s->buf, cap);
        if (!grown)
            return -1;
        s->buf = grown;
        s->cap = cap;
    }
    memcpy(s->buf + s->head + s->len, data, len);
    s->len += len;
    return 0;
}

/* Moves up to max bytes from the head of the queue into out. */
static size_t queue_take(struct sb_stream *s, char *out, size_t max)
{
    size_t n = s->len < max ? s->len : max;
    memcpy(out, s->buf + s->head, n);
    s->head += n;
    s->len -= n;
    if (s->len == 0)
        s->head = 0;
    /* Give back memory a burst left behind, once it has been sent. */
    if (s->len == 0 && s->cap > 4 * STREAM_MIN_CAP) {
        free(s->buf);
        s->buf = NULL;
        s->cap = 0;
    }
    return n;
}

/* ---- drain and heartbeat ---- */

static void on_drain_timer(struct sb_loop *loop, void *arg)
{
    struct sb_stream *s = arg;
    s->drain_timer = 0;
    if (!s->drain_cb || s->len > s->drain_low)
        return;
    sb_stream_drain_fn cb = s->drain_cb;
    s->drain_cb = NULL;
    cb(s, s->drain_arg);
}

static void drain_check(struct sb_stream *s)
{
    if (s->drain_cb && !s->drain_timer && s->len <= s->drain_low)
        s->drain_timer = sb_loop_timer(s->loop, 0, on_drain_timer, s);
}

static void on_heartbeat_timer(struct sb_loop *loop, void *arg)
{
    struct sb_stream *s = arg;
    s->heartbeat_timer = 0;
    if (!s->heartbeat || s->ending)
        return;
    uint64_t idle = sb_now_ms() - s->last_write_ms;
    if (idle >= s->heartbeat_ms && s->len == 0) {
        if (sb_stream_write(s, s->heartbeat, s->heartbeat_len) == 0)
            idle = 0;
    }
    uint64_t wait = idle >= s->heartbeat_ms ? s->heartbeat_ms : s->heartbeat_ms - idle;
    s->heartbeat_timer = sb_loop_timer(s->loop, wait, on_heartbeat_timer, s);
}

/* ---- MHD's content reader ---- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sb_stream *s = cls;
    if (http_conn_hung_up(s->conn)) {
        http_conn_quiet_drop(s->conn);
        return MHD_CONTENT_READER_END_WITH_ERROR;   /* completion says: client gone */
    }
    if (s->len > 0) {
        size_t n = queue_take(s, buf, max);
        drain_check(s);
        return (ssize_t)n;
    }
    if (s->ending && (s->length != MHD_SIZE_UNKNOWN || s->aborted))
        return MHD_CONTENT_READER_END_WITH_ERROR;   /* short of its length, or aborted: cut */
    if (s->ending)
        return MHD_CONTENT_READER_END_OF_STREAM;
    http_conn_sleep(s->conn);   /* sb_stream_write wakes it */
    return 0;
}

/* ---- the API ---- */

struct sb_stream *sb_stream_open(struct sb_request *req, int status, const char *content_type,
                                 struct sb_err *err)
{
    return sb_stream_open_sized(req, status, content_type, MHD_SIZE_UNKNOWN, err);
}

struct sb_stream *sb_stream_open_sized(struct sb_request *req, int status,
                                       const char *content_type, uint64_t length,
                                       struct sb_err *err)
{
    struct sb_http_conn *conn = req->conn;
    if (status < 100 || status > 599) {
        sb_err_set(err, 500, "%s %s: stream status %d is not an HTTP status", req->method,
                   req->path, status);
        return NULL;
    }
    if (http_conn_can_stream(conn, err) < 0)
        return NULL;
    struct sb_stream *s = calloc(1, sizeof *s);
    struct MHD_Response *resp = s ? MHD_create_response_from_callback(
                                        length, STREAM_BLOCK_SIZE, stream_read, s, NULL)
                                  : NULL;
    if (resp && content_type &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    if (!resp) {
        free(s);
        sb_err_set(err, 500, "out of memory opening a stream");
        return NULL;
    }
    s->conn = conn;
    s->loop = conn->loop;
    s->length = length;
    s->last_write_ms = sb_now_ms();
    http_conn_start_stream(conn, s, status, resp);
    return s;
}

int sb_stream_header(struct sb_stream *s, const char *name, const char *value)
{
    struct MHD_Response *resp = s->closed ? NULL : http_conn_pending_response(s->conn);
    if (!resp)
        return -1;
    return MHD_add_response_header(resp, name, value) == MHD_YES ? 0 : -1;
}

int sb_stream_write(struct sb_stream *s, const void *data, size_t len)
{
    if (s->ending || s->closed)
        return -1;
    if (len == 0)
        return 0;
    if (s->length != MHD_SIZE_UNKNOWN && len > s->length - s->written)
        return -1;
    if (queue_append(s, data, len) < 0)
        return -1;
    s->written += len;
    s->last_write_ms = sb_now_ms();
    http_conn_wake(s->conn);
    return 0;
}

size_t sb_stream_queued(const struct sb_stream *s) { return s->len; }

void sb_stream_on_drain(struct sb_stream *s, size_t low_water, sb_stream_drain_fn cb, void *arg)
{
    s->drain_cb = cb;
    s->drain_arg = arg;
    s->drain_low = low_water;
    if (!s->closed)
        drain_check(s);
}

void sb_stream_end(struct sb_stream *s)
{
    if (s->ending || s->closed)
        return;
    s->ending = 1;
    http_conn_wake(s->conn);
}

void sb_stream_abort(struct sb_stream *s)
{
    if (s->ending || s->closed)
        return;
    s->aborted = 1;
    s->ending = 1;      /* what is queued still goes out; then the body is cut */
    http_conn_wake(s->conn);
}

void sb_stream_on_close(struct sb_stream *s, sb_stream_close_fn cb, void *arg)
{
    s->close_cb = cb;
    s->close_arg = arg;
}

int sb_stream_heartbeat(struct sb_stream *s, uint64_t interval_ms, const void *bytes, size_t len)
{
    if (s->length != MHD_SIZE_UNKNOWN)
        return -1;      /* extra bytes would break the declared length */
    if (s->heartbeat_timer) {
        sb_loop_cancel(s->loop, s->heartbeat_timer);
        s->heartbeat_timer = 0;
    }
    if (interval_ms == 0 || len == 0) {
        free(s->heartbeat);
        s->heartbeat = NULL;
        s->heartbeat_len = 0;
        return 0;
    }
    char *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, bytes, len);
    free(s->heartbeat);
    s->heartbeat = copy;
    s->heartbeat_len = len;
    s->heartbeat_ms = interval_ms;
    if (!s->closed)
        s->heartbeat_timer = sb_loop_timer(s->loop, interval_ms, on_heartbeat_timer, s);
    return 0;
}

/* ---- called by server.c ---- */

void http_stream_shutdown(struct sb_stream *s)
{
    if (s->closed)
        return;
    if (!s->ending)
        s->by_shutdown = 1;
    sb_stream_end(s);
}

void http_stream_closed(struct sb_stream *s, enum MHD_RequestTerminationCode toe)
{
    enum sb_stream_end why = SB_STREAM_CLIENT_GONE;
    if (s->by_shutdown || toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
        why = SB_STREAM_SHUTDOWN;
    else if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        why = SB_STREAM_ENDED;
    else if (s->ending && ((s->length != MHD_SIZE_UNKNOWN && s->written < s->length) || s->aborted) &&
             !http_conn_hung_up(s->conn))
        why = SB_STREAM_CUT;
    s->closed = 1;
    s->ending = 1;
    if (s->drain_timer)
        sb_loop_cancel(s->loop, s->drain_timer);
    if (s->heartbeat_timer)
        sb_loop_cancel(s->loop, s->heartbeat_timer);
    s->drain_timer = s->heartbeat_timer = 0;
    s->drain_cb = NULL;
    if (s->close_cb)
        s->close_cb(s->close_arg, why);
    http_conn_release(s->conn);
    free(s->buf);
    free(s->heartbeat);
    free(s);
}
