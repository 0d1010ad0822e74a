/*
 * test_apikey.c - the API key format (core/apikey.c): generation, both
 * accepted spellings, rejection of everything else, and the hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/apikey.h"

#define SECRET "0123456789abcdef0123456789abcdef01234567"
/* SHA-256 of the 40-char SECRET text (python3 hashlib). */
static const char secret_sha256_hex[] = "deb87fabd17715bb31ad4cf4ffb9494eeb15f8d33d85b031a301c64ab3417eaa";

static void hex(const unsigned char *bin, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        sprintf(out + 2 * i, "%02x", bin[i]);
}

static void test_generate_format(void **state)
{
    (void)state;
    char key[SB_APIKEY_MAX], prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    assert_int_equal(apikey_generate(key, prefix, hash), 0);

    assert_int_equal(strlen(key), 6 + 40);
    assert_memory_equal(key, "sk-sb-", 6);
    for (const char *p = key + 6; *p; p++)
        assert_true(isdigit((unsigned char)*p) || (*p >= 'a' && *p <= 'f'));
    assert_int_equal(strlen(prefix), 6 + 8);
    assert_memory_equal(prefix, key, 14);

    /* What generate returns is what parsing the key yields. */
    char parsed_prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char parsed_hash[SB_APIKEY_HASH_LEN];
    struct sb_err err = {0};
    assert_int_equal(apikey_parse(key, parsed_prefix, parsed_hash, &err), 0);
    assert_string_equal(parsed_prefix, prefix);
    assert_memory_equal(parsed_hash, hash, sizeof hash);
}

static void test_generate_unique(void **state)
{
    (void)state;
    char a[SB_APIKEY_MAX], b[SB_APIKEY_MAX], pa[SB_APIKEY_PREFIX_MAX], pb[SB_APIKEY_PREFIX_MAX];
    unsigned char ha[SB_APIKEY_HASH_LEN], hb[SB_APIKEY_HASH_LEN];
    assert_int_equal(apikey_generate(a, pa, ha), 0);
    assert_int_equal(apikey_generate(b, pb, hb), 0);
    assert_string_not_equal(a, b);
    assert_memory_not_equal(ha, hb, sizeof ha);
}

static void test_both_forms_same_key(void **state)
{
    (void)state;
    char p1[SB_APIKEY_PREFIX_MAX], p2[SB_APIKEY_PREFIX_MAX];
    unsigned char h1[SB_APIKEY_HASH_LEN], h2[SB_APIKEY_HASH_LEN];
    struct sb_err err = {0};
    assert_int_equal(apikey_parse("sk-sb-" SECRET, p1, h1, &err), 0);
    assert_int_equal(apikey_parse("e2b_" SECRET, p2, h2, &err), 0);
    assert_string_equal(p1, "sk-sb-01234567");
    assert_string_equal(p2, "sk-sb-01234567");
    assert_memory_equal(h1, h2, sizeof h1);
}

static void test_hash_is_sha256_of_secret(void **state)
{
    (void)state;
    char prefix[SB_APIKEY_PREFIX_MAX], text[2 * SB_APIKEY_HASH_LEN + 1];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    struct sb_err err = {0};
    assert_int_equal(apikey_parse("sk-sb-" SECRET, prefix, hash, &err), 0);
    hex(hash, sizeof hash, text);
    assert_string_equal(text, secret_sha256_hex);
}

static void test_different_keys_different_hashes(void **state)
{
    (void)state;
    char p1[SB_APIKEY_PREFIX_MAX], p2[SB_APIKEY_PREFIX_MAX];
    unsigned char h1[SB_APIKEY_HASH_LEN], h2[SB_APIKEY_HASH_LEN];
    struct sb_err err = {0};
    /* Same first 8 chars (so same prefix), last char differs. */
    assert_int_equal(apikey_parse("sk-sb-0123456789abcdef0123456789abcdef01234567", p1, h1, &err), 0);
    assert_int_equal(apikey_parse("sk-sb-0123456789abcdef0123456789abcdef01234568", p2, h2, &err), 0);
    assert_string_equal(p1, p2);
    assert_memory_not_equal(h1, h2, sizeof h1);
}

static void test_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        SECRET,                                                     /* no marker */
        "sk-sb-",                                                   /* no secret */
        "sk-sb-0123456789abcdef0123456789abcdef0123456",            /* 39 hex */
        "sk-sb-0123456789abcdef0123456789abcdef012345678",          /* 41 hex */
        "sk-sb-0123456789ABCDEF0123456789abcdef01234567",           /* uppercase */
        "sk-sb-0123456789abcdeg0123456789abcdef01234567",           /* non-hex */
        "SK-SB-" SECRET,                                            /* marker case */
        "sk_sb_" SECRET,
        "e2b-" SECRET,
        "E2B_" SECRET,
        "sk-sb-" SECRET " ",                                        /* trailing space */
        " sk-sb-" SECRET,
        "sk-sb-e2b_" SECRET,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char prefix[SB_APIKEY_PREFIX_MAX];
        unsigned char hash[SB_APIKEY_HASH_LEN];
        struct sb_err err = {0};
        if (apikey_parse(bad[i], prefix, hash, &err) != -1)
            fail_msg("accepted a malformed key: '%s'", bad[i]);
        assert_int_equal(err.status, 401);
        assert_string_equal(err.msg, "invalid API key");
    }
    struct sb_err err = {0};
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    assert_int_equal(apikey_parse(NULL, prefix, hash, &err), -1);
    assert_int_equal(err.status, 401);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_format),
        cmocka_unit_test(test_generate_unique),
        cmocka_unit_test(test_both_forms_same_key),
        cmocka_unit_test(test_hash_is_sha256_of_secret),
        cmocka_unit_test(test_different_keys_different_hashes),
        cmocka_unit_test(test_rejects_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
