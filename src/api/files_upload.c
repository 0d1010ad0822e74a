/*
 * files_upload.c - POST /sandboxes/:id/filesystem/upload and the guide's
 * alias POST /sandboxes/:id/files: one or many files, streamed to disk.
 *
 * Body: multipart/form-data (http/multipart.c) or, as E2B's envd also
 * takes, application/octet-stream with ?path=. In a multipart body a part
 * named "path" (a plain field) names the file of the parts after it; a
 * part whose name is "file" (E2B) or that has a filename is a file, written
 * to ?path= when given, else to the last "path" field, else to its
 * filename (E2B's SDK puts the whole path there). Relative paths start at
 * the acting user's home. The same path twice is a 400. Other fields are
 * ignored, as envd does.
 *
 * Constant memory: the sink (loop thread) runs the parser over each piece
 * of body and queues what it found as operations (begin a file, bytes,
 * end a file) in a batch of about FLUSH bytes; when the batch is full a
 * worker carries the
 * batch out with sandbox_files.c's writer (a temporary file renamed into
 * place at the end, so a reader never sees half a file, and a failed
 * upload leaves no partial file). Two batches: while a worker writes one,
 * the body fills the other; when both are full the body is paused (TCP
 * then slows the client) until the worker is done. One worker job at a
 * time per upload; the loop and the job share only what is handed over
 * with the batch (job_abort in, job_failed/job_err out).
 *
 * Content-Encoding: gzip (E2B's SDK sends it for `gzip: true`) is inflated
 * on the loop as the body arrives (zlib, INFLATE_CHUNK of output at a
 * time, concatenated members allowed), before the parser or the file sees
 * a byte: a body that is not gzip, or ends inside the stream, is a 400 and
 * leaves no file. Inflating stops when the batch is full (the input left
 * is kept and the body paused until the batch is written), so a piece that
 * inflates a thousandfold holds no more memory than any other; the
 * per-file cap counts inflated bytes.
 *
 * Caps: files_upload_file_max per file and files_upload_max per request
 * (413 naming the cap; a declared Content-Length past the request cap is
 * refused before the body). Answer: 200 with an array of the entries
 * written, in order (E2B's SDK needs it non-empty: no file is a 400).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/async.h"
#include "api/files.h"
#include "core/id.h"
#include "core/log.h"
#include "http/multipart.h"
#include "runtime/registry.h"

#include <zlib.h>

#define FLUSH (1024 * 1024)
#define INFLATE_CHUNK (64 * 1024)
#define MAX_FILES 1000

enum op_kind { OP_BEGIN, OP_DATA, OP_END };

struct op {
    enum op_kind kind;
    char *path;                 /* OP_BEGIN: owned */
    size_t offset, len;         /* OP_DATA: bytes in the batch's data */
};

struct batch {
    struct op *ops;
    size_t count, cap;
    char *data;
    size_t len, cap_data;
};

struct upload {
    struct sb_request *req;
    struct sb_app *app;
    char org_id[SB_ORG_ID_MAX];
    char id[32];
    char *user;
    char *query_path;           /* ?path=: every file goes there */
    char *field_path;           /* the last "path" field */
    struct sb_multipart *mp;    /* NULL: an octet-stream body */
    int gzip;                   /* the body is gzip: zs inflates it */
    int gzip_done;              /* zs reached the end of a member, nothing after yet */
    z_stream zs;
    unsigned char *inflated;    /* INFLATE_CHUNK of zs's output */
    char *gz_left;              /* gzip input not inflated yet (the batch was full) */
    size_t gz_left_len, gz_left_cap;
    int in_file;                /* parser: inside a file part */
    int in_path_field;          /* parser: inside the "path" field */
    size_t field_len;
    uint64_t file_bytes;        /* of the current file part */
    char **seen;                /* paths begun, to refuse duplicates */
    size_t seen_count;
    struct batch pending;       /* loop: filled by the parser */
    struct batch flight;        /* worker: being written */
    struct sb_err failure;      /* the first error; answered at the end */
    int failed;
    int ended;                  /* the body is over (on_end ran, or the sink stopped) */
    int busy;                   /* loop: a batch is on a worker */
    int waiting;                /* loop: both batches are full: the body is paused */
    int flushed;                /* loop: the first batch went (it opens the files) */
    /* handed over with each batch: set by the loop before it, read after it */
    int job_abort;              /* the upload failed: abort the open file, write nothing */
    int job_failed;             /* the worker's verdict on the batch */
    struct sb_err job_err;
    /* worker side */
    int fs_open;
    struct sb_fs fs;
    struct sb_fs_writer writer;
    int writing;
    json_t *written;            /* entries of the files committed */
};

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->count; i++)
        free(b->ops[i].path);
    b->count = 0;
    b->len = 0;
}

