/*
 * server.c - libmicrohttpd in external-epoll mode on an sb_loop (see server.h).
 *
 * MHD's epoll fd is watched by the loop and a tick hook runs MHD_run() every
 * iteration, returning MHD_get_timeout() as the longest the loop may sleep.
 * Per request (one struct sb_http_conn, see conn.h) the access handler is
 * called several times:
 *   1st call    headers only: check the target (NUL, UTF-8, parameter count:
 *               see on_request_target), route, authenticate, note an early
 *               error. Answer here only when the body is not worth reading
 *               (conn_answer_at_headers): queuing on the first call makes MHD
 *               0.9.75 close the keep-alive connection. An SB_ROUTE_STREAM_BODY
 *               route's handler runs here.
 *   body calls  body.c: append to the body up to max_body, or discard (too
 *               large, or an early error already decided), or feed the sink.
 *               MHD takes no answer during these calls.
 *   final call  end the sink; answer the early error / 413, or run the
 *               handler. A deferred
 *               handler's connection is suspended; its completion is posted
 *               to the loop, which resumes it, and MHD calls us once more to
 *               queue the response.
 * MHD's "request completed" notification logs the access line, runs a
 * deferred request's gone callback if its handler's answer never arrived,
 * and drops MHD's reference to the conn. MHD does not look at a suspended
 * connection at all, so while one is suspended its socket is on the loop,
 * watched for the client's hang-up (conn_suspend), which resumes it to be
 * dropped.
 *
 * Connection limits (limits.c): MHD caps connections overall and per client
 * address; the access handler and the completion callback are registered
 * through thin wrappers that tell limits.c where each request is, and the
 * tick hook also runs its sweep, which closes connections that have not
 * delivered a whole request within request_read_timeout_s.
 *
 * Streams (stream.c) and streamed bodies (body.c) plug into the same
 * handler: a stream is just the response queued, with its content reader
 * suspending the connection while it has nothing to send; a streamed body's
 * handler runs on the first call and body calls feed its sink.
 *
 * Shutdown: MHD_stop_daemon() aborts the process if a connection is still
 * suspended, so sb_server_shutdown() quiesces (closes the listen socket),
 * answers new requests 503 with Connection: close, ends every open stream
 * (they flush and complete on their own), waits for in-flight requests up
 * to the grace period (config), then answers what is still deferred with
 * 503, resumes it, lets MHD flush for up to SERVER_FLUSH_MS, stops the
 * daemon and stops the loop.
 *
 * Owns: the MHD daemon, the suspended-connection and open-stream lists, the
 * connection limits' state, a copy of the config.
 * Never blocks the loop thread and never touches MHD off the loop thread.
 */
#include "http/server.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/utf8.h"
#include "http/conn.h"
#include "http/limits.h"

#define SERVER_DEFAULT_MAX_BODY (1024 * 1024)
#define SERVER_DEFAULT_CONNECTIONS 4096
#define SERVER_DEFAULT_PER_ADDRESS 256
#define SERVER_DEFAULT_IDLE_S 60
#define SERVER_DEFAULT_READ_TIMEOUT_S 30
#define SERVER_LISTEN_BACKLOG 4096
#define SERVER_GRACE_MS 10000
#define SERVER_FLUSH_MS 1000
#define SERVER_SHUTDOWN_POLL_MS 20

enum server_state { SERVER_RUNNING, SERVER_DRAINING, SERVER_FLUSHING, SERVER_STOPPED };

struct sb_server {
    struct sb_loop *loop;
    struct sb_router *router;
    struct sb_server_config config;     /* listen points to listen_copy */
    char listen_copy[128];
    struct MHD_Daemon *daemon;
    struct http_limits *limits;         /* freed after the daemon stops */
    int epoll_fd;
    unsigned port;

    enum server_state state;
    uint64_t phase_deadline_ms;
    uint64_t shutdown_timer;
    unsigned live_requests;             /* first call seen, not yet completed */
    struct sb_http_conn *suspended;     /* doubly linked via prev/next */
    struct sb_http_conn *streams;       /* open streams, via stream_prev/stream_next */
    struct sb_ws *websockets;           /* open (and accepted) WebSockets, websocket.c's */
    struct sb_tunnel *tunnels;          /* open (and accepted) tunnels, tunnel.c's */
    char last_mhd_error[256];           /* for sb_server_new's error message */
    int dropping_hung_up;               /* on_access or a stream's reader refused a
                                           hung-up request during this MHD_run: MHD's
                                           "internal error" line about it is not one */
};

static double now_precise_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- conn lifetime ---- */

static void conn_unref(struct sb_http_conn *conn)
{
    if (--conn->refs > 0)
        return;
    if (conn->response)
        MHD_destroy_response(conn->response);
    free(conn->method);
    free(conn->path);
    free(conn->body);
    free(conn);
}

void http_conn_release(struct sb_http_conn *conn) { conn_unref(conn); }

static void suspended_remove(struct sb_server *server, struct sb_http_conn *conn)
{
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        server->suspended = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
}

