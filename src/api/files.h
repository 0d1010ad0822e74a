/*
 * files.h - what the file API's handlers share (api/files.c, the JSON
 * routes; files_upload.c; files_download.c; files_watch.c): the worker job
 * that opens a sandbox's filesystem for a request, and the entry JSON.
 * Private to src/api and to E2B's envd file routes (src/e2b/envd_files.c,
 * envd_filesystem.c), which are other encodings over the same jobs.
 */
#ifndef SB_API_FILES_H
#define SB_API_FILES_H

#include <jansson.h>

#include "core/err.h"
#include "http/request.h"
#include "runtime/sandbox_files.h"

/* One file request, run on a worker against the sandbox's filesystem. The
 * handler fills it (copies of everything it needs: the request's strings
 * die with the handler) and calls files_job_run; the worker opens the
 * filesystem as `user` and calls run, which answers the request and returns
 * 0, or returns -1 with err for the job to answer. Freed by the job
 * (free_extra first, for what the handler hung on extra). */
struct files_job;
typedef int (*files_job_fn)(struct files_job *job, struct sb_fs *fs, struct sb_err *err);
struct files_job {
    struct sb_request *req;
    char org_id[SB_ORG_ID_MAX];
    char id[32];
    char *user, *path, *path2;      /* owned; NULL when absent */
    int flag;                       /* route-specific: recursive, parents, overwrite */
    int depth;
    int deferred;                   /* the request is deferred already (a streamed body) */
    json_t *body;                   /* owned, or NULL */
    void *extra;
    void (*free_extra)(void *);
    files_job_fn run;
};

/* A job for req with the sandbox id, org and the user/username query
 * argument copied in; NULL when out of memory (answered 500). */
struct files_job *files_job_new(struct sb_request *req, files_job_fn run);
/* The same for a sandbox, org and user (NULL: the default) named by the
 * caller, as envd's routes have them (E2b-Sandbox-Id, Basic auth). */
struct files_job *files_job_for(struct sb_request *req, const char *org_id, const char *id, const char *user,
                                files_job_fn run);
/* Runs job on a worker (the request is deferred); takes job. */
void files_job_run(struct files_job *job);
void files_job_free(struct files_job *job);

/* A copy of the query argument name, or NULL when absent. -1 with err when
 * it is present but empty and required, or out of memory. */
int files_query_copy(struct sb_request *req, const char *name, int required, char **out, struct sb_err *err);
/* A boolean query argument: absent = def; "true"/"1"/"false"/"0" else 400. */
int files_query_bool(struct sb_request *req, const char *name, int def, int *out, struct sb_err *err);

/* The entry as the API shows it: {name, path, type (file|dir|symlink|other),
 * isDir, size, mode (permission bits), permissions ("-rw-r--r--"), owner,
 * group, modifiedTime, symlinkTarget (symlinks only)}. NULL: out of memory. */
json_t *files_entry_json(struct sb_fs *fs, const struct sb_fs_entry *e);
/* The entry at path, as files_entry_json; NULL with err. */
json_t *files_stat_json(struct sb_fs *fs, const char *path, struct sb_err *err);

/* Go's FileMode.String() of st_mode (type letter and permission bits, as
 * envd shows it: "-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx"). */
void files_permissions_string(uint32_t mode, char out[12]);
/* The owner and group names of e in the sandbox's passwd and group files,
 * or the numeric ids when a name is missing or is not UTF-8. */
void files_owner_names(struct sb_fs *fs, const struct sb_fs_entry *e, char owner[64], char group[64]);

/* files_download.c: answers req with the raw bytes of the file at path, as
 * org's sandbox id and user (NULL: default) see it (Content-Disposition
 * inline when inline_disposition, Range honoured). Copies what it needs. */
void files_download_as(struct sb_request *req, const char *org_id, const char *id, const char *user,
                       const char *path, int inline_disposition);
/* files_upload.c: takes req's body as an upload (multipart/form-data or
 * octet-stream with path, Content-Encoding gzip or identity) into org's
 * sandbox id as user (NULL: default), path (NULL: none) overriding every
 * part's name; answers the array of entries written. */
void files_upload_as(struct sb_request *req, const char *org_id, const char *id, const char *user,
                     const char *path);

/* ---- watching a directory (files_watch.c) ---- */
enum files_watch_event {
    FILES_WATCH_CREATE, FILES_WATCH_WRITE, FILES_WATCH_REMOVE, FILES_WATCH_RENAME, FILES_WATCH_CHMOD,
};
struct files_watch;
/* What a watch tells its owner; every call on the loop thread. */
struct files_watch_sink {
    /* Once, first: the watch is set up. The sink keeps w and closes it. */
    void (*started)(void *arg, struct files_watch *w);
    /* A change: name relative to the watched directory ("" = itself), abs
     * its absolute path (both valid during the call). Return 1 to get
     * nothing more until files_watch_resume (the kernel holds the rest,
     * and overflows past its queue). */
    int (*event)(void *arg, enum files_watch_event type, const char *name, const char *abs);
    /* The kernel's queue overflowed: events were lost. */
    void (*overflow)(void *arg);
    /* The watched directory or the sandbox went: nothing follows; the
     * owner still calls files_watch_close. */
    void (*gone)(void *arg);
};
/* From a files_job's run (worker): watches the directory job->path inside
 * fs, every directory below it too when job->flag (recursive), and posts
 * started to the loop; sink and arg must live until files_watch_close.
 * -1 with err (404 missing, 400 not a directory, 403, 503 past the
 * server's cap of watches): nothing was posted. */
int files_watch_start(struct files_job *job, struct sb_fs *fs, const struct files_watch_sink *sink, void *arg,
                      struct sb_err *err);
void files_watch_resume(struct files_watch *w);
/* Ends the watch (no sink call after it) and frees it. Once. */
void files_watch_close(struct files_watch *w);

/* files_tar.c: answers job's request with the directory abs as a tar
 * stream (the worker part: opens it, then the loop takes over). */
int files_tar_start(struct files_job *job, struct sb_fs *fs, const char *abs, struct sb_err *err);

#endif