static void batch_free(struct batch *b)
{
    batch_clear(b);
    free(b->ops);
    free(b->data);
}

static void upload_free(struct upload *u)
{
    if (u->writing)
        sb_fs_write_abort(&u->fs, &u->writer);
    if (u->fs_open)
        sb_fs_close(&u->fs);
    sb_multipart_free(u->mp);
    if (u->gzip)
        inflateEnd(&u->zs);
    free(u->inflated);
    free(u->gz_left);
    batch_free(&u->pending);
    batch_free(&u->flight);
    for (size_t i = 0; i < u->seen_count; i++)
        free(u->seen[i]);
    free(u->seen);
    free(u->user);
    free(u->query_path);
    free(u->field_path);
    json_decref(u->written);
    free(u);
}

static int fail(struct upload *u, const struct sb_err *err)
{
    if (!u->failed) {
        u->failed = 1;
        u->failure = *err;
    }
    return -1;
}

static int push_op(struct upload *u, enum op_kind kind, char *path, const char *data, size_t len,
                   struct sb_err *err)
{
    struct batch *b = &u->pending;
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct op *n = realloc(b->ops, cap * sizeof *n);
        if (!n)
            return sb_err_set(err, 500, "out of memory");
        b->ops = n;
        b->cap = cap;
    }
    if (len && b->len + len > b->cap_data) {
        size_t cap = b->cap_data ? b->cap_data : FLUSH + 64 * 1024;
        while (cap < b->len + len)
            cap *= 2;
        char *n = realloc(b->data, cap);
        if (!n)
            return sb_err_set(err, 500, "out of memory");
        b->data = n;
        b->cap_data = cap;
    }
    /* consecutive bytes of one file are one op */
    if (kind == OP_DATA && b->count && b->ops[b->count - 1].kind == OP_DATA) {
        memcpy(b->data + b->len, data, len);
        b->ops[b->count - 1].len += len;
        b->len += len;
        return 0;
    }
    b->ops[b->count++] = (struct op){.kind = kind, .path = path, .offset = b->len, .len = len};
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* A file part begins: where does it go? */
static int begin_file(struct upload *u, const char *filename, struct sb_err *err)
{
    const char *target = u->query_path ? u->query_path : u->field_path ? u->field_path : filename;
    if (!target || !*target)
        return sb_err_set(err, 400, "a file part has no path: send a \"path\" field before it, ?path=, "
                          "or the full path as its filename");
    if (u->seen_count >= MAX_FILES)
        return sb_err_set(err, 400, "more than %d files in one upload", MAX_FILES);
    for (size_t i = 0; i < u->seen_count; i++)
        if (strcmp(u->seen[i], target) == 0)
            return sb_err_set(err, 400, "path '%s' appears twice in one upload", target);
    char **seen = realloc(u->seen, (u->seen_count + 1) * sizeof *seen);
    if (!seen)
        return sb_err_set(err, 500, "out of memory");
    u->seen = seen;
    char *copy = strdup(target), *copy2 = strdup(target);
    if (!copy || !copy2) {
        free(copy);
        free(copy2);
        return sb_err_set(err, 500, "out of memory");
    }
    u->seen[u->seen_count++] = copy2;
    u->in_file = 1;
    u->file_bytes = 0;
    if (push_op(u, OP_BEGIN, copy, NULL, 0, err) < 0) {
        free(copy);
        return -1;
    }
    return 0;
}