static void conn_unwatch(struct sb_http_conn *conn)
{
    if (conn->watched_fd < 0)
        return;
    sb_loop_unwatch(conn->loop, conn->watched_fd);
    conn->watched_fd = -1;
}

static void conn_resume(struct sb_http_conn *conn)
{
    conn_unwatch(conn);
    suspended_remove(conn->server, conn);
    conn->suspended = 0;
    MHD_resume_connection(conn->mhd);
}

static void conn_suspend(struct sb_http_conn *conn);

void http_conn_sleep(struct sb_http_conn *conn)
{
    if (!conn->suspended)
        conn_suspend(conn);
}

/* The client of a suspended connection closed (or reset) its socket. MHD
 * does not look at a suspended connection, so it is resumed, told to drop
 * the request (on_access answers MHD_NO once hung_up is set), and the
 * completion callback sees a termination other than OK. */
static void on_client_hangup(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct sb_http_conn *conn = arg;
    conn->hung_up = 1;
    conn_resume(conn);
}

/* Suspends the connection and watches its socket for the client's hang-up
 * (EPOLLRDHUP, plus the HUP and ERR that epoll always reports), never for
 * input: a pipelined next request must not wake it. MHD takes a suspended
 * socket out of its own epoll set and cannot close it, so watching it here
 * until conn_resume is safe. Without the watch (no fd, out of memory) a
 * hang-up is noticed only when the connection is resumed. */
static void conn_suspend(struct sb_http_conn *conn)
{
    struct sb_server *server = conn->server;
    MHD_suspend_connection(conn->mhd);
    conn->suspended = 1;
    conn->next = server->suspended;
    if (server->suspended)
        server->suspended->prev = conn;
    server->suspended = conn;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn->mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info && sb_loop_watch(conn->loop, info->connect_fd, EPOLLRDHUP, on_client_hangup,
                              conn) == 0)
        conn->watched_fd = info->connect_fd;
}

/* Stores the response to be queued on the next access-handler call. A
 * second answer is a handler bug: it is logged and dropped. */
static void conn_set_response(struct sb_http_conn *conn, int status, struct MHD_Response *resp)
{
    if (!resp) {
        struct sb_err err;
        sb_err_set(&err, 500, "could not build the response");
        resp = http_error_response(conn->match.render_error, &err, &status);
    }
    if (conn->response || conn->queued) {
        sb_warn("%s %s: handler answered twice; second answer (%d) dropped",
                conn->method, conn->path, status);
        if (resp)
            MHD_destroy_response(resp);
        return;
    }
    conn->response = resp;
    conn->status = status;
}

/* ---- answers from handlers (conn.h) ---- */

struct conn_completion {
    struct sb_http_conn *conn;
    int status;
    struct MHD_Response *resp;
};

/* Loop thread: the deferred answer arrives. Drops the handler's reference. */
static void on_completion(struct sb_loop *loop, void *arg)
{
    struct conn_completion *c = arg;
    struct sb_http_conn *conn = c->conn;
    if (conn->stream) {
        /* The stream took the handler's reference: this one has none. */
        sb_warn("%s %s: completed after it became a stream; answer dropped", conn->method,
                conn->path);
        if (c->resp)
            MHD_destroy_response(c->resp);
        free(c);
        return;
    }
    if (conn->mhd_done || conn->response || conn->queued) {
        if (c->resp)
            MHD_destroy_response(c->resp);   /* client gone, or forced 503 at shutdown */
    } else {
        conn->answer_arrived = 1;
        conn_set_response(conn, c->status, c->resp);
        if (conn->suspended)
            conn_resume(conn);
    }
    free(c);
    conn_unref(conn);
}

void http_conn_complete(struct sb_http_conn *conn, int status, struct MHD_Response *resp)
{
    if (!conn->deferred) {   /* set on the loop thread before the handoff */
        sb_error("%s %s: completed without sb_request_defer; answer dropped", conn->method,
                 conn->path);
        if (resp)
            MHD_destroy_response(resp);
        return;
    }
    struct conn_completion *c = malloc(sizeof *c);
    if (c) {
        *c = (struct conn_completion){.conn = conn, .status = status, .resp = resp};
        if (sb_loop_post(conn->loop, on_completion, c) == 0)
            return;
        free(c);
    }
    /* Out of memory: the connection stays suspended until shutdown answers it. */
    sb_error("cannot post the answer of %s %s: out of memory", conn->method, conn->path);
    if (resp)
        MHD_destroy_response(resp);
}

void http_conn_answer(struct sb_http_conn *conn, int status, struct MHD_Response *resp)
{
    if (conn->deferred)
        http_conn_complete(conn, status, resp);
    else
        conn_set_response(conn, status, resp);
}

void http_conn_defer(struct sb_http_conn *conn)
{
    if (conn->deferred || conn->response) {
        sb_warn("%s %s: sb_request_defer on an answered or deferred request",
                conn->method, conn->path);
        return;
    }
    conn->deferred = 1;
    conn->refs++;   /* the handler's reference, dropped by on_completion */
}

void http_conn_on_gone(struct sb_http_conn *conn, sb_request_gone_fn cb, void *arg)
{
    conn->gone_cb = cb;
    conn->gone_arg = arg;
}

