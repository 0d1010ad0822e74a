/*
 * test_http_server.c - the HTTP server end to end over real loopback
 * sockets (http_harness.c: a real sb_loop on its own thread, a real
 * libmicrohttpd daemon, a raw-socket client), with a tiny router and auth
 * function here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/worker.h"
#include "core/loop.h"
#include "http/server.h"
#include "http_harness.h"

#define TEST_MAX_BODY 1024

/* ---- the application under test ---- */

/* A request parked by GET /gate until the test thread completes it, and
 * what its sb_request_on_gone callback saw. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct sb_request *req;
    int gone;                   /* times the gone callback ran */
    struct sb_request *gone_req;
    pthread_t gone_thread;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, NULL, 0};

static struct sb_worker_pool *workers;

static int test_auth(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX],
                     struct sb_err *err)
{
    assert_string_equal(app_ctx, "app");
    if (strcmp(key, "good-key") == 0)
        snprintf(org_id, SB_ORG_ID_MAX, "org_a");
    else if (strcmp(key, "other-key") == 0)
        snprintf(org_id, SB_ORG_ID_MAX, "org_b");
    else
        return sb_err_set(err, 401, "invalid API key");
    return 0;
}

static void h_health(struct sb_request *req)
{
    sb_respond_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void h_whoami(struct sb_request *req)
{
    assert_string_equal(req->server_ctx, "app");
    sb_respond_json(req, 200, json_pack("{s:s}", "org", req->org_id));
}

static void h_echo(struct sb_request *req)
{
    struct sb_err err;
    json_t *body = sb_request_json(req, 0, &err);
    if (!body) {
        sb_respond_error(req, &err);
        return;
    }
    assert_int_equal(req->body[req->body_len], '\0');
    sb_respond_json(req, 200, json_pack("{s:I, s:o}", "len", (json_int_t)req->body_len,
                                        "body", body));
}

static void h_text(struct sb_request *req)
{
    const char *name = sb_request_query(req, "name");
    char text[64];
    int n = snprintf(text, sizeof text, "hello %s\n", name ? name : "nobody");
    sb_respond_raw(req, 200, "text/plain", text, (size_t)n);
}

struct slow_job {
    struct sb_request *req;
    int ms;
};

static void slow_job_run(void *arg)
{
    struct slow_job *job = arg;
    struct timespec ts = {job->ms / 1000, (long)(job->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    sb_request_complete_json(job->req, 200, json_pack("{s:i}", "slept", job->ms));
    free(job);
}

/* Sleeps on a worker thread, then completes from there. */
static void h_slow(struct sb_request *req)
{
    struct slow_job *job = malloc(sizeof *job);
    assert_non_null(job);
    job->req = req;
    job->ms = atoi(sb_request_param(req, "ms"));
    sb_request_defer(req);
    assert_int_equal(sb_worker_submit(workers, slow_job_run, job), 0);
}

static void gate_gone(struct sb_request *req, void *arg)
{
    assert_ptr_equal(arg, &gate);
    pthread_mutex_lock(&gate.lock);
    gate.gone++;
    gate.gone_req = req;
    gate.gone_thread = pthread_self();
    pthread_cond_broadcast(&gate.changed);
    pthread_mutex_unlock(&gate.lock);
}

/* A Connect-style renderer: string codes, and its own status for 405. */
static json_t *render_rpc_error(const struct sb_err *err, int *status)
{
    const char *code = "unknown";
    switch (err->status) {
    case 400: code = "invalid_argument"; break;
    case 401: code = "unauthenticated"; break;
    case 404: code = "not_found"; break;
    case 405: code = "unimplemented"; *status = 501; break;
    case 413: code = "resource_exhausted"; break;
    case 503: code = "unavailable"; break;
    }
    return json_pack("{s:s, s:s}", "code", code, "message", err->msg);
}

/* POST /rpc {"fail": status, "later": bool}: answers that error, now or
 * through sb_request_complete_error. */
static void h_rpc(struct sb_request *req)
{
    struct sb_err err;
    json_t *body = sb_request_json(req, 0, &err);
    if (!body) {
        sb_respond_error(req, &err);
        return;
    }
    int fail = (int)json_integer_value(json_object_get(body, "fail"));
    int later = json_is_true(json_object_get(body, "later"));
    json_decref(body);
    sb_err_set(&err, fail, "failed with %d", fail);
    if (later) {
        sb_request_defer(req);
        sb_request_complete_error(req, &err);
    } else {
        sb_respond_error(req, &err);
    }
}

static void h_gate(struct sb_request *req)
{
    sb_request_defer(req);
    sb_request_on_gone(req, gate_gone, &gate);
    pthread_mutex_lock(&gate.lock);
    gate.req = req;
    pthread_cond_broadcast(&gate.changed);
    pthread_mutex_unlock(&gate.lock);
}

/* Waits (up to 5 s) for GET /gate to park a request and takes it. */
static struct sb_request *gate_take(void)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&gate.lock);
    while (!gate.req && pthread_cond_timedwait(&gate.changed, &gate.lock, &deadline) == 0)
        ;
    struct sb_request *req = gate.req;
    gate.req = NULL;
    gate.gone = 0;
    gate.gone_req = NULL;
    pthread_mutex_unlock(&gate.lock);
    assert_non_null(req);
    return req;
}

/* How often the gone callback has run since gate_take, after waiting up to
 * wait_ms for it to run at least once. */
static int gate_gone_count(int wait_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    deadline.tv_sec += wait_ms / 1000 + deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&gate.lock);
    while (!gate.gone && pthread_cond_timedwait(&gate.changed, &gate.lock, &deadline) == 0)
        ;
    int n = gate.gone;
    pthread_mutex_unlock(&gate.lock);
    return n;
}

