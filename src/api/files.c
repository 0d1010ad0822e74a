/*
 * files.c - the file API's JSON routes (sandbase-rest.md §4.9): list,
 * read (base64, capped: larger files are for download), write (atomic
 * replace, parents created), delete, stat, mkdir, move. Each handler checks
 * and copies its input on the loop and runs the file work on a worker
 * (files_job_run), where sandbox_files.c resolves every path inside the
 * sandbox as the requested user.
 *
 * POST /filesystem takes its body as a stream (up to what files_read_max of
 * content takes in base64, instead of the server's 1 MiB max_body), so a
 * file that GET /filesystem can return can also be written back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/app.h"
#include "api/files.h"
#include "api/validate.h"
#include "core/base64.h"
#include "core/utf8.h"

#define LIST_MAX_DEPTH 64
#define LIST_MAX_ENTRIES 100000
#define LIST_DEFAULT_PATH "/workspace"
#define WRITE_BODY_SLACK (64 * 1024)    /* the JSON around the base64 content */

static void respond_job_error(struct sb_request *req, struct files_job *job, const struct sb_err *err)
{
    files_job_free(job);
    sb_respond_error(req, err);
}

/* A string field of body without NUL bytes, copied (NULL when absent). */
static int body_string(json_t *body, const char *field, int required, char **out, struct sb_err *err)
{
    json_t *v = json_object_get(body, field);
    *out = NULL;
    if (!v || json_is_null(v))
        return required ? sb_err_set(err, 400, "missing field: %s", field) : 0;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return sb_err_set(err, 400, "%s must be a string without NUL characters", field);
    if (required && json_string_length(v) == 0)
        return sb_err_set(err, 400, "%s must not be empty", field);
    *out = strdup(json_string_value(v));
    return *out ? 0 : sb_err_set(err, 500, "out of memory");
}

static int body_bool(json_t *body, const char *field, int def, int *out, struct sb_err *err)
{
    json_t *v = json_object_get(body, field);
    if (!v || json_is_null(v))
        *out = def;
    else if (json_is_boolean(v))
        *out = json_is_true(v);
    else
        return sb_err_set(err, 400, "%s must be true or false", field);
    return 0;
}

/* ---- list ----------------------------------------------------------------- */