/* ---- streams (conn.h) ---- */

int http_conn_can_stream(const struct sb_http_conn *conn, struct sb_err *err)
{
    if (conn->stream || conn->response || conn->queued)
        return sb_err_set(err, 500, "%s %s: cannot stream an answered request", conn->method,
                          conn->path);
    if (conn->mhd_done || conn->hung_up)
        return sb_err_set(err, 499, "the client has gone");
    if (conn->server->state != SERVER_RUNNING)
        return sb_err_set(err, 503, "server is shutting down");
    return 0;
}

void http_conn_start_stream(struct sb_http_conn *conn, struct sb_stream *s, int status,
                            struct MHD_Response *resp)
{
    struct sb_server *server = conn->server;
    conn->stream = s;
    conn->stream_next = server->streams;
    if (server->streams)
        server->streams->stream_prev = conn;
    server->streams = conn;
    if (conn->deferred)
        conn->answer_arrived = 1;   /* the stream takes the handler's reference */
    else
        conn->refs++;
    conn_set_response(conn, status, resp);
    if (conn->suspended)
        conn_resume(conn);
}

struct MHD_Response *http_conn_pending_response(struct sb_http_conn *conn)
{
    return conn->queued ? NULL : conn->response;
}

void http_conn_wake(struct sb_http_conn *conn)
{
    if (conn->suspended)
        conn_resume(conn);
}

int http_conn_hung_up(const struct sb_http_conn *conn) { return conn->hung_up; }

struct sb_ws **http_conn_ws_list(struct sb_http_conn *conn) { return &conn->server->websockets; }

struct sb_tunnel **http_conn_tunnel_list(struct sb_http_conn *conn) { return &conn->server->tunnels; }

void http_conn_quiet_drop(struct sb_http_conn *conn) { conn->server->dropping_hung_up = 1; }

static void streams_remove(struct sb_server *server, struct sb_http_conn *conn)
{
    if (conn->stream_prev)
        conn->stream_prev->stream_next = conn->stream_next;
    else
        server->streams = conn->stream_next;
    if (conn->stream_next)
        conn->stream_next->stream_prev = conn->stream_prev;
    conn->stream_prev = conn->stream_next = NULL;
}

/* ---- the access handler ---- */

/* The API key (X-API-Key wins over Authorization: Bearer), or NULL with
 * err saying what is wrong with the headers. */
static const char *request_api_key(struct MHD_Connection *mhd, struct sb_err *err)
{
    const char *key = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "X-API-Key");
    if (key && *key)
        return key;
    const char *auth = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Authorization");
    if (!auth) {
        sb_err_set(err, 401, "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`");
        return NULL;
    }
    if (strncasecmp(auth, "Bearer ", 7) != 0) {
        sb_err_set(err, 401, "malformed Authorization header: expected `Bearer <key>`");
        return NULL;
    }
    auth += 7;
    while (*auth == ' ')
        auth++;
    if (!*auth)
        sb_err_set(err, 401, "missing API key after `Bearer `");
    return *auth ? auth : NULL;
}

const char *sb_request_api_key(const struct sb_request *req)
{
    struct sb_err ignored;
    return req->conn->mhd ? request_api_key(req->conn->mhd, &ignored) : NULL;
}

struct query_check {
    const char *allowed;        /* "a,b" or "" */
    const char *unknown;        /* the first key not in allowed */
};

static int in_list(const char *list, const char *key)
{
    size_t len = strlen(key);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && memcmp(p, key, n) == 0)
            return 1;
        p += n + (comma ? 1 : 0);
    }
    return 0;
}

static enum MHD_Result check_query_arg(void *arg, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    struct query_check *qc = arg;
    if (in_list(qc->allowed, key))
        return MHD_YES;
    qc->unknown = key;
    return MHD_NO;
}

/* 400 for a query parameter the route does not take: a filter that is not
 * understood must not be silently ignored. */
static void check_query(struct sb_http_conn *conn)
{
    if (!conn->match.query)
        return;
    struct query_check qc = {.allowed = conn->match.query};
    MHD_get_connection_values(conn->mhd, MHD_GET_ARGUMENT_KIND, check_query_arg, &qc);
    if (!qc.unknown)
        return;
    if (conn->match.query[0])
        sb_err_set(&conn->early, 400, "unknown query parameter '%.64s' (%s %s takes: %s)", qc.unknown,
                   conn->method, conn->path, conn->match.query);
    else
        sb_err_set(&conn->early, 400, "unknown query parameter '%.64s' (%s %s takes none)", qc.unknown,
                   conn->method, conn->path);
}

