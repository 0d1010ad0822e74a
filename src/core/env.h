/*
 * env.h - the one place an environment given as a JSON object ({"NAME":
 * "value", ...}, later keys as jansson keeps them) becomes "K=V" strings,
 * as execve wants them. Non-string values are skipped.
 */
#ifndef SB_CORE_ENV_H
#define SB_CORE_ENV_H

#include <jansson.h>
#include <stddef.h>

/* A NULL-terminated malloc'd array of "K=V" strings (free with
 * sb_env_free), its length in *count; NULL when out of memory. */
char **sb_env_strings(json_t *env, size_t *count);
void sb_env_free(char **strings);

#endif
