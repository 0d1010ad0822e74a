/*
 * spec.c - the resolved sandbox spec's JSON codec and its file (see spec.h).
 *
 * Owns nothing beyond a decoded spec's env_json. Decoding trusts nothing:
 * the shim runs as root on what it reads, so every field is checked for
 * type, length and range before it lands in the struct.
 */
#include "proto/spec.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- encoding ---- */

static json_t *idmap_json(const struct sb_spec_idmap *m)
{
    return json_pack("{s:I,s:I,s:I}", "inside", (json_int_t)m->inside, "outside", (json_int_t)m->outside,
                     "count", (json_int_t)m->count);
}

int sb_spec_to_json(const struct sb_spec *spec, char **text, struct sb_err *err)
{
    *text = NULL;
    json_t *env = json_loads(spec->env_json ? spec->env_json : "{}", 0, NULL);
    json_t *binds = json_array();
    for (int i = 0; binds && i < spec->bind_count; i++)
        json_array_append_new(binds, json_pack("{s:s,s:s,s:b}", "source", spec->binds[i].source, "target",
                                               spec->binds[i].target, "readonly", spec->binds[i].readonly));
    json_t *root = json_pack(
        "{s:i,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:I},s:o,s:o,s:{s:s,s:I,s:I,s:s},s:s,s:o,s:o,"
        "s:{s:i,s:i,s:i,s:i}}",
        "version", SB_SPEC_VERSION, "id", spec->id, "hostname", spec->hostname, "dataDir", spec->data_dir,
        "runDir", spec->run_dir, "template", "name", spec->template_name, "dir", spec->template_dir,
        "identity", (json_int_t)spec->template_identity, "uidMap", idmap_json(&spec->uid_map), "gidMap",
        idmap_json(&spec->gid_map), "user", "name", spec->user, "uid", (json_int_t)spec->uid, "gid",
        (json_int_t)spec->gid, "home", spec->home, "workdir", spec->workdir, "env", env, "binds", binds,
        "limits", "cpu_count", spec->limits.cpu_count, "memory_mb", spec->limits.memory_mb, "pids",
        spec->limits.pids, "disk_mb", spec->limits.disk_mb);
    if (root && spec->output_ring)
        json_object_set_new(root, "outputRing", json_integer(spec->output_ring));
    if (root)
        json_object_set_new(root, "sudo", json_boolean(spec->sudo));
    /* json_pack steals the "o" references even when it fails. */
    *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!*text)
        return sb_err_set(err, 500, "sandbox spec %s: cannot encode it (out of memory or bad env)", spec->id);
    return 0;
}

/* ---- decoding ---- */

/* Copies obj[key] (a string shorter than len) into dst; absolute: must start with '/'. */
static int get_string(json_t *obj, const char *key, char *dst, size_t len, int absolute, struct sb_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= len ||
        strlen(json_string_value(v)) != json_string_length(v))
        return sb_err_set(err, 400, "sandbox spec: \"%s\" must be a non-empty string shorter than %zu", key, len);
    if (absolute && json_string_value(v)[0] != '/')
        return sb_err_set(err, 400, "sandbox spec: \"%s\" must be an absolute path", key);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t *out, struct sb_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
        (uint64_t)json_integer_value(v) > max)
        return sb_err_set(err, 400, "sandbox spec: \"%s\" must be an integer %llu-%llu", key,
                          (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_u32(json_t *obj, const char *key, uint32_t min, uint32_t max, uint32_t *out, struct sb_err *err)
{
    uint64_t v;
    if (get_uint(obj, key, min, max, &v, err) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static json_t *get_object(json_t *obj, const char *key, struct sb_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_object(v))
        sb_err_set(err, 400, "sandbox spec: \"%s\" must be an object", key);
    return json_is_object(v) ? v : NULL;
}

int sb_spec_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '_' || id[i] == '-'))
            return 0;
    return 1;
}

static int decode_idmap(json_t *root, const char *key, struct sb_spec_idmap *m, struct sb_err *err)
{
    json_t *o = get_object(root, key, err);
    if (!o || get_u32(o, "inside", 0, UINT32_MAX, &m->inside, err) < 0 ||
        get_u32(o, "outside", 1, UINT32_MAX, &m->outside, err) < 0 ||
        get_u32(o, "count", 1, UINT32_MAX, &m->count, err) < 0)
        return sb_err_prefix(err, "%s", key);
    if ((uint64_t)m->inside + m->count > (uint64_t)UINT32_MAX + 1 ||
        (uint64_t)m->outside + m->count > (uint64_t)UINT32_MAX + 1)
        return sb_err_set(err, 400, "sandbox spec: %s runs past the 32-bit id space", key);
    return 0;
}

static int decode_binds(json_t *root, struct sb_spec *s, struct sb_err *err)
{
    json_t *binds = json_object_get(root, "binds");
    if (!binds)
        return 0;
    if (!json_is_array(binds) || json_array_size(binds) > SB_SPEC_MAX_BINDS)
        return sb_err_set(err, 400, "sandbox spec: \"binds\" must be an array of at most %d", SB_SPEC_MAX_BINDS);
    size_t i;
    json_t *b;
    json_array_foreach(binds, i, b) {
        struct sb_spec_bind *out = &s->binds[i];
        json_t *ro = json_object_get(b, "readonly");
        if (!json_is_object(b) || get_string(b, "source", out->source, sizeof out->source, 1, err) < 0 ||
            get_string(b, "target", out->target, sizeof out->target, 1, err) < 0)
            return sb_err_prefix(err, "bind %zu", i);
        if (!json_is_boolean(ro))
            return sb_err_set(err, 400, "sandbox spec: bind %zu: \"readonly\" must be a boolean", i);
        out->readonly = json_is_true(ro);
        s->bind_count++;
    }
    return 0;
}

