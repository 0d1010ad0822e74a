/*
 * test_e2b_rpc.c - envd's Connect pieces that need no server: the
 * Connect-Timeout-Ms rule (1 to 10 ASCII digits), the user a Basic
 * Authorization header names, the dialect a request's API key selects, and
 * the process methods' message pieces: the ProcessSelector, protobuf bytes
 * and ProcessInput, the PTY size, envd's word for a gone process, and the
 * signature of /files URLs (vectors from Python's hashlib, the SDK's
 * formula: "v1_" + unpadded base64 of SHA-256("path:op:user:token[:exp]")).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
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

/* The selector text of msg (JSON), or NULL with err.status set. */
static const char *selector_of(const char *text, char sel[E2B_SELECTOR_MAX], struct sb_err *err)
{
    json_t *msg = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(msg);
    *err = (struct sb_err){0};
    int rc = e2b_process_selector(msg, sel, err);
    json_decref(msg);
    return rc == 0 ? sel : NULL;
}

static void test_process_selector(void **state)
{
    char sel[E2B_SELECTOR_MAX];
    struct sb_err err;
    assert_string_equal(selector_of("{\"process\": {\"pid\": 42}}", sel, &err), "42");
    assert_string_equal(selector_of("{\"process\": {\"pid\": \"4294967295\"}}", sel, &err), "4294967295");
    assert_string_equal(selector_of("{\"process\": {\"tag\": \"web-1\", \"pid\": null}}", sel, &err), "web-1");
    static const char *const bad[] = {
        "{}", "{\"process\": 1}", "{\"process\": {}}", "{\"process\": {\"pid\": 1, \"tag\": \"x\"}}",
        "{\"process\": {\"pid\": -1}}", "{\"process\": {\"pid\": 4294967296}}",
        "{\"process\": {\"pid\": \"4294967296\"}}", "{\"process\": {\"pid\": \"1x\"}}",
        "{\"process\": {\"pid\": \"\"}}", "{\"process\": {\"pid\": 1.5}}", "{\"process\": {\"tag\": 7}}",
        "{\"process\": {\"tag\": \"\"}}", "{\"process\": {\"tag\": \"123\"}}",
        "{\"process\": {\"tag\": \"a b\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(selector_of(bad[i], sel, &err));
        assert_int_equal(err.status, 400);
    }
}

static void test_proto_bytes_and_input(void **state)
{
    struct sb_err err = {0};
    uint8_t *out;
    size_t len;
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:i}", "std", "/+8=", "url", "_-8", "empty", "",
                            "bad", "a$==", "num", 5);
    assert_int_equal(e2b_proto_bytes(obj, "std", &out, &len, &err), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "\xff\xef", 2);
    free(out);
    assert_int_equal(e2b_proto_bytes(obj, "url", &out, &len, &err), 0);     /* URL-safe, unpadded */
    assert_int_equal(len, 2);
    assert_memory_equal(out, "\xff\xef", 2);
    free(out);
    assert_int_equal(e2b_proto_bytes(obj, "empty", &out, &len, &err), 0);
    assert_int_equal(len, 0);
    free(out);
    assert_int_equal(e2b_proto_bytes(obj, "absent", &out, &len, &err), 0);
    assert_null(out);
    assert_int_equal(e2b_proto_bytes(obj, "bad", &out, &len, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(e2b_proto_bytes(obj, "num", &out, &len, &err), -1);
    json_decref(obj);

    json_t *msg = json_pack("{s:{s:s}}", "input", "pty", "aGk=");
    assert_int_equal(e2b_process_input(msg, &out, &len, &err), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "hi", 2);
    free(out);
    json_decref(msg);
    static const char *const bad[] = {"{}", "{\"input\": {}}", "{\"input\": {\"stdin\": \"aGk=\", \"pty\": \"aGk=\"}}",
                                      "{\"input\": \"aGk=\"}", "{\"input\": {\"stdin\": null, \"pty\": null}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg = json_loads(bad[i], 0, NULL);
        err = (struct sb_err){0};
        assert_int_equal(e2b_process_input(msg, &out, &len, &err), -1);
        assert_int_equal(err.status, 400);
        json_decref(msg);
    }
}

static void test_pty_size(void **state)
{
    struct sb_err err = {0};
    uint16_t rows = 0, cols = 0;
    json_t *pty = json_pack("{s:{s:i, s:i}}", "size", "cols", 100, "rows", 30);
    assert_int_equal(e2b_pty_size(pty, &rows, &cols, &err), 0);
    assert_int_equal(rows, 30);
    assert_int_equal(cols, 100);
    json_decref(pty);
    static const char *const bad[] = {"{}", "{\"size\": {\"cols\": 5}}", "{\"size\": {\"cols\": 0, \"rows\": 5}}",
                                      "{\"size\": {\"cols\": 4097, \"rows\": 5}}", "{\"size\": {\"cols\": \"5\", \"rows\": 5}}", "7"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pty = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        err = (struct sb_err){0};
        assert_int_equal(e2b_pty_size(pty, &rows, &cols, &err), -1);
        assert_int_equal(err.status, 400);
        json_decref(pty);
    }
}

static void test_gone_process_is_not_found(void **state)
{
    struct sb_err in, out;
    sb_err_set(&in, 409, "process 3 has already exited");
    e2b_process_error("41", &in, &out);
    assert_int_equal(out.status, 404);
    assert_string_equal(out.msg, "process with pid 41 not found");
    sb_err_set(&in, 404, "no such process");
    e2b_process_error("web", &in, &out);
    assert_string_equal(out.msg, "process with tag web not found");
    sb_err_set(&in, 409, "stdin of process 3 is closed");     /* not a gone process: unchanged */
    e2b_process_error("41", &in, &out);
    assert_int_equal(out.status, 409);
    assert_string_equal(out.msg, in.msg);
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
        cmocka_unit_test(test_process_selector),
        cmocka_unit_test(test_proto_bytes_and_input),
        cmocka_unit_test(test_pty_size),
        cmocka_unit_test(test_gone_process_is_not_found),
        cmocka_unit_test(test_files_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
