/*
 * test_http_body.c - streamed request bodies (SB_ROUTE_STREAM_BODY, http/body.c)
 * against the real server: an upload far past max_body arrives piece by
 * piece and is never buffered, a paused sink stops the client's sends until
 * it resumes, the handler's own cap (declared or discovered), a sink that
 * stops early, a client that leaves mid-body, and the read deadline that
 * does not cut a long upload.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_harness.h"

#define TEST_MAX_BODY 1024

/* ---- the application under test (loop thread only) ---- */

static struct {
    struct sb_request *req;
    uint64_t received, sum;
    size_t largest_piece;
    size_t body_len_seen;       /* req->body_len when the handler ran */
    int pieces;
    int pause_after;            /* pause once received passes this (0: never) */
    int paused;
    int stop_after_first;
    int ended;
    int end_status;             /* 0, or the error's status given to on_end */
    int gone;
} sink;

static enum sb_body_verdict on_data(struct sb_request *req, void *arg, const char *data,
                                    size_t len)
{
    assert_ptr_equal(arg, &sink);
    for (size_t i = 0; i < len; i++)
        sink.sum += (unsigned char)data[i];
    sink.received += len;
    sink.pieces++;
    if (len > sink.largest_piece)
        sink.largest_piece = len;
    if (sink.stop_after_first) {
        struct sb_err err;
        sb_err_set(&err, 400, "first piece was enough");
        sb_respond_error(req, &err);
        return SB_BODY_STOP;
    }
    if (sink.pause_after && !sink.paused && sink.received > (uint64_t)sink.pause_after) {
        sink.paused = 1;
        return SB_BODY_PAUSE;
    }
    return SB_BODY_CONTINUE;
}

static void on_end(struct sb_request *req, void *arg, const struct sb_err *err)
{
    sink.ended++;
    sink.end_status = err ? err->status : 0;
    if (err) {
        sb_respond_error(req, err);
        return;
    }
    sb_respond_json(req, 200, json_pack("{s:I, s:I}", "bytes", (json_int_t)sink.received,
                                        "sum", (json_int_t)sink.sum));
}

static void on_gone(struct sb_request *req, void *arg) { sink.gone++; }

static int test_auth(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX],
                     struct sb_err *err)
{
    if (strcmp(key, "good-key") != 0)
        return sb_err_set(err, 401, "invalid API key");
    snprintf(org_id, SB_ORG_ID_MAX, "org_a");
    return 0;
}

/* POST /upload?max=N: takes up to N bytes (0: any number). */
static void h_upload(struct sb_request *req)
{
    sink.req = req;
    sink.body_len_seen = req->body_len;
    const char *max = sb_request_query(req, "max");
    struct sb_err err;
    if (sb_request_body_sink(req, max ? strtoull(max, NULL, 10) : 0, on_data, on_end, &sink,
                             &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    sb_request_on_gone(req, on_gone, NULL);
}

static void h_echo(struct sb_request *req)
{
    sb_respond_json(req, 200, json_pack("{s:I}", "len", (json_int_t)req->body_len));
}

/* Read deadline for the next start() (0: the server's default). */
static unsigned read_timeout_s;

static int setup(void **state)
{
    memset(&sink, 0, sizeof sink);
    struct sb_router *router = sb_router_new();
    assert_non_null(router);
    struct sb_route_spec upload = {.method = "POST", .pattern = "/upload", .handler = h_upload,
                                   .flags = SB_ROUTE_STREAM_BODY, .query = "max"};
    assert_int_equal(sb_router_add_spec(router, &upload), 0);
    assert_int_equal(sb_router_add(router, "POST", "/echo", h_echo, 0), 0);
    struct sb_server_config config = {
        .max_body = TEST_MAX_BODY,
        .idle_timeout_s = 10,
        .auth = test_auth,
        .request_read_timeout_s = read_timeout_s,
    };
    *state = http_fixture_start(router, &config);
    return 0;
}

static int setup_short_deadline(void **state)
{
    read_timeout_s = 1;
    setup(state);
    read_timeout_s = 0;
    return 0;
}

static int teardown(void **state)
{
    struct http_fixture *f = *state;
    http_fixture_shutdown(f);
    http_fixture_join(f);
    http_fixture_free(f, NULL);
    return 0;
}

/* ---- an uploading client on its own thread ---- */

struct upload {
    struct client *c;
    size_t total;
    unsigned pace_ms;           /* sleep between 64 KiB pieces */
    size_t sent;                /* read with __atomic */
    int failed;
    pthread_t thread;
};

static unsigned char pattern_byte(size_t i) { return (unsigned char)(i * 7 + 3); }

static void *upload_run(void *arg)
{
    struct upload *u = arg;
    static __thread unsigned char piece[64 * 1024];
    for (size_t off = 0; off < u->total;) {
        size_t n = u->total - off < sizeof piece ? u->total - off : sizeof piece;
        for (size_t i = 0; i < n; i++)
            piece[i] = pattern_byte(off + i);
        for (size_t done = 0; done < n;) {
            ssize_t w = send(u->c->fd, piece + done, n - done, MSG_NOSIGNAL);
            if (w <= 0) {
                u->failed = 1;
                return NULL;
            }
            done += (size_t)w;
            __atomic_store_n(&u->sent, off + done, __ATOMIC_SEQ_CST);
        }
        off += n;
        if (u->pace_ms)
            usleep(u->pace_ms * 1000);
    }
    return NULL;
}

static void upload_start(struct upload *u, unsigned port, const char *target, size_t total,
                         unsigned pace_ms)
{
    memset(u, 0, sizeof *u);
    u->c = client_open(port);
    u->total = total;
    u->pace_ms = pace_ms;
    client_sendf(u->c, "POST %s HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                       "Content-Length: %zu\r\n\r\n", target, total);
    assert_int_equal(pthread_create(&u->thread, NULL, upload_run, u), 0);
}

static uint64_t pattern_sum(size_t total)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < total; i++)
        sum += pattern_byte(i);
    return sum;
}

static void assert_upload_answer(struct client *c, size_t total)
{
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    json_t *j = json_of(&resp);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), (json_int_t)total);
    assert_int_equal(json_integer_value(json_object_get(j, "sum")), (json_int_t)pattern_sum(total));
    json_decref(j);
}

