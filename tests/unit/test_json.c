/*
 * test_json.c - the JSON helpers the handlers share: typed body fields
 * (api/validate.c), sandbox id checks, and lossy UTF-8 for process output
 * (core/utf8.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "core/utf8.h"

static json_t *parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_int_field(void **state)
{
    (void)state;
    json_t *b = parse("{\"t\": 30, \"s\": \"30\", \"big\": 99999, \"neg\": -1, \"n\": null}");
    struct sb_err err = {0};
    long long v = 0;
    assert_int_equal(api_field_int(b, "t", 5, 1, 100, &v, &err), 0);
    assert_int_equal(v, 30);
    assert_int_equal(api_field_int(b, "absent", 5, 1, 100, &v, &err), 0);
    assert_int_equal(v, 5);
    assert_int_equal(api_field_int(b, "n", 7, 1, 100, &v, &err), 0);
    assert_int_equal(v, 7);
    assert_int_equal(api_field_int(b, "s", 5, 1, 100, &v, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.msg, "s must be an integer between 1 and 100");
    assert_int_equal(api_field_int(b, "big", 5, 1, 100, &v, &err), -1);
    assert_int_equal(api_field_int(b, "neg", 5, 0, 100, &v, &err), -1);
    json_decref(b);
}

static void test_string_field(void **state)
{
    (void)state;
    json_t *b = parse("{\"cmd\": \"ls\", \"num\": 1}");
    struct sb_err err = {0};
    const char *v = NULL;
    assert_int_equal(api_field_string(b, "cmd", 1, NULL, &v, &err), 0);
    assert_string_equal(v, "ls");
    assert_int_equal(api_field_string(b, "cwd", 0, "/workspace", &v, &err), 0);
    assert_string_equal(v, "/workspace");
    assert_int_equal(api_field_string(b, "missing", 1, NULL, &v, &err), -1);
    assert_string_equal(err.msg, "missing field: missing");
    assert_int_equal(api_field_string(b, "num", 0, NULL, &v, &err), -1);
    assert_string_equal(err.msg, "num must be a string");
    json_decref(b);
    /* An embedded NUL would silently cut an argument short: refused. */
    b = json_loads("{\"nul\": \"a\\u0000b\"}", JSON_ALLOW_NUL, NULL);
    assert_non_null(b);
    assert_int_equal(api_field_string(b, "nul", 0, NULL, &v, &err), -1);
    assert_int_equal(err.status, 400);
    json_decref(b);
}

static void test_string_map(void **state)
{
    (void)state;
    json_t *b = parse("{\"env\": {\"A\": \"1\", \"B_2\": \"x y\"}, \"num\": {\"A\": 1},"
                      " \"eq\": {\"A=B\": \"1\"}, \"empty\": {\"\": \"1\"}, \"arr\": [\"A=1\"]}");
    struct sb_err err = {0};
    char *text = NULL;
    assert_int_equal(api_field_env(b, "env", SIZE_MAX, &text, NULL, &err), 0);
    json_t *round = parse(text);
    assert_string_equal(json_string_value(json_object_get(round, "B_2")), "x y");
    json_decref(round);
    free(text);
    assert_int_equal(api_field_env(b, "absent", SIZE_MAX, &text, NULL, &err), 0);
    assert_string_equal(text, "{}");
    free(text);
    assert_int_equal(api_field_string_map(b, "num", &text, &err), -1);
    assert_string_equal(err.msg, "num.A must be a string");
    assert_int_equal(api_field_env(b, "eq", SIZE_MAX, &text, NULL, &err), -1);
    assert_string_equal(err.msg, "eq: invalid variable name 'A=B' (names are letters, digits and _, "
                                 "not starting with a digit, at most 256 bytes)");
    /* metadata may use any key. */
    assert_int_equal(api_field_string_map(b, "eq", &text, &err), 0);
    free(text);
    assert_int_equal(api_field_env(b, "empty", SIZE_MAX, &text, NULL, &err), -1);
    assert_int_equal(api_field_string_map(b, "arr", &text, &err), -1);
    assert_string_equal(err.msg, "arr must be an object of strings");
    json_decref(b);
}