/* ---- the server fixture ---- */

/* Connection limits for the next fixture_start (0: the server's defaults). */
static unsigned fixture_per_address, fixture_read_timeout_s;

static struct http_fixture *fixture_start(unsigned grace_ms)
{
    struct sb_router *router = sb_router_new();
    workers = sb_worker_pool_new(4);
    assert_non_null(router);
    assert_non_null(workers);
    assert_int_equal(sb_router_add(router, "GET", "/health", h_health, SB_ROUTE_NO_AUTH), 0);
    assert_int_equal(sb_router_add(router, "GET", "/whoami", h_whoami, 0), 0);
    assert_int_equal(sb_router_add(router, "POST", "/echo", h_echo, 0), 0);
    assert_int_equal(sb_router_add_query(router, "GET", "/text", h_text, SB_ROUTE_NO_AUTH, "name"), 0);
    assert_int_equal(sb_router_add(router, "GET", "/slow/:ms", h_slow, 0), 0);
    assert_int_equal(sb_router_add(router, "GET", "/gate", h_gate, 0), 0);
    struct sb_route_spec rpc = {.method = "POST", .pattern = "/rpc", .handler = h_rpc,
                                .query = "", .render_error = render_rpc_error};
    assert_int_equal(sb_router_add_spec(router, &rpc), 0);
    struct sb_server_config config = {
        .max_body = TEST_MAX_BODY,
        .idle_timeout_s = 10,
        .auth = test_auth,
        .app_ctx = "app",
        .shutdown_grace_ms = grace_ms,
        .per_address_limit = fixture_per_address,
        .request_read_timeout_s = fixture_read_timeout_s,
    };
    return http_fixture_start(router, &config);
}

static void free_workers(void)
{
    sb_worker_pool_free(workers);
    workers = NULL;
}

/* Order matters: workers may still complete requests, which posts to the loop. */
static void fixture_free(struct http_fixture *f) { http_fixture_free(f, free_workers); }

static int setup(void **state)
{
    *state = fixture_start(0);
    return 0;
}

/* A server that takes 2 connections per address and 1 s to read a request. */
static int setup_limits(void **state)
{
    fixture_per_address = 2;
    fixture_read_timeout_s = 1;
    *state = fixture_start(0);
    fixture_per_address = fixture_read_timeout_s = 0;
    return 0;
}

static int teardown(void **state)
{
    struct http_fixture *f = *state;
    http_fixture_shutdown(f);
    http_fixture_join(f);
    fixture_free(f);
    return 0;
}

#define MISSING_KEY "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"

/* Asserts resp is the error {"code": status, "message": message}. */
static void assert_error(const struct response *resp, int status, const char *message)
{
    assert_int_equal(resp->status, status);
    assert_string_equal(header(resp, "Content-Type"), "application/json");
    json_t *j = json_of(resp);
    assert_int_equal(json_integer_value(json_object_get(j, "code")), status);
    assert_string_equal(json_string_value(json_object_get(j, "message")), message);
    json_decref(j);
}