/* ---- tests ---- */

/* 8 MiB through a server whose max_body is 1 KiB: the handler ran before the
 * body, saw none of it buffered, and got it in pieces of at most what MHD
 * reads at once, every byte in order. Other routes keep max_body. */
static void test_large_upload_streams(void **state)
{
    struct http_fixture *f = *state;
    size_t total = 8u << 20;
    struct upload u;
    upload_start(&u, f->port, "/upload", total, 0);
    assert_int_equal(pthread_join(u.thread, NULL), 0);
    assert_false(u.failed);
    assert_upload_answer(u.c, total);
    assert_int_equal(sink.body_len_seen, 0);
    assert_true(sink.pieces > 1);
    assert_true(sink.largest_piece <= 256 * 1024);
    assert_int_equal(sink.ended, 1);
    assert_int_equal(sink.end_status, 0);
    assert_int_equal(sink.gone, 0);
    /* keep-alive: the next request on the connection is a normal one */
    char body[TEST_MAX_BODY + 10];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    client_sendf(u.c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                      "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    struct response resp;
    assert_int_equal(client_read(u.c, &resp), 0);
    assert_int_equal(resp.status, 413);
    client_close(u.c);
}

/* A chunked upload reaches the sink dechunked. */
static void test_chunked_upload(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    client_sendf(c, "POST /upload HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n");
    char piece[3000];
    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        for (size_t k = 0; k < sizeof piece; k++)
            piece[k] = (char)pattern_byte(total + k);
        client_sendf(c, "%zx\r\n", sizeof piece);
        client_send(c, piece, sizeof piece);
        client_sendf(c, "\r\n");
        total += sizeof piece;
    }
    client_sendf(c, "0\r\n\r\n");
    assert_upload_answer(c, total);
    client_close(c);
}

static int is_paused(void *p) { return sink.paused; }
static void do_resume(void *p) { sb_request_body_resume(sink.req); }
static void do_received(void *p) { *(uint64_t *)p = sink.received; }

/* A paused sink gets nothing more, and the client's sends stall (TCP
 * back-pressure) instead of the server buffering; resumed, the rest flows. */
static void test_pause_stops_the_client(void **state)
{
    struct http_fixture *f = *state;
    size_t total = 32u << 20;
    sink.pause_after = 100 * 1024;
    struct upload u;
    upload_start(&u, f->port, "/upload", total, 0);
    assert_true(http_fixture_wait(f, is_paused, NULL, 2000));
    usleep(300 * 1000);
    uint64_t at_pause, later;
    http_fixture_on_loop(f, do_received, &at_pause);
    size_t sent_at_pause = __atomic_load_n(&u.sent, __ATOMIC_SEQ_CST);
    usleep(300 * 1000);
    http_fixture_on_loop(f, do_received, &later);
    size_t sent_later = __atomic_load_n(&u.sent, __ATOMIC_SEQ_CST);
    assert_true(later == at_pause);                 /* nothing delivered while paused */
    assert_true(sent_later == sent_at_pause);       /* the client is blocked */
    if (sent_later >= total / 2)
        fail_msg("client sent %zu of %zu bytes to a paused upload", sent_later, total);
    http_fixture_on_loop(f, do_resume, NULL);
    assert_int_equal(pthread_join(u.thread, NULL), 0);
    assert_false(u.failed);
    assert_upload_answer(u.c, total);
    client_close(u.c);
}

