/*
 * test_id.c - core/id.c: random ids and their check, and sb_name_valid, the
 * one rule for user-chosen names (templates and orgs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/id.h"

static void test_id_new_and_valid(void **state)
{
    (void)state;
    char a[32], b[32];
    sb_id_new("sbx_", a, sizeof a);
    sb_id_new("sbx_", b, sizeof b);
    assert_int_equal(strlen(a), 4 + SB_ID_RANDOM_CHARS);
    assert_true(sb_id_valid("sbx_", a));
    assert_false(sb_id_valid("org_", a));
    assert_string_not_equal(a, b);
    char tiny[8] = "x";
    sb_id_new("sbx_", tiny, sizeof tiny);     /* too small: empty, not truncated */
    assert_string_equal(tiny, "");
}

static void test_name_valid(void **state)
{
    (void)state;
    char longest[SB_NAME_MAX + 1], too_long[SB_NAME_MAX + 2];
    memset(longest, 'a', SB_NAME_MAX);
    longest[SB_NAME_MAX] = '\0';
    memset(too_long, 'a', SB_NAME_MAX + 1);
    too_long[SB_NAME_MAX + 1] = '\0';
    assert_true(sb_name_valid("base"));
    assert_true(sb_name_valid("code_interpreter"));
    assert_true(sb_name_valid("org-a"));
    assert_true(sb_name_valid("0-x"));
    assert_true(sb_name_valid("a"));
    assert_true(sb_name_valid(longest));
    assert_false(sb_name_valid(too_long));
    assert_false(sb_name_valid(""));
    assert_false(sb_name_valid(NULL));
    assert_false(sb_name_valid("A"));
    assert_false(sb_name_valid("aB"));
    assert_false(sb_name_valid("Acme Corp"));
    assert_false(sb_name_valid("../x"));
    assert_false(sb_name_valid("a/b"));
    assert_false(sb_name_valid("-a"));
    assert_false(sb_name_valid("_a"));
    assert_false(sb_name_valid(".build-x"));
    assert_false(sb_name_valid("a.b"));
    assert_false(sb_name_valid("a b"));
    assert_false(sb_name_valid("caf\xc3\xa9"));
}

static void test_time_parse_rfc3339(void **state)
{
    int64_t ms;
    char text[32];
    assert_int_equal(sb_time_parse_rfc3339("2026-05-24T10:00:00Z", &ms), 0);
    assert_true(ms == 1779616800000LL);
    sb_time_rfc3339(ms, text, sizeof text);
    assert_string_equal(text, "2026-05-24T10:00:00Z");
    assert_int_equal(sb_time_parse_rfc3339("2026-05-24T12:00:00.25+02:00", &ms), 0);
    assert_true(ms == 1779616800250LL);
    assert_int_equal(sb_time_parse_rfc3339("2026-05-24t09:30:00-00:30", &ms), 0);
    assert_true(ms == 1779616800000LL);
    assert_int_equal(sb_time_parse_rfc3339("2024-02-29 00:00:00z", &ms), 0);
    static const char *const bad[] = {
        "", "2026-05-24", "2026-05-24T10:00:00", "2026-05-24T10:00Z", "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-05-24T24:00:00Z", "2026-05-24T10:00:00.Z",
        "2026-05-24T10:00:00+2:00", "2026-05-24T10:00:00Zjunk", "yesterday", "20260524T100000Z", NULL,
    };
    for (size_t i = 0; bad[i]; i++)
        if (sb_time_parse_rfc3339(bad[i], &ms) != -1)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(sb_time_parse_rfc3339(NULL, &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_new_and_valid),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_time_parse_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
