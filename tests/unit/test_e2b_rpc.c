/*
 * test_e2b_rpc.c - envd's Connect pieces that need no server: the
 * Connect-Timeout-Ms rule (1 to 10 ASCII digits), the user a Basic
 * Authorization header names, the dialect a request's API key selects, and
 * the signature of /files URLs (vectors from Python's hashlib, the SDK's
 * formula: "v1_" + unpadded base64 of SHA-256("path:op:user:token[:exp]")).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

static void test_basic_user(void **state)
{
    struct sb_err err = {0};
    const char *user = NULL;
    assert_int_equal(e2b_basic_user(NULL, &user, &err), 0);
    assert_string_equal(user, "user");
    assert_int_equal(e2b_basic_user("Basic cm9vdDo=", &user, &err), 0);     /* root: */
    assert_string_equal(user, "root");
    assert_int_equal(e2b_basic_user("basic dXNlcjo=", &user, &err), 0);     /* user: */
    assert_string_equal(user, "user");
    static const char *const bad[] = {
        "Bearer cm9vdDo=",      /* not Basic */
        "Basic cm9vdA==",       /* root (no colon) */
        "Basic cm9vdDpwdw==",   /* root:pw (a password) */
        "Basic YWxpY2U6",       /* alice: (no such user) */
        "Basic Og==",           /* : (empty user) */
        "Basic !!!!",           /* not base64 */
        "Basic ",               /* nothing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (struct sb_err){0};
        assert_int_equal(e2b_basic_user(bad[i], &user, &err), -1);
        assert_int_equal(err.status, 401);
    }
    char longer[512] = "Basic ";
    memset(longer + 6, 'A', 400);
    assert_int_equal(e2b_basic_user(longer, &user, &err), -1);
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

static void test_files_signature(void **state)
{
    char sig[128];
    assert_int_equal(e2b_files_signature("/tmp/a b.txt", "read", "user", "tok123", NULL, sig, sizeof sig), 0);
    assert_string_equal(sig, "v1_ZPvwQzvcqp0e3orprJZrPbQTg3KEVCqCJSJRTGylN1A");
    assert_int_equal(e2b_files_signature("/tmp/a b.txt", "write", "", "tok123", "2000000000", sig, sizeof sig), 0);
    assert_string_equal(sig, "v1_fvHaHFW8ufB1nkqO6c0f+yDuadu+0+C2ilIQhMrhycA");
    assert_int_equal(e2b_files_signature("/x", "read", "", "t", NULL, sig, 10), -1);

    struct sb_err err = {0};
    const char *good = "v1_fvHaHFW8ufB1nkqO6c0f+yDuadu+0+C2ilIQhMrhycA";
    assert_int_equal(e2b_files_check_signature("/tmp/a b.txt", "write", "", "tok123", good, "2000000000",
                                               1999999999, &err), 0);
    /* the expiration is signed as a number, as envd parses it */
    assert_int_equal(e2b_files_check_signature("/tmp/a b.txt", "write", "", "tok123", good, "02000000000",
                                               1999999999, &err), 0);
    /* expired, tampered, for another op, user or path, missing, malformed expiration */
    struct { const char *path, *op, *user, *sig, *exp; int64_t now; const char *msg; } bad[] = {
        {"/tmp/a b.txt", "write", "", good, "2000000000", 2000000001, "expired"},
        {"/tmp/a b.txt", "write", "", good, "2000000001", 1, "invalid signature"},
        {"/tmp/a b.txt", "read", "", good, "2000000000", 1, "invalid signature"},
        {"/tmp/a b.txt", "write", "root", good, "2000000000", 1, "invalid signature"},
        {"/tmp/a b.tx", "write", "", good, "2000000000", 1, "invalid signature"},
        {"/tmp/a b.txt", "write", "", "v1_fvHaHFW8ufB1nkqO6c0f+yDuadu+0+C2ilIQhMrhycA=", "2000000000", 1,
         "invalid signature"},
        {"/tmp/a b.txt", "write", "", NULL, "2000000000", 1, "secured"},
        {"/tmp/a b.txt", "write", "", "", "2000000000", 1, "secured"},
        {"/tmp/a b.txt", "write", "", good, "2e9", 1, "signature_expiration"},
        {"/tmp/a b.txt", "write", "", good, "", 1, "signature_expiration"},
        {"/tmp/a b.txt", "write", "", good, "-5", 1, "signature_expiration"},
        {"/tmp/a b.txt", "write", "", good, NULL, 1, "invalid signature"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (struct sb_err){0};
        assert_int_equal(e2b_files_check_signature(bad[i].path, bad[i].op, bad[i].user, "tok123", bad[i].sig,
                                                   bad[i].exp, bad[i].now, &err), -1);
        assert_int_equal(err.status, 401);
        assert_non_null(strstr(err.msg, bad[i].msg));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_header),
        cmocka_unit_test(test_basic_user),
        cmocka_unit_test(test_key_spelling),
        cmocka_unit_test(test_files_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