/* 404 for a path no route has; a trailing slash gets the path without it suggested. */
static void not_found(struct sb_http_conn *conn)
{
    size_t len = strlen(conn->path);
    if (len > 1 && conn->path[len - 1] == '/') {
        char trimmed[1024];
        struct sb_route_match m;
        snprintf(trimmed, sizeof trimmed, "%.*s", (int)(len - 1), conn->path);
        if (len - 1 < sizeof trimmed &&
            sb_router_match_dialect(conn->server->router, conn->method, trimmed, conn->req.dialect,
                                    &m) != SB_ROUTE_NOT_FOUND) {
            sb_err_set(&conn->early, 404, "not found: %s %s (did you mean %s, without the trailing slash?)",
                       conn->method, conn->path, trimmed);
            return;
        }
    }
    sb_err_set(&conn->early, 404, "not found: %s %s", conn->method, conn->path);
}

/* ---- checking the request target ----
 *
 * MHD hands the access handler the path and the query already split and
 * percent-decoded in place, as C strings: a NUL byte, raw or written %00,
 * would cut them short without a trace ("DELETE /sandboxes/<id>%00junk"
 * would delete <id>). on_request_target, MHD's URI log callback, sees the
 * target raw, before MHD splits or decodes it, and leaves what it found on
 * the request as footer values, which no client can send before its body:
 *   TARGET_END_KEY    points at the byte that ends the raw target as a C
 *                     string. MHD ends the target by overwriting the space
 *                     before the HTTP version, so that byte must sit right
 *                     before `version`; anywhere else, a raw NUL ended it.
 *   TARGET_ERROR_KEY  "nul" for a %00, "params" for too many parameters. The
 *                     query of the latter is cut off before MHD parses it:
 *                     every parameter costs MHD connection memory, and
 *                     running out of it closes the connection unanswered.
 */
#define TARGET_END_KEY "sandbase-target-end"
#define TARGET_RAW_KEY "sandbase-target-raw"
#define TARGET_ERROR_KEY "sandbase-target-error"
#define SERVER_MAX_QUERY_PARAMS 100

static void *on_request_target(void *cls, const char *uri, struct MHD_Connection *mhd)
{
    if (!uri)
        return NULL;
    MHD_set_connection_value(mhd, MHD_FOOTER_KIND, TARGET_END_KEY, uri + strlen(uri));
    /* The target as the client wrote it, for a proxy that passes it on
     * (sb_request_raw_target); freed by on_request_completed. */
    char *raw = strdup(uri);
    if (raw && MHD_set_connection_value(mhd, MHD_FOOTER_KIND, TARGET_RAW_KEY, raw) != MHD_YES)
        free(raw);
    const char *problem = NULL;
    char *query = strchr(uri, '?');     /* MHD's own buffer, writable: see above */
    size_t params = query && query[1] ? 1 : 0;
    for (const char *p = query; p && *p; p++)
        params += *p == '&';
    if (strstr(uri, "%00")) {
        problem = "nul";
    } else if (params > SERVER_MAX_QUERY_PARAMS) {
        query[1] = '\0';
        problem = "params";
    }
    if (problem)
        MHD_set_connection_value(mhd, MHD_FOOTER_KIND, TARGET_ERROR_KEY, problem);
    return NULL;    /* *con_cls stays NULL until the access handler's first call */
}

struct query_utf8 {
    const char *bad;            /* "key" or "value" of the first invalid parameter */
};

static enum MHD_Result check_query_utf8(void *arg, enum MHD_ValueKind kind, const char *key,
                                        size_t key_size, const char *value, size_t value_size)
{
    struct query_utf8 *qu = arg;
    if (!sb_utf8_valid(key, key_size))
        qu->bad = "parameter name";
    else if (value && !sb_utf8_valid(value, value_size))
        qu->bad = "parameter value";
    return qu->bad ? MHD_NO : MHD_YES;
}

/* 400 for a target that cannot be taken as the client wrote it: a NUL byte
 * (raw or %00), too many parameters, bytes that are not UTF-8. */
static int check_target(struct sb_http_conn *conn, const char *version, struct sb_err *err)
{
    const char *problem = MHD_lookup_connection_value(conn->mhd, MHD_FOOTER_KIND, TARGET_ERROR_KEY);
    const char *end = MHD_lookup_connection_value(conn->mhd, MHD_FOOTER_KIND, TARGET_END_KEY);
    if (problem && strcmp(problem, "params") == 0)
        return sb_err_set(err, 400, "too many query parameters (limit %d)", SERVER_MAX_QUERY_PARAMS);
    if (problem)
        return sb_err_set(err, 400, "NUL byte (%%00) in the request path or query: remove it");
    if (!end)
        return sb_err_set(err, 414, "request target too long: shorten the path or query");
    if (end + 1 != version)
        return sb_err_set(err, 400, "NUL byte in the request path or query: remove it");
    if (!sb_utf8_valid(conn->path, strlen(conn->path)))
        return sb_err_set(err, 400, "invalid UTF-8 in the request path: percent-encode "
                          "characters as UTF-8");
    struct query_utf8 qu = {0};
    MHD_get_connection_values_n(conn->mhd, MHD_GET_ARGUMENT_KIND, check_query_utf8, &qu);
    if (qu.bad)
        return sb_err_set(err, 400, "invalid UTF-8 in the request query (a %s): percent-encode "
                          "characters as UTF-8", qu.bad);
    return 0;
}

/* Decides from the headers alone whether the request gets an early error
 * (stored in conn->early), and routes and authenticates it otherwise. */
