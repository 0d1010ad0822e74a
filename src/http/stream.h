/*
 * stream.h - a long-lived HTTP response: the handler writes when it has
 * data, and the body goes out chunked as it is written.
 *
 * Model. A handler turns its request into a stream instead of answering it
 * (while it runs, or later on the loop thread for a deferred request). Each
 * sb_stream_write copies the bytes into the stream's queue and wakes the
 * connection; libmicrohttpd takes bytes from the queue as fast as the socket
 * accepts them, and when the queue is empty the connection is suspended
 * (no busy loop, no thread) until the next write. The writer sees how much
 * is still queued (sb_stream_queued) and, past a window of its choosing,
 * stops reading its source and asks to be told when the queue has drained
 * below a low-water mark (sb_stream_on_drain): that is the back-pressure
 * that reaches a process writing faster than its client reads. Nothing
 * bounds the queue but the writer: a stream never drops or refuses bytes
 * while it is open.
 *
 * The stream is over when, whichever comes first: it was ended
 * (sb_stream_end) and the queue has been sent; the client left (noticed at
 * once while the connection is suspended, at the next send otherwise: on an
 * idle stream, a heartbeat makes that send happen); the connection stalled
 * past the server's idle timeout; or the server shut down, which ends every
 * open stream at once (the chunked body is terminated properly) and does
 * not wait its grace period for them. on_close is then called exactly once
 * and the handle is freed: the writer must stop using it. A stream holds no
 * thread and no worker, and counts against no limit of the server's own
 * besides being one of its TCP connections.
 *
 * Everything here is for the loop thread only.
 */
#ifndef SB_HTTP_STREAM_H
#define SB_HTTP_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/request.h"

struct sb_stream;

/* Why a stream is over, as given to on_close. */
enum sb_stream_end {
    SB_STREAM_ENDED,        /* sb_stream_end() and every byte was sent */
    SB_STREAM_CLIENT_GONE,  /* the client left, reset, or stalled past the idle timeout */
    SB_STREAM_SHUTDOWN,     /* the server shut down (the body was ended, or cut off) */
    SB_STREAM_CUT,          /* a sized stream ended short of its length: the
                               connection was closed, the client saw it cut */
};

/* Turns req into a stream answered with status (100-599) and Content-Type
 * content_type (NULL: none), sent chunked (HTTP/1.1; an HTTP/1.0 client gets
 * the body until the connection closes). Counts as the request's answer:
 * after it, the handler must not answer or complete req. For a deferred
 * request it replaces the completion and must run on the loop thread; the
 * request's gone callback no longer runs (on_close says instead). Returns
 * NULL with err set and req unchanged (answer it as usual) when req is
 * already answered (500), its client has gone (499) or the server is
 * shutting down (503). The stream owns its memory and frees it after
 * on_close; the caller never frees it. */
struct sb_stream *sb_stream_open(struct sb_request *req, int status, const char *content_type,
                                 struct sb_err *err);

/* The same for a body whose length is known (a file download): sent with
 * Content-Length instead of chunked. Writes past length fail; the stream is
 * over once length bytes are sent (sb_stream_end is then optional), and
 * ending it short closes the connection (SB_STREAM_CUT). No heartbeat. */
struct sb_stream *sb_stream_open_sized(struct sb_request *req, int status,
                                       const char *content_type, uint64_t length,
                                       struct sb_err *err);

/* Adds a response header. Only before the response headers go out, i.e. in
 * the same loop callback (or handler run) as sb_stream_open. Returns -1
 * (nothing added) when too late, or for a name or value MHD refuses. */
int sb_stream_header(struct sb_stream *s, const char *name, const char *value);

/* Queues a copy of len bytes and wakes the connection. Returns -1 (nothing
 * queued) once the stream is ending (ended by the writer, or by shutdown)
 * or closed, past a sized stream's length, or when out of memory. */
int sb_stream_write(struct sb_stream *s, const void *data, size_t len);

/* Bytes written but not yet taken by the connection. */
size_t sb_stream_queued(const struct sb_stream *s);

/* cb(s, arg) runs once, on the loop thread but never inside a write, as soon
 * as at most low_water bytes are queued (soon, when that is already so). One
 * request at a time: a new one replaces the previous. Not called once the
 * stream is over (on_close is). */
typedef void (*sb_stream_drain_fn)(struct sb_stream *s, void *arg);
void sb_stream_on_drain(struct sb_stream *s, size_t low_water, sb_stream_drain_fn cb, void *arg);

/* Ends the response once everything queued has been sent; later writes
 * fail. on_close follows (SB_STREAM_ENDED, or whatever came first). */
void sb_stream_end(struct sb_stream *s);

/* Ends the response as broken: what is queued is still sent, then the
 * connection is closed without the body's proper end (no last chunk), so
 * the client sees it cut, never complete. (libmicrohttpd may close before
 * it has sent what it took last: a writer that wants every byte out first
 * waits for sb_stream_on_drain(s, 0, ...).) on_close follows (SB_STREAM_CUT,
 * or whatever came first). For a source that failed midway (a proxied
 * server that closed inside a chunked body). */
void sb_stream_abort(struct sb_stream *s);

/* cb(arg, why) runs exactly once when the stream is over, on the loop
 * thread; after it returns, s is freed. Inside cb, s may still be queried
 * but writes fail. A second call replaces cb. */
typedef void (*sb_stream_close_fn)(void *arg, enum sb_stream_end why);
void sb_stream_on_close(struct sb_stream *s, sb_stream_close_fn cb, void *arg);

/* Writes a copy of bytes (len > 0) whenever nothing has been written for
 * interval_ms and nothing is queued, so that a client that left an idle
 * stream is noticed (and proxies keep the connection). interval_ms 0 turns
 * it off. Returns -1 when out of memory or for a sized stream (heartbeat
 * unchanged). */
int sb_stream_heartbeat(struct sb_stream *s, uint64_t interval_ms, const void *bytes, size_t len);

#endif
