/*
 * test_http_ws.c - WebSocket connections (http/websocket.c) against the real
 * server, with libwslay's frame API as the client (masking and framing done
 * by the library, not by this test): the RFC 6455 handshake example, echo of
 * text and binary, bad handshakes, invalid UTF-8, oversized messages, close
 * from either side, a client that vanishes, bytes sent before the 101, and
 * shutdown.
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
#include <wslay/wslay.h>

#include <cmocka.h>

#include "http/websocket.h"
#include "http_harness.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="          /* RFC 6455, section 1.3 */
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* ---- the application under test (loop thread only) ---- */

static struct {
    struct sb_ws *ws;
    int messages;
    int closed;
    int close_code;
} probe;

static void on_message(struct sb_ws *ws, void *arg, int binary, const void *data, size_t len)
{
    probe.messages++;
    if (len == 5 && memcmp(data, "close", 5) == 0) {
        sb_ws_close(ws, 1000, "bye");
        return;
    }
    if (len == 4 && memcmp(data, "last", 4) == 0) {    /* messages, then the close at once */
        static char big[3000];
        memset(big, 'x', sizeof big);
        sb_ws_send(ws, 0, "goodbye", 7);
        sb_ws_send(ws, 1, big, sizeof big);
        sb_ws_close(ws, 1000, "done");
        assert_int_equal(sb_ws_send(ws, 0, "late", 4), -1);
        return;
    }
    sb_ws_send(ws, binary, data, len);  /* echo */
}

static void on_close(void *arg, int code)
{
    probe.closed++;
    probe.close_code = code;
    probe.ws = NULL;
}

static void h_ws(struct sb_request *req)
{
    struct sb_err err;
    struct sb_ws_handlers handlers = {.on_message = on_message, .on_close = on_close};
    struct sb_ws *ws = sb_ws_accept(req, &handlers, NULL, 1000, &err);
    if (!ws) {
        sb_respond_error(req, &err);
        return;
    }
    probe.ws = ws;
}

static int test_auth(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX],
                     struct sb_err *err)
{
    return sb_err_set(err, 401, "invalid API key");
}

static struct http_fixture *start(unsigned grace_ms)
{
    memset(&probe, 0, sizeof probe);
    struct sb_router *router = sb_router_new();
    assert_non_null(router);
    assert_int_equal(sb_router_add(router, "GET", "/ws", h_ws, SB_ROUTE_NO_AUTH), 0);
    struct sb_server_config config = {.idle_timeout_s = 10, .auth = test_auth,
                                      .shutdown_grace_ms = grace_ms};
    return http_fixture_start(router, &config);
}

static int setup(void **state)
{
    *state = start(0);
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

static int is_closed(void *p) { return probe.closed > 0; }

/* ---- the client: a blocking socket under wslay's frame API ---- */

struct ws_client {
    struct client *c;
    wslay_frame_context_ptr frames;
};

static ssize_t client_send_cb(const uint8_t *data, size_t len, int flags, void *user)
{
    struct ws_client *wc = user;
    return send(wc->c->fd, data, len, MSG_NOSIGNAL);
}

/* Bytes left over in c->buf after the handshake are read first. */
static ssize_t client_recv_cb(uint8_t *buf, size_t len, int flags, void *user)
{
    struct ws_client *wc = user;
    if (wc->c->len > 0) {
        size_t n = wc->c->len < len ? wc->c->len : len;
        memcpy(buf, wc->c->buf, n);
        wc->c->len -= n;
        memmove(wc->c->buf, wc->c->buf + n, wc->c->len);
        return (ssize_t)n;
    }
    ssize_t n = recv(wc->c->fd, buf, len, 0);
    return n > 0 ? n : -1;
}

static int client_mask_cb(uint8_t *buf, size_t len, void *user)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rand();
    return 0;
}

static const struct wslay_frame_callbacks client_callbacks = {
    client_send_cb, client_recv_cb, client_mask_cb};

static void ws_send_frame(struct ws_client *wc, uint8_t opcode, const void *data, size_t len)
{
    struct wslay_frame_iocb iocb = {.fin = 1, .opcode = opcode, .mask = 1,
                                    .payload_length = len, .data = data, .data_length = len};
    /* wslay_frame_send may take the payload in pieces */
    for (;;) {
        ssize_t n = wslay_frame_send(wc->frames, &iocb);
        assert_true(n >= 0);
        if ((size_t)n == iocb.data_length)
            return;
        iocb.data += n;
        iocb.data_length -= (size_t)n;
    }
}