static void conn_route(struct sb_http_conn *conn, const char *version)
{
    struct sb_server *server = conn->server;
    int target_ok = check_target(conn, version, &conn->early) == 0;
    enum sb_route_result found = SB_ROUTE_NOT_FOUND;
    if (server->config.dialect) {
        struct sb_err ignored;
        int d = server->config.dialect(server->config.app_ctx, &conn->req,
                                       request_api_key(conn->mhd, &ignored));
        conn->req.dialect = d >= 0 && d < SB_DIALECT_MAX ? d : 0;
    }
    if (target_ok)
        found = sb_router_match_dialect(server->router, conn->method, conn->path,
                                        conn->req.dialect, &conn->match);
    if (server->state != SERVER_RUNNING) {
        /* matched first only so that the route's renderer writes the 503 */
        sb_err_set(&conn->early, 503, "server is shutting down");
        return;
    }
    if (!target_ok)
        return;
    if (found == SB_ROUTE_NOT_FOUND) {
        not_found(conn);
        return;
    }
    if (!(conn->match.flags & SB_ROUTE_NO_AUTH)) {
        const char *key = request_api_key(conn->mhd, &conn->early);
        if (!key)
            return;
        if (server->config.auth(server->config.app_ctx, key, conn->req.org_id,
                                &conn->early) < 0) {
            if (conn->early.status == 0)
                sb_err_set(&conn->early, 401, "invalid API key");
            conn->req.org_id[0] = '\0';
            return;
        }
        sb_err_clear(&conn->early);
    }
    if (found == SB_ROUTE_METHOD_NOT_ALLOWED)
        sb_err_set(&conn->early, 405, "method not allowed: %s %s (allowed: %s)", conn->method,
                   conn->path, conn->match.allow);
    else
        check_query(conn);
}

/* First call: allocate the conn. Returns NULL when out of memory. */
static struct sb_http_conn *conn_new(struct sb_server *server, struct MHD_Connection *mhd,
                                     const char *method, const char *url, const char *version)
{
    struct sb_http_conn *conn = calloc(1, sizeof *conn);
    if (!conn)
        return NULL;
    conn->server = server;
    conn->loop = server->loop;
    conn->mhd = mhd;
    conn->watched_fd = -1;
    conn->refs = 1;     /* MHD's, dropped in on_request_completed */
    conn->start_ms = now_precise_ms();
    conn->method = strdup(method);
    conn->path = strdup(url);
    if (!conn->method || !conn->path) {
        conn_unref(conn);
        return NULL;
    }
    conn->req.conn = conn;
    conn->req.server_ctx = server->config.app_ctx;
    conn->req.method = conn->method;
    conn->req.path = conn->path;        /* the dialect function may look at it */
    conn->raw_target = MHD_lookup_connection_value(mhd, MHD_FOOTER_KIND, TARGET_RAW_KEY);
    server->live_requests++;
    conn_route(conn, version);
    const char *length = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, "Content-Length");
    if (length && strtoull(length, NULL, 10) > server->config.max_body &&
        !(conn->match.flags & SB_ROUTE_STREAM_BODY))
        conn->body_too_large = 1;
    return conn;
}

static void conn_answer_error(struct sb_http_conn *conn, const struct sb_err *err)
{
    int status;
    struct MHD_Response *resp = http_error_response(conn->match.render_error, err, &status);
    if (resp && status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, conn->match.allow);
    conn_set_response(conn, status, resp);
}

/* Final call: answer an early error or 413, or run the handler. */
static void conn_dispatch(struct sb_http_conn *conn)
{
    struct sb_err err;
    if (conn->early.status) {
        conn_answer_error(conn, &conn->early);
        return;
    }
    if (conn->body_too_large) {
        sb_err_set(&err, 413, "request body too large (limit %zu bytes)",
                   conn->server->config.max_body);
        conn_answer_error(conn, &err);
        return;
    }
    if (!conn->body && !(conn->body = calloc(1, 1))) {
        sb_err_set(&err, 500, "out of memory");
        conn_answer_error(conn, &err);
        return;
    }
    struct sb_request *req = &conn->req;
    req->method = conn->method;
    req->path = conn->path;
    req->param_count = conn->match.param_count;
    memcpy(req->param_names, conn->match.param_names, sizeof req->param_names);
    memcpy(req->param_values, conn->match.param_values, sizeof req->param_values);
    req->body = conn->body;
    req->body_len = conn->body_len;
    conn->match.handler(req);
    if (!conn->response && !conn->deferred) {
        sb_error("%s %s: handler returned without answering", conn->method, conn->path);
        sb_err_set(&err, 500, "internal error: the handler did not answer");
        conn_answer_error(conn, &err);
    }
}

