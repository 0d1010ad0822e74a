/*
 * base64.h - standard base64 (RFC 4648 with padding), as JSON file contents
 * carry it. A thin wrapper over libsodium's codec that owns nothing.
 */
#ifndef SB_CORE_BASE64_H
#define SB_CORE_BASE64_H

#include <stddef.h>

#include "core/err.h"

/* Encodes len bytes as a NUL-terminated string; caller frees. NULL when out
 * of memory. */
char *sb_base64_encode(const void *data, size_t len);

/* Decodes text (text_len bytes) strictly: the whole of it must be base64
 * with correct padding, no whitespace. *out (caller frees) gets the bytes
 * and *out_len their count. 400 "invalid base64 ..." naming the offset. */
int sb_base64_decode(const char *text, size_t text_len, unsigned char **out, size_t *out_len,
                     struct sb_err *err);

#endif
