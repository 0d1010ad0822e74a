/*
 * test_http_connect.c - the Connect wire pieces (http/connect.c): the code
 * table, the envelope reader fed in every kind of piece, and against the real
 * server a server-streaming call (data envelopes, then the end-stream one,
 * errors in band), unary errors through the route renderer, a client stream
 * read from a streamed body, and the keepalive envelope.
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

#include "http/connect.h"
#include "http_harness.h"

/* ---- envelopes by hand, for the client side ---- */

static size_t envelope(char *out, unsigned flags, const char *json)
{
    size_t len = strlen(json);
    out[0] = (char)flags;
    out[1] = (char)(len >> 24);
    out[2] = (char)(len >> 16);
    out[3] = (char)(len >> 8);
    out[4] = (char)len;
    memcpy(out + 5, json, len);
    return 5 + len;
}

/* ---- the reader, on its own ---- */

struct collected {
    int count;
    unsigned flags[8];
    char text[8][128];
    int refuse_at;          /* refuse the message with this count (0: never) */
};

static int collect(void *arg, unsigned flags, json_t *msg, struct sb_err *err)
{
    struct collected *c = arg;
    if (c->refuse_at && c->count + 1 == c->refuse_at)
        return sb_err_set(err, 409, "refused message %d", c->refuse_at);
    char *text = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_true(c->count < 8);
    snprintf(c->text[c->count], sizeof c->text[0], "%s", text);
    c->flags[c->count++] = flags;
    free(text);
    return 0;
}

static void test_codes(void **state)
{
    assert_string_equal(sb_connect_code(404), "not_found");
    assert_string_equal(sb_connect_code(401), "unauthenticated");
    assert_string_equal(sb_connect_code(405), "unimplemented");
    assert_string_equal(sb_connect_code(413), "resource_exhausted");
    assert_string_equal(sb_connect_code(503), "unavailable");
    assert_string_equal(sb_connect_code(504), "deadline_exceeded");
    assert_string_equal(sb_connect_code(422), "invalid_argument");
    assert_string_equal(sb_connect_code(500), "internal");
    assert_int_equal(sb_connect_status("resource_exhausted"), 429);
    assert_int_equal(sb_connect_status("unimplemented"), 501);
    assert_int_equal(sb_connect_status("failed_precondition"), 400);
    assert_int_equal(sb_connect_status("no_such_code"), 500);
}

/* Two envelopes fed one byte at a time, then in one piece: the same
 * messages, with their flags. */
static void test_reader_pieces(void **state)
{
    char body[256];
    size_t len = envelope(body, 0, "{\"a\":1}");
    len += envelope(body + len, SB_CONNECT_FLAG_END_STREAM, "{}");
    for (int whole = 0; whole < 2; whole++) {
        struct sb_connect_reader *r = sb_connect_reader_new(1024);
        struct collected c = {0};
        struct sb_err err = {0};
        if (whole) {
            assert_int_equal(sb_connect_reader_feed(r, body, len, collect, &c, &err), 0);
        } else {
            for (size_t i = 0; i < len; i++)
                assert_int_equal(sb_connect_reader_feed(r, body + i, 1, collect, &c, &err), 0);
        }
        assert_int_equal(sb_connect_reader_finish(r, &err), 0);
        assert_int_equal(c.count, 2);
        assert_string_equal(c.text[0], "{\"a\":1}");
        assert_int_equal(c.flags[0], 0);
        assert_string_equal(c.text[1], "{}");
        assert_int_equal(c.flags[1], SB_CONNECT_FLAG_END_STREAM);
        sb_connect_reader_free(r);
    }
}

static int feed_one(const char *bytes, size_t len, size_t max, struct sb_err *err)
{
    struct sb_connect_reader *r = sb_connect_reader_new(max);
    struct collected c = {0};
    int rc = sb_connect_reader_feed(r, bytes, len, collect, &c, err);
    if (rc == 0)
        rc = sb_connect_reader_finish(r, err);
    sb_connect_reader_free(r);
    return rc;
}

