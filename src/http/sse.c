/*
 * sse.c - the Server-Sent Events encoder (see sse.h): builds each event or
 * comment in one buffer and writes it to the stream at once.
 *
 * Owns nothing beyond the buffer of the event being written. Knows the SSE
 * wire format only; the stream does the sending.
 */
#include "http/sse.h"

#include <stdlib.h>
#include <string.h>

struct sse_buf {
    char *data;
    size_t len, cap;
    int failed;
};

static void buf_add(struct sse_buf *b, const char *text, size_t len)
{
    if (b->failed)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, text, len);
    b->len += len;
}

static void buf_adds(struct sse_buf *b, const char *text) { buf_add(b, text, strlen(text)); }

/* "<prefix><line>\n" for every line of text (\n, \r\n or \r end a line);
 * an empty text is one empty line. */
static void buf_lines(struct sse_buf *b, const char *prefix, const char *text)
{
    const char *p = text;
    for (;;) {
        size_t n = strcspn(p, "\r\n");
        buf_adds(b, prefix);
        buf_add(b, p, n);
        buf_add(b, "\n", 1);
        p += n;
        if (!*p)
            return;
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
    }
}

/* Writes b to s and frees it. */
static int buf_flush(struct sse_buf *b, struct sb_stream *s)
{
    int rc = b->failed ? -1 : sb_stream_write(s, b->data, b->len);
    free(b->data);
    return rc;
}

static int has_line_break(const char *text) { return text && strpbrk(text, "\r\n") != NULL; }

struct sb_stream *sb_sse_open(struct sb_request *req, struct sb_err *err)
{
    struct sb_stream *s = sb_stream_open(req, 200, "text/event-stream", err);
    if (!s)
        return NULL;
    /* Both fit MHD's rules, so a failure is only ever out of memory, and the
     * stream works without them. */
    sb_stream_header(s, "Cache-Control", "no-cache");
    sb_stream_header(s, "X-Accel-Buffering", "no");
    sb_stream_heartbeat(s, SB_SSE_KEEPALIVE_MS, SB_SSE_KEEPALIVE, strlen(SB_SSE_KEEPALIVE));
    return s;
}

int sb_sse_event(struct sb_stream *s, const char *id, const char *event, const char *data)
{
    if (has_line_break(id) || has_line_break(event))
        return -1;
    struct sse_buf b = {0};
    if (id) {
        buf_adds(&b, "id: ");
        buf_adds(&b, id);
        buf_add(&b, "\n", 1);
    }
    if (event) {
        buf_adds(&b, "event: ");
        buf_adds(&b, event);
        buf_add(&b, "\n", 1);
    }
    buf_lines(&b, "data: ", data ? data : "");
    buf_add(&b, "\n", 1);
    return buf_flush(&b, s);
}

int sb_sse_comment(struct sb_stream *s, const char *text)
{
    struct sse_buf b = {0};
    buf_lines(&b, ": ", text ? text : "");
    buf_add(&b, "\n", 1);
    return buf_flush(&b, s);
}

const char *sb_sse_last_event_id(const struct sb_request *req)
{
    const char *id = sb_request_header(req, "Last-Event-ID");
    return id && *id ? id : NULL;
}
