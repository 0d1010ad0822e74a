/*
 * sse.h - Server-Sent Events (text/event-stream) over an sb_stream.
 *
 * An event is written as its fields, one per line, and a blank line:
 *     id: 42\n            (optional)
 *     event: stdout\n     (optional; the client's default is "message")
 *     data: first line\n  (one data line per line of data, at least one)
 *     data: second line\n
 *     \n
 * A line break in data, written as \n, \r\n or \r (all three end a line for
 * an SSE parser), starts a new data line, so the client gets the data back
 * with \n between lines. Comments (": text") are ignored by clients; the
 * keepalive is one, written by the stream's heartbeat when nothing else was.
 * Each event or comment goes into the stream in one write, so events never
 * interleave. Loop thread only, like the stream.
 */
#ifndef SB_HTTP_SSE_H
#define SB_HTTP_SSE_H

#include "core/err.h"
#include "http/request.h"
#include "http/stream.h"

#define SB_SSE_KEEPALIVE ": keepalive\n\n"
#define SB_SSE_KEEPALIVE_MS 15000

/* sb_stream_open with 200, Content-Type text/event-stream, Cache-Control:
 * no-cache and X-Accel-Buffering: no (so proxies pass events on at once),
 * and the keepalive comment as heartbeat every SB_SSE_KEEPALIVE_MS (change
 * it with sb_stream_heartbeat). NULL with err set as sb_stream_open. */
struct sb_stream *sb_sse_open(struct sb_request *req, struct sb_err *err);

/* Writes one event. id and event may be NULL (left out) and must not
 * contain a line break; data NULL is the same as "". Returns -1 and writes
 * nothing for an id or event with a line break, or when the write fails
 * (see sb_stream_write). */
int sb_sse_event(struct sb_stream *s, const char *id, const char *event, const char *data);

/* Writes a comment (": text", one per line of text) and a blank line.
 * Returns -1 when the write fails. */
int sb_sse_comment(struct sb_stream *s, const char *text);

/* The request's Last-Event-ID header (a client resuming after the event of
 * that id), or NULL when absent or empty. Only while the handler runs, like
 * sb_request_header: copy it to keep it. */
const char *sb_sse_last_event_id(const struct sb_request *req);

#endif