static void test_sandbox_id(void **state)
{
    (void)state;
    struct sb_err err = {0};
    assert_int_equal(api_check_sandbox_id("sbx_abcdefghijklmnopqrst", &err), 0);
    assert_int_equal(api_check_sandbox_id("sbx_abcdefghijklmnopqrs", &err), -1);
    assert_int_equal(api_check_sandbox_id("sbx_abcdefghijklmnopqrstu", &err), -1);
    assert_int_equal(api_check_sandbox_id("sbx_ABCDEFGHIJKLMNOPQRST", &err), -1);
    assert_int_equal(api_check_sandbox_id("sbx_abcdefghijklmnopqr01", &err), -1);  /* 0 and 1 are not base32 */
    assert_int_equal(api_check_sandbox_id("../../etc/passwd", &err), -1);
    assert_int_equal(api_check_sandbox_id(NULL, &err), -1);
    assert_string_equal(err.msg, "invalid sandbox id");
    assert_int_equal(err.status, 400);
}

static void test_env_map(void **state)
{
    (void)state;
    struct sb_err err = {0};
    char *text = NULL;
    size_t bytes = 0;
    json_t *b = parse("{\"e\": {\"A\": \"1\", \"_b9\": \"xy\"}}");
    assert_int_equal(api_field_env(b, "e", 100, &text, &bytes, &err), 0);
    assert_int_equal(bytes, strlen("A=1") + 1 + strlen("_b9=xy") + 1);
    free(text);
    assert_int_equal(api_field_env(b, "e", 11, &text, &bytes, &err), 0);    /* 11 bytes */
    free(text);
    assert_int_equal(api_field_env(b, "e", 10, &text, &bytes, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.msg, "e take 11 bytes; the limit is 10 (each variable counts as "
                                 "NAME=value plus one byte)");
    json_decref(b);
    const char *bad[] = {"{\"e\": {\"A B\": \"1\"}}", "{\"e\": {\"A\\nB\": \"1\"}}",
                         "{\"e\": {\"9A\": \"1\"}}", "{\"e\": {\"A-B\": \"1\"}}",
                         "{\"e\": {\"\u00e9\": \"1\"}}", "{\"e\": {\"\": \"1\"}}",
                         "{\"e\": {\"A=B\": \"1\"}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        b = parse(bad[i]);
        assert_int_equal(api_field_env(b, "e", 100, &text, NULL, &err), -1);
        assert_non_null(strstr(err.msg, "invalid variable name"));
        json_decref(b);
    }
    char name[API_ENV_NAME_MAX + 2];
    memset(name, 'N', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    b = json_pack("{s:{s:s}}", "e", name, "v");
    assert_int_equal(api_field_env(b, "e", SIZE_MAX, &text, NULL, &err), -1);   /* 257 bytes */
    json_decref(b);
    name[API_ENV_NAME_MAX] = '\0';
    b = json_pack("{s:{s:s}}", "e", name, "v");
    assert_int_equal(api_field_env(b, "e", SIZE_MAX, &text, NULL, &err), 0);    /* 256 bytes */
    free(text);
    json_decref(b);
}

/* want is a string literal: its length is sizeof - 1, NULs included. */
#define assert_lossy(in, len, want) check_lossy(in, len, want, sizeof(want) - 1)

static void check_lossy(const char *in, size_t len, const char *want, size_t want_len)
{
    json_t *s = sb_json_string_lossy(in, len);
    assert_non_null(s);
    assert_int_equal(json_string_length(s), want_len);
    assert_memory_equal(json_string_value(s), want, want_len);
    json_decref(s);
}

static void test_utf8_lossy(void **state)
{
    (void)state;
    assert_lossy("plain", 5, "plain");
    assert_lossy("", 0, "");
    assert_lossy("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_lossy("a\xff" "b", 3, "a\xef\xbf\xbd" "b");
    assert_lossy("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong '/' */
    assert_lossy("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    assert_lossy("\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* > U+10FFFF */
    assert_lossy("ab\xe2\x82", 4, "ab\xef\xbf\xbd\xef\xbf\xbd");             /* cut short */
    assert_lossy("a\0b", 3, "a\0b");                                           /* NUL is valid UTF-8 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_field),    cmocka_unit_test(test_string_field),
        cmocka_unit_test(test_string_map),   cmocka_unit_test(test_sandbox_id),
        cmocka_unit_test(test_utf8_lossy),   cmocka_unit_test(test_env_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
