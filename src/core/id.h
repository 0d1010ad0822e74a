/*
 * id.h - random identifiers and timestamps shared by every layer.
 *
 * Ids are a prefix ("sbx_", "org_", "key_", "evt_") followed by 20 lowercase
 * base32 characters (100 bits from libsodium's CSPRNG). Timestamps are
 * milliseconds since the epoch; RFC 3339 text is UTC with a trailing "Z".
 */
#ifndef SB_CORE_ID_H
#define SB_CORE_ID_H

#include <stddef.h>
#include <stdint.h>

#define SB_ID_RANDOM_CHARS 20

/* Writes prefix + 20 base32 chars + NUL into out (len must fit). */
void sb_id_new(const char *prefix, char *out, size_t len);
/* True when s is prefix followed by exactly 20 chars of [a-z2-7]. */
int sb_id_valid(const char *prefix, const char *s);

int64_t sb_wall_ms(void);
/* "2026-05-24T10:00:00Z" (second precision, as the SandBase docs show). */
void sb_time_rfc3339(int64_t ms, char *out, size_t len);

#endif
