/*
 * webhook_sign.c - the two webhook signatures and secret generation
 * (webhook_sign.h), on libsodium. The secret is used as given, bytes of its
 * text, in both schemes.
 */
#include "runtime/webhook_sign.h"

#include <sodium.h>
#include <string.h>

void webhook_signature_hex(const char *secret, const void *body, size_t len,
                           char out[WEBHOOK_SIGNATURE_HEX_LEN])
{
    crypto_auth_hmacsha256_state state;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&state, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&state, body, len);
    crypto_auth_hmacsha256_final(&state, mac);
    sodium_bin2hex(out, WEBHOOK_SIGNATURE_HEX_LEN, mac, sizeof mac);
    sodium_memzero(&state, sizeof state);
}

void webhook_signature_e2b(const char *secret, const void *body, size_t len,
                           char out[WEBHOOK_SIGNATURE_E2B_LEN])
{
    crypto_hash_sha256_state state;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&state);
    crypto_hash_sha256_update(&state, (const unsigned char *)secret, strlen(secret));
    crypto_hash_sha256_update(&state, body, len);
    crypto_hash_sha256_final(&state, digest);
    sodium_bin2base64(out, WEBHOOK_SIGNATURE_E2B_LEN, digest, sizeof digest,
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    sodium_memzero(&state, sizeof state);
}

void webhook_secret_new(char out[WEBHOOK_SECRET_LEN])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    size_t prefix = strlen(WEBHOOK_SECRET_PREFIX);
    memcpy(out, WEBHOOK_SECRET_PREFIX, prefix);
    sodium_bin2base64(out + prefix, WEBHOOK_SECRET_LEN - prefix, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}