static int file_bytes(struct upload *u, const char *data, size_t len, struct sb_err *err)
{
    size_t cap = u->app->cfg.files_upload_file_max;
    u->file_bytes += len;
    if (u->file_bytes > cap)
        return sb_err_set(err, 413, "file '%s' is larger than %zu bytes, the limit for one uploaded file "
                          "(files_upload_file_max)", u->seen[u->seen_count - 1], cap);
    return push_op(u, OP_DATA, NULL, data, len, err);
}

/* ---- the parser's callbacks (loop) ---- */

static int on_part_begin(void *arg, const char *name, const char *filename, const char *type,
                         struct sb_err *err)
{
    (void)type;
    struct upload *u = arg;
    if (strcmp(name, "path") == 0 && !filename) {
        u->in_path_field = 1;
        u->field_len = 0;
        free(u->field_path);
        u->field_path = calloc(1, SB_FS_PATH_MAX);
        return u->field_path ? 0 : sb_err_set(err, 500, "out of memory");
    }
    if (strcmp(name, "file") == 0 || filename)
        return begin_file(u, filename, err);
    return 0;   /* another field: ignored */
}

static int on_part_data(void *arg, const char *data, size_t len, struct sb_err *err)
{
    struct upload *u = arg;
    if (u->in_path_field) {
        if (u->field_len + len >= SB_FS_PATH_MAX || memchr(data, '\0', len))
            return sb_err_set(err, 400, "the path field is longer than %d bytes or holds a NUL",
                              SB_FS_PATH_MAX - 1);
        memcpy(u->field_path + u->field_len, data, len);
        u->field_len += len;
        return 0;
    }
    return u->in_file ? file_bytes(u, data, len, err) : 0;
}

static int on_part_end(void *arg, struct sb_err *err)
{
    struct upload *u = arg;
    if (u->in_path_field) {
        u->in_path_field = 0;
        if (!u->field_len)
            return sb_err_set(err, 400, "the path field is empty");
        return 0;
    }
    if (!u->in_file)
        return 0;
    u->in_file = 0;
    return push_op(u, OP_END, NULL, NULL, 0, err);
}

static const struct sb_multipart_callbacks parser_callbacks = {on_part_begin, on_part_data, on_part_end};

/* ---- the worker ---- */

static int apply_op(struct upload *u, const struct op *op, const char *data, struct sb_err *err)
{
    switch (op->kind) {
    case OP_BEGIN:
        if (sb_fs_write_begin(&u->fs, op->path, &u->writer, err) < 0)
            return -1;
        u->writing = 1;
        return 0;
    case OP_DATA:
        return sb_fs_write_chunk(&u->fs, &u->writer, data + op->offset, op->len, err);
    case OP_END: {
        u->writing = 0;
        if (sb_fs_write_commit(&u->fs, &u->writer, err) < 0) {
            sb_fs_write_abort(&u->fs, &u->writer);
            return -1;
        }
        json_t *entry = files_stat_json(&u->fs, u->writer.path, err);
        if (!entry)
            return -1;
        json_array_append_new(u->written, entry);
        return 0;
    }
    }
    return 0;
}

static void after_batch(struct sb_loop *loop, void *arg);

