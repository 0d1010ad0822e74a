/*
 * env.c - environment objects to "K=V" strings (see env.h).
 */
#include "core/env.h"

#include <stdio.h>
#include <stdlib.h>

char **sb_env_strings(json_t *env, size_t *count)
{
    size_t n = json_is_object(env) ? json_object_size(env) : 0, i = 0;
    char **out = calloc(n + 1, sizeof *out);
    if (!out)
        return NULL;
    const char *key;
    json_t *value;
    json_object_foreach(env, key, value) {
        if (!json_is_string(value))
            continue;
        if (asprintf(&out[i], "%s=%s", key, json_string_value(value)) < 0) {
            out[i] = NULL;
            sb_env_free(out);
            return NULL;
        }
        i++;
    }
    *count = i;
    return out;
}

void sb_env_free(char **strings)
{
    for (size_t i = 0; strings && strings[i]; i++)
        free(strings[i]);
    free(strings);
}
