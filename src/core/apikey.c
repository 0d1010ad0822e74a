/*
 * apikey.c - API key generation and parsing (format described in apikey.h).
 *
 * Owns no state beyond libsodium's one-time initialisation. Must never keep,
 * log or return the secret anywhere but the caller's buffers.
 */
#include "core/apikey.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SECRET_BYTES 20
#define SECRET_HEX (SECRET_BYTES * 2)
#define PREFIX_HEX 8

static const char key_marker[] = "sk-sb-";
static const char e2b_marker[] = "e2b_";

/* sodium_init() is idempotent and thread-safe; calling it here keeps every
 * entry point usable without a separate set-up step. */
static int crypto_ready(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

/* prefix = "sk-sb-" + first 8 chars of the secret; hash = SHA-256(secret). */
static void derive(const char *secret, char prefix_out[SB_APIKEY_PREFIX_MAX],
                   unsigned char hash_out[SB_APIKEY_HASH_LEN])
{
    snprintf(prefix_out, SB_APIKEY_PREFIX_MAX, "%s%.*s", key_marker, PREFIX_HEX, secret);
    crypto_hash_sha256(hash_out, (const unsigned char *)secret, SECRET_HEX);
}

int apikey_generate(char key_out[SB_APIKEY_MAX], char prefix_out[SB_APIKEY_PREFIX_MAX],
                    unsigned char hash_out[SB_APIKEY_HASH_LEN])
{
    if (crypto_ready() < 0) {
        memset(key_out, 0, SB_APIKEY_MAX);
        memset(prefix_out, 0, SB_APIKEY_PREFIX_MAX);
        memset(hash_out, 0, SB_APIKEY_HASH_LEN);
        return -1;
    }
    unsigned char raw[SECRET_BYTES];
    char secret[SECRET_HEX + 1];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(secret, sizeof secret, raw, sizeof raw);   /* lowercase */
    sodium_memzero(raw, sizeof raw);
    snprintf(key_out, SB_APIKEY_MAX, "%s%s", key_marker, secret);
    derive(secret, prefix_out, hash_out);
    sodium_memzero(secret, sizeof secret);
    return 0;
}

/* The secret part of a key in either form, or NULL if the form is wrong. */
static const char *secret_of(const char *key)
{
    const char *secret = NULL;
    if (strncmp(key, key_marker, sizeof key_marker - 1) == 0)
        secret = key + sizeof key_marker - 1;
    else if (strncmp(key, e2b_marker, sizeof e2b_marker - 1) == 0)
        secret = key + sizeof e2b_marker - 1;
    if (!secret || strlen(secret) != SECRET_HEX)
        return NULL;
    for (const char *p = secret; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return NULL;
    return secret;
}

int apikey_spelled_e2b(const char *key)
{
    return key && strncmp(key, e2b_marker, sizeof e2b_marker - 1) == 0;
}

int apikey_parse(const char *key, char prefix_out[SB_APIKEY_PREFIX_MAX],
                 unsigned char hash_out[SB_APIKEY_HASH_LEN], struct sb_err *err)
{
    const char *secret = key ? secret_of(key) : NULL;
    if (!secret)
        return sb_err_set(err, 401, "invalid API key");
    if (crypto_ready() < 0)
        return sb_err_set(err, 500, "libsodium failed to initialise");
    derive(secret, prefix_out, hash_out);
    return 0;
}
