/*
 * test_multipart.c - the streaming multipart/form-data parser
 * (http/multipart.c): parts and their fields, content that looks like a
 * boundary but is not, every split of a body into pieces (one byte at a
 * time included) giving the same parts, and each malformation a 400.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/multipart.h"

#define MAX_PARTS 8

struct collected {
    int count;
    char name[MAX_PARTS][256];
    char filename[MAX_PARTS][512];
    int has_filename[MAX_PARTS];
    char type[MAX_PARTS][64];
    char data[MAX_PARTS][4096];
    size_t len[MAX_PARTS];
    int ended[MAX_PARTS];
    int in_part;
};

static int on_begin(void *arg, const char *name, const char *filename, const char *type, struct sb_err *err)
{
    struct collected *c = arg;
    (void)err;
    assert_int_equal(c->in_part, 0);
    assert_true(c->count < MAX_PARTS);
    snprintf(c->name[c->count], sizeof c->name[0], "%s", name);
    c->has_filename[c->count] = filename != NULL;
    snprintf(c->filename[c->count], sizeof c->filename[0], "%s", filename ? filename : "");
    snprintf(c->type[c->count], sizeof c->type[0], "%s", type ? type : "");
    c->in_part = 1;
    return 0;
}

static int on_data(void *arg, const char *data, size_t len, struct sb_err *err)
{
    struct collected *c = arg;
    (void)err;
    assert_int_equal(c->in_part, 1);
    assert_true(len > 0);
    assert_true(c->len[c->count] + len <= sizeof c->data[0]);
    memcpy(c->data[c->count] + c->len[c->count], data, len);
    c->len[c->count] += len;
    return 0;
}

static int on_end(void *arg, struct sb_err *err)
{
    struct collected *c = arg;
    (void)err;
    assert_int_equal(c->in_part, 1);
    c->ended[c->count++] = 1;
    c->in_part = 0;
    return 0;
}

static const struct sb_multipart_callbacks cbs = {on_begin, on_data, on_end};

/* Parses body in pieces of `piece` bytes (0: all at once). */
static int parse(const char *ct, const char *body, size_t len, size_t piece, struct collected *c,
                 struct sb_err *err)
{
    memset(c, 0, sizeof *c);
    struct sb_multipart *mp = sb_multipart_new(ct, &cbs, c, err);
    if (!mp)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < len;) {
        size_t n = piece && piece < len - i ? piece : len - i;
        rc = sb_multipart_feed(mp, body + i, n, err);
        i += n;
    }
    if (rc == 0)
        rc = sb_multipart_finish(mp, err);
    sb_multipart_free(mp);
    return rc;
}

#define CT "multipart/form-data; boundary=XyZ"

/* content with CRs, a "--XyZ" not after CRLF, and a near-boundary */
static const char BODY[] =
    "preamble is ignored\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"path\"\r\n"
    "\r\n"
    "/home/user/a.txt\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"dir/b \\\"q\\\".bin\"\r\n"
    "Content-Type: application/octet-stream\r\n"
    "\r\n"
    "line1\r\nline2\r\r\n--XyQ not it\r\n--Xy\r\n-- XyZ--XyZ\r\r\n\r\n"
    "\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"empty\"; filename=\"\"\r\n"
    "\r\n"
    "\r\n"
    "--XyZ--\r\n"
    "epilogue too";

static const char FILE_CONTENT[] = "line1\r\nline2\r\r\n--XyQ not it\r\n--Xy\r\n-- XyZ--XyZ\r\r\n\r\n";

static void check_body(const struct collected *c)
{
    assert_int_equal(c->count, 3);
    assert_string_equal(c->name[0], "path");
    assert_false(c->has_filename[0]);
    assert_int_equal(c->len[0], strlen("/home/user/a.txt"));
    assert_memory_equal(c->data[0], "/home/user/a.txt", c->len[0]);
    assert_string_equal(c->name[1], "file");
    assert_string_equal(c->filename[1], "dir/b \"q\".bin");
    assert_string_equal(c->type[1], "application/octet-stream");
    assert_int_equal(c->len[1], sizeof FILE_CONTENT - 1);
    assert_memory_equal(c->data[1], FILE_CONTENT, c->len[1]);
    assert_true(c->has_filename[2]);
    assert_string_equal(c->filename[2], "");
    assert_int_equal(c->len[2], 0);
}

static void test_parts_whole_and_in_every_piece_size(void **state)
{
    (void)state;
    struct collected c;
    struct sb_err err = {0};
    for (size_t piece = 0; piece <= 64; piece++) {
        assert_int_equal(parse(CT, BODY, sizeof BODY - 1, piece, &c, &err), 0);
        check_body(&c);
    }
}

