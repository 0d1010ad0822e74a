/*
 * test_http_sse.c - the Server-Sent Events encoder (http/sse.c) on a real
 * stream: the exact bytes of events (id and event optional, multi-line data
 * in each line-break spelling), refused fields, comments, the keepalive,
 * and Last-Event-ID.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/sse.h"
#include "http_harness.h"

/* Loop thread only (handlers and http_fixture_on_loop calls). */
static struct {
    struct sb_stream *s;
    int opened;
    char last_id[64];
    int has_last_id;
} probe;

static void on_close(void *arg, enum sb_stream_end why) { probe.s = NULL; }

static int test_auth(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX],
                     struct sb_err *err)
{
    return sb_err_set(err, 401, "invalid API key");
}

static void h_events(struct sb_request *req)
{
    struct sb_err err;
    const char *last = sb_sse_last_event_id(req);
    probe.has_last_id = last != NULL;
    snprintf(probe.last_id, sizeof probe.last_id, "%s", last ? last : "");
    probe.s = sb_sse_open(req, &err);
    if (!probe.s) {
        sb_respond_error(req, &err);
        return;
    }
    sb_stream_on_close(probe.s, on_close, NULL);
    probe.opened++;
}

static int setup(void **state)
{
    memset(&probe, 0, sizeof probe);
    struct sb_router *router = sb_router_new();
    assert_non_null(router);
    assert_int_equal(sb_router_add(router, "GET", "/events", h_events, SB_ROUTE_NO_AUTH), 0);
    struct sb_server_config config = {.idle_timeout_s = 10, .auth = test_auth};
    *state = http_fixture_start(router, &config);
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

static int opened(void *p) { return probe.opened > 0; }

static struct client *open_events(struct http_fixture *f, const char *extra_headers,
                                  struct response *resp)
{
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /events HTTP/1.1\r\nHost: t\r\n%s\r\n", extra_headers);
    assert_true(http_fixture_wait(f, opened, NULL, 2000));
    assert_int_equal(client_read_head(c, resp), 0);
    return c;
}

struct event_call {
    const char *id, *event, *data;
    int comment;
    int rc;
};

static void do_event(void *p)
{
    struct event_call *e = p;
    e->rc = e->comment ? sb_sse_comment(probe.s, e->data)
                       : sb_sse_event(probe.s, e->id, e->event, e->data);
}

static int sse_event(struct http_fixture *f, const char *id, const char *event, const char *data)
{
    struct event_call e = {id, event, data, 0, 0};
    http_fixture_on_loop(f, do_event, &e);
    return e.rc;
}

static int sse_comment(struct http_fixture *f, const char *text)
{
    struct event_call e = {NULL, NULL, text, 1, 0};
    http_fixture_on_loop(f, do_event, &e);
    return e.rc;
}

static void expect_chunk(struct client *c, const char *text)
{
    char buf[1024];
    ssize_t n = client_read_chunk(c, buf, sizeof buf - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, text);
}

static void test_headers_and_events(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct client *c = open_events(f, "", &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(header(&resp, "Content-Type"), "text/event-stream");
    assert_string_equal(header(&resp, "Cache-Control"), "no-cache");
    assert_string_equal(header(&resp, "X-Accel-Buffering"), "no");
    assert_int_equal(sse_event(f, "1", "stdout", "hello"), 0);
    expect_chunk(c, "id: 1\nevent: stdout\ndata: hello\n\n");
    assert_int_equal(sse_event(f, NULL, "end", "{\"exitCode\":0}"), 0);
    expect_chunk(c, "event: end\ndata: {\"exitCode\":0}\n\n");
    assert_int_equal(sse_event(f, NULL, NULL, ""), 0);
    expect_chunk(c, "data: \n\n");
    assert_int_equal(sse_event(f, "7", NULL, NULL), 0);
    expect_chunk(c, "id: 7\ndata: \n\n");
    client_close(c);
}

/* Every line-break spelling starts a data line; a trailing break is an empty
 * last line, so the client gets the trailing "\n" back. */
static void test_multi_line_data(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct client *c = open_events(f, "", &resp);
    assert_int_equal(sse_event(f, "2", NULL, "a\nb\r\nc\rd"), 0);
    expect_chunk(c, "id: 2\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    assert_int_equal(sse_event(f, NULL, NULL, "x\n"), 0);
    expect_chunk(c, "data: x\ndata: \n\n");
    assert_int_equal(sse_event(f, NULL, NULL, "\n\n"), 0);
    expect_chunk(c, "data: \ndata: \ndata: \n\n");
    assert_int_equal(sse_event(f, NULL, NULL, " lead: ing"), 0);
    expect_chunk(c, "data:  lead: ing\n\n");
    client_close(c);
}

/* A line break in id or event would forge fields: refused, nothing sent. */
static void test_line_break_in_fields_refused(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct client *c = open_events(f, "", &resp);
    assert_int_equal(sse_event(f, "1\ndata: forged", NULL, "x"), -1);
    assert_int_equal(sse_event(f, NULL, "stdout\r", "x"), -1);
    assert_int_equal(sse_event(f, "3", NULL, "ok"), 0);
    expect_chunk(c, "id: 3\ndata: ok\n\n");
    client_close(c);
}

static void do_fast_keepalive(void *p)
{
    assert_int_equal(sb_stream_heartbeat(probe.s, 100, SB_SSE_KEEPALIVE,
                                         strlen(SB_SSE_KEEPALIVE)), 0);
}

static void test_comments_and_keepalive(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct client *c = open_events(f, "", &resp);
    assert_int_equal(sse_comment(f, "hello\nworld"), 0);
    expect_chunk(c, ": hello\n: world\n\n");
    /* the default keepalive (15 s) does not fire in a test's time */
    usleep(200 * 1000);
    assert_int_equal(sse_event(f, NULL, NULL, "first"), 0);
    expect_chunk(c, "data: first\n\n");
    http_fixture_on_loop(f, do_fast_keepalive, NULL);
    uint64_t start = sb_now_ms();
    expect_chunk(c, ": keepalive\n\n");
    assert_true(sb_now_ms() - start >= 80);
    expect_chunk(c, ": keepalive\n\n");
    client_close(c);
}

static void test_last_event_id(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct client *c = open_events(f, "Last-Event-ID: stdout-41\r\n", &resp);
    assert_true(probe.has_last_id);
    assert_string_equal(probe.last_id, "stdout-41");
    client_close(c);
    probe.opened = 0;
    c = open_events(f, "Last-Event-ID:\r\n", &resp);
    assert_false(probe.has_last_id);
    client_close(c);
    probe.opened = 0;
    c = open_events(f, "", &resp);
    assert_false(probe.has_last_id);
    client_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_headers_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_line_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_break_in_fields_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_comments_and_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_event_id, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