static enum MHD_Result conn_queue(struct sb_http_conn *conn)
{
    if (conn->server->state != SERVER_RUNNING)
        MHD_add_response_header(conn->response, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(conn->mhd, (unsigned)conn->status, conn->response);
    MHD_destroy_response(conn->response);
    conn->response = NULL;
    conn->queued = 1;
    return rc;
}

/* Answers on the first call, before any body is read, when the request is
 * refused anyway and reading its body would be wasted: a declared length
 * over max_body (the client learns the limit at once instead of after
 * uploading it all), or an early error for a client that sent "Expect:
 * 100-continue" and waits for our go-ahead. MHD then sends no 100 Continue
 * and closes the connection after the answer, so nothing more is read.
 * These are the only answers on the first call (see the top comment). */
static int conn_answer_at_headers(const struct sb_http_conn *conn)
{
    if (conn->body_too_large)
        return 1;
    const char *expect = MHD_lookup_connection_value(conn->mhd, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_EXPECT);
    return expect && strcasecmp(expect, "100-continue") == 0 && conn->early.status;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mhd, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct sb_http_conn *conn = *con_cls;
    if (!conn) {
        conn = conn_new(cls, mhd, method, url, version);
        *con_cls = conn;
        if (conn && conn_answer_at_headers(conn)) {
            conn_dispatch(conn);
            return conn_queue(conn);
        }
        if (conn && (conn->match.flags & SB_ROUTE_STREAM_BODY) && !conn->early.status) {
            conn_dispatch(conn);    /* takes its body as it comes (body.c) */
            if (conn->response)
                return conn_queue(conn);    /* refused before the body */
        }
        return conn ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        int rc = http_body_take(conn, conn->server->config.max_body, upload_data,
                                *upload_data_size);
        if (rc == 1)            /* a paused sink: left for after the resume */
            return conn->hung_up ? MHD_NO : MHD_YES;
        *upload_data_size = 0;
        /* An answer decided meanwhile waits for the final call: MHD 0.9.75
         * takes a response only before the body or after all of it. */
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    if (conn->hung_up) {
        conn->server->dropping_hung_up = 1;
        return MHD_NO;          /* close it: on_request_completed sees an error */
    }
    if (conn->queued)
        return MHD_YES;
    http_body_complete(conn);   /* a sink's on_end, which may answer */
    if (!conn->response && !conn->deferred)
        conn_dispatch(conn);
    if (conn->response)
        return conn_queue(conn);
    if (!conn->suspended)
        conn_suspend(conn);     /* deferred: on_completion resumes it */
    return MHD_YES;
}

static void on_request_completed(void *cls, struct MHD_Connection *mhd, void **con_cls,
                                 enum MHD_RequestTerminationCode toe)
{
    struct sb_server *server = cls;
    struct sb_http_conn *conn = *con_cls;
    free((char *)MHD_lookup_connection_value(mhd, MHD_FOOTER_KIND, TARGET_RAW_KEY));
    if (conn)
        conn->raw_target = NULL;
    if (!conn)
        return;
    *con_cls = NULL;
    /* 499 (as nginx logs it): the client went away before an answer was sent. */
    int status = conn->queued ? conn->status : 499;
    sb_log_request(conn->method, conn->path, status, now_precise_ms() - conn->start_ms,
                   conn->req.org_id[0] ? conn->req.org_id : NULL);
    if (conn->suspended) {
        conn_unwatch(conn);
        suspended_remove(server, conn);
        conn->suspended = 0;
    }
    conn->mhd_done = 1;
    conn->mhd = NULL;
    server->live_requests--;
    /* The handler still holds its reference: req stays valid for cb. */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        http_body_cut(conn);
    if (conn->deferred && !conn->answer_arrived && conn->gone_cb) {
        sb_request_gone_fn cb = conn->gone_cb;
        conn->gone_cb = NULL;
        cb(&conn->req, conn->gone_arg);
    }
    if (conn->stream) {
        streams_remove(server, conn);
        http_stream_closed(conn->stream, toe);     /* drops the stream's reference */
    }
    if (conn->ws) {
        struct sb_ws *ws = conn->ws;
        conn->ws = NULL;
        http_ws_request_done(ws, toe);  /* not upgraded yet: the 101 may not have got through */
    }
    if (conn->tunnel) {
        struct sb_tunnel *t = conn->tunnel;
        conn->tunnel = NULL;
        http_tunnel_request_done(t, toe);
    }
    conn_unref(conn);
}

/* ---- driving MHD from the loop ---- */

static void on_mhd_epoll(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    /* Nothing to do here: the tick hook runs MHD_run() at the top of the next
     * iteration, which also covers connections resumed by posted callbacks. */
}

static int64_t server_tick(struct sb_loop *loop, void *arg)
{
    struct sb_server *server = arg;
    if (!server->daemon)
        return -1;
    MHD_run(server->daemon);
    server->dropping_hung_up = 0;
    sb_log_flush();     /* the access lines of the requests MHD_run completed */
    int64_t wait = http_limits_sweep(server->limits, sb_now_ms());
    MHD_UNSIGNED_LONG_LONG timeout;
    if (MHD_get_timeout(server->daemon, &timeout) != MHD_YES)
        return wait;
    int64_t mhd_wait = timeout > INT32_MAX ? INT32_MAX : (int64_t)timeout;
    return wait >= 0 && wait < mhd_wait ? wait : mhd_wait;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct sb_server *server = cls;
    char *msg = server->last_mhd_error;
    vsnprintf(msg, sizeof server->last_mhd_error, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    sb_warn("http: %s", msg);
}

/* "ADDR:PORT", "[V6ADDR]:PORT" or ":PORT" (all IPv4 addresses) into addr. */
static int parse_listen(const char *listen, struct sockaddr_storage *addr, struct sb_err *err)
{
    char host[128];
    const char *colon;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return sb_err_set(err, 400, "listen address %s: expected [IPV6]:PORT", listen);
        snprintf(host, sizeof host, "%.*s", (int)(close - listen - 1), listen + 1);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return sb_err_set(err, 400, "listen address %s: expected ADDR:PORT", listen);
        snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    }
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port > 65535)
        return sb_err_set(err, 400, "listen address %s: bad port", listen);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    if (host[0] == '\0')
        hints.ai_family = AF_INET;
    struct addrinfo *res;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0)
        return sb_err_set(err, 400, "listen address %s: %s", listen, gai_strerror(rc));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static void server_apply_defaults(struct sb_server *server, const struct sb_server_config *config)
{
    server->config = *config;
    snprintf(server->listen_copy, sizeof server->listen_copy, "%s", config->listen);
    server->config.listen = server->listen_copy;
    if (!server->config.max_body)
        server->config.max_body = SERVER_DEFAULT_MAX_BODY;
    if (!server->config.connection_limit)
        server->config.connection_limit = SERVER_DEFAULT_CONNECTIONS;
    if (!server->config.per_address_limit)
        server->config.per_address_limit = SERVER_DEFAULT_PER_ADDRESS;
    if (!server->config.idle_timeout_s)
        server->config.idle_timeout_s = SERVER_DEFAULT_IDLE_S;
    if (!server->config.request_read_timeout_s)
        server->config.request_read_timeout_s = SERVER_DEFAULT_READ_TIMEOUT_S;
    if (!server->config.shutdown_grace_ms)
        server->config.shutdown_grace_ms = SERVER_GRACE_MS;
}

/* What MHD calls: the handlers above, after telling limits.c where the
 * request is (headers in on the first call, all of it on a later call with
 * no data). */
static enum MHD_Result on_access_tracked(void *cls, struct MHD_Connection *mhd, const char *url,
                                         const char *method, const char *version,
                                         const char *upload_data, size_t *upload_data_size,
                                         void **con_cls)
{
    if (!*con_cls)
        http_limits_request_started(mhd);
    else if (*upload_data_size == 0)
        http_limits_request_received(mhd);
    return on_access(cls, mhd, url, method, version, upload_data, upload_data_size, con_cls);
}

static void on_request_completed_tracked(void *cls, struct MHD_Connection *mhd, void **con_cls,
                                         enum MHD_RequestTerminationCode toe)
{
    http_limits_request_done(mhd);
    on_request_completed(cls, mhd, con_cls, toe);
}

/* MHD logs every connection it refuses at its limits: those are counted
 * and summarised by limits.c instead. */
static void on_mhd_log_tracked(void *cls, const char *fmt, va_list ap)
{
    struct sb_server *server = cls;
    if (server->dropping_hung_up) {
        char line[128];
        va_list copy;
        va_copy(copy, ap);
        vsnprintf(line, sizeof line, fmt, copy);
        va_end(copy);
        if (strncmp(line, "Application reported internal error", 35) == 0 ||
            strncmp(line, "Closing connection (application error", 37) == 0) {
            server->dropping_hung_up = 0;
            return;
        }
    }
    if (!http_limits_take_log(server->limits, fmt))
        on_mhd_log(cls, fmt, ap);
}

static int server_start_daemon(struct sb_server *server, struct sb_err *err)
{
    struct sockaddr_storage addr;
    if (parse_listen(server->config.listen, &addr, err) < 0)
        return -1;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_UPGRADE;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    server->limits = http_limits_new(server->config.request_read_timeout_s);
    if (!server->limits)
        return sb_err_set(err, 500, "out of memory");
    server->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access_tracked, server,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log_tracked, server,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)SERVER_LISTEN_BACKLOG,
        MHD_OPTION_CONNECTION_LIMIT, server->config.connection_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, server->config.per_address_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, server->config.idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_request_completed_tracked, server,
        MHD_OPTION_URI_LOG_CALLBACK, on_request_target, server,
        MHD_OPTION_NOTIFY_CONNECTION, http_limits_on_connection, server->limits,
        /* true (sb_server_new ignores SIGPIPE), and what lets MHD send file
         * answers (sb_request_complete_file) with sendfile instead of pread
         * into its small write buffer */
        MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1,
        MHD_OPTION_END);
    if (!server->daemon) {
        /* MHD says "Failed to bind to port 0: <strerror>" (it never saw the
         * port): keep only the reason, the address is ours to name. */
        const char *reason = server->last_mhd_error;
        const char *colon = strrchr(reason, ':');
        if (strncmp(reason, "Failed to bind", 14) == 0 && colon)
            reason = colon + 2;
        return sb_err_set(err, 500, "cannot listen on %s: %s", server->config.listen,
                          reason[0] ? reason : "libmicrohttpd failed to start");
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    server->epoll_fd = info ? info->epoll_fd : -1;
    info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    server->port = info ? info->port : 0;
    if (server->epoll_fd < 0)
        return sb_err_set(err, 500, "libmicrohttpd gave no epoll fd");
    if (sb_loop_watch(server->loop, server->epoll_fd, EPOLLIN, on_mhd_epoll, server) < 0)
        return sb_err_sys(err, 500, "cannot watch the HTTP epoll fd");
    return 0;
}

