/*
 * files_job.c - the shared part of the file API's handlers (files.h): a
 * request's copy of what a worker needs, the worker that opens the
 * sandbox's filesystem as the requested user and runs the route's part,
 * query helpers, and the entry JSON every route answers with.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/async.h"
#include "api/files.h"
#include "core/id.h"
#include "core/utf8.h"
#include "runtime/registry.h"

void files_job_free(struct files_job *job)
{
    if (!job)
        return;
    if (job->free_extra)
        job->free_extra(job->extra);
    free(job->user);
    free(job->path);
    free(job->path2);
    json_decref(job->body);
    free(job);
}

int files_query_copy(struct sb_request *req, const char *name, int required, char **out, struct sb_err *err)
{
    const char *v = sb_request_query(req, name);
    *out = NULL;
    if (!v || !*v)
        return required ? sb_err_set(err, 400, "missing query parameter: %s", name) : 0;
    *out = strdup(v);
    return *out ? 0 : sb_err_set(err, 500, "out of memory");
}

int files_query_bool(struct sb_request *req, const char *name, int def, int *out, struct sb_err *err)
{
    const char *v = sb_request_query(req, name);
    if (!v || !*v)
        *out = def;
    else if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *out = 1;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = 0;
    else
        return sb_err_set(err, 400, "%s must be true or false, not '%s'", name, v);
    return 0;
}

struct files_job *files_job_for(struct sb_request *req, const char *org_id, const char *id, const char *user,
                                files_job_fn run)
{
    struct files_job *job = calloc(1, sizeof *job);
    struct sb_err err = {0};
    if (!job || (user && !(job->user = strdup(user)))) {
        files_job_free(job);
        sb_respond_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
        return NULL;
    }
    job->req = req;
    job->run = run;
    snprintf(job->org_id, sizeof job->org_id, "%s", org_id);
    snprintf(job->id, sizeof job->id, "%s", id ? id : "");
    return job;
}

struct files_job *files_job_new(struct sb_request *req, files_job_fn run)
{
    /* E2B's envd calls it username */
    const char *user = sb_request_query(req, "user");
    if (!user)
        user = sb_request_query(req, "username");
    return files_job_for(req, req->org_id, sb_request_param(req, "id"), user, run);
}

static void files_job_work(struct sb_request *req, void *arg)
{
    struct files_job *job = arg;
    struct sb_fs fs;
    struct sb_err err = {0};
    if (registry_fs_open(api_app(req)->registry, job->org_id, job->id, job->user, &fs, &err) < 0 ||
        job->run(job, &fs, &err) < 0)
        sb_request_complete_error(req, &err);
    sb_fs_close(&fs);
}

static void files_job_release(void *arg)
{
    files_job_free(arg);
}

void files_job_run(struct files_job *job)
{
    struct sb_err err = {0};
    if (!sb_id_valid("sbx_", job->id)) {
        sb_respond_error(job->req, (sb_err_set(&err, 400, "invalid sandbox id: %s", job->id), &err));
        files_job_free(job);
        return;
    }
    if (job->deferred)
        api_run_deferred(job->req, files_job_work, job, files_job_release);
    else
        api_run_async(job->req, files_job_work, job, files_job_release);
}

void files_permissions_string(uint32_t mode, char out[12])
{
    char type = S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'L' : S_ISFIFO(mode) ? 'p' : S_ISSOCK(mode) ? 'S'
                : (S_ISCHR(mode) || S_ISBLK(mode)) ? 'D' : '-';
    const char *rwx = "rwxrwxrwx";
    out[0] = type;
    for (int i = 0; i < 9; i++)
        out[1 + i] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
    out[10] = '\0';
}

void files_owner_names(struct sb_fs *fs, const struct sb_fs_entry *e, char owner[64], char group[64])
{
    sb_fs_id_name(fs, 0, e->uid, owner, 64);
    sb_fs_id_name(fs, 1, e->gid, group, 64);
    if (!sb_utf8_valid(owner, strlen(owner)))
        snprintf(owner, 64, "%u", e->uid);
    if (!sb_utf8_valid(group, strlen(group)))
        snprintf(group, 64, "%u", e->gid);
}

json_t *files_entry_json(struct sb_fs *fs, const struct sb_fs_entry *e)
{
    static const char *const types[] = {"file", "dir", "symlink", "other"};
    char perms[12], mtime[40], owner[64], group[64];
    files_permissions_string(e->mode, perms);
    sb_time_rfc3339(e->mtime_ms, mtime, sizeof mtime);
    files_owner_names(fs, e, owner, group);
    /* names are bytes: one that is not UTF-8 is shown with U+FFFD, not dropped */
    json_t *o = json_pack("{s:o, s:o, s:s, s:b, s:I, s:i, s:s, s:s, s:s, s:s}", "name",
                          sb_json_string_lossy(e->name, strlen(e->name)), "path",
                          sb_json_string_lossy(e->path, strlen(e->path)), "type", types[e->type],
                          "isDir", e->type == SB_FS_DIR, "size", (json_int_t)e->size, "mode",
                          (int)(e->mode & 07777), "permissions", perms, "owner", owner, "group", group,
                          "modifiedTime", mtime);
    if (o && e->symlink_target)
        json_object_set_new(o, "symlinkTarget",
                            sb_json_string_lossy(e->symlink_target, strlen(e->symlink_target)));
    return o;
}

json_t *files_stat_json(struct sb_fs *fs, const char *path, struct sb_err *err)
{
    struct sb_fs_entry e;
    if (sb_fs_stat(fs, path, &e, err) < 0)
        return NULL;
    json_t *o = files_entry_json(fs, &e);
    sb_fs_entry_clear(&e);
    if (!o)
        sb_err_set(err, 500, "out of memory");
    return o;
}
