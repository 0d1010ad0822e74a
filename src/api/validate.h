/*
 * validate.h - reading typed fields out of a JSON request body, with the
 * 400 messages every handler shares ("timeout must be an integer between 1
 * and 3600"). Absent fields keep the default; present ones must be right.
 */
#ifndef SB_API_VALIDATE_H
#define SB_API_VALIDATE_H

#include <jansson.h>

#include "core/err.h"

/* Integer field in [min, max]; *out = def when absent. */
int api_field_int(json_t *body, const char *field, long long def, long long min, long long max,
                  long long *out, struct sb_err *err);
/* String field; *out = def when absent (required: absent is 400 "missing field"). */
int api_field_string(json_t *body, const char *field, int required, const char *def,
                     const char **out, struct sb_err *err);
/* Object whose values are all strings (metadata, envVars); *out_text is a
 * malloc'd JSON text ("{}" when absent). env_keys additionally requires keys
 * usable as environment names (non-empty, no '=', no NUL). */
int api_field_string_map(json_t *body, const char *field, int env_keys, char **out_text,
                         struct sb_err *err);
/* 400 "unknown field: X (ROUTE accepts a, b, c)" for a body key outside
 * the NULL-terminated allowed list: a field that is not understood must not
 * be silently ignored. */
int api_check_fields(json_t *body, const char *const *allowed, const char *route,
                     struct sb_err *err);
/* 400 "invalid sandbox id" unless id looks like sbx_ + 20 base32 chars. */
int api_check_sandbox_id(const char *id, struct sb_err *err);

#endif
