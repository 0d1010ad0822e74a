/* test_base64.c - the base64 codec: RFC 4648's vectors, round trips of
 * every byte value and length, and refusal of malformed text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/base64.h"

static void test_rfc_vectors(void **state)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        assert_int_equal(sb_base64_encode(plain[i], strlen(plain[i]), out), strlen(coded[i]));
        assert_string_equal(out, coded[i]);
        uint8_t back[16];
        assert_int_equal(sb_base64_decode(coded[i], strlen(coded[i]), back), (long)strlen(plain[i]));
        assert_memory_equal(back, plain[i], strlen(plain[i]));
    }
}

static void test_round_trip_all_bytes(void **state)
{
    uint8_t data[256];
    for (int i = 0; i < 256; i++)
        data[i] = (uint8_t)(255 - i);
    for (size_t len = 0; len <= sizeof data; len++) {
        char text[400];
        uint8_t back[300];
        size_t n = sb_base64_encode(data, len, text);
        assert_true(n + 1 <= sb_base64_encoded_size(len));
        assert_int_equal(sb_base64_decode(text, n, back), (long)len);
        assert_memory_equal(back, data, len);
    }
}

static void test_refuses_malformed(void **state)
{
    static const char *const bad[] = {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zm 9", "Zm9v\n", "=Zm9", "Zg==Zg==", "Zm-v"};
    uint8_t out[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sb_base64_decode(bad[i], strlen(bad[i]), out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_vectors),
        cmocka_unit_test(test_round_trip_all_bytes),
        cmocka_unit_test(test_refuses_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
