/*
 * validate.h - reading typed fields out of a JSON request body, with the
 * 400 messages every handler shares ("timeout must be an integer between 1
 * and 3600"). Absent fields keep the default; present ones must be right.
 */
#ifndef SB_API_VALIDATE_H
#define SB_API_VALIDATE_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"

/*
 * Limits on what a client may put into a process's argv and environment.
 * They keep every exec well under the kernel's limits (ARG_MAX, usually
 * 2 MiB, and MAX_ARG_STRLEN, 128 KiB per string: past them execve fails
 * with E2BIG) and the start request under the shim protocol's 1 MiB frame
 * even when every byte is a control character that JSON escapes to six
 * (6 x (128 + 32) KiB < 1 MiB). Sizes count what the kernel copies: a
 * string's bytes plus its NUL, an environment entry as NAME=value plus NUL.
 */
#define API_ENV_NAME_MAX 256                    /* bytes in an envVars name */
#define API_SANDBOX_ENV_MAX (32 * 1024)         /* a sandbox's envVars, at create */
#define API_EXEC_ARGV_ENV_MAX (128 * 1024)      /* one exec's cmd + args + envVars */

/* Integer field in [min, max]; *out = def when absent. */
int api_field_int(json_t *body, const char *field, long long def, long long min, long long max,
                  long long *out, struct sb_err *err);
/* String field; *out = def when absent (required: absent is 400 "missing field"). */
int api_field_string(json_t *body, const char *field, int required, const char *def,
                     const char **out, struct sb_err *err);
/* Object whose values are all strings, any keys (metadata); *out_text is a
 * malloc'd JSON text ("{}" when absent); no size cap beyond the body's. */
int api_field_string_map(json_t *body, const char *field, char **out_text, struct sb_err *err);
/* An environment map (envVars): an object of strings whose keys are
 * [A-Za-z_][A-Za-z0-9_]*, at most API_ENV_NAME_MAX bytes, and whose entries
 * take at most max_bytes (NAME=value plus NUL each); 400 naming the rule
 * or the limit otherwise. *out_text as for api_field_string_map; *out_bytes
 * (may be NULL) gets the size counted. */
int api_field_env(json_t *body, const char *field, size_t max_bytes, char **out_text,
                  size_t *out_bytes, struct sb_err *err);
/* 400 "unknown field: X (ROUTE accepts a, b, c)" for a body key outside
 * the NULL-terminated allowed list: a field that is not understood must not
 * be silently ignored. */
int api_check_fields(json_t *body, const char *const *allowed, const char *route,
                     struct sb_err *err);
/* A byte-offset query parameter (stdoutOffset, stderrOffset): *out = 0 when
 * absent, else a decimal integer of at most 2^62; 400 naming it otherwise.
 * Only while the handler runs (sb_request_query). */
struct sb_request;
int api_query_offset(struct sb_request *req, const char *name, uint64_t *out, struct sb_err *err);

/* 400 "invalid sandbox id" unless id looks like sbx_ + 20 base32 chars. */
int api_check_sandbox_id(const char *id, struct sb_err *err);
/* 1 when given (may be NULL) is the token want, compared in constant time
 * (the length is not secret); the one compare of envd's access token and
 * the ports' traffic token. */
int api_token_matches(const char *want, const char *given);

struct sb_process_request;
/* 400 when pr's cmd and args and env_bytes of per-process envVars (as
 * api_field_env counts them) take more than API_EXEC_ARGV_ENV_MAX, as
 * execve counts them: a client's oversized command is its 400, never an
 * E2BIG of the runtime. For every route that starts a process. */
int api_check_exec_size(const struct sb_process_request *pr, size_t env_bytes, struct sb_err *err);

#endif
