/*
 * validate.c - typed access to JSON body fields (see validate.h), and the
 * limits on environment names and sizes that keep every exec under the
 * kernel's and the shim protocol's limits.
 */
#include "api/validate.h"

#include <ctype.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "http/request.h"
#include "runtime/registry.h"

int api_field_int(json_t *body, const char *field, long long def, long long min, long long max,
                  long long *out, struct sb_err *err)
{
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return sb_err_set(err, 400, "%s must be an integer between %lld and %lld", field, min, max);
    *out = json_integer_value(v);
    return 0;
}

int api_field_string(json_t *body, const char *field, int required, const char *def,
                     const char **out, struct sb_err *err)
{
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v)) {
        if (required)
            return sb_err_set(err, 400, "missing field: %s", field);
        *out = def;
        return 0;
    }
    if (!json_is_string(v))
        return sb_err_set(err, 400, "%s must be a string", field);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return sb_err_set(err, 400, "%s must not contain NUL characters", field);
    *out = json_string_value(v);
    return 0;
}

/* A name a shell and every libc treat as a variable: [A-Za-z_][A-Za-z0-9_]*. */
static int env_name_ok(const char *key)
{
    size_t len = strlen(key);
    if (len == 0 || len > API_ENV_NAME_MAX || !(isalpha((unsigned char)key[0]) || key[0] == '_'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isascii((unsigned char)key[i]) ||
            !(isalnum((unsigned char)key[i]) || key[i] == '_'))
            return 0;
    return 1;
}

/* The checks of api_field_string_map and api_field_env: values are strings
 * without NUL; with env_keys, names are env_name_ok and the entries' total
 * (NAME=value plus NUL) is at most max_bytes. */
static int string_map(json_t *body, const char *field, int env_keys, size_t max_bytes,
                      char **out_text, size_t *out_bytes, struct sb_err *err)
{
    json_t *v = json_object_get(body, field);
    size_t total = 0;
    *out_text = NULL;
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            return sb_err_set(err, 400, "%s must be an object of strings", field);
        const char *key;
        json_t *value;
        json_object_foreach(v, key, value) {
            if (!json_is_string(value) || strlen(json_string_value(value)) != json_string_length(value))
                return sb_err_set(err, 400, "%s.%.64s must be a string", field, key);
            if (env_keys && !env_name_ok(key))
                return sb_err_set(err, 400, "%s: invalid variable name '%.64s' (names are letters, "
                                  "digits and _, not starting with a digit, at most %d bytes)",
                                  field, key, API_ENV_NAME_MAX);
            total += strlen(key) + 1 + json_string_length(value) + 1;
        }
        if (env_keys && total > max_bytes)
            return sb_err_set(err, 400, "%s take %zu bytes; the limit is %zu (each variable counts "
                              "as NAME=value plus one byte)", field, total, max_bytes);
        *out_text = json_dumps(v, JSON_COMPACT);
    } else {
        *out_text = strdup("{}");
    }
    if (!*out_text)
        return sb_err_set(err, 500, "out of memory");
    if (out_bytes)
        *out_bytes = total;
    return 0;
}

int api_field_string_map(json_t *body, const char *field, char **out_text, struct sb_err *err)
{
    return string_map(body, field, 0, SIZE_MAX, out_text, NULL, err);
}

int api_field_env(json_t *body, const char *field, size_t max_bytes, char **out_text,
                  size_t *out_bytes, struct sb_err *err)
{
    return string_map(body, field, 1, max_bytes, out_text, out_bytes, err);
}

int api_check_fields(json_t *body, const char *const *allowed, const char *route,
                     struct sb_err *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        int known = 0;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (known)
            continue;
        char list[256] = "";
        size_t used = 0;
        for (size_t i = 0; allowed[i] && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", allowed[i]);
        return sb_err_set(err, 400, "unknown field: %.64s (%s accepts %s)", key, route, list);
    }
    return 0;
}

int api_token_matches(const char *want, const char *given)
{
    size_t len = strlen(want);
    return given && strlen(given) == len && sodium_memcmp(want, given, len) == 0;
}

int api_check_sandbox_id(const char *id, struct sb_err *err)
{
    if (!id || !sb_id_valid("sbx_", id))
        return sb_err_set(err, 400, "invalid sandbox id");
    return 0;
}

int api_query_offset(struct sb_request *req, const char *name, uint64_t *out, struct sb_err *err)
{
    const char *v = sb_request_query(req, name);
    char *end;
    *out = 0;
    if (v && (v[0] < '0' || v[0] > '9' || (*out = strtoull(v, &end, 10), *end) || *out > ((uint64_t)1 << 62)))
        return sb_err_set(err, 400, "%s must be a non-negative integer (a byte offset in the stream)", name);
    return 0;
}

int api_check_exec_size(const struct sb_process_request *pr, size_t env_bytes, struct sb_err *err)
{
    size_t total = strlen(pr->cmd) + 1 + env_bytes;
    for (size_t i = 0; i < pr->arg_count; i++)
        total += strlen(pr->args[i]) + 1;
    if (total > API_EXEC_ARGV_ENV_MAX)
        return sb_err_set(err, 400, "cmd, args and envVars take %zu bytes; the limit is %d (each "
                          "string counts its length plus one byte; pass large data through stdin)",
                          total, API_EXEC_ARGV_ENV_MAX);
    return 0;
}
