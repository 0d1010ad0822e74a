/*
 * test_http_envd_stream.c - envd's server-streaming calls
 * (e2b/rpc_stream.c) on a real server: the Connect-Timeout-Ms deadline
 * (the call's work is stopped, then deadline_exceeded in band), the
 * keepalive event at the Keepalive-Ping-Interval the client asks for, bad
 * headers answered in band, and a client that leaves before its deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/app.h"
#include "e2b/envd.h"
#include "http/connect.h"
#include "http_harness.h"

/* What the handler saw, read on the loop thread. */
static struct {
    int deadlines;
    int closed;
    enum sb_stream_end why;
} seen;

static void on_deadline(void *arg) { seen.deadlines++; }

static void on_closed(void *arg, enum sb_stream_end why)
{
    seen.closed++;
    seen.why = why;
}

/* POST /process.Process/Start: a start event, then nothing until the
 * deadline, the client or the server ends it. */
static void h_start(struct sb_request *req)
{
    struct sb_err err;
    json_t *keepalive = json_pack("{s:{s:{}}}", "event", "keepalive");
    struct e2b_rpc_stream_handlers h = {.deadline = on_deadline, .closed = on_closed};
    struct e2b_rpc_stream *rs = e2b_rpc_stream_open(req, keepalive, &h, &err);
    json_decref(keepalive);
    if (!rs) {
        e2b_rpc_stream_fail(req, &err);
        return;
    }
    json_t *start = json_pack("{s:{s:{s:i}}}", "event", "start", "pid", 7);
    assert_int_equal(e2b_rpc_stream_send(rs, start), 0);
    json_decref(start);
}

static struct sb_app app;

static int no_keys(void *ctx, const char *key, char org_id[SB_ORG_ID_MAX], struct sb_err *err)
{
    return sb_err_set(err, 401, "invalid API key");
}

static int setup(void **state)
{
    memset(&seen, 0, sizeof seen);
    struct sb_router *router = sb_router_new();
    assert_non_null(router);
    struct sb_route_spec route = {.method = "POST", .pattern = "/process.Process/Start", .handler = h_start,
                                  .flags = SB_ROUTE_NO_AUTH, .render_error = sb_connect_render_error};
    assert_int_equal(sb_router_add_spec(router, &route), 0);
    struct sb_server_config config = {.idle_timeout_s = 10, .auth = no_keys, .app_ctx = &app};
    struct http_fixture *f = http_fixture_start(router, &config);
    app.loop = f->loop;
    *state = f;
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

/* The next envelope of a chunked body: flags and JSON text. */
struct body_reader {
    struct client *c;
    char buf[16384];
    size_t len;
};

static int next_envelope(struct body_reader *b, unsigned *flags, char *out, size_t max)
{
    for (;;) {
        if (b->len >= 5) {
            size_t len = (size_t)(unsigned char)b->buf[1] << 24 | (size_t)(unsigned char)b->buf[2] << 16 |
                         (size_t)(unsigned char)b->buf[3] << 8 | (unsigned char)b->buf[4];
            if (b->len >= 5 + len) {
                assert_true(len < max);
                *flags = (unsigned char)b->buf[0];
                memcpy(out, b->buf + 5, len);
                out[len] = '\0';
                b->len -= 5 + len;
                memmove(b->buf, b->buf + 5 + len, b->len);
                return 0;
            }
        }
        ssize_t n = client_read_chunk(b->c, b->buf + b->len, sizeof b->buf - b->len);
        if (n <= 0)
            return -1;
        b->len += (size_t)n;
    }
}

/* Sends a Start call with extra headers and reads the response head. */
static struct client *start_call(struct http_fixture *f, const char *headers, struct response *resp)
{
    static const char msg[] = "\x00\x00\x00\x00\x02{}";
    struct client *c = client_open(f->port);
    client_sendf(c, "POST /process.Process/Start HTTP/1.1\r\nHost: t\r\nContent-Type: application/connect+json\r\n"
                    "%sContent-Length: %zu\r\n\r\n", headers, sizeof msg - 1);
    client_send(c, msg, sizeof msg - 1);
    assert_int_equal(client_read_head(c, resp), 0);
    assert_int_equal(resp->status, 200);
    assert_non_null(strstr(header(resp, "Content-Type"), "application/connect+json"));
    return c;
}

static int closed_once(void *arg) { return seen.closed == 1; }

static void test_deadline_ends_in_band(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    uint64_t t0 = sb_now_ms();
    struct client *c = start_call(f, "Connect-Timeout-Ms: 300\r\n", &resp);
    struct body_reader b = {.c = c};
    char text[512];
    unsigned flags;
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
    assert_int_equal(flags, 0);
    assert_string_equal(text, "{\"event\":{\"start\":{\"pid\":7}}}");
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
    uint64_t waited = sb_now_ms() - t0;
    assert_int_equal(flags, SB_CONNECT_FLAG_END_STREAM);
    json_t *end = json_loads(text, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(end, "error"), "code")),
                        "deadline_exceeded");
    json_decref(end);
    assert_true(waited >= 300 && waited < 3000);
    assert_int_equal(client_read_chunk(c, text, sizeof text), 0);     /* the body's last chunk */
    assert_true(http_fixture_wait(f, closed_once, NULL, 2000));
    assert_int_equal(seen.deadlines, 1);
    assert_int_equal(seen.why, SB_STREAM_ENDED);
    client_close(c);
}

