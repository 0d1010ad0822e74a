/*
 * envd_filesystem.c - envd's filesystem.Filesystem unary RPCs (Stat,
 * MakeDir, Move, ListDir, Remove) and the EntryInfo message they answer
 * with (spec §4.2, §5.5). Each is the file API's job (api/files_job.c) on a
 * worker around one sandbox_files.c call, so paths resolve exactly as
 * SandBase's routes resolve them: inside the sandbox's root, as the user
 * the Basic-auth header names, "~" and relative paths from that user's
 * home.
 *
 * envd's semantics, where they differ from SandBase's routes: MakeDir is
 * mkdir -p and an existing directory is already_exists (the SDK's false),
 * an existing non-directory invalid_argument; Move replaces an existing
 * destination (rename(2)) and creates its parents; Remove is recursive and
 * a missing path is not an error; ListDir depth 0 means 1; a symlink's
 * type and mode are its target's (UNSPECIFIED when dangling, which the SDK
 * drops from lists), its permissions string its own ("L...").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/files.h"
#include "core/id.h"
#include "core/utf8.h"
#include "e2b/e2b.h"
#include "e2b/envd.h"
#include "http/connect.h"

#define LIST_MAX_DEPTH 64
#define LIST_MAX_ENTRIES 100000
#define SYMLINK_HOPS 40

/* What a symlink finally points at: its type and mode, or type
 * FILE_TYPE_UNSPECIFIED when it dangles, loops or leaves what sb_fs serves. */
static const char *symlink_target_type(struct sb_fs *fs, const struct sb_fs_entry *link, uint32_t *mode)
{
    char path[SB_FS_PATH_MAX];
    snprintf(path, sizeof path, "%s", link->symlink_target ? link->symlink_target : "");
    for (int hop = 0; hop < SYMLINK_HOPS && path[0]; hop++) {
        struct sb_fs_entry t;
        struct sb_err ignored;
        if (sb_fs_stat(fs, path, &t, &ignored) < 0)
            break;
        const char *type = t.type == SB_FS_FILE ? "FILE_TYPE_FILE" : t.type == SB_FS_DIR ? "FILE_TYPE_DIRECTORY"
                                                                                        : NULL;
        *mode = t.mode;
        snprintf(path, sizeof path, "%s", t.type == SB_FS_SYMLINK && t.symlink_target ? t.symlink_target : "");
        sb_fs_entry_clear(&t);
        if (type)
            return type;
    }
    return "FILE_TYPE_UNSPECIFIED";
}

json_t *e2b_entry_info(struct sb_fs *fs, const struct sb_fs_entry *e)
{
    char perms[12], mtime[40], owner[64], group[64], size[24];
    uint32_t mode = e->mode;
    const char *type = e->type == SB_FS_FILE ? "FILE_TYPE_FILE"
                       : e->type == SB_FS_DIR ? "FILE_TYPE_DIRECTORY"
                       : e->type == SB_FS_SYMLINK ? symlink_target_type(fs, e, &mode)
                       : "FILE_TYPE_UNSPECIFIED";
    files_permissions_string(e->mode, perms);
    sb_time_rfc3339(e->mtime_ms, mtime, sizeof mtime);
    files_owner_names(fs, e, owner, group);
    snprintf(size, sizeof size, "%llu", (unsigned long long)e->size);   /* int64: a string in JSON */
    json_t *o = json_pack("{s:o, s:s, s:o, s:s, s:i, s:s, s:s, s:s, s:s}", "name",
                          sb_json_string_lossy(e->name, strlen(e->name)), "type", type, "path",
                          sb_json_string_lossy(e->path, strlen(e->path)), "size", size, "mode",
                          (int)(mode & 0777), "permissions", perms, "owner", owner, "group", group,
                          "modifiedTime", mtime);
    if (o && e->symlink_target)
        json_object_set_new(o, "symlinkTarget", sb_json_string_lossy(e->symlink_target, strlen(e->symlink_target)));
    return o;
}

/* {"entry": EntryInfo of path} as the answer of job's request. */
static int complete_entry(struct files_job *job, struct sb_fs *fs, const char *path, struct sb_err *err)
{
    struct sb_fs_entry e;
    if (sb_fs_stat(fs, path, &e, err) < 0)
        return -1;
    json_t *entry = e2b_entry_info(fs, &e);
    sb_fs_entry_clear(&e);
    if (!entry)
        return sb_err_set(err, 500, "out of memory");
    sb_request_complete_json(job->req, 200, json_pack("{s:o}", "entry", entry));
    return 0;
}

/* A Connect error with a code the status mapping does not give (409 is
 * failed_precondition there; MakeDir's is already_exists). */
static void complete_code(struct sb_request *req, const char *code, const struct sb_err *err)
{
    sb_request_complete_json(req, sb_connect_status(code), json_pack("{s:s, s:s}", "code", code, "message",
                                                                     err->msg));
}

static int run_stat(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    return complete_entry(job, fs, job->path, err);
}

static int run_make_dir(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    struct sb_fs_entry e;
    if (sb_fs_stat(fs, job->path, &e, err) == 0) {
        int dir = e.type == SB_FS_DIR;
        sb_fs_entry_clear(&e);
        if (!dir)
            return sb_err_set(err, 400, "path '%s' already exists and is not a directory", job->path);
        sb_err_set(err, 409, "directory '%s' already exists", job->path);
        complete_code(job->req, "already_exists", err);
        return 0;
    }
    if (err->status != 404)
        return -1;
    if (sb_fs_mkdir(fs, job->path, 1, err) < 0)
        return -1;
    return complete_entry(job, fs, job->path, err);
}