/* One whole frame from the server: its length, -1 when the connection ends. */
static ssize_t ws_recv_frame(struct ws_client *wc, uint8_t *opcode, uint8_t *out, size_t max)
{
    size_t got = 0;
    for (;;) {
        struct wslay_frame_iocb iocb;
        memset(&iocb, 0, sizeof iocb);
        ssize_t n = wslay_frame_recv(wc->frames, &iocb);
        if (n < 0)
            return -1;
        assert_int_equal(iocb.mask, 0);     /* a server never masks */
        assert_true(got + iocb.data_length <= max);
        memcpy(out + got, iocb.data, iocb.data_length);
        got += iocb.data_length;
        *opcode = iocb.opcode;
        if (got == iocb.payload_length && iocb.fin)
            return (ssize_t)got;
    }
}

static struct ws_client *ws_open(unsigned port, const char *extra_headers, const char *first_bytes,
                                 size_t first_len, struct response *resp)
{
    struct ws_client *wc = calloc(1, sizeof *wc);
    assert_non_null(wc);
    wc->c = client_open(port);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n", extra_headers ? extra_headers : "");
    assert_true(n > 0 && (size_t)n + first_len < sizeof req);
    memcpy(req + n, first_bytes, first_len);
    client_send(wc->c, req, (size_t)n + first_len);   /* one write: the frame may come early */
    assert_int_equal(client_read_head(wc->c, resp), 0);
    assert_int_equal(wslay_frame_context_init(&wc->frames, &client_callbacks, wc), 0);
    return wc;
}

static void ws_free(struct ws_client *wc)
{
    wslay_frame_context_free(wc->frames);
    client_close(wc->c);
    free(wc);
}

static void expect_message(struct ws_client *wc, uint8_t opcode, const void *data, size_t len)
{
    uint8_t buf[4096], got_op;
    ssize_t n = ws_recv_frame(wc, &got_op, buf, sizeof buf);
    assert_int_equal(n, (ssize_t)len);
    assert_int_equal(got_op, opcode);
    assert_memory_equal(buf, data, len);
}

/* A close frame: its status code, and reason into reason (if given). */
static int expect_close(struct ws_client *wc, char *reason, size_t max)
{
    uint8_t buf[256], op;
    ssize_t n = ws_recv_frame(wc, &op, buf, sizeof buf);
    assert_int_equal(op, WSLAY_CONNECTION_CLOSE);
    assert_true(n >= 2);
    if (reason)
        snprintf(reason, max, "%.*s", (int)(n - 2), (const char *)buf + 2);
    return buf[0] << 8 | buf[1];
}

static void send_close(struct ws_client *wc, int code)
{
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    ws_send_frame(wc, WSLAY_CONNECTION_CLOSE, payload, 2);
}

/* After a close for its own fault the client sees the server's FIN. */
static void expect_eof(struct ws_client *wc)
{
    char byte;
    assert_int_equal(recv(wc->c->fd, &byte, 1, 0), 0);
}

/* ---- tests ---- */

/* The handshake of RFC 6455's own example, then text and binary echoed; a
 * close from the client is answered and reported with its code. */
static void test_handshake_and_echo(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct ws_client *wc = ws_open(f->port, NULL, "", 0, &resp);
    assert_int_equal(resp.status, 101);
    assert_string_equal(header(&resp, "Sec-WebSocket-Accept"), RFC_ACCEPT);
    assert_string_equal(header(&resp, "Upgrade"), "websocket");
    assert_non_null(strcasestr(header(&resp, "Connection"), "upgrade"));
    ws_send_frame(wc, WSLAY_TEXT_FRAME, "hello", 5);
    expect_message(wc, WSLAY_TEXT_FRAME, "hello", 5);
    static const uint8_t bin[] = {0x00, 0xff, 0x80, 0x0a};
    ws_send_frame(wc, WSLAY_BINARY_FRAME, bin, sizeof bin);
    expect_message(wc, WSLAY_BINARY_FRAME, bin, sizeof bin);
    ws_send_frame(wc, WSLAY_TEXT_FRAME, "h\xc3\xa9", 3);
    expect_message(wc, WSLAY_TEXT_FRAME, "h\xc3\xa9", 3);
    ws_send_frame(wc, WSLAY_PING, "p", 1);
    expect_message(wc, WSLAY_PONG, "p", 1);     /* answered by wslay */
    send_close(wc, 1000);
    assert_int_equal(expect_close(wc, NULL, 0), 1000);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.close_code, 1000);
    assert_int_equal(probe.messages, 3);
    ws_free(wc);
}

