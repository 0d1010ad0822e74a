/*
 * test_utf8.c - the one UTF-8 validator (core/utf8.c): what it accepts and
 * rejects (RFC 3629), the edges of every range, and that the lossy copy
 * agrees with it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/utf8.h"

#define VALID(s) sb_utf8_valid(s, sizeof(s) - 1)

static void test_accepts_what_rfc3629_allows(void **state)
{
    (void)state;
    assert_true(VALID(""));
    assert_true(VALID("plain ascii /health?x=1"));
    assert_true(VALID("a\0b"));                         /* NUL is a character */
    assert_true(VALID("\xc2\x80"));                     /* U+0080, first 2-byte */
    assert_true(VALID("\xdf\xbf"));                     /* U+07FF */
    assert_true(VALID("\xe0\xa0\x80"));                 /* U+0800, first 3-byte */
    assert_true(VALID("\xed\x9f\xbf"));                 /* U+D7FF, before the surrogates */
    assert_true(VALID("\xee\x80\x80"));                 /* U+E000, after them */
    assert_true(VALID("\xef\xbf\xbd"));                 /* U+FFFD */
    assert_true(VALID("\xf0\x90\x80\x80"));             /* U+10000 */
    assert_true(VALID("\xf4\x8f\xbf\xbf"));             /* U+10FFFF, the last */
    assert_true(VALID("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
}

static void test_rejects_overlongs_surrogates_and_beyond(void **state)
{
    (void)state;
    assert_false(VALID("\xc0\xae"));                    /* overlong '.' */
    assert_false(VALID("\xc0\x80"));                    /* overlong NUL */
    assert_false(VALID("\xc1\xbf"));
    assert_false(VALID("\xe0\x80\xaf"));                /* overlong '/' */
    assert_false(VALID("\xe0\x9f\xbf"));
    assert_false(VALID("\xf0\x8f\xbf\xbf"));            /* overlong U+FFFF */
    assert_false(VALID("\xed\xa0\x80"));                /* U+D800 */
    assert_false(VALID("\xed\xbf\xbf"));                /* U+DFFF */
    assert_false(VALID("\xf4\x90\x80\x80"));            /* U+110000 */
    assert_false(VALID("\xf5\x80\x80\x80"));
    assert_false(VALID("\xff"));
    assert_false(VALID("\xfe"));
    assert_false(VALID("\x80"));                        /* lone continuation */
    assert_false(VALID("\xc3"));                        /* truncated */
    assert_false(VALID("\xe2\x82"));
    assert_false(VALID("\xc3\x28"));                    /* bad continuation */
    assert_false(VALID("ok\xc3"));
}

static void test_sequence_lengths(void **state)
{
    (void)state;
    assert_int_equal(sb_utf8_sequence("a", 1), 1);
    assert_int_equal(sb_utf8_sequence("\xc3\xa9", 2), 2);
    assert_int_equal(sb_utf8_sequence("\xe2\x82\xac", 3), 3);
    assert_int_equal(sb_utf8_sequence("\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(sb_utf8_sequence("\xf0\x9f\x98\x80", 3), 0);   /* cut by left */
    assert_int_equal(sb_utf8_sequence("\xc0\xae", 2), 0);
}

static void test_lossy_copy_agrees(void **state)
{
    (void)state;
    const char *cases[] = {"\xc0\xae", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = sb_json_string_lossy(cases[i], strlen(cases[i]));
        assert_non_null(j);
        int valid = sb_utf8_valid(cases[i], strlen(cases[i]));
        assert_int_equal(strcmp(json_string_value(j), cases[i]) == 0, valid);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_what_rfc3629_allows),
        cmocka_unit_test(test_rejects_overlongs_surrogates_and_beyond),
        cmocka_unit_test(test_sequence_lengths),
        cmocka_unit_test(test_lossy_copy_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
