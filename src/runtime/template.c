/*
 * template.c - the template format and its on-disk layout: names and paths,
 * loading (template.json), listing, removing and collecting
 * templates, and the limits they set.
 *
 * A template is <data-dir>/templates/<name>/{template.json,rootfs/}; builds
 * (template_build.c) put one there in a single rename.
 *
 * Templates in use: each shim holds a shared flock on the template's
 * directory for the life of its sandbox and mounts the rootfs through that
 * fd (sb_dir_hold on the dir its spec names, proto/spec.h); the lock follows
 * the directory across renames. Rebuilding (only with force) or removing a
 * template renames the old directory to .retired-<name>-XXXXXX; running
 * sandboxes keep the tree they mounted, and template_gc deletes a retired
 * tree once nobody holds its lock.
 *
 * Owns: the template directories. Never prints, never writes into a rootfs
 * (that is template_tree.c).
 */
#include "runtime/template.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/id.h"
#include "runtime/template_internal.h"

/* ---------------------------------------------------------------- names, paths */

int template_name_valid(const char *name)
{
    return sb_name_valid(name);     /* one rule for every user-chosen name (core/id.h) */
}

int path_fmt(char *out, size_t len, struct sb_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        return sb_err_set(err, 400, "path too long under the data dir");
    return 0;
}

int mkdir_if_missing(const char *path, mode_t mode, struct sb_err *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return sb_err_sys(err, 500, "cannot create %s", path);
    return 0;
}

/* ---------------------------------------------------------------- loading */

static int copy_json_string(char *dst, size_t len, json_t *obj, const char *key, int required,
                            const char *path, struct sb_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v && !required)
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= len)
        return sb_err_set(err, 500, "%s: \"%s\" must be a string shorter than %zu", path, key, len);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int load_id(uint32_t *out, json_t *obj, const char *key, const char *path, struct sb_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= SANDBOX_ID_RANGE)
        return sb_err_set(err, 500, "%s: \"%s\" must be an integer 0-65535", path, key);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int load_binds(struct sb_template *t, json_t *binds, const char *path, struct sb_err *err)
{
    if (!binds)
        return 0;
    if (!json_is_array(binds) || json_array_size(binds) > SB_TEMPLATE_MAX_BINDS)
        return sb_err_set(err, 500, "%s: \"binds\" must be an array of at most %d binds", path,
                          SB_TEMPLATE_MAX_BINDS);
    size_t i;
    json_t *bind;
    json_array_foreach(binds, i, bind) {
        struct sb_template_bind *out = &t->binds[i];
        json_t *ro = json_object_get(bind, "readonly");
        if (!json_is_object(bind) ||
            copy_json_string(out->source, sizeof out->source, bind, "source", 1, path, err) < 0 ||
            copy_json_string(out->target, sizeof out->target, bind, "target", 1, path, err) < 0 ||
            (ro && !json_is_boolean(ro)) || out->source[0] != '/' || out->target[0] != '/')
            return sb_err_set(err, 500, "%s: bind %zu must have absolute \"source\" and \"target\" "
                                        "and a boolean \"readonly\"", path, i);
        out->readonly = ro ? json_is_true(ro) : 1;
        t->bind_count++;
    }
    return 0;
}

static int load_limits(struct sb_limits *lim, json_t *obj, const char *path, struct sb_err *err)
{
    if (!obj)
        return 0;
    struct { const char *key; int *field; } keys[] = {
        {"cpu_count", &lim->cpu_count}, {"memory_mb", &lim->memory_mb},
        {"pids", &lim->pids}, {"disk_mb", &lim->disk_mb},
    };
    if (!json_is_object(obj))
        return sb_err_set(err, 500, "%s: \"limits\" must be an object", path);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(obj, keys[i].key);
        if (!v)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30))
            return sb_err_set(err, 500, "%s: limits.%s must be a non-negative integer", path, keys[i].key);
        *keys[i].field = (int)json_integer_value(v);
    }
    return 0;
}