static int run_list(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    struct sb_fs_entry *entries;
    size_t count;
    if (sb_fs_list(fs, job->path, job->depth, LIST_MAX_ENTRIES, &entries, &count, err) < 0)
        return -1;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < count; i++)
        if (json_array_append_new(arr, files_entry_json(fs, &entries[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    sb_fs_entries_free(entries, count);
    if (!arr)
        return sb_err_set(err, 500, "out of memory");
    sb_request_complete_json(job->req, 200, arr);
    return 0;
}

void api_files_list(struct sb_request *req)
{
    struct files_job *job = files_job_new(req, run_list);
    struct sb_err err = {0};
    if (!job)
        return;
    const char *depth = sb_request_query(req, "depth");
    char *end = NULL;
    long d = depth && *depth ? strtol(depth, &end, 10) : 1;
    if (depth && *depth && (*end || d < 1 || d > LIST_MAX_DEPTH))
        return respond_job_error(req, job, (sb_err_set(&err, 400, "depth must be an integer between 1 and %d",
                                                       LIST_MAX_DEPTH), &err));
    job->depth = (int)d;
    if (files_query_copy(req, "path", 0, &job->path, &err) < 0)
        return respond_job_error(req, job, &err);
    if (!job->path && !(job->path = strdup(LIST_DEFAULT_PATH)))
        return respond_job_error(req, job, (sb_err_set(&err, 500, "out of memory"), &err));
    files_job_run(job);
}

/* ---- read ----------------------------------------------------------------- */

static int run_read(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    size_t cap = api_app(job->req)->cfg.files_read_max;
    int fd;
    struct stat st;
    if (sb_fs_open_read(fs, job->path, &fd, &st, err) < 0)
        return -1;
    if ((uint64_t)st.st_size > cap) {
        close(fd);
        return sb_err_set(err, 413, "file '%s' is %lld bytes, over the %zu-byte limit of this endpoint: "
                          "use GET /sandboxes/%s/filesystem/download?path=... for large files",
                          job->path, (long long)st.st_size, cap, job->id);
    }
    /* one byte more than the cap: a file that grew since fstat is refused, not cut */
    char *buf = malloc(cap + 1);
    size_t len = 0;
    ssize_t n = 0;
    while (buf && len <= cap && (n = read(fd, buf + len, cap + 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    if (!buf)
        return sb_err_set(err, 500, "out of memory");
    if (n < 0 || len > cap) {
        free(buf);
        return n < 0 ? sb_fs_errno(err, errno, "read", job->path)
                     : sb_err_set(err, 413, "file '%s' grew past the %zu-byte limit of this endpoint: "
                                  "use GET /sandboxes/%s/filesystem/download", job->path, cap, job->id);
    }
    char *b64 = sb_base64_encode_alloc(buf, len);
    free(buf);
    char abs[SB_FS_PATH_MAX];
    json_t *out = b64 && sb_fs_path(fs, job->path, abs, err) == 0
                      ? json_pack("{s:s, s:s}", "path", "", "content", b64) : NULL;
    if (out)
        json_object_set_new(out, "path", sb_json_string_lossy(abs, strlen(abs)));
    free(b64);
    if (!out)
        return err->status ? -1 : sb_err_set(err, 500, "out of memory");
    sb_request_complete_json(job->req, 200, out);
    return 0;
}

/* A route whose only input is ?path=: run fn on it in a worker. */
static void run_path_route(struct sb_request *req, files_job_fn fn)
{
    struct files_job *job = files_job_new(req, fn);
    struct sb_err err = {0};
    if (!job)
        return;
    if (files_query_copy(req, "path", 1, &job->path, &err) < 0)
        return respond_job_error(req, job, &err);
    files_job_run(job);
}

void api_files_read(struct sb_request *req)
{
    run_path_route(req, run_read);
}

/* ---- write ---------------------------------------------------------------- */

struct write_body {
    char *buf;
    size_t len, cap;
};

static void free_write_body(void *p)
{
    struct write_body *b = p;
    if (b)
        free(b->buf);
    free(b);
}

static int run_write(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    json_t *content = json_object_get(job->body, "content");
    json_t *text = json_object_get(job->body, "text");
    unsigned char *data = NULL;
    size_t len = 0;
    if (content && !json_is_null(content)) {
        if (sb_base64_decode_alloc(json_string_value(content), json_string_length(content), &data, &len, err) < 0)
            return -1;
    }
    const void *bytes = data ? (const void *)data : text ? json_string_value(text) : "";
    if (!data && text)
        len = json_string_length(text);
    size_t cap = api_app(job->req)->cfg.files_read_max;
    if (len > cap) {
        free(data);
        return sb_err_set(err, 413, "content is %zu bytes, over the %zu-byte limit of this endpoint "
                          "(files_read_max): use POST /sandboxes/%s/filesystem/upload for large files",
                          len, cap, job->id);
    }
    int rc = sb_fs_write(fs, job->path, bytes, len, err);
    free(data);
    if (rc < 0)
        return -1;
    json_t *entry = files_stat_json(fs, job->path, err);
    if (!entry)
        return -1;
    sb_request_complete_json(job->req, 200, entry);
    return 0;
}

static const char *const write_fields[] = {"path", "content", "text", "user", "username", NULL};

/* The body is in: check it and go to the worker. */
static void write_body_done(struct sb_request *req, void *arg, const struct sb_err *body_err)
{
    struct files_job *job = arg;
    struct write_body *b = job->extra;
    struct sb_err err = {0};
    if (body_err) {
        err = *body_err;
        if (err.status == 413)
            sb_err_set(&err, 413, "request body too large: content may hold at most %zu bytes "
                       "(files_read_max); use POST /sandboxes/%s/filesystem/upload for large files",
                       api_app(req)->cfg.files_read_max, job->id);
        files_job_free(job);
        sb_request_complete_error(req, &err);
        return;
    }
    struct sb_request parsed = *req;
    parsed.body = b->buf ? b->buf : "";
    parsed.body_len = b->len;
    json_t *body = sb_request_json(&parsed, 0, &err);
    json_t *content, *text;
    char *user = NULL;
    if (!body || api_check_fields(body, write_fields, "POST /sandboxes/:id/filesystem", &err) < 0 ||
        body_string(body, "path", 1, &job->path, &err) < 0 || body_string(body, "user", 0, &user, &err) < 0)
        goto fail;
    content = json_object_get(body, "content");
    text = json_object_get(body, "text");
    if (content && !json_is_null(content) && !json_is_string(content)) {
        sb_err_set(&err, 400, "content must be a base64 string");
        goto fail;
    }
    if (text && !json_is_null(text) && !json_is_string(text)) {
        sb_err_set(&err, 400, "text must be a string");
        goto fail;
    }
    if ((!content || json_is_null(content)) == (!text || json_is_null(text))) {
        sb_err_set(&err, 400, "send exactly one of content (base64) and text");
        goto fail;
    }
    if (user) {
        free(job->user);
        job->user = user;
        user = NULL;
    }
    job->body = body;
    free_write_body(b);
    job->extra = NULL;
    job->free_extra = NULL;
    job->deferred = 1;      /* by the body sink */
    files_job_run(job);
    return;
fail:
    free(user);
    json_decref(body);
    files_job_free(job);
    sb_request_complete_error(req, &err);
}

static enum sb_body_verdict write_body_data(struct sb_request *req, void *arg, const char *data, size_t len)
{
    struct files_job *job = arg;
    struct write_body *b = job->extra;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *n = realloc(b->buf, cap);
        if (!n) {
            struct sb_err err;
            files_job_free(job);
            sb_request_complete_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
            return SB_BODY_STOP;    /* on_end does not follow */
        }
        b->buf = n;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return SB_BODY_CONTINUE;
}

void api_files_write(struct sb_request *req)
{
    struct files_job *job = files_job_new(req, run_write);
    struct sb_err err = {0};
    if (!job)
        return;
    job->extra = calloc(1, sizeof(struct write_body));
    job->free_extra = free_write_body;
    if (!job->extra)
        return respond_job_error(req, job, (sb_err_set(&err, 500, "out of memory"), &err));
    size_t cap = api_app(req)->cfg.files_read_max;
    uint64_t max = (uint64_t)(cap / 3 + 1) * 4 + WRITE_BODY_SLACK;
    if (sb_request_body_sink(req, max, write_body_data, write_body_done, job, &err) < 0) {
        if (err.status == 413)
            sb_err_set(&err, 413, "request body too large: content may hold at most %zu bytes "
                       "(files_read_max); use POST /sandboxes/%s/filesystem/upload for large files",
                       cap, job->id);
        return respond_job_error(req, job, &err);
    }
}

/* ---- delete, stat, mkdir, move -------------------------------------------- */

static int run_delete(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    if (sb_fs_remove(fs, job->path, job->flag, err) < 0)
        return -1;
    sb_request_complete_empty(job->req, 204);
    return 0;
}

void api_files_delete(struct sb_request *req)
{
    struct files_job *job = files_job_new(req, run_delete);
    struct sb_err err = {0};
    if (!job)
        return;
    if (files_query_copy(req, "path", 1, &job->path, &err) < 0 ||
        files_query_bool(req, "recursive", 0, &job->flag, &err) < 0)
        return respond_job_error(req, job, &err);
    files_job_run(job);
}

static int run_stat(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    json_t *entry = files_stat_json(fs, job->path, err);
    if (!entry)
        return -1;
    sb_request_complete_json(job->req, 200, entry);
    return 0;
}

void api_files_stat(struct sb_request *req)
{
    run_path_route(req, run_stat);
}

static int run_mkdir(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    if (sb_fs_mkdir(fs, job->path, job->flag, err) < 0)
        return -1;
    json_t *entry = files_stat_json(fs, job->path, err);
    if (!entry)
        return -1;
    if (entry && !json_is_true(json_object_get(entry, "isDir"))) {
        json_decref(entry);
        return sb_err_set(err, 400, "path '%s' exists and is not a directory", job->path);
    }
    sb_request_complete_json(job->req, 200, entry);
    return 0;
}

static int run_move(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    if (sb_fs_move(fs, job->path, job->path2, job->flag, err) < 0)
        return -1;
    json_t *entry = files_stat_json(fs, job->path2, err);
    if (!entry)
        return -1;
    sb_request_complete_json(job->req, 200, entry);
    return 0;
}

/* mkdir and move: a small JSON body (max_body applies). */
static void json_route(struct sb_request *req, files_job_fn run, const char *const *fields, const char *route)
{
    struct files_job *job = files_job_new(req, run);
    struct sb_err err = {0};
    if (!job)
        return;
    json_t *body = sb_request_json(req, 0, &err);
    char *user = NULL;
    int ok = body && api_check_fields(body, fields, route, &err) == 0 &&
             body_string(body, "user", 0, &user, &err) == 0;
    if (ok && run == run_mkdir)
        ok = body_string(body, "path", 1, &job->path, &err) == 0 &&
             body_bool(body, "parents", 1, &job->flag, &err) == 0;
    else if (ok)
        ok = body_string(body, "source", 1, &job->path, &err) == 0 &&
             body_string(body, "destination", 1, &job->path2, &err) == 0 &&
             body_bool(body, "overwrite", 0, &job->flag, &err) == 0;
    json_decref(body);
    if (!ok) {
        free(user);
        return respond_job_error(req, job, &err);
    }
    if (user) {
        free(job->user);
        job->user = user;
    }
    files_job_run(job);
}

void api_files_mkdir(struct sb_request *req)
{
    static const char *const fields[] = {"path", "parents", "user", NULL};
    json_route(req, run_mkdir, fields, "POST /sandboxes/:id/filesystem/mkdir");
}

void api_files_move(struct sb_request *req)
{
    static const char *const fields[] = {"source", "destination", "overwrite", "user", NULL};
    json_route(req, run_move, fields, "POST /sandboxes/:id/filesystem/move");
}
