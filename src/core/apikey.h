/*
 * apikey.h - the API key format: generation, parsing and hashing.
 *
 * A secret is 40 lowercase hex characters (20 random bytes). The key shown to
 * a user is "sk-sb-" + secret; E2B clients may send the same secret as
 * "e2b_" + secret and it is the same key. The store keeps only the prefix
 * ("sk-sb-" + first 8 hex chars, the same for both forms) and the SHA-256 of
 * the 40-char secret text. Nothing here allocates or prints.
 */
#ifndef SB_CORE_APIKEY_H
#define SB_CORE_APIKEY_H

#include "core/err.h"

#define SB_APIKEY_MAX 64        /* buffer for the key text, NUL included */
#define SB_APIKEY_PREFIX_MAX 24 /* buffer for the prefix, NUL included */
#define SB_APIKEY_HASH_LEN 32

/* Makes a fresh key. Returns 0, or -1 if libsodium cannot be initialised
 * (outputs are then zeroed). The caller owns the buffers. */
int apikey_generate(char key_out[SB_APIKEY_MAX], char prefix_out[SB_APIKEY_PREFIX_MAX],
                    unsigned char hash_out[SB_APIKEY_HASH_LEN]);

/* Accepts "sk-sb-<40 hex>" or "e2b_<40 hex>" (lowercase) and yields the
 * prefix and hash to look up. Anything else: 401 "invalid API key". */
int apikey_parse(const char *key, char prefix_out[SB_APIKEY_PREFIX_MAX],
                 unsigned char hash_out[SB_APIKEY_HASH_LEN], struct sb_err *err);

/* True when key is written in E2B's spelling ("e2b_..."), whether or not
 * it is a valid key: E2B's clients get E2B's shapes (src/e2b/). */
int apikey_spelled_e2b(const char *key);

#endif