/* Worker: writes the batch in flight (opening the sandbox's files first). */
static void batch_job(void *arg)
{
    struct upload *u = arg;
    struct sb_err *err = &u->job_err;
    u->job_failed = u->job_abort;
    if (!u->job_failed && !u->fs_open) {
        if (registry_fs_open(u->app->registry, u->org_id, u->id, u->user, &u->fs, err) < 0) {
            sb_fs_close(&u->fs);
            u->job_failed = 1;
        } else {
            u->fs_open = 1;
        }
    }
    for (size_t i = 0; !u->job_failed && i < u->flight.count; i++)
        if (apply_op(u, &u->flight.ops[i], u->flight.data, err) < 0)
            u->job_failed = 1;
    if (u->job_failed && u->writing) {
        sb_fs_write_abort(&u->fs, &u->writer);
        u->writing = 0;
    }
    batch_clear(&u->flight);
    if (sb_loop_post(u->app->loop, after_batch, u) < 0)
        sb_error("upload to %s: cannot post to the loop: out of memory", u->id);
}

/* ---- the sink (loop) ---- */

/* Answers once the body is over and no batch is in flight. */
static void finish(struct upload *u)
{
    struct sb_request *req = u->req;
    if (u->failed) {
        sb_request_complete_error(req, &u->failure);
    } else if (json_array_size(u->written) == 0) {
        struct sb_err err;
        sb_request_complete_error(req, (sb_err_set(&err, 400, "the upload holds no file: send a part named "
                                                   "\"file\" (multipart/form-data) or ?path= with the "
                                                   "bytes as the body"), &err));
    } else {
        sb_request_complete_json(req, 200, json_incref(u->written));
    }
    upload_free(u);
}

/* Sends the pending batch to a worker (the body is paused or over). 0 when
 * it went; -1 when it could not (failed, nothing sent). */
static int flush(struct upload *u)
{
    struct batch t = u->flight;
    u->flight = u->pending;
    u->pending = t;
    u->busy = 1;
    u->flushed = 1;
    u->job_abort = u->failed;
    u->job_failed = 0;
    if (sb_worker_submit(u->app->workers, batch_job, u) < 0) {
        struct sb_err err;
        u->busy = 0;
        fail(u, (sb_err_set(&err, 503, "server busy: cannot queue the upload's writes"), &err));
        t = u->flight;
        u->flight = u->pending;
        u->pending = t;
        return -1;
    }
    return 0;
}

/* The body is over (or given up) and nothing is on a worker: one last job
 * writes what is left, or aborts a half-written file, then finish. */
static void wind_up(struct upload *u)
{
    if (u->failed)
        batch_clear(&u->pending);
    if ((u->pending.count || u->writing) && flush(u) == 0)
        return;
    finish(u);
}

/* Body bytes as they are after decoding: to the parser or the file. */
static int consume(struct upload *u, const char *data, size_t len, struct sb_err *err)
{
    return u->mp ? sb_multipart_feed(u->mp, data, len, err) : file_bytes(u, data, len, err);
}

/* Inflates gzip input into consume, INFLATE_CHUNK at a time: data, or
 * (data NULL) what an earlier call kept. It stops once the pending batch
 * is full, so a small body that inflates to much never fills more than a
 * batch in memory, and keeps the input not yet inflated in gz_left.
 * 0: all used; 1: the batch is full and input is kept; -1 with err. */
