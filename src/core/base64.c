/*
 * base64.c - see base64.h. libsodium does the work; this file only sizes
 * buffers and turns its failures into errors a client can act on.
 */
#include <sodium.h>
#include <stdlib.h>

#include "core/base64.h"

char *sb_base64_encode(const void *data, size_t len)
{
    size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(n);
    if (!out)
        return NULL;
    sodium_bin2base64(out, n, data, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

int sb_base64_decode(const char *text, size_t text_len, unsigned char **out, size_t *out_len,
                     struct sb_err *err)
{
    size_t cap = text_len / 4 * 3 + 3;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf)
        return sb_err_set(err, 500, "out of memory");
    const char *end = NULL;
    size_t n = 0;
    if (sodium_base642bin(buf, cap, text, text_len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text + text_len) {
        size_t at = end ? (size_t)(end - text) : 0;
        free(buf);
        return sb_err_set(err, 400, "invalid base64 in content (at character %zu): send standard "
                          "base64 with padding, or the text field for plain text", at);
    }
    *out = buf;
    *out_len = n;
    return 0;
}