static int run_move(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    if (sb_fs_move(fs, job->path, job->path2, 1, err) < 0)
        return -1;
    return complete_entry(job, fs, job->path2, err);
}

static int run_remove(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    if (sb_fs_remove(fs, job->path, 1, err) < 0 && err->status != 404)
        return -1;
    sb_request_complete_json(job->req, 200, json_object());
    return 0;
}

static int run_list_dir(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    struct sb_fs_entry *entries;
    size_t count;
    if (sb_fs_list(fs, job->path, job->depth, LIST_MAX_ENTRIES, &entries, &count, err) < 0) {
        if (err->status == 400 && strstr(err->msg, "not a directory"))
            sb_err_set(err, 400, "path '%s' is not a directory", job->path);
        return -1;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < count; i++)
        if (json_array_append_new(arr, e2b_entry_info(fs, &entries[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    sb_fs_entries_free(entries, count);
    if (!arr)
        return sb_err_set(err, 500, "out of memory");
    sb_request_complete_json(job->req, 200, json_pack("{s:o}", "entries", arr));
    return 0;
}

/* ---- the request messages ---- */

const char *e2b_msg_string(json_t *msg, const char *camel, const char *snake, struct sb_err *err)
{
    json_t *v = json_object_get(msg, camel);
    if (!v && snake)
        v = json_object_get(msg, snake);
    if (!v || json_is_null(v))
        return "";
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        sb_err_set(err, 400, "%s must be a string without NUL characters", camel);
        return NULL;
    }
    return json_string_value(v);
}

int e2b_msg_uint32(json_t *msg, const char *name, uint32_t *out, struct sb_err *err)
{
    json_t *v = json_object_get(msg, name);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    long long n = -1;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {     /* protobuf JSON also takes numbers as strings */
        char *end;
        const char *s = json_string_value(v);
        n = *s ? strtoll(s, &end, 10) : -1;
        if (*s && *end)
            n = -1;
    }
    if (n < 0 || n > 0xffffffffLL)
        return sb_err_set(err, 400, "%s must be an unsigned 32-bit integer", name);
    *out = (uint32_t)n;
    return 0;
}

int e2b_msg_bool(json_t *msg, const char *camel, const char *snake, int *out, struct sb_err *err)
{
    json_t *v = json_object_get(msg, camel);
    if (!v && snake)
        v = json_object_get(msg, snake);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return sb_err_set(err, 400, "%s must be true or false", camel);
    *out = json_is_true(v);
    return 0;
}

enum rpc { RPC_STAT, RPC_MAKE_DIR, RPC_MOVE, RPC_LIST_DIR, RPC_REMOVE };

static const files_job_fn runs[] = {run_stat, run_make_dir, run_move, run_list_dir, run_remove};

/* The handler every unary call shares: sandbox and token, the Basic-auth
 * user, the request message, then the job. */
static void unary(struct sb_request *req, enum rpc rpc)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    const char *user;
    if (e2b_envd_sandbox(req, 1, &rec, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *msg = NULL;
    const char *path = NULL, *dest = "";
    uint32_t depth = 1;
    if (e2b_envd_user(req, &user, &err) < 0 || !(msg = e2b_rpc_unary_request(req, &err)))
        goto fail;
    path = e2b_msg_string(msg, rpc == RPC_MOVE ? "source" : "path", NULL, &err);
    if (rpc == RPC_MOVE && path)
        dest = e2b_msg_string(msg, "destination", NULL, &err);
    if (!path || !dest || (rpc == RPC_LIST_DIR && e2b_msg_uint32(msg, "depth", &depth, &err) < 0))
        goto fail;
    if (!*path || (rpc == RPC_MOVE && !*dest)) {
        sb_err_set(&err, 400, "%s must not be empty", !*path ? (rpc == RPC_MOVE ? "source" : "path") : "destination");
        goto fail;
    }
    if (depth > LIST_MAX_DEPTH) {
        sb_err_set(&err, 400, "depth must be at most %d", LIST_MAX_DEPTH);
        goto fail;
    }
    struct files_job *job = files_job_for(req, rec.org_id, rec.id, user, runs[rpc]);
    if (!job)
        goto answered;
    job->depth = depth ? (int)depth : 1;
    if (!(job->path = strdup(path)) || (rpc == RPC_MOVE && !(job->path2 = strdup(dest)))) {
        files_job_free(job);
        sb_err_set(&err, 500, "out of memory");
        goto fail;
    }
    files_job_run(job);
    goto answered;
fail:
    sb_respond_error(req, &err);
answered:
    json_decref(msg);
    store_sandbox_rec_clear(&rec);
}

void e2b_fs_stat(struct sb_request *req)
{
    unary(req, RPC_STAT);
}

void e2b_fs_make_dir(struct sb_request *req)
{
    unary(req, RPC_MAKE_DIR);
}

void e2b_fs_move(struct sb_request *req)
{
    unary(req, RPC_MOVE);
}

void e2b_fs_list_dir(struct sb_request *req)
{
    unary(req, RPC_LIST_DIR);
}

void e2b_fs_remove(struct sb_request *req)
{
    unary(req, RPC_REMOVE);
}