static int load_fields(struct sb_template *t, json_t *root, const char *path, struct sb_err *err)
{
    json_t *env = json_object_get(root, "env");
    if (!json_is_object(root))
        return sb_err_set(err, 500, "%s: must be a JSON object", path);
    if (copy_json_string(t->kind, sizeof t->kind, root, "kind", 1, path, err) < 0 ||
        copy_json_string(t->user, sizeof t->user, root, "user", 1, path, err) < 0 ||
        copy_json_string(t->home, sizeof t->home, root, "home", 1, path, err) < 0 ||
        copy_json_string(t->workdir, sizeof t->workdir, root, "workdir", 1, path, err) < 0 ||
        copy_json_string(t->created_at, sizeof t->created_at, root, "createdAt", 0, path, err) < 0 ||
        load_id(&t->uid, root, "uid", path, err) < 0 || load_id(&t->gid, root, "gid", path, err) < 0 ||
        load_binds(t, json_object_get(root, "binds"), path, err) < 0 ||
        load_limits(&t->limits, json_object_get(root, "limits"), path, err) < 0 ||
        copy_json_string(t->network, sizeof t->network, root, "network", 0, path, err) < 0)
        return -1;
    if (t->network[0] && strcmp(t->network, "internet") != 0 && strcmp(t->network, "none") != 0)
        return sb_err_set(err, 500, "%s: \"network\" must be \"internet\" or \"none\"", path);
    json_t *sudo = json_object_get(root, "sudo");
    if (sudo && !json_is_boolean(sudo))
        return sb_err_set(err, 500, "%s: \"sudo\" must be true or false", path);
    t->sudo = json_is_true(sudo);
    json_t *snap = json_object_get(root, "snapshot");
    if (copy_json_string(t->org_id, sizeof t->org_id, root, "org", 0, path, err) < 0 ||
        (snap && (!json_is_object(snap) ||
                  copy_json_string(t->snapshot_of, sizeof t->snapshot_of, snap, "sandboxID", 1, path, err) < 0 ||
                  copy_json_string(t->snapshot_name, sizeof t->snapshot_name, snap, "name", 0, path, err) < 0)))
        return sb_err_set(err, 500, "%s: \"org\" must be a string and \"snapshot\" an object with a "
                                    "\"sandboxID\"", path);
    if (env && !json_is_object(env))
        return sb_err_set(err, 500, "%s: \"env\" must be an object of strings", path);
    const char *key;
    json_t *v;
    json_object_foreach(env, key, v)
        if (!json_is_string(v))
            return sb_err_set(err, 500, "%s: env.%s must be a string", path, key);
    t->env_json = env ? json_dumps(env, JSON_COMPACT) : strdup("{}");
    if (!t->env_json)
        return sb_err_set(err, 500, "out of memory");
    return 0;
}

/* Parses the template.json at path into out (whose dir and rootfs the
 * caller has set or left empty). */
static int load_json_file(const char *path, const char *name, struct sb_template *out, struct sb_err *err)
{
    snprintf(out->name, sizeof out->name, "%s", name);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (access(path, F_OK) < 0 && errno == ENOENT)
            return sb_err_set(err, 400, "unknown template: %s", name);
        return sb_err_set(err, 500, "%s: invalid JSON at line %d: %s (rebuild or remove the template)",
                          path, jerr.line, jerr.text);
    }
    int rc = load_fields(out, root, path, err);
    json_decref(root);
    if (rc < 0)
        template_clear(out);
    return rc;
}

int template_load(const char *data_dir, const char *name, struct sb_template *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    if (!template_name_valid(name))
        return sb_err_set(err, 400, "unknown template: %s", name ? name : "");
    char path[SB_PATH_MAX];
    if (path_fmt(out->dir, sizeof out->dir, err, "%s/templates/%s", data_dir, name) < 0 ||
        path_fmt(out->rootfs, sizeof out->rootfs, err, "%s/rootfs", out->dir) < 0 ||
        path_fmt(path, sizeof path, err, "%s/template.json", out->dir) < 0)
        return -1;
    if (load_json_file(path, name, out, err) < 0)
        return -1;
    struct stat st;
    if (stat(out->dir, &st) == 0)
        out->identity = (uint64_t)st.st_ino;
    return 0;
}

int template_owned_by(const struct sb_template *tpl, const char *org_id)
{
    return tpl->org_id[0] && org_id && strcmp(tpl->org_id, org_id) == 0;
}

int template_visible(const struct sb_template *tpl, const char *org_id)
{
    return !tpl->org_id[0] || template_owned_by(tpl, org_id);
}

void template_clear(struct sb_template *tpl)
{
    if (!tpl)
        return;
    free(tpl->env_json);
    tpl->env_json = NULL;
}

/* ---------------------------------------------------------------- list, remove, limits */

static int compare_by_name(const void *a, const void *b)
{
    return strcmp(((const struct sb_template *)a)->name, ((const struct sb_template *)b)->name);
}

/* Opens <data-dir>/templates; *out is NULL (and 0 returned) when it does
 * not exist yet. */
static int open_templates_dir(const char *data_dir, DIR **out, struct sb_err *err)
{
    char dir[SB_PATH_MAX];
    *out = NULL;
    if (path_fmt(dir, sizeof dir, err, "%s/templates", data_dir) < 0)
        return -1;
    *out = opendir(dir);
    if (!*out && errno != ENOENT)
        return sb_err_sys(err, 500, "cannot read %s", dir);
    return 0;
}

/* Directories without template.json (not templates) and hidden build
 * directories are skipped; a corrupt template.json is an error naming it. */