static int decode_env(json_t *root, struct sb_spec *s, struct sb_err *err)
{
    json_t *env = get_object(root, "env", err);
    if (!env)
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach(env, key, v)
        if (!json_is_string(v) || key[0] == '\0' || strchr(key, '='))
            return sb_err_set(err, 400, "sandbox spec: env.%s must be a string with a name without '='", key);
    s->env_json = json_dumps(env, JSON_COMPACT);
    return s->env_json ? 0 : sb_err_set(err, 500, "sandbox spec: out of memory");
}

static int decode(json_t *root, struct sb_spec *s, struct sb_err *err)
{
    uint64_t version;
    json_t *tpl, *user, *limits;
    if (!json_is_object(root))
        return sb_err_set(err, 400, "sandbox spec: must be a JSON object");
    if (get_uint(root, "version", SB_SPEC_VERSION, SB_SPEC_VERSION, &version, err) < 0 ||
        get_string(root, "id", s->id, sizeof s->id, 0, err) < 0 ||
        get_string(root, "hostname", s->hostname, sizeof s->hostname, 0, err) < 0 ||
        get_string(root, "dataDir", s->data_dir, sizeof s->data_dir, 1, err) < 0 ||
        get_string(root, "runDir", s->run_dir, sizeof s->run_dir, 1, err) < 0 ||
        get_string(root, "workdir", s->workdir, sizeof s->workdir, 1, err) < 0)
        return -1;
    if (!sb_spec_id_valid(s->id))
        return sb_err_set(err, 400, "sandbox spec: bad sandbox id \"%s\"", s->id);
    if (!(tpl = get_object(root, "template", err)) ||
        get_string(tpl, "name", s->template_name, sizeof s->template_name, 0, err) < 0 ||
        get_string(tpl, "dir", s->template_dir, sizeof s->template_dir, 1, err) < 0 ||
        get_uint(tpl, "identity", 1, UINT64_MAX >> 1, &s->template_identity, err) < 0)
        return sb_err_prefix(err, "template");
    if (decode_idmap(root, "uidMap", &s->uid_map, err) < 0 || decode_idmap(root, "gidMap", &s->gid_map, err) < 0)
        return -1;
    if (!(user = get_object(root, "user", err)) || get_string(user, "name", s->user, sizeof s->user, 0, err) < 0 ||
        get_u32(user, "uid", 0, s->uid_map.count - 1, &s->uid, err) < 0 ||
        get_u32(user, "gid", 0, s->gid_map.count - 1, &s->gid, err) < 0 ||
        get_string(user, "home", s->home, sizeof s->home, 1, err) < 0)
        return sb_err_prefix(err, "user");
    if (!(limits = get_object(root, "limits", err)))
        return -1;
    uint32_t lim[4];
    static const char *const keys[] = {"cpu_count", "memory_mb", "pids", "disk_mb"};
    for (int i = 0; i < 4; i++)
        if (get_u32(limits, keys[i], 1, 1u << 30, &lim[i], err) < 0)
            return sb_err_prefix(err, "limits");
    s->limits = (struct sb_limits){(int)lim[0], (int)lim[1], (int)lim[2], (int)lim[3]};
    s->output_ring = SB_SPEC_DEFAULT_RING;
    if (json_object_get(root, "outputRing") &&
        get_u32(root, "outputRing", SB_SPEC_MIN_RING, SB_SPEC_MAX_RING, &s->output_ring, err) < 0)
        return -1;
    json_t *sudo = json_object_get(root, "sudo");
    if (sudo && !json_is_boolean(sudo))
        return sb_err_set(err, 400, "sandbox spec: \"sudo\" must be a boolean");
    s->sudo = sudo ? json_is_true(sudo) : 0;
    return decode_binds(root, s, err) < 0 ? -1 : decode_env(root, s, err);
}

int sb_spec_from_json(const char *text, struct sb_spec *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sb_err_set(err, 400, "sandbox spec: invalid JSON at line %d: %s", jerr.line, jerr.text);
    int rc = decode(root, out, err);
    json_decref(root);
    if (rc < 0)
        sb_spec_clear(out);
    return rc;
}

/* ---- the file ---- */

int sb_spec_write_file(const struct sb_spec *spec, const char *path, struct sb_err *err)
{
    char tmp[SB_PATH_MAX + 8], *text;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return sb_err_set(err, 500, "sandbox spec: path too long: %s", path);
    if (sb_spec_to_json(spec, &text, err) < 0)
        return -1;
    size_t len = strlen(text);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0 && close(fd) < 0)
        ok = 0;
    free(text);
    if (!ok || rename(tmp, path) < 0) {
        sb_err_sys(err, 500, "sandbox spec: cannot write %s", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

int sb_spec_read_file(const char *path, struct sb_spec *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return sb_err_set(err, 404, "sandbox spec %s does not exist", path);
        return sb_err_sys(err, 500, "sandbox spec: cannot read %s", path);
    }
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(text);
        return sb_err_set(err, 400, "sandbox spec %s is empty", path);
    }
    int rc = sb_spec_from_json(text, out, err);
    free(text);
    return rc < 0 ? sb_err_prefix(err, "%s", path) : 0;
}

int sb_spec_copy(struct sb_spec *dst, const struct sb_spec *src, struct sb_err *err)
{
    *dst = *src;
    dst->env_json = src->env_json ? strdup(src->env_json) : NULL;
    if (src->env_json && !dst->env_json)
        return sb_err_set(err, 500, "sandbox spec: out of memory");
    return 0;
}

void sb_spec_clear(struct sb_spec *spec)
{
    free(spec->env_json);
    spec->env_json = NULL;
}
