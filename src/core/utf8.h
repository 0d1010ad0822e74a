/*
 * utf8.h - the one UTF-8 validator (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) and what is built on it: checking
 * client strings (paths, queries), making arbitrary bytes (process output)
 * safe for JSON strings. Every UTF-8 check in sandbase goes through
 * sb_utf8_sequence, so they all agree on what is valid.
 */
#ifndef SB_CORE_UTF8_H
#define SB_CORE_UTF8_H

#include <jansson.h>
#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at s, which has left > 0 bytes,
 * or 0 when the bytes there are not valid UTF-8. NUL is a valid 1-byte
 * sequence. */
size_t sb_utf8_sequence(const char *s, size_t left);

/* 1 when all len bytes of s are valid UTF-8, 0 otherwise. */
int sb_utf8_valid(const char *s, size_t len);

/* A JSON string of the bytes, each invalid UTF-8 sequence replaced by
 * U+FFFD. New reference, or NULL when out of memory. */
json_t *sb_json_string_lossy(const char *bytes, size_t len);

/* Where to cut s (len bytes) into a piece of at most max bytes (max > 0)
 * without splitting a UTF-8 sequence: max, moved back before the
 * continuation bytes there; len when it all fits. */
size_t sb_utf8_cut(const char *s, size_t len, size_t max);

#endif