static void test_reader_refuses(void **state)
{
    char buf[256];
    struct sb_err err = {0};
    size_t len = envelope(buf, SB_CONNECT_FLAG_COMPRESSED, "{}");
    assert_int_equal(feed_one(buf, len, 1024, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.msg, "compressed"));
    len = envelope(buf, 0, "{\"big\":\"0123456789\"}");
    assert_int_equal(feed_one(buf, len, 10, &err), -1);
    assert_int_equal(err.status, 413);
    len = envelope(buf, 0, "{nope");
    assert_int_equal(feed_one(buf, len, 1024, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.msg, "not JSON"));
    len = envelope(buf, 0, "");
    assert_int_equal(feed_one(buf, len, 1024, &err), -1);
    assert_int_equal(err.status, 400);
    len = envelope(buf, 0, "{\"a\":1}");
    assert_int_equal(feed_one(buf, len - 1, 1024, &err), -1);      /* truncated payload */
    assert_non_null(strstr(err.msg, "ends inside an envelope"));
    assert_int_equal(feed_one(buf, 3, 1024, &err), -1);            /* truncated header */
    /* a refusal by the callback stops the reader with its error */
    len = envelope(buf, 0, "1");
    len += envelope(buf + len, 0, "2");
    struct sb_connect_reader *r = sb_connect_reader_new(1024);
    struct collected c = {.refuse_at = 2};
    assert_int_equal(sb_connect_reader_feed(r, buf, len, collect, &c, &err), -1);
    assert_int_equal(err.status, 409);
    assert_int_equal(c.count, 1);
    assert_int_equal(sb_connect_reader_feed(r, buf, len, collect, &c, &err), -1);
    sb_connect_reader_free(r);
}

/* ---- the application under test (loop thread only) ---- */

static int test_auth(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX],
                     struct sb_err *err)
{
    if (strcmp(key, "good-key") != 0)
        return sb_err_set(err, 401, "invalid API key");
    snprintf(org_id, SB_ORG_ID_MAX, "org_a");
    return 0;
}

/* POST /svc/Stream: one request message; {"fail": N} ends in band with
 * that error, otherwise two data envelopes and a clean end. */
static void h_stream(struct sb_request *req)
{
    struct sb_err err = {0};
    json_t *msg = sb_connect_single_message(req, &err);
    struct sb_err open_err;
    struct sb_stream *s = sb_connect_stream_open(req, &open_err);
    if (!s) {
        json_decref(msg);
        sb_respond_error(req, &open_err);
        return;
    }
    int fail = msg ? (int)json_integer_value(json_object_get(msg, "fail")) : 0;
    json_decref(msg);
    if (!msg || fail) {
        if (fail)
            sb_err_set(&err, fail, "failed with %d", fail);
        sb_connect_end(s, &err);
        return;
    }
    for (int n = 1; n <= 2; n++) {
        json_t *event = json_pack("{s:{s:i}}", "event", "n", n);
        assert_int_equal(sb_connect_send(s, event), 0);
        json_decref(event);
    }
    sb_connect_end(s, NULL);
}

/* POST /svc/Unary {"fail": N}: a unary error. */
static void h_unary(struct sb_request *req)
{
    struct sb_err err;
    json_t *body = sb_request_json(req, 0, &err);
    if (body) {
        sb_err_set(&err, (int)json_integer_value(json_object_get(body, "fail")), "unary failure");
        json_decref(body);
    }
    sb_respond_error(req, &err);
}

/* POST /svc/Upload: a client stream of {"n": N} envelopes (at most 64 bytes
 * each), answered with their count and sum. */
static struct {
    struct sb_connect_reader *reader;
    int count;
    json_int_t sum;
    struct sb_err err;
} upload;

static int upload_message(void *arg, unsigned flags, json_t *msg, struct sb_err *err)
{
    upload.count++;
    upload.sum += json_integer_value(json_object_get(msg, "n"));
    return 0;
}

static enum sb_body_verdict upload_data(struct sb_request *req, void *arg, const char *data,
                                        size_t len)
{
    if (sb_connect_reader_feed(upload.reader, data, len, upload_message, NULL, &upload.err) < 0) {
        sb_connect_reader_free(upload.reader);
        upload.reader = NULL;
        sb_respond_error(req, &upload.err);     /* after STOP the handler answers */
        return SB_BODY_STOP;
    }
    return SB_BODY_CONTINUE;
}

static void upload_end(struct sb_request *req, void *arg, const struct sb_err *err)
{
    struct sb_err finish;
    if (!err && sb_connect_reader_finish(upload.reader, &finish) < 0)
        err = &finish;
    sb_connect_reader_free(upload.reader);
    upload.reader = NULL;
    if (err) {
        sb_respond_error(req, err);
        return;
    }
    sb_respond_json(req, 200, json_pack("{s:i, s:I}", "count", upload.count, "sum", upload.sum));
}