static void test_every_split_point(void **state)
{
    (void)state;
    struct collected c;
    struct sb_err err = {0};
    for (size_t cut = 0; cut <= sizeof BODY - 1; cut++) {
        memset(&c, 0, sizeof c);
        struct sb_multipart *mp = sb_multipart_new(CT, &cbs, &c, &err);
        assert_non_null(mp);
        assert_int_equal(sb_multipart_feed(mp, BODY, cut, &err), 0);
        assert_int_equal(sb_multipart_feed(mp, BODY + cut, sizeof BODY - 1 - cut, &err), 0);
        assert_int_equal(sb_multipart_finish(mp, &err), 0);
        sb_multipart_free(mp);
        check_body(&c);
    }
}

static void test_quoted_boundary_and_no_preamble(void **state)
{
    (void)state;
    struct collected c;
    struct sb_err err = {0};
    const char body[] = "--a b\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\nhi\r\n--a b--";
    assert_int_equal(parse("Multipart/Form-Data; charset=x; boundary=\"a b\"", body, sizeof body - 1, 1, &c,
                           &err), 0);
    assert_int_equal(c.count, 1);
    assert_string_equal(c.name[0], "f");
    assert_string_equal(c.filename[0], "x");
    assert_int_equal(c.len[0], 2);
}

static void test_binary_content(void **state)
{
    (void)state;
    char body[2048];
    char content[1024];
    for (size_t i = 0; i < sizeof content; i++)
        content[i] = (char)(i * 7 + (i >> 3));
    content[100] = '\r';
    content[101] = '\n';
    content[102] = '-';
    content[103] = '-';
    int n = snprintf(body, sizeof body, "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
    memcpy(body + n, content, sizeof content);
    n += (int)sizeof content;
    n += snprintf(body + n, sizeof body - (size_t)n, "\r\n--B--\r\n");
    struct collected c;
    struct sb_err err = {0};
    for (size_t piece = 1; piece < 20; piece++) {
        assert_int_equal(parse("multipart/form-data; boundary=B", body, (size_t)n, piece, &c, &err), 0);
        assert_int_equal(c.count, 1);
        assert_int_equal(c.len[0], sizeof content);
        assert_memory_equal(c.data[0], content, sizeof content);
    }
}

static void expect_400(const char *ct, const char *body, const char *words)
{
    struct collected c;
    struct sb_err err = {0};
    assert_int_equal(parse(ct, body, strlen(body), 0, &c, &err), -1);
    assert_int_equal(err.status, 400);
    if (!strstr(err.msg, words))
        fail_msg("'%s' lacks '%s'", err.msg, words);
}

static void test_malformed_bodies_are_400(void **state)
{
    (void)state;
    expect_400("application/json", "", "multipart/form-data");
    expect_400("multipart/form-data", "", "boundary");
    expect_400("multipart/form-data; boundary=", "", "boundary");
    expect_400("multipart/form-data; boundary=" "0123456789012345678901234567890123456789"
               "012345678901234567890123456789x", "", "boundary");
    expect_400(CT, "", "closing boundary");
    expect_400(CT, "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nno end", "closing boundary");
    expect_400(CT, "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", "Content-Disposition");
    expect_400(CT, "--XyZ\r\n\r\nx\r\n--XyZ--", "Content-Disposition");
    expect_400(CT, "--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--XyZ--", "form-data");
    expect_400(CT, "--XyZjunk\r\n", "boundary is followed");
    char big[SB_MULTIPART_HEADER_MAX + 100];
    int n = snprintf(big, sizeof big, "--XyZ\r\nX: ");
    memset(big + n, 'a', sizeof big - (size_t)n - 1);
    big[sizeof big - 1] = '\0';
    expect_400(CT, big, "8192");
}

static int failing_data(void *arg, const char *data, size_t len, struct sb_err *err)
{
    (void)arg, (void)data, (void)len;
    return sb_err_set(err, 413, "too big");
}

static void test_callback_error_stops_the_parse(void **state)
{
    (void)state;
    struct sb_multipart_callbacks failing = {on_begin, failing_data, on_end};
    struct collected c = {0};
    struct sb_err err = {0};
    struct sb_multipart *mp = sb_multipart_new(CT, &failing, &c, &err);
    assert_int_equal(sb_multipart_feed(mp, BODY, sizeof BODY - 1, &err), -1);
    assert_int_equal(err.status, 413);
    struct sb_err again = {0};
    assert_int_equal(sb_multipart_feed(mp, "x", 1, &again), -1);
    assert_int_equal(again.status, 413);
    assert_int_equal(sb_multipart_finish(mp, &again), -1);
    sb_multipart_free(mp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_whole_and_in_every_piece_size),
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_quoted_boundary_and_no_preamble),
        cmocka_unit_test(test_binary_content),
        cmocka_unit_test(test_malformed_bodies_are_400),
        cmocka_unit_test(test_callback_error_stops_the_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