/* A frame sent right behind the handshake (before the 101) is not lost:
 * MHD read it with the headers and hands it over. */
static void test_frame_before_the_answer(void **state)
{
    struct http_fixture *f = *state;
    /* a masked text frame "early" with mask 01 02 03 04 */
    uint8_t frame[2 + 4 + 5] = {0x81, 0x80 | 5, 1, 2, 3, 4};
    const char *text = "early";
    for (int i = 0; i < 5; i++)
        frame[6 + i] = (uint8_t)(text[i] ^ frame[2 + i % 4]);
    struct response resp;
    struct ws_client *wc = ws_open(f->port, NULL, (const char *)frame, sizeof frame, &resp);
    assert_int_equal(resp.status, 101);
    expect_message(wc, WSLAY_TEXT_FRAME, "early", 5);
    ws_free(wc);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.close_code, SB_WS_ABNORMAL);    /* left without a close frame */
}

/* Bad handshakes get a 4xx that says what to send; the server goes on. */
static void test_bad_handshakes(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "GET", "/ws", NULL, NULL, &resp);
    assert_int_equal(resp.status, 400);
    assert_non_null(strstr(resp.body, "Upgrade: websocket"));
    request(f->port, "GET", "/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 8\r\n", NULL, &resp);
    assert_int_equal(resp.status, 426);
    assert_non_null(strstr(resp.body, "Sec-WebSocket-Version: 13"));
    const char *bad_keys[] = {"short==", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25j!Q==", ""};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        char headers[256];
        snprintf(headers, sizeof headers, "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", bad_keys[i]);
        request(f->port, "GET", "/ws", headers, NULL, &resp);
        assert_int_equal(resp.status, 400);
    }
    assert_int_equal(probe.closed, 0);
    struct ws_client *wc = ws_open(f->port, NULL, "", 0, &resp);
    assert_int_equal(resp.status, 101);
    ws_free(wc);
}

/* Text that is not UTF-8 is answered with close 1007; a message over the
 * route's limit (1000 bytes here) with 1009. Neither reaches the handler. */
static void test_invalid_text_and_oversized(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct ws_client *wc = ws_open(f->port, NULL, "", 0, &resp);
    ws_send_frame(wc, WSLAY_TEXT_FRAME, "\xc0\xae", 2);
    assert_int_equal(expect_close(wc, NULL, 0), 1007);
    send_close(wc, 1007);
    expect_eof(wc);
    assert_false(http_fixture_wait(f, is_closed, NULL, 0));  /* reading the client out */
    ws_free(wc);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.messages, 0);

    memset(&probe, 0, sizeof probe);
    wc = ws_open(f->port, NULL, "", 0, &resp);
    static char big[2000];
    memset(big, 'x', sizeof big);
    ws_send_frame(wc, WSLAY_BINARY_FRAME, big, sizeof big);   /* all of it is read */
    assert_int_equal(expect_close(wc, NULL, 0), 1009);
    expect_eof(wc);
    ws_free(wc);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.messages, 0);
}

/* The server closes (the handler asks for it); a client that vanishes
 * without a close frame is reported as 1006 at once. */
static void test_server_close_and_vanished_client(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct ws_client *wc = ws_open(f->port, NULL, "", 0, &resp);
    ws_send_frame(wc, WSLAY_TEXT_FRAME, "close", 5);
    char reason[64];
    assert_int_equal(expect_close(wc, reason, sizeof reason), 1000);
    assert_string_equal(reason, "bye");
    send_close(wc, 1000);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.close_code, 1000);
    ws_free(wc);

    memset(&probe, 0, sizeof probe);
    wc = ws_open(f->port, NULL, "", 0, &resp);
    ws_send_frame(wc, WSLAY_TEXT_FRAME, "hi", 2);
    expect_message(wc, WSLAY_TEXT_FRAME, "hi", 2);
    uint64_t start = sb_now_ms();
    ws_free(wc);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_true(sb_now_ms() - start < 1000);
    assert_int_equal(probe.close_code, SB_WS_ABNORMAL);
}

/* Messages queued just before a close reach the client before it (wslay
 * alone would send the close first and drop them); nothing after it. */
static void test_close_after_messages(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct ws_client *wc = ws_open(f->port, NULL, "", 0, &resp);
    ws_send_frame(wc, WSLAY_TEXT_FRAME, "last", 4);
    expect_message(wc, WSLAY_TEXT_FRAME, "goodbye", 7);
    uint8_t buf[4096], op;
    assert_int_equal(ws_recv_frame(wc, &op, buf, sizeof buf), 3000);
    assert_int_equal(op, WSLAY_BINARY_FRAME);
    char reason[64];
    assert_int_equal(expect_close(wc, reason, sizeof reason), 1000);
    assert_string_equal(reason, "done");
    send_close(wc, 1000);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    ws_free(wc);
}