static void h_upload(struct sb_request *req)
{
    memset(&upload, 0, sizeof upload);
    upload.reader = sb_connect_reader_new(64);
    struct sb_err err;
    if (sb_request_body_sink(req, 0, upload_data, upload_end, NULL, &err) < 0) {
        sb_connect_reader_free(upload.reader);
        sb_respond_error(req, &err);
    }
}

static void h_idle(struct sb_request *req)
{
    struct sb_err err;
    struct sb_stream *s = sb_connect_stream_open(req, &err);
    assert_non_null(s);
    json_t *keepalive = json_pack("{s:{s:{}}}", "event", "keepalive");
    assert_int_equal(sb_connect_keepalive(s, 100, keepalive), 0);
    json_decref(keepalive);
}

static int setup(void **state)
{
    struct sb_router *router = sb_router_new();
    assert_non_null(router);
    const struct sb_route_spec routes[] = {
        {.method = "POST", .pattern = "/svc/Stream", .handler = h_stream,
         .render_error = sb_connect_render_error},
        {.method = "POST", .pattern = "/svc/Unary", .handler = h_unary,
         .render_error = sb_connect_render_error},
        {.method = "POST", .pattern = "/svc/Upload", .handler = h_upload,
         .flags = SB_ROUTE_STREAM_BODY, .render_error = sb_connect_render_error},
        {.method = "POST", .pattern = "/svc/Idle", .handler = h_idle,
         .render_error = sb_connect_render_error},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        assert_int_equal(sb_router_add_spec(router, &routes[i]), 0);
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

/* ---- reading a streamed answer ---- */

struct body_reader {
    struct client *c;
    char buf[65536];
    size_t len;
    int ended;              /* the last chunk was read */
};

/* The next envelope of the chunked body: its flags and JSON text into out;
 * -1 when the body ends first. */
static int next_envelope(struct body_reader *b, unsigned *flags, char *out, size_t max)
{
    for (;;) {
        if (b->len >= 5) {
            size_t len = (size_t)(unsigned char)b->buf[1] << 24 |
                         (size_t)(unsigned char)b->buf[2] << 16 |
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
        if (b->ended)
            return -1;
        ssize_t n = client_read_chunk(b->c, b->buf + b->len, sizeof b->buf - b->len);
        assert_true(n >= 0);
        if (n == 0)
            b->ended = 1;
        b->len += (size_t)n;
    }
}

static void call(struct http_fixture *f, const char *path, const char *key_header,
                 const char *body, size_t body_len, struct client **c, struct response *resp)
{
    *c = client_open(f->port);
    client_sendf(*c, "POST %s HTTP/1.1\r\nHost: t\r\n%sContent-Type: application/connect+json\r\n"
                     "Content-Length: %zu\r\n\r\n", path, key_header, body_len);
    client_send(*c, body, body_len);
}

static void test_server_stream(void **state)
{
    struct http_fixture *f = *state;
    char req[128], text[256];
    unsigned flags;
    size_t len = envelope(req, 0, "{\"cmd\":\"echo\"}");
    struct client *c;
    struct response resp;
    call(f, "/svc/Stream", "X-API-Key: good-key\r\n", req, len, &c, &resp);
    assert_int_equal(client_read_head(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(header(&resp, "Content-Type"), "application/connect+json");
    struct body_reader b = {.c = c};
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
    assert_int_equal(flags, 0);
    assert_string_equal(text, "{\"event\":{\"n\":1}}");
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
    assert_string_equal(text, "{\"event\":{\"n\":2}}");
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
    assert_int_equal(flags, SB_CONNECT_FLAG_END_STREAM);
    assert_string_equal(text, "{}");
    assert_int_equal(next_envelope(&b, &flags, text, sizeof text), -1);
    client_close(c);
}

/* Errors of a stream, also a bad request envelope, go in band: 200 and only
 * the end-stream envelope with the error. */
static void test_server_stream_errors_in_band(void **state)
{
    struct http_fixture *f = *state;
    char req[128], text[256];
    unsigned flags;
    const struct {
        const char *json;
        size_t cut;
        const char *end;
    } cases[] = {
        {"{\"fail\":404}", 0, "{\"error\":{\"code\":\"not_found\",\"message\":\"failed with 404\"}}"},
        {"{\"fail\":503}", 0, "{\"error\":{\"code\":\"unavailable\",\"message\":\"failed with 503\"}}"},
        {"{\"cmd\":1}", 2, "{\"error\":{\"code\":\"invalid_argument\",\"message\":"
                           "\"bad Connect envelope: the body ends inside an envelope\"}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = envelope(req, 0, cases[i].json) - cases[i].cut;
        struct client *c;
        struct response resp;
        call(f, "/svc/Stream", "X-API-Key: good-key\r\n", req, len, &c, &resp);
        assert_int_equal(client_read_head(c, &resp), 0);
        assert_int_equal(resp.status, 200);
        struct body_reader b = {.c = c};
        assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
        assert_int_equal(flags, SB_CONNECT_FLAG_END_STREAM);
        assert_string_equal(text, cases[i].end);
        assert_int_equal(next_envelope(&b, &flags, text, sizeof text), -1);
        client_close(c);
    }
}

/* Unary errors, the handler's and the server's own, in Connect's words. */
static void test_unary_errors(void **state)
{
    struct http_fixture *f = *state;
    struct response resp;
    request(f->port, "POST", "/svc/Unary", "X-API-Key: good-key\r\n", "{\"fail\": 404}", &resp);
    assert_int_equal(resp.status, 404);
    json_t *j = json_of(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "not_found");
    assert_string_equal(json_string_value(json_object_get(j, "message")), "unary failure");
    json_decref(j);
    request(f->port, "POST", "/svc/Unary", "X-API-Key: good-key\r\n", "{\"fail\": 413}", &resp);
    assert_int_equal(resp.status, 429);     /* resource_exhausted's status */
    request(f->port, "POST", "/svc/Unary", NULL, "{}", &resp);
    assert_int_equal(resp.status, 401);
    j = json_of(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "unauthenticated");
    json_decref(j);
    request(f->port, "GET", "/svc/Unary", "X-API-Key: good-key\r\n", NULL, &resp);
    assert_int_equal(resp.status, 501);
    j = json_of(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "unimplemented");
    json_decref(j);
}

/* A client stream: envelopes cut across chunks of a chunked body. */
static void test_client_stream(void **state)
{
    struct http_fixture *f = *state;
    char body[4096];
    size_t len = 0;
    for (int n = 1; n <= 20; n++) {
        char json[32];
        snprintf(json, sizeof json, "{\"n\":%d}", n);
        len += envelope(body + len, 0, json);
    }
    struct client *c = client_open(f->port);
    client_sendf(c, "POST /svc/Upload HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0; off < len; off += 7) {
        size_t n = len - off < 7 ? len - off : 7;
        client_sendf(c, "%zx\r\n", n);
        client_send(c, body + off, n);
        client_sendf(c, "\r\n");
    }
    client_sendf(c, "0\r\n\r\n");
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    json_t *j = json_of(&resp);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 20);
    assert_int_equal(json_integer_value(json_object_get(j, "sum")), 210);
    json_decref(j);

    /* a message over the reader's 64 bytes: 413 as resource_exhausted */
    char big[200];
    char json[128];
    snprintf(json, sizeof json, "{\"n\":1,\"pad\":\"%080d\"}", 0);
    len = envelope(big, 0, json);
    client_sendf(c, "POST /svc/Upload HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n"
                    "Content-Length: %zu\r\n\r\n", len);
    client_send(c, big, len);
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 429);
    j = json_of(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "resource_exhausted");
    json_decref(j);
    client_close(c);
}

static void test_keepalive_envelope(void **state)
{
    struct http_fixture *f = *state;
    char req[64], text[256];
    unsigned flags;
    size_t len = envelope(req, 0, "{}");
    struct client *c;
    struct response resp;
    call(f, "/svc/Idle", "X-API-Key: good-key\r\n", req, len, &c, &resp);
    assert_int_equal(client_read_head(c, &resp), 0);
    struct body_reader b = {.c = c};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(next_envelope(&b, &flags, text, sizeof text), 0);
        assert_int_equal(flags, 0);
        assert_string_equal(text, "{\"event\":{\"keepalive\":{}}}");
    }
    client_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_reader_pieces),
        cmocka_unit_test(test_reader_refuses),
        cmocka_unit_test_setup_teardown(test_server_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_stream_errors_in_band, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unary_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_envelope, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