/* Asserts resp is the rendered error {"code": code, "message": message}. */
static void assert_rpc_error(const struct response *resp, int status, const char *code,
                             const char *message)
{
    assert_int_equal(resp->status, status);
    assert_string_equal(header(resp, "Content-Type"), "application/json");
    json_t *j = json_of(resp);
    assert_string_equal(json_string_value(json_object_get(j, "code")), code);
    assert_string_equal(json_string_value(json_object_get(j, "message")), message);
    json_decref(j);
}

static void assert_org(const struct response *resp, const char *org)
{
    assert_int_equal(resp->status, 200);
    json_t *j = json_of(resp);
    assert_string_equal(json_string_value(json_object_get(j, "org")), org);
    json_decref(j);
}

/* ---- tests ---- */

static void test_health_without_key(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "GET", "/health", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(header(&resp, "Content-Type"), "application/json");
    assert_int_equal(resp.body_len, strlen("{\"ok\":true}"));
    assert_memory_equal(resp.body, "{\"ok\":true}", resp.body_len);
    /* libmicrohttpd percent-decodes the path before it reaches the router */
    request(f->port, "GET", "/he%61lth", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    request(f->port, "GET", "/health%2Fx", NULL, NULL, &resp);
    assert_error(&resp, 404, "not found: GET /health/x");
}

static void test_raw_response_and_query(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "GET", "/text?name=ada%20l", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(header(&resp, "Content-Type"), "text/plain");
    assert_string_equal(resp.body, "hello ada l\n");
}

static void test_auth_missing_and_invalid(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "GET", "/whoami", NULL, NULL, &resp);
    assert_error(&resp, 401, MISSING_KEY);
    /* A key without "Bearer " is named as such, not as a missing key. */
    request(f->port, "GET", "/whoami", "Authorization: Basic Zm9vOmJhcg==\r\n", NULL, &resp);
    assert_error(&resp, 401, "malformed Authorization header: expected `Bearer <key>`");
    request(f->port, "GET", "/whoami", "Authorization: good-key\r\n", NULL, &resp);
    assert_error(&resp, 401, "malformed Authorization header: expected `Bearer <key>`");
    request(f->port, "GET", "/whoami", "Authorization: Bearer \r\n", NULL, &resp);
    assert_error(&resp, 401, "missing API key after `Bearer `");
    request(f->port, "GET", "/whoami", "X-API-Key: nope\r\n", NULL, &resp);
    assert_error(&resp, 401, "invalid API key");
    request(f->port, "GET", "/whoami", "Authorization: Bearer nope\r\n", NULL, &resp);
    assert_error(&resp, 401, "invalid API key");
}

static void test_auth_sources(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "GET", "/whoami", "Authorization: Bearer good-key\r\n", NULL, &resp);
    assert_org(&resp, "org_a");
    request(f->port, "GET", "/whoami", "X-API-Key: other-key\r\n", NULL, &resp);
    assert_org(&resp, "org_b");
    request(f->port, "GET", "/whoami",
            "Authorization: Bearer good-key\r\nX-API-Key: other-key\r\n", NULL, &resp);
    assert_org(&resp, "org_b");
    request(f->port, "GET", "/whoami",
            "Authorization: Bearer good-key\r\nX-API-Key: bad\r\n", NULL, &resp);
    assert_error(&resp, 401, "invalid API key");
}

static void test_not_found_needs_no_key(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "GET", "/nope", NULL, NULL, &resp);
    assert_error(&resp, 404, "not found: GET /nope");
    request(f->port, "GET", "/whoami/", "X-API-Key: good-key\r\n", NULL, &resp);
    assert_error(&resp, 404, "not found: GET /whoami/ (did you mean /whoami, without the trailing slash?)");
    request(f->port, "GET", "/nope/", NULL, NULL, &resp);
    assert_error(&resp, 404, "not found: GET /nope/");
}

/* A query parameter the route does not take is a 400 that names it; routes
 * registered without a list are not checked. */
static void test_unknown_query_parameter(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "GET", "/text?name=x&nmae=y", NULL, NULL, &resp);
    assert_error(&resp, 400, "unknown query parameter 'nmae' (GET /text takes: name)");
    request(f->port, "GET", "/text?name=x&name=y", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    request(f->port, "GET", "/whoami?anything=1", "X-API-Key: good-key\r\n", NULL, &resp);
    assert_int_equal(resp.status, 200);
}

