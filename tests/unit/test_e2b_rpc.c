/*
 * test_e2b_rpc.c - envd's Connect pieces that need no server: the
 * Connect-Timeout-Ms rule (1 to 10 ASCII digits) and the dialect a
 * request's API key selects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/apikey.h"
#include "e2b/envd.h"

static void test_timeout_header(void **state)
{
    struct sb_err err = {0};
    uint64_t ms = 7;
    assert_int_equal(e2b_rpc_timeout_ms(NULL, &ms, &err), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(e2b_rpc_timeout_ms("60000", &ms, &err), 0);
    assert_int_equal(ms, 60000);
    assert_int_equal(e2b_rpc_timeout_ms("9999999999", &ms, &err), 0);
    assert_int_equal(ms, 9999999999ull);
    assert_int_equal(e2b_rpc_timeout_ms("0", &ms, &err), 0);
    assert_int_equal(ms, 0);
    static const char *const bad[] = {"", "12345678901", "-1", "1e3", " 5", "5 ", "0x10", "١"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (struct sb_err){0};
        assert_int_equal(e2b_rpc_timeout_ms(bad[i], &ms, &err), -1);
        assert_int_equal(err.status, 400);
    }
}

static void test_key_spelling(void **state)
{
    assert_true(apikey_spelled_e2b("e2b_0123"));
    assert_true(apikey_spelled_e2b("e2b_"));
    assert_false(apikey_spelled_e2b("sk-sb-0123"));
    assert_false(apikey_spelled_e2b("E2B_0123"));
    assert_false(apikey_spelled_e2b("e2b"));
    assert_false(apikey_spelled_e2b(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_header),
        cmocka_unit_test(test_key_spelling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