/* Caller owns the result and frees it with sb_server_free(). */
struct sb_server *sb_server_new(struct sb_loop *loop, struct sb_router *router,
                                const struct sb_server_config *config, struct sb_err *err)
{
    if (!config->listen || !config->auth) {
        sb_err_set(err, 400, "server config needs a listen address and an auth function");
        return NULL;
    }
    signal(SIGPIPE, SIG_IGN);   /* a client closing mid-write must not kill us */
    struct sb_server *server = calloc(1, sizeof *server);
    if (!server) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    server->loop = loop;
    server->router = router;
    server->epoll_fd = -1;
    server_apply_defaults(server, config);
    http_limits_fit_fd_limit(&server->config.connection_limit, &server->config.per_address_limit);
    if (server_start_daemon(server, err) < 0) {
        sb_server_free(server);
        return NULL;
    }
    sb_loop_set_tick(loop, server_tick, server);
    return server;
}

unsigned sb_server_port(const struct sb_server *server) { return server->port; }

/* ---- shutdown ---- */

/* Answers every suspended (deferred) request 503 and resumes it. The late
 * completions of their handlers are discarded (see on_completion). */
static void server_answer_suspended(struct sb_server *server)
{
    struct sb_err err;
    sb_err_set(&err, 503, "server is shutting down");
    while (server->suspended) {
        struct sb_http_conn *conn = server->suspended;
        if (conn->stream)
            http_stream_shutdown(conn->stream);     /* ended, so it never sleeps again */
        else
            conn_answer_error(conn, &err);
        if (conn->suspended)
            conn_resume(conn);
    }
}

