/*
 * test_proto.c - shim protocol framing: round trips of every frame type,
 * frames split at every byte boundary, several frames in one read, and
 * oversized or unknown frames rejected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/proto.h"

/* Feeds bytes into r in pieces of `piece` bytes; collects frames via cb. */
static int feed(struct sb_frame_reader *r, const uint8_t *data, size_t len, size_t piece,
                void (*cb)(const struct sb_frame *, void *), void *arg)
{
    struct sb_err err = {0};
    size_t off = 0;
    while (off < len) {
        size_t room;
        uint8_t *dst = sb_frame_reader_space(r, &room);
        size_t n = len - off < piece ? len - off : piece;
        if (n > room)
            n = room;
        memcpy(dst, data + off, n);
        sb_frame_reader_commit(r, n);
        off += n;
        struct sb_frame f;
        int rc;
        while ((rc = sb_frame_reader_next(r, &f, &err)) == 1)
            cb(&f, arg);
        if (rc < 0)
            return -1;
    }
    return 0;
}

struct collected {
    int frames;
    char op[32];
    int seq;
    struct sb_output_chunk out;
    uint8_t data[256];
    struct sb_stdin_chunk in;
};

static void collect(const struct sb_frame *f, void *arg)
{
    struct collected *c = arg;
    struct sb_err err = {0};
    c->frames++;
    if (f->type == SB_FRAME_JSON) {
        json_t *o = sb_frame_parse_json(f, &err);
        assert_non_null(o);
        snprintf(c->op, sizeof c->op, "%s", json_string_value(json_object_get(o, "op")));
        c->seq = (int)json_integer_value(json_object_get(o, "seq"));
        json_decref(o);
    } else if (f->type == SB_FRAME_OUTPUT) {
        assert_int_equal(sb_frame_parse_output(f, &c->out, &err), 0);
        memcpy(c->data, c->out.data, c->out.len);
    } else {
        assert_int_equal(sb_frame_parse_stdin(f, &c->in, &err), 0);
        memcpy(c->data, c->in.data, c->in.len);
    }
}

static void test_json_round_trip_every_split(void **state)
{
    json_t *o = json_pack("{s:s, s:i, s:[s,s]}", "op", "start", "seq", 42, "argv", "echo", "hi");
    size_t len;
    uint8_t *frame = sb_frame_json(o, &len);
    json_decref(o);
    assert_non_null(frame);
    for (size_t piece = 1; piece <= len; piece++) {
        struct sb_frame_reader r;
        assert_int_equal(sb_frame_reader_init(&r, NULL), 0);
        struct collected c = {0};
        assert_int_equal(feed(&r, frame, len, piece, collect, &c), 0);
        assert_int_equal(c.frames, 1);
        assert_string_equal(c.op, "start");
        assert_int_equal(c.seq, 42);
        sb_frame_reader_free(&r);
    }
    free(frame);
}

static void test_output_and_stdin_round_trip(void **state)
{
    uint8_t buf[128];
    sb_frame_output_header(buf, 7, SB_STREAM_STDERR, 0x123456789aULL, 3);
    memcpy(buf + SB_PROTO_HEADER + SB_PROTO_OUTPUT_HEADER, "err", 3);
    size_t n1 = SB_PROTO_HEADER + SB_PROTO_OUTPUT_HEADER + 3;
    sb_frame_stdin_header(buf + n1, 9, 7, 2);
    memcpy(buf + n1 + SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER, "in", 2);
    size_t total = n1 + SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER + 2;

    struct sb_frame_reader r;
    assert_int_equal(sb_frame_reader_init(&r, NULL), 0);
    struct collected c = {0};
    assert_int_equal(feed(&r, buf, total, total, collect, &c), 0);   /* both in one read */
    assert_int_equal(c.frames, 2);
    assert_int_equal(c.out.proc, 7);
    assert_int_equal(c.out.stream, SB_STREAM_STDERR);
    assert_true(c.out.offset == 0x123456789aULL);
    assert_int_equal(c.out.len, 3);
    assert_int_equal(c.in.seq, 9);
    assert_int_equal(c.in.proc, 7);
    assert_int_equal(c.in.len, 2);
    assert_memory_equal(c.data, "in", 2);
    sb_frame_reader_free(&r);
}