/* The handler's cap: a declared length over it is refused before the body
 * (the connection is then closed); a chunked body that grows past it ends
 * the sink with 413 and delivers nothing past the limit. */
static void test_handler_cap(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct client *c = client_open(f->port);
    client_sendf(c, "POST /upload?max=5000 HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Content-Length: 5001\r\n\r\n");
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 413);
    assert_int_equal(sink.received, 0);
    client_close(c);

    c = client_open(f->port);
    client_sendf(c, "POST /upload?max=5000 HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n");
    char piece[2000];
    memset(piece, 'a', sizeof piece);
    for (int i = 0; i < 4; i++) {
        client_sendf(c, "%zx\r\n", sizeof piece);
        client_send(c, piece, sizeof piece);
        client_sendf(c, "\r\n");
        usleep(20 * 1000);
    }
    client_sendf(c, "0\r\n\r\n");
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 413);
    json_t *j = json_of(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "message")),
                        "request body too large (limit 5000 bytes)");
    json_decref(j);
    assert_true(sink.received <= 5000);
    assert_int_equal(sink.ended, 1);
    assert_int_equal(sink.end_status, 413);
    client_close(c);

    /* exactly at the cap is fine */
    memset(&sink, 0, sizeof sink);
    c = client_open(f->port);
    client_sendf(c, "POST /upload?max=5000 HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Content-Length: 5000\r\n\r\n");
    char full[5000];
    for (size_t i = 0; i < sizeof full; i++)
        full[i] = (char)pattern_byte(i);
    client_send(c, full, sizeof full);
    assert_upload_answer(c, sizeof full);
    client_close(c);
}

/* A sink that stops after the first piece gets nothing more and no on_end;
 * its answer goes out once the rest has been read and dropped, and the
 * connection is good for the next request. */
static void test_stop_drops_the_rest(void **state)
{
    struct http_fixture *f = *state;
    size_t total = 2u << 20;
    sink.stop_after_first = 1;
    struct upload u;
    upload_start(&u, f->port, "/upload", total, 0);
    assert_int_equal(pthread_join(u.thread, NULL), 0);
    assert_false(u.failed);
    struct response resp;
    assert_int_equal(client_read(u.c, &resp), 0);
    assert_int_equal(resp.status, 400);
    assert_int_equal(sink.pieces, 1);
    assert_int_equal(sink.ended, 0);
    client_sendf(u.c, "POST /echo HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                      "Content-Length: 2\r\n\r\n{}");
    assert_int_equal(client_read(u.c, &resp), 0);
    assert_int_equal(resp.status, 200);
    client_close(u.c);
}

static int has_ended(void *p) { return sink.ended > 0; }

/* A client that leaves mid-body ends the sink with 499, then the gone
 * callback runs; nothing else is delivered. The same while paused. */
static void test_client_leaves_mid_body(void **state)
{
    struct http_fixture *f = *state;
    for (int paused = 0; paused < 2; paused++) {
        memset(&sink, 0, sizeof sink);
        sink.pause_after = paused ? 1000 : 0;
        struct client *c = client_open(f->port);
        client_sendf(c, "POST /upload HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                        "Content-Length: 100000\r\n\r\n");
        char piece[5000];
        memset(piece, 'b', sizeof piece);
        client_send(c, piece, sizeof piece);
        usleep(100 * 1000);
        assert_int_equal(sink.received, sizeof piece);
        client_close(c);
        assert_true(http_fixture_wait(f, has_ended, NULL, 2000));
        assert_int_equal(sink.end_status, 499);
        assert_int_equal(sink.gone, 1);
    }
}

/* With a 1 s read deadline, an upload that takes 2 s to a streaming route
 * completes: the deadline guards the bodies the server buffers. */
static void test_long_upload_outlives_read_deadline(void **state)
{
    struct http_fixture *f = *state;
    size_t total = 64 * 1024 * 20;
    struct upload u;
    upload_start(&u, f->port, "/upload", total, 100);
    assert_int_equal(pthread_join(u.thread, NULL), 0);
    assert_false(u.failed);
    assert_upload_answer(u.c, total);
    client_close(u.c);
}

/* Unauthenticated: the handler never runs and nothing reaches a sink. */
static void test_auth_before_the_handler(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "POST", "/upload", "X-API-Key: bad\r\n", "abc", &resp);
    assert_int_equal(resp.status, 401);
    assert_null(sink.req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_upload_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_stops_the_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drops_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_leaves_mid_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_upload_outlives_read_deadline,
                                        setup_short_deadline, teardown),
        cmocka_unit_test_setup_teardown(test_auth_before_the_handler, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