/* Stops MHD for good. Never with a suspended connection (MHD would abort). */
static void server_stop_daemon(struct sb_server *server)
{
    if (!server->daemon)
        return;
    server_answer_suspended(server);
    http_ws_drop_all(&server->websockets);      /* MHD must get their sockets back first */
    http_tunnel_drop_all(&server->tunnels);
    if (server->epoll_fd >= 0)
        sb_loop_unwatch(server->loop, server->epoll_fd);
    sb_loop_set_tick(server->loop, NULL, NULL);
    MHD_stop_daemon(server->daemon);
    sb_log_flush();
    server->daemon = NULL;
    server->epoll_fd = -1;
    server->state = SERVER_STOPPED;
}

static void shutdown_poll(struct sb_loop *loop, void *arg)
{
    struct sb_server *server = arg;
    server->shutdown_timer = 0;
    uint64_t now = sb_now_ms();
    if (server->state == SERVER_DRAINING && (server->live_requests > 0 || server->websockets) &&
        now < server->phase_deadline_ms) {
        server->shutdown_timer = sb_loop_timer(loop, SERVER_SHUTDOWN_POLL_MS, shutdown_poll, server);
        return;
    }
    if (server->state == SERVER_DRAINING && server->live_requests > 0) {
        sb_warn("http: grace period over, answering %u request(s) still in flight with 503",
                server->live_requests);
        server_answer_suspended(server);
        server->state = SERVER_FLUSHING;
        server->phase_deadline_ms = now + SERVER_FLUSH_MS;
    }
    if (server->state == SERVER_FLUSHING && server->live_requests > 0 &&
        now < server->phase_deadline_ms) {
        server->shutdown_timer = sb_loop_timer(loop, SERVER_SHUTDOWN_POLL_MS, shutdown_poll, server);
        return;
    }
    server_stop_daemon(server);
    sb_loop_stop(loop);
}

void sb_server_shutdown(struct sb_server *server)
{
    if (server->state != SERVER_RUNNING)
        return;
    MHD_socket listen_fd = MHD_quiesce_daemon(server->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    server->state = SERVER_DRAINING;
    server->phase_deadline_ms = sb_now_ms() + server->config.shutdown_grace_ms;
    /* Streams do not wait for the grace period: they end now, cleanly. */
    for (struct sb_http_conn *conn = server->streams; conn; conn = conn->stream_next)
        http_stream_shutdown(conn->stream);
    http_ws_going_away(server->websockets);
    /* A tunnel has no close handshake of its own to wait for (its bytes
     * are the handler's): it ends now, and its request with it. */
    http_tunnel_drop_all(&server->tunnels);
    shutdown_poll(server->loop, server);
}

void sb_server_free(struct sb_server *server)
{
    if (!server)
        return;
    if (server->shutdown_timer)
        sb_loop_cancel(server->loop, server->shutdown_timer);
    server_stop_daemon(server);
    http_limits_free(server->limits);
    free(server);
}