/* Shutdown sends close 1001 and stops once the client has answered, well
 * within its grace period. */
static void test_shutdown_closes_websockets(void **state)
{
    struct http_fixture *f = start(5000);
    struct response resp;
    struct ws_client *wc = ws_open(f->port, NULL, "", 0, &resp);
    ws_send_frame(wc, WSLAY_TEXT_FRAME, "x", 1);
    expect_message(wc, WSLAY_TEXT_FRAME, "x", 1);
    uint64_t start = sb_now_ms();
    http_fixture_shutdown(f);
    char reason[64];
    assert_int_equal(expect_close(wc, reason, sizeof reason), SB_WS_GOING_AWAY);
    assert_string_equal(reason, "server shutting down");
    send_close(wc, SB_WS_GOING_AWAY);
    http_fixture_join(f);
    uint64_t took = sb_now_ms() - start;
    if (took > 1500)
        fail_msg("shutdown with an open WebSocket took %llu ms", (unsigned long long)took);
    assert_int_equal(probe.closed, 1);
    assert_int_equal(probe.close_code, SB_WS_GOING_AWAY);
    ws_free(wc);
    http_fixture_free(f, NULL);
}

static void do_fast_heartbeat(void *p) { sb_ws_heartbeat(probe.ws, 200); }

/* Pings go out on an idle connection at the heartbeat's interval, not
 * while messages flow; the client's pongs are taken without a word. */
static void test_heartbeat_pings(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct ws_client *wc = ws_open(f->port, NULL, "", 0, &resp);
    http_fixture_on_loop(f, do_fast_heartbeat, NULL);
    for (int i = 0; i < 12; i++) {     /* 360 ms of traffic: no ping */
        ws_send_frame(wc, WSLAY_TEXT_FRAME, "m", 1);
        expect_message(wc, WSLAY_TEXT_FRAME, "m", 1);
        usleep(30 * 1000);
    }
    uint64_t start = sb_now_ms();
    uint8_t buf[16], op;
    assert_int_equal(ws_recv_frame(wc, &op, buf, sizeof buf), 0);
    assert_int_equal(op, WSLAY_PING);
    uint64_t waited = sb_now_ms() - start;
    if (waited > 300)
        fail_msg("ping after %llu ms more idle (interval 200 ms)", (unsigned long long)waited);
    ws_send_frame(wc, WSLAY_PONG, "", 0);
    assert_int_equal(ws_recv_frame(wc, &op, buf, sizeof buf), 0);
    assert_int_equal(op, WSLAY_PING);
    assert_int_equal(probe.messages, 12);
    send_close(wc, 1000);
    assert_int_equal(expect_close(wc, NULL, 0), 1000);
    ws_free(wc);
}

static void do_pause(void *p) { sb_ws_pause_reading(probe.ws, *(int *)p); }
static void do_messages(void *p) { *(int *)p = probe.messages; }

/* Paused, nothing is delivered; resumed, everything arrives in order. A
 * client that leaves while paused is noticed. */
static void test_pause_reading(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    struct ws_client *wc = ws_open(f->port, NULL, "", 0, &resp);
    ws_send_frame(wc, WSLAY_TEXT_FRAME, "a", 1);
    expect_message(wc, WSLAY_TEXT_FRAME, "a", 1);
    int paused = 1;
    http_fixture_on_loop(f, do_pause, &paused);
    for (int i = 0; i < 5; i++)
        ws_send_frame(wc, WSLAY_TEXT_FRAME, "b", 1);
    usleep(200 * 1000);
    int messages;
    http_fixture_on_loop(f, do_messages, &messages);
    assert_int_equal(messages, 1);
    paused = 0;
    http_fixture_on_loop(f, do_pause, &paused);
    for (int i = 0; i < 5; i++)
        expect_message(wc, WSLAY_TEXT_FRAME, "b", 1);
    paused = 1;
    http_fixture_on_loop(f, do_pause, &paused);
    uint64_t start = sb_now_ms();
    ws_free(wc);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_true(sb_now_ms() - start < 1000);
    assert_int_equal(probe.close_code, SB_WS_ABNORMAL);
    assert_int_equal(probe.messages, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_and_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_before_the_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_text_and_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_close_and_vanished_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_after_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_pings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_reading, setup, teardown),
        cmocka_unit_test(test_shutdown_closes_websockets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