static void test_oversized_frame_rejected(void **state)
{
    uint8_t hdr[SB_PROTO_HEADER];
    sb_frame_header(hdr, SB_FRAME_JSON, SB_PROTO_MAX_PAYLOAD + 1);
    struct sb_frame_reader r;
    assert_int_equal(sb_frame_reader_init(&r, NULL), 0);
    size_t room;
    memcpy(sb_frame_reader_space(&r, &room), hdr, sizeof hdr);
    sb_frame_reader_commit(&r, sizeof hdr);
    struct sb_frame f;
    struct sb_err err = {0};
    assert_int_equal(sb_frame_reader_next(&r, &f, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.msg, "exceeds"));
    sb_frame_reader_free(&r);
}

static void test_unknown_type_and_short_frames_rejected(void **state)
{
    uint8_t hdr[SB_PROTO_HEADER];
    sb_frame_header(hdr, 99, 0);
    struct sb_frame_reader r;
    assert_int_equal(sb_frame_reader_init(&r, NULL), 0);
    size_t room;
    memcpy(sb_frame_reader_space(&r, &room), hdr, sizeof hdr);
    sb_frame_reader_commit(&r, sizeof hdr);
    struct sb_frame f;
    struct sb_err err = {0};
    assert_int_equal(sb_frame_reader_next(&r, &f, &err), -1);
    sb_frame_reader_free(&r);

    struct sb_frame shortf = {.type = SB_FRAME_OUTPUT, .payload = hdr, .len = 4};
    struct sb_output_chunk oc;
    assert_int_equal(sb_frame_parse_output(&shortf, &oc, &err), -1);
    struct sb_frame notobj = {.type = SB_FRAME_JSON, .payload = (const uint8_t *)"[1]", .len = 3};
    assert_null(sb_frame_parse_json(&notobj, &err));
}

static void test_maximal_frame_fits(void **state)
{
    size_t len = SB_PROTO_HEADER + SB_PROTO_MAX_PAYLOAD;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    sb_frame_output_header(buf, 1, SB_STREAM_STDOUT, 0, SB_PROTO_MAX_PAYLOAD - SB_PROTO_OUTPUT_HEADER);
    memset(buf + SB_PROTO_HEADER + SB_PROTO_OUTPUT_HEADER, 'z', SB_PROTO_MAX_PAYLOAD - SB_PROTO_OUTPUT_HEADER);
    struct sb_frame_reader r;
    assert_int_equal(sb_frame_reader_init(&r, NULL), 0);
    /* a little of a first frame, then the maximal one, in odd pieces */
    int frames = 0;
    size_t off = 0;
    struct sb_err err = {0};
    while (off < len) {
        size_t room;
        uint8_t *dst = sb_frame_reader_space(&r, &room);
        assert_true(room > 0);
        size_t n = len - off < 70001 ? len - off : 70001;
        if (n > room)
            n = room;
        memcpy(dst, buf + off, n);
        sb_frame_reader_commit(&r, n);
        off += n;
        struct sb_frame f;
        while (sb_frame_reader_next(&r, &f, &err) == 1) {
            frames++;
            assert_int_equal(f.len, SB_PROTO_MAX_PAYLOAD);
        }
    }
    assert_int_equal(frames, 1);
    sb_frame_reader_free(&r);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_round_trip_every_split),
        cmocka_unit_test(test_output_and_stdin_round_trip),
        cmocka_unit_test(test_oversized_frame_rejected),
        cmocka_unit_test(test_unknown_type_and_short_frames_rejected),
        cmocka_unit_test(test_maximal_frame_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