static int inflate_input(struct upload *u, const char *data, size_t len, struct sb_err *err)
{
    if (data) {
        u->zs.next_in = (unsigned char *)data;
        u->zs.avail_in = (uInt)len;
    } else {
        u->zs.next_in = (unsigned char *)u->gz_left;
        u->zs.avail_in = (uInt)u->gz_left_len;
    }
    while (u->zs.avail_in > 0) {
        if (u->pending.len >= FLUSH) {
            size_t rest = u->zs.avail_in;
            if (data && rest > u->gz_left_cap) {
                char *n = realloc(u->gz_left, rest);
                if (!n)
                    return sb_err_set(err, 500, "out of memory");
                u->gz_left = n;
                u->gz_left_cap = rest;
            }
            memmove(u->gz_left, u->zs.next_in, rest);
            u->gz_left_len = rest;
            return 1;
        }
        if (u->gzip_done) {             /* another member follows (gzip allows several) */
            if (inflateReset(&u->zs) != Z_OK)
                return sb_err_set(err, 500, "gzip: cannot reset the decoder");
            u->gzip_done = 0;
        }
        u->zs.next_out = u->inflated;
        u->zs.avail_out = INFLATE_CHUNK;
        int zrc = inflate(&u->zs, Z_NO_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
            return sb_err_set(err, 400, "the body is not valid gzip (Content-Encoding: gzip): %s",
                              u->zs.msg ? u->zs.msg : "corrupt data");
        size_t out = INFLATE_CHUNK - u->zs.avail_out;
        if (out && consume(u, (const char *)u->inflated, out, err) < 0)
            return -1;
        if (zrc == Z_STREAM_END)
            u->gzip_done = 1;
        else if (zrc == Z_BUF_ERROR && out == 0)
            break;                      /* needs more input */
    }
    u->gz_left_len = 0;
    return 0;
}

static void after_batch(struct sb_loop *loop, void *arg)
{
    (void)loop;
    struct upload *u = arg;
    u->busy = 0;
    if (u->job_failed && !u->job_abort)
        fail(u, &u->job_err);
    if (u->ended) {
        wind_up(u);     /* the body ended while we wrote: write the rest, or abort */
        return;
    }
    if (u->failed) {
        /* answered before the body's end: the server reads the rest and drops it */
        finish(u);
        return;
    }
    if (u->waiting) {
        u->waiting = 0;
        if (flush(u) < 0) {
            finish(u);
            return;
        }
    }
    if (u->gz_left_len) {
        /* gzip input that inflated past a batch: the body stays paused until it is used */
        struct sb_err err = {0};
        int rc = inflate_input(u, NULL, 0, &err);
        if (rc < 0) {
            fail(u, &err);
            u->ended = 1;   /* answered now; the rest of the body is read and dropped */
            if (!u->busy)
                wind_up(u);
            return;
        }
        if (rc == 1) {
            if (u->busy)
                u->waiting = 1;
            else if (flush(u) < 0)
                finish(u);
            return;
        }
    }
    sb_request_body_resume(u->req);     /* nothing when it was not paused */
}

/* The end of a gzip body: the last member must be complete. */
static int inflate_finish(struct upload *u, struct sb_err *err)
{
    if (!u->gzip_done)
        return sb_err_set(err, 400, "the body ends inside its gzip stream (Content-Encoding: gzip): "
                          "truncated upload");
    return 0;
}

static enum sb_body_verdict on_body(struct sb_request *req, void *arg, const char *data, size_t len)
{
    (void)req;
    struct upload *u = arg;
    struct sb_err err = {0};
    int rc = u->gzip ? inflate_input(u, data, len, &err) : consume(u, data, len, &err);
    if (rc < 0) {
        fail(u, &err);
        u->ended = 1;   /* SB_BODY_STOP: no on_end follows */
        if (!u->busy)   /* else after_batch winds up */
            wind_up(u);
        return SB_BODY_STOP;
    }
    /* the first batch goes at once and alone: it opens the sandbox's files,
     * so a wrong sandbox or user is known before much of the body has come */
    if (!u->flushed) {
        if (flush(u) < 0) {
            u->ended = 1;
            finish(u);
            return SB_BODY_STOP;
        }
        return SB_BODY_PAUSE;
    }
    if (rc == 1) {
        /* gzip input is kept: the batch goes, and the body waits until the
         * input is used (after_batch) */
        if (u->busy)
            u->waiting = 1;
        else if (flush(u) < 0) {
            u->ended = 1;
            finish(u);
            return SB_BODY_STOP;
        }
        return SB_BODY_PAUSE;
    }
    if (u->pending.len < FLUSH && u->pending.count < 256)
        return SB_BODY_CONTINUE;
    if (u->busy) {
        u->waiting = 1;     /* both batches full: wait for the worker */
        return SB_BODY_PAUSE;
    }
    /* the worker writes this batch while the body fills the other */
    if (flush(u) < 0) {
        u->ended = 1;
        finish(u);
        return SB_BODY_STOP;
    }
    return SB_BODY_CONTINUE;
}

static void on_body_end(struct sb_request *req, void *arg, const struct sb_err *body_err)
{
    (void)req;
    struct upload *u = arg;
    struct sb_err err = {0};
    u->ended = 1;
    if (body_err) {
        err = *body_err;
        if (err.status == 413)
            sb_err_set(&err, 413, "upload larger than %zu bytes, the limit for one request (files_upload_max)",
                       u->app->cfg.files_upload_max);
        fail(u, &err);
    } else if (u->gzip && inflate_finish(u, &err) < 0) {
        fail(u, &err);
    } else if (u->mp && sb_multipart_finish(u->mp, &err) < 0) {
        fail(u, &err);
    } else if (!u->mp && push_op(u, OP_END, NULL, NULL, 0, &err) < 0) {
        fail(u, &err);
    }
    if (!u->busy)       /* else after_batch winds up */
        wind_up(u);
}

/* The gzip decoder (gzip framing only, as Content-Encoding: gzip means). */
static int gzip_init(struct upload *u)
{
    if (!(u->inflated = malloc(INFLATE_CHUNK)) || inflateInit2(&u->zs, 16 + MAX_WBITS) != Z_OK)
        return -1;
    u->gzip = 1;
    return 0;
}

/* Starts the upload of req's body into org's sandbox id as user (NULL:
 * default), every file to path when it is not NULL. */
static void upload(struct sb_request *req, const char *org_id, const char *id, const char *user,
                   const char *path)
{
    struct sb_err err = {0};
    struct upload *u = calloc(1, sizeof *u);
    if (!u) {
        sb_respond_error(req, (sb_err_set(&err, 500, "out of memory"), &err));
        return;
    }
    u->req = req;
    u->app = api_app(req);
    snprintf(u->org_id, sizeof u->org_id, "%s", org_id);
    snprintf(u->id, sizeof u->id, "%s", id ? id : "");
    const char *ct = sb_request_header(req, "Content-Type");
    const char *encoding = sb_request_header(req, "Content-Encoding");
    int gzip = encoding && strcasecmp(encoding, "gzip") == 0;
    u->written = json_array();
    if (!u->written || (user && !(u->user = strdup(user))) || (path && *path && !(u->query_path = strdup(path)))) {
        sb_err_set(&err, 500, "out of memory");
    } else if (!sb_id_valid("sbx_", u->id)) {
        sb_err_set(&err, 400, "invalid sandbox id: %s", u->id);
    } else if (encoding && *encoding && strcasecmp(encoding, "identity") != 0 && !gzip) {
        sb_err_set(&err, 415, "Content-Encoding %s is not supported: send the bytes uncompressed or as gzip",
                   encoding);
    } else if (gzip && gzip_init(u) < 0) {
        sb_err_set(&err, 500, "out of memory");
    } else if (sb_multipart_is_form(ct)) {
        u->mp = sb_multipart_new(ct, &parser_callbacks, u, &err);
    } else if (!u->query_path) {
        sb_err_set(&err, 400, "send multipart/form-data, or the file's bytes with ?path=");
    } else {
        begin_file(u, u->query_path, &err);     /* the body is the file */
    }
    if (!err.status)
        sb_request_body_sink(req, u->app->cfg.files_upload_max, on_body, on_body_end, u, &err);
    if (err.status) {
        if (err.status == 413)
            sb_err_set(&err, 413, "upload larger than %zu bytes, the limit for one request (files_upload_max)",
                       u->app->cfg.files_upload_max);
        upload_free(u);
        sb_respond_error(req, &err);
    }
}

void files_upload_as(struct sb_request *req, const char *org_id, const char *id, const char *user,
                     const char *path)
{
    upload(req, org_id, id, user, path);
}

void api_files_upload(struct sb_request *req)
{
    const char *user = sb_request_query(req, "user");
    if (!user)
        user = sb_request_query(req, "username");
    upload(req, req->org_id, sb_request_param(req, "id"), user, sb_request_query(req, "path"));
}
