/*
 * id.h - random identifiers and timestamps shared by every layer.
 *
 * Ids are a prefix ("sbx_", "org_", "key_", "evt_") followed by 20 lowercase
 * base32 characters (100 bits from libsodium's CSPRNG). Names that users
 * choose (templates, orgs) follow one rule, sb_name_valid, because they end
 * up in paths, URLs and log lines. Timestamps are milliseconds since the
 * epoch; RFC 3339 text is UTC with a trailing "Z".
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

/* The rule for user-chosen names, in words for error messages. */
#define SB_NAME_MAX 63
#define SB_NAME_RULE "1-63 characters of [a-z0-9_-], starting with a letter or digit"
/* True when name follows SB_NAME_RULE (so it is safe as a path component). */
int sb_name_valid(const char *name);

int64_t sb_wall_ms(void);         /* CLOCK_REALTIME in ms: for stored times */
int64_t sb_mono_ms(void);         /* CLOCK_MONOTONIC in ms: for deadlines and durations */
/* "2026-05-24T10:00:00Z" (second precision, as the SandBase docs show). */
void sb_time_rfc3339(int64_t ms, char *out, size_t len);
/* Parses RFC 3339 ("2026-05-24T10:00:00Z", "...T10:00:00.250+02:00"; 't',
 * 'z' and a space for 'T' too) into ms since the epoch: 0, or -1 for
 * anything else. */
int sb_time_parse_rfc3339(const char *text, int64_t *ms);

#endif
