/*
 * test_webhook_sign.c - the webhook signatures (runtime/webhook_sign.c)
 * against independent vectors: RFC 4231 test case 2 for HMAC-SHA256 with a
 * key that is not 32 bytes, and E2B's scheme (standard base64 of
 * SHA-256(secret || body), padding removed) computed with Python's hashlib,
 * chosen so the digest has '+' and '/' (base64url would differ); secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "runtime/webhook_sign.h"

static void test_hmac_hex_rfc4231(void **state)
{
    char out[WEBHOOK_SIGNATURE_HEX_LEN];
    const char *data = "what do ya want for nothing?";
    webhook_signature_hex("Jefe", data, strlen(data), out);
    assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_hmac_hex_payload(void **state)
{
    char out[WEBHOOK_SIGNATURE_HEX_LEN], other[WEBHOOK_SIGNATURE_HEX_LEN];
    const char *body = "{\"id\":\"evt_1\"}";
    webhook_signature_hex("whsec_test", body, strlen(body), out);
    assert_string_equal(out, "030fa3b2413d1993c551364bd53bb9b3edb5c0c34d55dba6ada6041245632811");
    webhook_signature_hex("whsec_tesT", body, strlen(body), other);     /* another key */
    assert_string_not_equal(out, other);
    webhook_signature_hex("whsec_test", body, strlen(body) - 1, other); /* another body */
    assert_string_not_equal(out, other);
}

static void test_e2b_signature(void **state)
{
    char out[WEBHOOK_SIGNATURE_E2B_LEN];
    const char *body = "{\"id\":\"evt_1\"}";
    webhook_signature_e2b("whsec_test", body, strlen(body), out);
    assert_string_equal(out, "tJFQdfg5psGiJ/y77DcZUPOlz8q/8ijOnqGZQ+cHZzs");
    assert_int_equal(strlen(out), 43);
}

static void test_secret_new(void **state)
{
    char a[WEBHOOK_SECRET_LEN], b[WEBHOOK_SECRET_LEN];
    webhook_secret_new(a);
    webhook_secret_new(b);
    assert_int_equal(strncmp(a, "whsec_", 6), 0);
    assert_int_equal(strlen(a), WEBHOOK_SECRET_LEN - 1);
    assert_string_not_equal(a, b);
    for (const char *p = a + 6; *p; p++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_hex_rfc4231),
        cmocka_unit_test(test_hmac_hex_payload),
        cmocka_unit_test(test_e2b_signature),
        cmocka_unit_test(test_secret_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
