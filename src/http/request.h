/*
 * request.h - what a route handler sees of an HTTP request, and how it answers.
 *
 * A handler runs on the loop thread and must answer exactly once, either
 * before it returns (sb_respond_*) or later: it calls sb_request_defer(), the
 * connection is suspended, and any thread may finish it with
 * sb_request_complete_*() (which post back to the loop thread). The request
 * object stays valid until it is answered (or the client goes away, in which
 * case completing it is still safe and simply discards the answer).
 *
 * Error bodies are {"code": <status>, "message": "..."}, or what the route's
 * error renderer makes of the error (router.h): handlers pass a struct
 * sb_err and never format error JSON themselves.
 *
 * A handler may also answer with a stream (stream.h, sse.h), and the handler
 * of an SB_ROUTE_STREAM_BODY route takes its body as it arrives
 * (sb_request_body_sink below) instead of as req->body.
 *
 * Rules for deferred requests: call sb_request_defer() on the loop thread
 * before handing req to another thread; complete it exactly once; after
 * deferring, the fields of req stay valid until completion but
 * sb_request_query/sb_request_header may only be called while the handler
 * is running (copy what the worker needs). A handler that returns without
 * answering or deferring gets a 500 answer.
 */
#ifndef SB_HTTP_REQUEST_H
#define SB_HTTP_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SB_ROUTE_MAX_PARAMS 4
#define SB_ORG_ID_MAX 64

struct sb_request {
    const char *method;            /* "GET", "POST", ... */
    const char *path;              /* decoded path without query */
    /* path parameters from the route pattern, e.g. ":id" */
    int param_count;
    const char *param_names[SB_ROUTE_MAX_PARAMS];
    const char *param_values[SB_ROUTE_MAX_PARAMS];
    /* the raw body (NUL-terminated for convenience) and its length */
    const char *body;
    size_t body_len;
    char org_id[SB_ORG_ID_MAX];    /* set by auth; "" on unauthenticated routes */
    int dialect;                   /* the server's sb_dialect_fn's verdict; 0 without one */
    void *server_ctx;              /* the app context given to sb_server_new */
    struct sb_http_conn *conn;     /* internal */
};

/* Path parameter by name (without ':'), or NULL. */
const char *sb_request_param(const struct sb_request *req, const char *name);
/* Query-string argument, or NULL (the first, when repeated). */
const char *sb_request_query(const struct sb_request *req, const char *name);
/* Calls fn for every value of a query argument that may be repeated
 * (?status=a&status=b), in order; fn returns 0 to go on, -1 to stop. Only
 * while the handler runs, like sb_request_query. */
void sb_request_query_each(const struct sb_request *req, const char *name,
                           int (*fn)(void *arg, const char *value), void *arg);
/* The API key the request was authenticated with (X-API-Key, else
 * Authorization: Bearer), as the client spelled it; NULL when it sent none.
 * Only while the handler runs, like sb_request_header. */
const char *sb_request_api_key(const struct sb_request *req);
/* Request header (case-insensitive), or NULL. */
const char *sb_request_header(const struct sb_request *req, const char *name);
/* Calls fn for every request header in the order received (a repeated
 * header once per line); fn returns 0 to go on, -1 to stop. Only while the
 * handler runs, like sb_request_header. */
void sb_request_headers_each(const struct sb_request *req,
                             int (*fn)(void *arg, const char *name, const char *value), void *arg);
/* The request target as the client sent it (path and query, not decoded),
 * or NULL. Only while the handler runs (and the dialect function). */
const char *sb_request_raw_target(const struct sb_request *req);
/* The client's address as text ("127.0.0.1", "::1") into out; "" if unknown. */
void sb_request_client_address(const struct sb_request *req, char *out, size_t len);

/* Parses the body as a JSON object. An empty body gives an empty object when
 * allow_empty is set. On failure fills err with 400 and a message that names
 * the problem (line/column) and returns NULL. Caller owns the result. */
json_t *sb_request_json(const struct sb_request *req, int allow_empty, struct sb_err *err);

/* Answer now. sb_respond_json steals the reference to body (NULL answers
 * 500). On a deferred request these behave like sb_request_complete_*. */
void sb_respond_json(struct sb_request *req, int status, json_t *body);
/* sb_respond_json with one more response header (name NULL: none), e.g. a
 * paging token. Answers 500 when MHD refuses the header. */
void sb_respond_json_header(struct sb_request *req, int status, json_t *body, const char *name,
                            const char *value);
void sb_respond_empty(struct sb_request *req, int status);
void sb_respond_error(struct sb_request *req, const struct sb_err *err);
void sb_respond_raw(struct sb_request *req, int status, const char *content_type,
                    const void *data, size_t len);