static void test_method_not_allowed(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "DELETE", "/whoami", "X-API-Key: good-key\r\n", NULL, &resp);
    assert_error(&resp, 405, "method not allowed: DELETE /whoami (allowed: GET)");
    assert_string_equal(header(&resp, "Allow"), "GET");
    /* the path exists, so the key is checked first */
    request(f->port, "DELETE", "/whoami", NULL, NULL, &resp);
    assert_error(&resp, 401, MISSING_KEY);
    /* ... unless the path's routes need none */
    request(f->port, "POST", "/health", NULL, "{}", &resp);
    assert_error(&resp, 405, "method not allowed: POST /health (allowed: GET)");
    assert_string_equal(header(&resp, "Allow"), "GET");
}

static void test_json_body(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    const char *key = "X-API-Key: good-key\r\n";
    request(f->port, "POST", "/echo", key, "{\"a\": [1, 2]}", &resp);
    assert_int_equal(resp.status, 200);
    json_t *j = json_of(&resp);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), 13);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "body"), "a")), 2);
    json_decref(j);

    request(f->port, "POST", "/echo", key, "{\"a\": }", &resp);
    assert_int_equal(resp.status, 400);
    j = json_of(&resp);
    const char *msg = json_string_value(json_object_get(j, "message"));
    assert_true(strncmp(msg, "invalid JSON body: ", 19) == 0);
    assert_non_null(strstr(msg, "at line 1 column 7"));
    json_decref(j);

    request(f->port, "POST", "/echo", key, "{\"a\": 1, \"a\": 2}", &resp);
    assert_int_equal(resp.status, 400);
    request(f->port, "POST", "/echo", key, "[1]", &resp);
    assert_error(&resp, 400, "request body must be a JSON object");
    request(f->port, "POST", "/echo", key, "", &resp);
    assert_error(&resp, 400, "request body is required");
    request(f->port, "POST", "/echo", key, " \r\n", &resp);
    assert_error(&resp, 400, "request body is required");
}