static void test_keepalive_at_the_asked_interval(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct client *c = start_call(f, "Keepalive-Ping-Interval: 1\r\n", &resp);
    struct body_reader b = {.c = c};
    char text[512];
    unsigned flags;
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);     /* start */
    uint64_t t0 = sb_now_ms();
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
    uint64_t waited = sb_now_ms() - t0;
    assert_int_equal(flags, 0);
    assert_string_equal(text, "{\"event\":{\"keepalive\":{}}}");
    assert_true(waited >= 800 && waited < 4000);
    client_close(c);
    /* the client left: closed, and no deadline ever ran */
    assert_true(http_fixture_wait(f, closed_once, NULL, 3000));
    assert_int_equal(seen.why, SB_STREAM_CLIENT_GONE);
    assert_int_equal(seen.deadlines, 0);
}

static void test_bad_headers_are_errors_in_band(void **state)
{
    struct http_fixture *f = *state;
    static const char *const bad[] = {"Connect-Timeout-Ms: 12345678901\r\n", "Connect-Timeout-Ms: soon\r\n",
                                      "Keepalive-Ping-Interval: 0\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct response resp;
        struct client *c = start_call(f, bad[i], &resp);
        struct body_reader b = {.c = c};
        char text[512];
        unsigned flags;
        assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
        assert_int_equal(flags, SB_CONNECT_FLAG_END_STREAM);
        json_t *end = json_loads(text, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(json_object_get(end, "error"), "code")),
                            "invalid_argument");
        json_decref(end);
        client_close(c);
    }
    assert_int_equal(seen.closed, 0);       /* no stream of the call's own was opened */
}

static void test_client_gone_before_deadline(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct client *c = start_call(f, "Connect-Timeout-Ms: 600\r\n", &resp);
    struct body_reader b = {.c = c};
    char text[512];
    unsigned flags;
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
    client_close(c);
    assert_true(http_fixture_wait(f, closed_once, NULL, 3000));
    uint64_t t0 = sb_now_ms();
    while (sb_now_ms() - t0 < 900)
        http_fixture_wait(f, closed_once, NULL, 100);
    assert_int_equal(seen.deadlines, 0);    /* the timer went with the stream */
    assert_int_equal(seen.closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deadline_ends_in_band, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_at_the_asked_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_headers_are_errors_in_band, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_before_deadline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
