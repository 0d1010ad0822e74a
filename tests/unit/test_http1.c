/*
 * test_http1.c - the proxy's reader of upstream answers: heads (framing,
 * the strict refusals) and chunked bodies fed in every split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/http1.h"

static int parse(const char *text, int is_head, struct sb_http1_head *head, struct sb_err *err)
{
    static char buf[8192];
    size_t len = strlen(text);
    memcpy(buf, text, len + 1);
    assert_int_equal(sb_http1_head_length(buf, len), len);
    return sb_http1_parse_response(buf, len, is_head, head, err);
}

static void test_head_framing(void **state)
{
    struct sb_http1_head h;
    struct sb_err err = {0};
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-A:  b c \r\n\r\n", 0, &h, &err), 0);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.framing, SB_HTTP1_LENGTH);
    assert_int_equal(h.length, 12);
    assert_int_equal(h.header_count, 2);
    assert_string_equal(h.headers[1].name, "X-A");
    assert_string_equal(h.headers[1].value, "b c");
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n", 0,
                           &h, &err), 0);
    assert_int_equal(h.framing, SB_HTTP1_CHUNKED);
    assert_int_equal(parse("HTTP/1.0 200\nServer: x\n\n", 0, &h, &err), 0);
    assert_int_equal(h.framing, SB_HTTP1_UNTIL_CLOSE);
    assert_int_equal(parse("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", 0, &h, &err), 0);
    assert_int_equal(h.framing, SB_HTTP1_NO_BODY);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", 1, &h, &err), 0);
    assert_int_equal(h.framing, SB_HTTP1_NO_BODY);
    assert_int_equal(parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0, &h, &err), 0);
    assert_int_equal(h.status, 101);
    assert_int_equal(h.framing, SB_HTTP1_NO_BODY);
}

static void test_head_refusals(void **state)
{
    const char *bad[] = {
        "garbage\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 99 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n",
        "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sb_http1_head h;
        struct sb_err err = {0};
        assert_int_equal(parse(bad[i], 0, &h, &err), -1);
        assert_int_equal(err.status, 502);
    }
    char many[8192] = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i <= SB_HTTP1_MAX_HEADERS; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "X-%d: v\r\n", i);
    strcat(many, "\r\n");
    struct sb_http1_head h;
    struct sb_err err = {0};
    assert_int_equal(parse(many, 0, &h, &err), -1);
    assert_int_equal(sb_http1_head_length("HTTP/1.1 200 OK\r\nA: b\r\n", 23), 0);
}

/* Decodes text fed in pieces of step bytes; returns the body. */
static const char *decode(const char *text, size_t step, int *done, int *rc)
{
    static char out[4096];
    char piece[4096];
    struct sb_chunked c = {0};
    struct sb_err err = {0};
    size_t len = strlen(text), used = 0;
    *rc = 0;
    *done = 0;
    for (size_t i = 0; i < len && !*done; i += step) {
        size_t n = len - i < step ? len - i : step;
        memcpy(piece, text + i, n);
        long got = sb_chunked_decode(&c, piece, n, done, &err);
        if (got < 0) {
            *rc = -1;
            break;
        }
        memcpy(out + used, piece, (size_t)got);
        used += (size_t)got;
    }
    out[used] = '\0';
    return out;
}

static void test_chunked_every_split(void **state)
{
    const char *body = "5\r\nhello\r\n1;ext=1\r\n,\r\nA\r\n world 123\r\n0\r\nTrailer: x\r\n\r\n";
    for (size_t step = 1; step <= strlen(body); step++) {
        int done, rc;
        const char *got = decode(body, step, &done, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(done, 1);
        assert_string_equal(got, "hello, world 123");
    }
    int done, rc;
    decode("3\r\nabc\r\n", 2, &done, &rc);
    assert_int_equal(done, 0);
    assert_int_equal(rc, 0);
}

static void test_chunked_refusals(void **state)
{
    const char *bad[] = {"x\r\n", "\r\n", "3\r\nabcd\r\n", "1000000000000000\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int done, rc;
        decode(bad[i], 1, &done, &rc);
        assert_int_equal(rc, -1);
    }
}

static void test_tokens(void **state)
{
    assert_true(sb_http1_has_token("keep-alive, Upgrade", "upgrade"));
    assert_true(sb_http1_has_token("upgrade", "Upgrade"));
    assert_false(sb_http1_has_token("upgrades", "upgrade"));
    assert_false(sb_http1_has_token("", "upgrade"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_framing),
        cmocka_unit_test(test_head_refusals),
        cmocka_unit_test(test_chunked_every_split),
        cmocka_unit_test(test_chunked_refusals),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