/* Answer later, from any thread. */
void sb_request_defer(struct sb_request *req);
void sb_request_complete_json(struct sb_request *req, int status, json_t *body);
void sb_request_complete_error(struct sb_request *req, const struct sb_err *err);
void sb_request_complete_empty(struct sb_request *req, int status);
/* One response header. */
struct sb_header {
    const char *name, *value;
};
/* Answers with len bytes of the open file fd from offset, sent as the socket
 * takes them (sendfile where MHD can), with Content-Length len, Content-Type
 * content_type (NULL: none) and count more headers (copied). Takes fd: it is
 * closed once sent, or at once when the answer cannot be built (500). A
 * file that shrinks meanwhile ends the connection early. Any thread for a
 * deferred request, as the other sb_request_complete_*; on the loop thread
 * while the handler runs. */
void sb_request_complete_file(struct sb_request *req, int status, const char *content_type, int fd,
                              uint64_t offset, uint64_t len, const struct sb_header *headers,
                              size_t count);

/* Answers with a copy of len bytes of data, Content-Length len, and count
 * more headers (copied); *refused counts the headers MHD would not take
 * (left out). Threads as sb_request_complete_file. For a small answer
 * that is all in memory already (a proxied one). */
void sb_request_complete_bytes(struct sb_request *req, int status, const void *data, size_t len,
                               const struct sb_header *headers, size_t count, size_t *refused);

/* Called once, on the loop thread, when a deferred request ends without its
 * handler's answer having reached the client: the client disconnected while
 * the request was deferred (noticed at once: a suspended connection's socket
 * is watched for the hang-up), or shutdown answered it 503 after the grace
 * period. Not called once the handler's answer has reached the loop (a
 * client that leaves while it is being sent merely loses it). The request
 * stays valid until the handler completes it, which is still required and
 * still safe: the answer is discarded. A completion already posted from
 * another thread may cross cb; that is safe too. Loop thread only; a second
 * call replaces cb; never called for a request that was not deferred. */
typedef void (*sb_request_gone_fn)(struct sb_request *req, void *arg);
void sb_request_on_gone(struct sb_request *req, sb_request_gone_fn cb, void *arg);

/* ---- streaming request bodies (SB_ROUTE_STREAM_BODY routes) ----
 *
 * The handler of such a route runs as soon as the headers are in (after
 * authentication and the route's query check), with an empty req->body, and
 * the server's max_body does not apply: the handler decides. It either
 * answers at once (a refusal: the body is not read, and the connection is
 * closed after the answer, as MHD does for an answer before the body) or
 * registers a sink, which defers the request, and answers later: from
 * on_end, or earlier, in which case nothing more is delivered to the sink
 * and the answer is sent once the rest of the body has been read and
 * dropped (libmicrohttpd takes an answer only before the body or after all
 * of it; a cap known from Content-Length is refused before the body, see
 * sb_request_body_sink). A handler that does neither gets a 500, as any
 * handler. An answer given while the handler runs at the headers (a stream
 * included) is sent at once and the body is not read, so a sink's handler
 * that streams its answer opens the stream from on_end. Loop thread only.
 */
enum sb_body_verdict {
    SB_BODY_CONTINUE,   /* go on */
    SB_BODY_PAUSE,      /* took it; no more until sb_request_body_resume. The
                           connection stops reading, so TCP slows the client */
    SB_BODY_STOP,       /* took it; deliver nothing more (the rest is read and
                           dropped) and no on_end: the handler answers */
};
/* A piece of the body as it arrives (dechunked); data is valid during the
 * call only. */
typedef enum sb_body_verdict (*sb_body_data_fn)(struct sb_request *req, void *arg,
                                                const char *data, size_t len);
/* The end of the body, once: err NULL when it all arrived; 413 when it went
 * past max_bytes (nothing past the limit was delivered; the rest is dropped);
 * 499 when the client left first (its gone callback, if any, follows). Not
 * called after SB_BODY_STOP or once the request is answered. */
typedef void (*sb_body_end_fn)(struct sb_request *req, void *arg, const struct sb_err *err);

/* From the handler of an SB_ROUTE_STREAM_BODY route while it runs: defers
 * req (if it is not yet) and sends it its body. max_bytes 0 means no limit.
 * Returns -1 with err and registers nothing when the declared
 * Content-Length is over max_bytes (413: answer it) or the route does not
 * stream its body, or a sink is already registered (500). */
int sb_request_body_sink(struct sb_request *req, uint64_t max_bytes, sb_body_data_fn on_data,
                         sb_body_end_fn on_end, void *arg, struct sb_err *err);
/* Delivers the body again after SB_BODY_PAUSE; otherwise does nothing. */
void sb_request_body_resume(struct sb_request *req);

#endif
