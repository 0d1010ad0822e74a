/*
 * test_ring.c - the bounded output ring: offsets, wrap-around, dropping the
 * oldest bytes, late readers and the room a reader leaves the writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "shim/ring.h"

static void test_append_and_copy(void **state)
{
    struct sb_ring r;
    assert_int_equal(sb_ring_init(&r, 8), 0);
    sb_ring_append(&r, "hello", 5);
    char out[16] = {0};
    uint64_t from = 99;
    assert_int_equal(sb_ring_copy(&r, 0, out, sizeof out, &from), 5);
    assert_int_equal(from, 0);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(sb_ring_copy(&r, 2, out, 2, &from), 2);
    assert_memory_equal(out, "ll", 2);
    assert_int_equal(sb_ring_copy(&r, 5, out, sizeof out, &from), 0);
    sb_ring_free(&r);
}

static void test_wrap_drops_oldest(void **state)
{
    struct sb_ring r;
    assert_int_equal(sb_ring_init(&r, 8), 0);
    sb_ring_append(&r, "abcdef", 6);
    sb_ring_append(&r, "ghijk", 5);        /* 11 bytes total: keeps "defghijk" */
    assert_int_equal(r.start, 3);
    assert_int_equal(r.end, 11);
    char out[16] = {0};
    uint64_t from = 0;
    assert_int_equal(sb_ring_copy(&r, 0, out, sizeof out, &from), 8);
    assert_int_equal(from, 3);             /* a late reader is moved up to what is held */
    assert_memory_equal(out, "defghijk", 8);
    assert_int_equal(sb_ring_copy(&r, 9, out, sizeof out, &from), 2);
    assert_memory_equal(out, "jk", 2);
    sb_ring_free(&r);
}

static void test_append_larger_than_cap(void **state)
{
    struct sb_ring r;
    assert_int_equal(sb_ring_init(&r, 4), 0);
    sb_ring_append(&r, "x", 1);
    sb_ring_append(&r, "0123456789", 10);
    assert_int_equal(r.end, 11);
    assert_int_equal(r.start, 7);
    char out[8];
    uint64_t from;
    assert_int_equal(sb_ring_copy(&r, 0, out, sizeof out, &from), 4);
    assert_int_equal(from, 7);
    assert_memory_equal(out, "6789", 4);
    sb_ring_free(&r);
}

static void test_room_follows_reader(void **state)
{
    struct sb_ring r;
    assert_int_equal(sb_ring_init(&r, 10), 0);
    assert_int_equal(sb_ring_room(&r, 0), 10);
    sb_ring_append(&r, "1234567", 7);
    assert_int_equal(sb_ring_room(&r, 0), 3);     /* reader at 0 has read nothing */
    assert_int_equal(sb_ring_room(&r, 5), 8);
    assert_int_equal(sb_ring_room(&r, 7), 10);
    sb_ring_append(&r, "89abcdef", 8);            /* drops past the idle reader */
    assert_int_equal(sb_ring_room(&r, 0), 0);     /* a reader behind start leaves no room... */
    assert_int_equal(sb_ring_room(&r, r.end), 10);
    sb_ring_free(&r);
}

static void test_many_small_appends_match_stream(void **state)
{
    struct sb_ring r;
    assert_int_equal(sb_ring_init(&r, 1000), 0);
    uint8_t expect[5000];
    for (size_t i = 0; i < sizeof expect; i++)
        expect[i] = (uint8_t)(i * 7 + 3);
    size_t written = 0, step = 1;
    while (written < sizeof expect) {
        size_t n = step < sizeof expect - written ? step : sizeof expect - written;
        sb_ring_append(&r, expect + written, n);
        written += n;
        step = step * 3 % 97 + 1;
    }
    uint8_t out[1000];
    uint64_t from;
    assert_int_equal(sb_ring_copy(&r, 0, out, sizeof out, &from), 1000);
    assert_int_equal(from, 4000);
    assert_memory_equal(out, expect + 4000, 1000);
    sb_ring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_copy),
        cmocka_unit_test(test_wrap_drops_oldest),
        cmocka_unit_test(test_append_larger_than_cap),
        cmocka_unit_test(test_room_follows_reader),
        cmocka_unit_test(test_many_small_appends_match_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
