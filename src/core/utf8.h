/*
 * utf8.h - making arbitrary bytes (process output) safe for JSON strings.
 */
#ifndef SB_CORE_UTF8_H
#define SB_CORE_UTF8_H

#include <jansson.h>
#include <stddef.h>

/* A JSON string of the bytes, each invalid UTF-8 sequence replaced by
 * U+FFFD. New reference, or NULL when out of memory. */
json_t *sb_json_string_lossy(const char *bytes, size_t len);

#endif