static void test_body_too_large(void **state)
{
    struct http_fixture *f = *state;
    char body[TEST_MAX_BODY + 2];
    memset(body, ' ', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    body[0] = '{';
    body[sizeof body - 2] = '}';
    char limit_msg[128];
    snprintf(limit_msg, sizeof limit_msg, "request body too large (limit %d bytes)", TEST_MAX_BODY);

    /* a declared length over the limit: answered at the headers, and the
     * connection is closed rather than the body read (see
     * test_declared_length_refused_before_the_body); the server goes on */
    struct client *c = client_open(f->port);
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_error(&resp, 413, limit_msg);
    client_close(c);
    request(f->port, "GET", "/health", "", NULL, &resp);
    assert_int_equal(resp.status, 200);

    /* exactly the limit is fine */
    body[sizeof body - 2] = '\0';
    body[sizeof body - 3] = '}';
    request(f->port, "POST", "/echo", "X-API-Key: good-key\r\n", body, &resp);
    assert_int_equal(resp.status, 200);
}

/* A declared length over max_body is answered at the headers: the client
 * gets the 413 without sending a byte of its body. */
static void test_declared_length_refused_before_the_body(void **state)
{
    struct http_fixture *f = *state;
    char limit_msg[128];
    snprintf(limit_msg, sizeof limit_msg, "request body too large (limit %d bytes)", TEST_MAX_BODY);
    struct client *c = client_open(f->port);
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Content-Length: 100000000\r\n\r\n");
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_error(&resp, 413, limit_msg);
    client_close(c);
}

/* One raw request line (len bytes, NULs included) on a fresh connection. */
static void request_raw_target(unsigned port, const char *target, size_t len,
                               struct response *resp)
{
    struct client *c = client_open(port);
    client_send(c, "GET ", 4);
    client_send(c, target, len);
    client_sendf(c, " HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    assert_int_equal(client_read(c, resp), 0);
    client_close(c);
}

#define RAW_TARGET(port, lit, resp) request_raw_target(port, lit, sizeof(lit) - 1, resp)

/* A NUL would cut the path or query short, so it routes nowhere: 400. */
static void test_nul_in_target_is_400(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    const char *escaped = "NUL byte (%00) in the request path or query: remove it";
    const char *raw = "NUL byte in the request path or query: remove it";
    RAW_TARGET(f->port, "/health%00", &resp);
    assert_error(&resp, 400, escaped);
    RAW_TARGET(f->port, "/health?x=%00", &resp);
    assert_error(&resp, 400, escaped);
    RAW_TARGET(f->port, "/health\0", &resp);
    assert_error(&resp, 400, raw);
    RAW_TARGET(f->port, "/health\0junk", &resp);
    assert_error(&resp, 400, raw);
    RAW_TARGET(f->port, "/health?x=1\0junk", &resp);
    assert_error(&resp, 400, raw);
    RAW_TARGET(f->port, "/health", &resp);
    assert_int_equal(resp.status, 200);
}

static void test_invalid_utf8_in_target_is_400(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    const char *path = "invalid UTF-8 in the request path: percent-encode characters as UTF-8";
    RAW_TARGET(f->port, "/%c0%ae", &resp);
    assert_error(&resp, 400, path);
    RAW_TARGET(f->port, "/%ed%a0%80", &resp);
    assert_error(&resp, 400, path);
    RAW_TARGET(f->port, "/%f4%90%80%80", &resp);
    assert_error(&resp, 400, path);
    RAW_TARGET(f->port, "/\xff", &resp);
    assert_error(&resp, 400, path);
    RAW_TARGET(f->port, "/health?x=%c0%ae", &resp);
    assert_error(&resp, 400, "invalid UTF-8 in the request query (a parameter value): "
                             "percent-encode characters as UTF-8");
    RAW_TARGET(f->port, "/h%C3%A9", &resp);
    assert_error(&resp, 404, "not found: GET /h\xc3\xa9");
}

/* With Expect: 100-continue a refused upload is answered before any body is
 * sent: the client gets the error instead of "100 Continue". */
static void test_expect_continue_refused(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n", TEST_MAX_BODY * 10);
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 413);
    assert_string_equal(header(&resp, "Connection"), "close");
    client_close(c);

    c = client_open(f->port);
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                    "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_int_equal(client_read(c, &resp), 0);
    assert_error(&resp, 401, MISSING_KEY);
    client_close(c);

    /* an acceptable upload gets the go-ahead first */
    c = client_open(f->port);
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    while (!strstr(c->buf, "\r\n\r\n")) {
        assert_int_equal(client_fill(c), 0);
        c->buf[c->len] = '\0';
    }
    assert_true(strncmp(c->buf, "HTTP/1.1 100", 12) == 0);
    c->len = 0;
    client_sendf(c, "{}");
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    client_close(c);
}

static void test_chunked_body(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"
                    "6\r\n{\"k\": \r\n9\r\n\"chunked\"\r\n1\r\n}\r\n0\r\n\r\n");
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    json_t *j = json_of(&resp);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), 16);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "body"), "k")),
                        "chunked");
    json_decref(j);

    /* chunked past the limit: no Content-Length to look at, caught while reading */
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n");
    char chunk[600];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 3; i++) {
        client_sendf(c, "%zx\r\n", sizeof chunk);
        client_send(c, chunk, sizeof chunk);
        client_sendf(c, "\r\n");
    }
    client_sendf(c, "0\r\n\r\n");
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 413);
    client_close(c);
}

static void test_keep_alive(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    struct response resp;
    for (int i = 0; i < 3; i++) {
        client_sendf(c, "GET /whoami HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
        assert_int_equal(client_read(c, &resp), 0);
        assert_org(&resp, "org_a");
        const char *connection = header(&resp, "Connection");
        assert_true(!connection || strcasecmp(connection, "close") != 0);
    }
    client_close(c);
}

static void test_pipelining(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /whoami HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n"
                    "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: other-key\r\n"
                    "Content-Length: 8\r\n\r\n{\"n\": 2}"
                    "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_org(&resp, "org_a");
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.body, "\"n\":2"));
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    client_close(c);
}

