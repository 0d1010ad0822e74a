/*
 * base64.h - standard base64 (RFC 4648, with padding), the one codec for
 * bytes that cannot travel as JSON text: process output that is not UTF-8,
 * stdin given as dataB64, and later file contents.
 */
#ifndef SB_CORE_BASE64_H
#define SB_CORE_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode len bytes, with the NUL. */
size_t sb_base64_encoded_size(size_t len);
/* Encodes len bytes into out (sb_base64_encoded_size(len) bytes), NUL-terminated;
 * returns the text's length. */
size_t sb_base64_encode(const void *data, size_t len, char *out);
/* Decodes text (len chars; padding required, no whitespace) into out, which
 * must hold len / 4 * 3 bytes. Returns the decoded length, or -1 when the
 * text is not valid base64. */
long sb_base64_decode(const char *text, size_t len, uint8_t *out);

#endif