int template_list(const char *data_dir, struct sb_template **out, size_t *count, struct sb_err *err)
{
    *out = NULL;
    *count = 0;
    DIR *d;
    if (open_templates_dir(data_dir, &d, err) < 0)
        return -1;
    if (!d)
        return 0;
    struct sb_template *list = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (!template_name_valid(de->d_name))
            continue;
        if (n == cap) {
            size_t new_cap = cap ? cap * 2 : 8;
            struct sb_template *grown = realloc(list, new_cap * sizeof *list);
            if (!grown) {
                rc = sb_err_set(err, 500, "out of memory");
                break;
            }
            list = grown;
            cap = new_cap;
        }
        struct sb_err load_err = {0};
        if (template_load(data_dir, de->d_name, &list[n], &load_err) == 0)
            n++;
        else if (load_err.status != 400)
            rc = sb_err_set(err, load_err.status, "%s", load_err.msg);
    }
    closedir(d);
    if (rc < 0) {
        template_list_free(list, n);
        return -1;
    }
    qsort(list, n, sizeof *list, compare_by_name);
    *out = list;
    *count = n;
    return 0;
}

void template_list_free(struct sb_template *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        template_clear(&list[i]);
    free(list);
}

/* Renames a template directory to a fresh .retired-<name>-XXXXXX beside it
 * (mkdtemp reserves the name; rename(2) may replace an empty directory). */
int retire_dir(const char *data_dir, const char *name, const char *path, struct sb_err *err)
{
    char aside[SB_PATH_MAX];
    if (path_fmt(aside, sizeof aside, err, "%s/templates/.retired-%s-XXXXXX", data_dir, name) < 0)
        return -1;
    if (!mkdtemp(aside))
        return sb_err_sys(err, 500, "cannot set template %s aside", name);
    if (rename(path, aside) < 0) {
        int saved = errno;
        rmdir(aside);
        errno = saved;
        return sb_err_sys(err, 500, "cannot set template %s aside", name);
    }
    return 0;
}

int template_remove(const char *data_dir, const char *name, struct sb_err *err)
{
    if (!template_name_valid(name))
        return sb_err_set(err, 404, "unknown template: %s", name ? name : "");
    char final[SB_PATH_MAX];
    if (path_fmt(final, sizeof final, err, "%s/templates/%s", data_dir, name) < 0)
        return -1;
    struct stat st;
    if (lstat(final, &st) < 0 || !S_ISDIR(st.st_mode))
        return sb_err_set(err, 404, "unknown template: %s", name);
    /* Retired first, so nobody loads a half-deleted template and running
     * sandboxes keep their tree; template_gc deletes it once unused. */
    if (retire_dir(data_dir, name, final, err) < 0)
        return -1;
    return template_gc(data_dir, err);
}

/* ---------------------------------------------------------------- in use */

/* Deletes one retired tree if no shim holds it. */
static void gc_one(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        struct sb_err ignored;
        remove_tree(dir, &ignored);
    }
    close(fd);          /* drops the lock, or leaves it to the sandbox still running on it */
}

int template_gc(const char *data_dir, struct sb_err *err)
{
    char templates[SB_PATH_MAX];
    DIR *d;
    if (path_fmt(templates, sizeof templates, err, "%s/templates", data_dir) < 0 ||
        open_templates_dir(data_dir, &d, err) < 0)
        return -1;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char dir[SB_PATH_MAX];
        struct sb_err ignored;
        if (strncmp(de->d_name, ".retired-", 9) == 0 &&
            path_fmt(dir, sizeof dir, &ignored, "%s/%s", templates, de->d_name) == 0)
            gc_one(dir);
    }
    closedir(d);
    return 0;
}

int template_identity(const char *data_dir, const char *name, uint64_t *out)
{
    char dir[SB_PATH_MAX];
    struct stat st;
    if (!template_name_valid(name) || snprintf(dir, sizeof dir, "%s/templates/%s", data_dir, name) >= (int)sizeof dir ||
        stat(dir, &st) < 0)
        return -1;
    *out = (uint64_t)st.st_ino;
    return 0;
}

static int effective_limit(int server_default, int override, int maximum)
{
    int v = override > 0 ? override : server_default;
    return maximum > 0 && v > maximum ? maximum : v;
}

void template_effective_limits(const struct sb_template *tpl, const struct sb_config *cfg,
                               struct sb_limits *out)
{
    struct sb_limits none = {0};
    const struct sb_limits *o = tpl ? &tpl->limits : &none;
    out->cpu_count = effective_limit(cfg->defaults.cpu_count, o->cpu_count, cfg->maxima.cpu_count);
    out->memory_mb = effective_limit(cfg->defaults.memory_mb, o->memory_mb, cfg->maxima.memory_mb);
    out->pids = effective_limit(cfg->defaults.pids, o->pids, cfg->maxima.pids);
    out->disk_mb = effective_limit(cfg->defaults.disk_mb, o->disk_mb, cfg->maxima.disk_mb);
}