/* Deferred requests complete on worker threads while the loop keeps serving. */
static void test_deferred_from_worker(void **state)
{
    struct http_fixture *f = *state;
    struct client *slow[3];
    for (int i = 0; i < 3; i++) {
        slow[i] = client_open(f->port);
        client_sendf(slow[i], "GET /slow/%d HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n",
                     300 + 10 * i);
    }
    uint64_t start = sb_now_ms();
    struct response resp;
    request(f->port, "GET", "/health", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    assert_true(sb_now_ms() - start < 250);     /* not stuck behind the slow ones */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(client_read(slow[i], &resp), 0);
        assert_int_equal(resp.status, 200);
        json_t *j = json_of(&resp);
        assert_int_equal(json_integer_value(json_object_get(j, "slept")), 300 + 10 * i);
        json_decref(j);
        /* the connection is still good for another (deferred) request */
        client_sendf(slow[i], "GET /slow/1 HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
        assert_int_equal(client_read(slow[i], &resp), 0);
        assert_int_equal(resp.status, 200);
        client_close(slow[i]);
    }
}

/* A client that leaves a deferred request is noticed at once (the request
 * is suspended, so only the socket watch can see it): the gone callback runs
 * once, on the loop thread, with the request; completing it afterwards is
 * safe and the server carries on. */
static void test_client_gone_before_completion(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /gate HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    struct sb_request *req = gate_take();
    usleep(100 * 1000);
    assert_int_equal(gate_gone_count(0), 0);     /* a waiting client is not gone */
    uint64_t start = sb_now_ms();
    client_close(c);
    assert_int_equal(gate_gone_count(2000), 1);
    assert_true(sb_now_ms() - start < 1000);
    assert_ptr_equal(gate.gone_req, req);
    assert_true(pthread_equal(gate.gone_thread, f->thread));
    sb_request_complete_json(req, 200, json_pack("{s:s}", "late", "answer"));
    usleep(50 * 1000);
    assert_int_equal(gate_gone_count(0), 1);     /* once only */
    struct response resp;
    for (int i = 0; i < 3; i++) {
        request(f->port, "GET", "/whoami", "X-API-Key: good-key\r\n", NULL, &resp);
        assert_org(&resp, "org_a");
    }
    /* a completed error from another thread reaches a client that stayed */
    c = client_open(f->port);
    client_sendf(c, "GET /gate HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    req = gate_take();
    struct sb_err err;
    sb_err_set(&err, 409, "sandbox is paused");
    sb_request_complete_error(req, &err);
    assert_int_equal(client_read(c, &resp), 0);
    assert_error(&resp, 409, "sandbox is paused");
    client_close(c);
    usleep(50 * 1000);
    assert_int_equal(gate_gone_count(0), 0);     /* answered: not gone */
}

/* A client that half-closes or resets a deferred request is gone too, and a
 * pipelined request behind a deferred one neither wakes it nor counts as
 * the client leaving. */
static void test_gone_on_reset_and_not_on_pipelined_input(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /gate HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    struct sb_request *req = gate_take();
    client_sendf(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(150 * 1000);
    assert_int_equal(gate_gone_count(0), 0);
    sb_request_complete_json(req, 200, json_pack("{s:i}", "first", 1));
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.body, "first"));
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(gate_gone_count(0), 0);

    client_sendf(c, "GET /gate HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    req = gate_take();
    struct linger lg = {1, 0};      /* close with RST */
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    client_close(c);
    assert_int_equal(gate_gone_count(2000), 1);
    sb_request_complete_json(req, 200, json_pack("{}"));
}

/* Every error of a route with a renderer is rendered by it: the handler's
 * (answered now or completed later), and the server's own 400, 401, 405 and
 * 413 for a request that matched its path. Other routes keep the default. */
static void test_route_error_renderer(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    const char *key = "X-API-Key: good-key\r\n";
    request(f->port, "POST", "/rpc", key, "{\"fail\": 404}", &resp);
    assert_rpc_error(&resp, 404, "not_found", "failed with 404");
    request(f->port, "POST", "/rpc", key, "{\"fail\": 404, \"later\": true}", &resp);
    assert_rpc_error(&resp, 404, "not_found", "failed with 404");
    request(f->port, "POST", "/rpc", key, "{\"fail\": 200}", &resp);
    assert_rpc_error(&resp, 500, "unknown", "failed with 200");    /* not an error: 500 */
    request(f->port, "POST", "/rpc", key, "[", &resp);
    assert_int_equal(resp.status, 400);
    request(f->port, "POST", "/rpc", NULL, "{}", &resp);
    assert_rpc_error(&resp, 401, "unauthenticated", MISSING_KEY);
    request(f->port, "POST", "/rpc?x=1", key, "{}", &resp);
    assert_rpc_error(&resp, 400, "invalid_argument", "unknown query parameter 'x' (POST /rpc takes none)");
    request(f->port, "GET", "/rpc", key, NULL, &resp);
    assert_rpc_error(&resp, 501, "unimplemented", "method not allowed: GET /rpc (allowed: POST)");
    char body[TEST_MAX_BODY + 2];
    memset(body, ' ', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    request(f->port, "POST", "/rpc", key, body, &resp);
    char limit_msg[128];
    snprintf(limit_msg, sizeof limit_msg, "request body too large (limit %d bytes)", TEST_MAX_BODY);
    assert_rpc_error(&resp, 413, "resource_exhausted", limit_msg);
    /* no route: the default */
    request(f->port, "POST", "/rpc/x", key, "{}", &resp);
    assert_error(&resp, 404, "not found: POST /rpc/x");
    request(f->port, "GET", "/whoami", NULL, NULL, &resp);
    assert_error(&resp, 401, MISSING_KEY);
}

/* Shutdown closes the listener at once but lets a deferred request finish. */
static void test_graceful_shutdown(void **state)
{
    struct http_fixture *f = fixture_start(5000);
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /gate HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    struct sb_request *req = gate_take();
    struct client *idle = client_open(f->port);     /* a keep-alive client */
    struct response resp;
    client_sendf(idle, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(client_read(idle, &resp), 0);
    struct client *idle_rpc = client_open(f->port);
    client_sendf(idle_rpc, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(client_read(idle_rpc, &resp), 0);
    http_fixture_shutdown(f);
    usleep(100 * 1000);
    int fd = try_connect(f->port);
    assert_int_equal(fd, -1);   /* no longer accepting */
    /* a new request on an open connection is turned away, and told to go */
    client_sendf(idle, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(client_read(idle, &resp), 0);
    assert_error(&resp, 503, "server is shutting down");
    assert_string_equal(header(&resp, "Connection"), "close");
    client_close(idle);
    /* ... in the words of the route it was meant for */
    client_sendf(idle_rpc, "POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}");
    assert_int_equal(client_read(idle_rpc, &resp), 0);
    assert_rpc_error(&resp, 503, "unavailable", "server is shutting down");
    client_close(idle_rpc);
    sb_request_complete_json(req, 200, json_pack("{s:s}", "finished", "yes"));
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(header(&resp, "Connection"), "close");
    assert_non_null(strstr(resp.body, "finished"));
    client_close(c);
    http_fixture_join(f);
    assert_int_equal(gate_gone_count(0), 0);
    fixture_free(f);
}

/* Past the grace period, a request still deferred is answered 503, and its
 * late completion (after the loop stopped) is discarded without harm. */
static void test_shutdown_grace_expires(void **state)
{
    struct http_fixture *f = fixture_start(200);
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /gate HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    struct sb_request *req = gate_take();
    uint64_t start = sb_now_ms();
    http_fixture_shutdown(f);
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_error(&resp, 503, "server is shutting down");
    assert_true(sb_now_ms() - start >= 190);
    client_close(c);
    http_fixture_join(f);
    assert_int_equal(gate_gone_count(0), 1);     /* its answer can no longer be given */
    sb_request_complete_json(req, 200, json_pack("{}"));
    fixture_free(f);
}

static void test_listen_errors(void **state)
{
    struct sb_loop *loop = sb_loop_new();
    struct sb_router *router = sb_router_new();
    struct sb_server_config config = {.auth = test_auth, .app_ctx = "app"};
    const char *bad[] = {"nonsense", "127.0.0.1:", "127.0.0.1:70000", "[::1:80", "1.2.3.4.5:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sb_err err = {0};
        config.listen = bad[i];
        assert_null(sb_server_new(loop, router, &config, &err));
        assert_int_equal(err.status, 400);
        assert_non_null(strstr(err.msg, bad[i]));
    }
    /* IPv6 works, and a port in use is reported as such */
    struct sb_err err = {0};
    config.listen = "[::1]:0";
    struct sb_server *first = sb_server_new(loop, router, &config, &err);
    if (!first)
        fail_msg("[::1]:0: %s", err.msg);
    char listen[64];
    snprintf(listen, sizeof listen, "[::1]:%u", sb_server_port(first));
    config.listen = listen;
    assert_null(sb_server_new(loop, router, &config, &err));
    assert_non_null(strstr(err.msg, "Address already in use"));
    sb_server_free(first);
    sb_router_free(router);
    sb_loop_free(loop);
}

/* The loop's own pieces: timers in deadline order, cancel, posts, stop. */
struct loop_probe {
    char order[16];
    int n;
};

static void probe_push(struct loop_probe *p, char mark) { p->order[p->n++] = mark; }
static void probe_post(struct sb_loop *loop, void *arg) { probe_push(arg, 'p'); }
static void probe_timer_a(struct sb_loop *loop, void *arg) { probe_push(arg, 'a'); }
static void probe_timer_b(struct sb_loop *loop, void *arg) { probe_push(arg, 'b'); }
static void probe_timer_c(struct sb_loop *loop, void *arg) { probe_push(arg, 'c'); }
static void probe_stop(struct sb_loop *loop, void *arg) { sb_loop_stop(loop); }

/* A connection from source (e.g. "127.0.0.2") to the server on 127.0.0.1. */
static struct client *client_open_from(unsigned port, const char *source)
{
    struct client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in from = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, source, &from.sin_addr), 1);
    assert_int_equal(bind(c->fd, (struct sockaddr *)&from, sizeof from), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&to, sizeof to), 0);
    return c;
}

/* The third connection from one address is closed unanswered; another
 * address still gets in, and a freed slot can be taken again. */
static void test_per_address_limit(void **state)
{
    struct http_fixture *f = *state;
    struct client *held[2];
    struct response resp;
    for (int i = 0; i < 2; i++) {
        held[i] = client_open(f->port);
        client_sendf(held[i], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(client_read(held[i], &resp), 0);
        assert_int_equal(resp.status, 200);
    }
    struct client *extra = client_open(f->port);
    static const char get_health[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    send(extra->fd, get_health, sizeof get_health - 1, MSG_NOSIGNAL);  /* may fail: closed */
    assert_int_equal(client_read(extra, &resp), -1);
    client_close(extra);

    struct client *other = client_open_from(f->port, "127.0.0.2");
    client_sendf(other, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(client_read(other, &resp), 0);
    assert_int_equal(resp.status, 200);
    client_close(other);

    client_close(held[1]);
    usleep(100 * 1000);     /* the server sees the close */
    request(f->port, "GET", "/health", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    client_close(held[0]);
}

/* One byte every 200 ms never completes the headers: closed after the 1 s
 * read deadline, long before the 10 s idle timeout. */
static void test_read_deadline_closes_trickler(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    uint64_t start = sb_now_ms();
    client_sendf(c, "GET /health HTTP/1.1\r\nX-Pad: ");
    struct timeval tv = {0, 200 * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint64_t closed_after = 0;
    while (!closed_after && sb_now_ms() - start < 5000) {
        char byte;
        ssize_t n = recv(c->fd, &byte, 1, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
            send(c->fd, "a", 1, MSG_NOSIGNAL) < 0)
            closed_after = sb_now_ms() - start;
    }
    client_close(c);
    if (closed_after < 900 || closed_after > 2000)
        fail_msg("trickler closed after %llu ms (deadline 1000 ms)",
                 (unsigned long long)closed_after);
}

/* The deadline covers reading only: an answer that takes longer, and a
 * keep-alive connection idle for longer, are untouched. */
static void test_read_deadline_spares_slow_answers_and_idle(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    struct response resp;
    client_sendf(c, "GET /slow/1500 HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    usleep(1500 * 1000);
    client_sendf(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    client_close(c);
}

static void test_loop_timers_and_posts(void **state)
{
    struct sb_loop *loop = sb_loop_new();
    struct loop_probe p = {{0}, 0};
    assert_true(sb_loop_timer(loop, 60, probe_timer_b, &p) > 0);
    assert_true(sb_loop_timer(loop, 20, probe_timer_a, &p) > 0);
    uint64_t c = sb_loop_timer(loop, 40, probe_timer_c, &p);
    sb_loop_cancel(loop, c);
    assert_true(sb_loop_timer(loop, 100, probe_stop, NULL) > 0);
    assert_int_equal(sb_loop_post(loop, probe_post, &p), 0);
    uint64_t start = sb_now_ms();
    assert_int_equal(sb_loop_run(loop), 0);
    assert_true(sb_now_ms() - start >= 100);
    assert_string_equal(p.order, "pab");
    sb_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_timers_and_posts),
        cmocka_unit_test_setup_teardown(test_health_without_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_response_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_missing_and_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_needs_no_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_query_parameter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declared_length_refused_before_the_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_in_target_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_in_target_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_from_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_error_renderer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_before_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_on_reset_and_not_on_pipelined_input, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_per_address_limit, setup_limits, teardown),
        cmocka_unit_test_setup_teardown(test_read_deadline_closes_trickler, setup_limits, teardown),
        cmocka_unit_test_setup_teardown(test_read_deadline_spares_slow_answers_and_idle, setup_limits,
                                        teardown),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_graceful_shutdown),
        cmocka_unit_test(test_shutdown_grace_expires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
