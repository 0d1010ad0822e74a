/*
 * files_download.c - GET /sandboxes/:id/filesystem/download?path= and the
 * guide's alias GET /sandboxes/:id/files?path=: a file's raw bytes with
 * Content-Length, Content-Disposition and Range (one range: 206 with
 * Content-Range; several: the whole file, as RFC 9110 allows); a
 * directory with format=tar as a tar stream (files_tar.c).
 *
 * The worker opens the file (sandbox_files.c: inside the root, as the
 * user, regular files only) and hands the open fd to the HTTP layer, which
 * sends it as the socket takes it; no byte of it is held in serve's memory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/app.h"
#include "api/files.h"

struct download {
    char *range;            /* the Range header, or NULL */
    int inline_disposition; /* the /files alias: inline, as envd */
};

static void free_download(void *p)
{
    struct download *d = p;
    if (d)
        free(d->range);
    free(d);
}

/* "bytes=a-b" | "bytes=a-" | "bytes=-n" against size: 1 with [*start, *end]
 * (inclusive), 0 to send the whole file (absent, several ranges, or another
 * unit), -1 when unsatisfiable or malformed (416). */
static int parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *end)
{
    if (!h || strncmp(h, "bytes=", 6) != 0)
        return 0;
    const char *p = h + 6;
    if (strchr(p, ','))
        return 0;
    char *e;
    if (*p == '-') {
        unsigned long long n = strtoull(p + 1, &e, 10);
        if (e == p + 1 || *e || n == 0 || size == 0)
            return -1;
        *start = n >= size ? 0 : size - n;
        *end = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return -1;
    unsigned long long a = strtoull(p, &e, 10);
    if (*e != '-')
        return -1;
    const char *q = e + 1;
    unsigned long long b = size ? size - 1 : 0;
    if (*q) {
        if (*q < '0' || *q > '9')
            return -1;
        b = strtoull(q, &e, 10);
        if (*e || b < a)
            return -1;
        if (b >= size)
            b = size - 1;
    }
    if (a >= size)
        return -1;
    *start = a;
    *end = b;
    return 1;
}

/* Content-Disposition with the base name: an ASCII fallback in quotes and
 * the exact name percent-encoded (RFC 6266's filename*). */
static void disposition(char *out, size_t len, const char *kind, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    char ascii[256], pct[768];
    size_t a = 0, p = 0;
    for (const unsigned char *c = (const unsigned char *)base; *c && a < sizeof ascii - 1; c++)
        ascii[a++] = (*c < 0x20 || *c >= 0x7f || *c == '"' || *c == '\\') ? '_' : (char)*c;
    ascii[a] = '\0';
    for (const unsigned char *c = (const unsigned char *)base; *c && p < sizeof pct - 4; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("-._~", *c))
            pct[p++] = (char)*c;
        else
            p += (size_t)snprintf(pct + p, sizeof pct - p, "%%%02X", *c);
    }
    pct[p] = '\0';
    snprintf(out, len, "%s; filename=\"%s\"; filename*=UTF-8''%s", kind, ascii, pct);
}

static int run_download(struct files_job *job, struct sb_fs *fs, struct sb_err *err)
{
    struct download *d = job->extra;
    char abs[SB_FS_PATH_MAX];
    if (sb_fs_path(fs, job->path, abs, err) < 0)
        return -1;
    if (job->flag) {
        struct sb_fs_entry e;
        if (sb_fs_stat(fs, abs, &e, err) < 0)
            return -1;
        sb_fs_entry_clear(&e);
        return files_tar_start(job, fs, abs, err);
    }
    int fd;
    struct stat st;
    if (sb_fs_open_read(fs, abs, &fd, &st, err) < 0) {
        if (err->status == 400 && strstr(err->msg, "is a directory"))
            sb_err_set(err, 400, "path '%s' is a directory (add format=tar to download it as a tar archive)",
                       abs);
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size, start = 0, end = size ? size - 1 : 0;
    int ranged = parse_range(d->range, size, &start, &end);
    if (ranged < 0) {
        close(fd);
        return sb_err_set(err, 416, "range not satisfiable: '%s' for a file of %" PRIu64 " bytes",
                          d->range, size);
    }
    char cd[1200], cr[96];
    disposition(cd, sizeof cd, d->inline_disposition ? "inline" : "attachment", abs);
    struct sb_header headers[3] = {{"Content-Disposition", cd}, {"Accept-Ranges", "bytes"}, {NULL, NULL}};
    size_t count = 2;
    if (ranged > 0) {
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, end, size);
        headers[count++] = (struct sb_header){"Content-Range", cr};
    }
    uint64_t len = ranged > 0 ? end - start + 1 : size;
    sb_request_complete_file(job->req, ranged > 0 ? 206 : 200, "application/octet-stream", fd, start, len,
                             headers, count);
    return 0;
}

/* job (its path set) with the request's Range and the disposition, to a worker. */
static void download_job_run(struct sb_request *req, struct files_job *job, int inline_disposition, int tar)
{
    struct sb_err err = {0};
    struct download *d = calloc(1, sizeof *d);
    job->extra = d;
    job->free_extra = free_download;
    const char *range = sb_request_header(req, "Range");
    if (!d || (range && !(d->range = strdup(range)))) {
        files_job_free(job);
        sb_respond_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
        return;
    }
    d->inline_disposition = inline_disposition;
    job->flag = tar;
    files_job_run(job);
}

static void download(struct sb_request *req, int inline_disposition)
{
    struct files_job *job = files_job_new(req, run_download);
    struct sb_err err = {0};
    if (!job)
        return;
    const char *format = sb_request_query(req, "format");
    if (format && *format && strcmp(format, "tar") != 0 && strcmp(format, "raw") != 0)
        sb_err_set(&err, 400, "format must be raw (a file) or tar (a directory), not '%s'", format);
    else
        files_query_copy(req, "path", 1, &job->path, &err);
    if (err.status) {
        files_job_free(job);
        sb_respond_error(req, &err);
        return;
    }
    download_job_run(req, job, inline_disposition, format && strcmp(format, "tar") == 0);
}

void files_download_as(struct sb_request *req, const char *org_id, const char *id, const char *user,
                       const char *path, int inline_disposition)
{
    struct files_job *job = files_job_for(req, org_id, id, user, run_download);
    if (!job)
        return;
    if (!(job->path = strdup(path))) {
        struct sb_err err;
        files_job_free(job);
        sb_respond_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
        return;
    }
    download_job_run(req, job, inline_disposition, 0);
}

void api_files_download(struct sb_request *req)
{
    download(req, 0);
}

void api_files_get(struct sb_request *req)
{
    download(req, 1);
}
