/*
 * connect.h - the Connect protocol's wire pieces (JSON codec), for the
 * envd-compatible routes of issue 10: error codes, the unary error body,
 * and envelopes, written to a stream or read from a request body.
 *
 * An envelope is one flags byte, a 4-byte big-endian payload length and the
 * payload (here: one JSON message). A server-streaming answer is 200 with
 * Content-Type application/connect+json and a body of data envelopes
 * (flags 0) ended by exactly one end-stream envelope (flags 0x02) holding
 * {} or {"error":{"code":...,"message":...}}: errors of a stream go in
 * band, never as an HTTP status. A unary error is an HTTP status with
 * {"code":"<string>","message":...}, which sb_connect_render_error makes
 * as a route's error renderer (router.h).
 *
 * Codes come from the error's status, the one thing struct sb_err carries:
 * 400 invalid_argument, 401 unauthenticated, 403 permission_denied, 404
 * not_found, 405 unimplemented, 408 and 504 deadline_exceeded, 409
 * failed_precondition, 413,
 * 429 and 507 resource_exhausted, 499 canceled, 501 unimplemented, 502 and
 * 503 unavailable, other 5xx internal, other 4xx invalid_argument.
 *
 * Loop thread only for what writes to a stream; the rest is pure.
 */
#ifndef SB_HTTP_CONNECT_H
#define SB_HTTP_CONNECT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/request.h"
#include "http/stream.h"

#define SB_CONNECT_FLAG_COMPRESSED 0x01
#define SB_CONNECT_FLAG_END_STREAM 0x02
#define SB_CONNECT_ENVELOPE_HEADER 5

/* The Connect code of an error status (see the top comment), and the HTTP
 * status Connect conventionally answers a code with (500 for an unknown
 * one). */
const char *sb_connect_code(int status);
int sb_connect_status(const char *code);

/* A route's error renderer for unary Connect calls: {"code","message"}
 * with the code's conventional status. */
json_t *sb_connect_render_error(const struct sb_err *err, int *status);

/* A server-streaming answer: sb_stream_open with 200 and
 * application/connect+json. */
struct sb_stream *sb_connect_stream_open(struct sb_request *req, struct sb_err *err);
/* Writes msg (not stolen) as one data envelope, in one stream write.
 * -1 when msg cannot be encoded or the write fails (sb_stream_write). */
int sb_connect_send(struct sb_stream *s, const json_t *msg);
/* Writes the end-stream envelope, {} (err NULL) or {"error":{code,
 * message}}, and ends the stream. -1 when the write fails. */
int sb_connect_end(struct sb_stream *s, const struct sb_err *err);
/* The stream's heartbeat becomes msg as a data envelope (envd's keepalive
 * event) every interval_ms of silence. -1 when msg cannot be encoded. */
int sb_connect_keepalive(struct sb_stream *s, uint64_t interval_ms, const json_t *msg);

/* ---- reading envelopes (a request body, buffered or streamed) ---- */

struct sb_connect_reader;

/* Called for each complete envelope: flags and its JSON payload (borrowed:
 * valid during the call; incref to keep). Returns 0 to go on, -1 to stop
 * (sb_connect_reader_feed then returns -1 with err as the callback left
 * it, or 500 if it left none). */
typedef int (*sb_connect_message_fn)(void *arg, unsigned flags, json_t *msg, struct sb_err *err);

/* An incremental reader of envelopes whose payloads are at most
 * max_message bytes. Caller frees it. NULL when out of memory. */
struct sb_connect_reader *sb_connect_reader_new(size_t max_message);
void sb_connect_reader_free(struct sb_connect_reader *r);
/* Feeds len bytes, in any pieces; runs fn for every envelope completed.
 * -1 with err 400 for a compressed envelope, one over max_message (413) or
 * a payload that is not a JSON value; nothing more may be fed then. */
int sb_connect_reader_feed(struct sb_connect_reader *r, const void *data, size_t len,
                           sb_connect_message_fn fn, void *arg, struct sb_err *err);
/* At the end of the body: -1 with err 400 when it ended inside an envelope. */
int sb_connect_reader_finish(const struct sb_connect_reader *r, struct sb_err *err);

/* The one envelope of a buffered request body (server-streaming calls take
 * exactly one): its message, which the caller owns, or NULL with err 400
 * (none, several, truncated, compressed, not JSON). */
json_t *sb_connect_single_message(const struct sb_request *req, struct sb_err *err);

#endif
