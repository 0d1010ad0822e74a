/*
 * files_tar.c - a sandbox directory downloaded as a tar stream
 * (GET .../filesystem/download?path=DIR&format=tar), written by libarchive
 * (pax, so long names and large files survive).
 *
 * The walk and the archive live in one struct tar_download that a worker
 * and the loop hand to each other, never both at once: a worker job walks
 * the tree and feeds libarchive until about CHUNK bytes of archive are
 * ready, posts them to the loop, which writes them to the HTTP stream and
 * queues the next job at once, or once the client has taken enough
 * (sb_stream_on_drain) when more than WINDOW is queued. So a download holds
 * no thread while its client is slow and at most about CHUNK + WINDOW of
 * memory however large the tree.
 *
 * The walk starts at the resolved directory and goes on with openat(...,
 * O_NOFOLLOW) on single names, as the acting user; symlinks are archived as
 * links, FIFOs, devices and sockets are left out, and it never descends
 * into another filesystem or deeper than MAX_DEPTH. A file that changes
 * while it is read keeps the size it had (libarchive pads or the rest is
 * cut). An error once the stream has started can only cut it short: the
 * archive then has no end marker, which tar reports.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/app.h"
#include "api/files.h"
#include "core/log.h"
#include "http/stream.h"

#define CHUNK (256 * 1024)
#define WINDOW (1024 * 1024)
#define MAX_DEPTH 128
#define READ_PIECE (64 * 1024)

struct tar_frame {
    DIR *dir;
    char *rel;                      /* archive name of this directory */
    dev_t dev;
};

struct tar_download {
    struct sb_app *app;
    struct sb_request *req;
    struct sb_stream *stream;       /* loop only; NULL until open and after close */
    struct sb_fs fs;                /* our own root fd */
    struct archive *a;
    struct tar_frame stack[MAX_DEPTH];
    int depth;
    int file_fd;                    /* the file being archived, or -1 */
    char *buf;                      /* archive bytes ready for the stream */
    size_t len, cap;
    int done;                       /* archive complete (or failed): last chunk */
    int client_gone;                /* loop: the stream closed; free once the job is back */
    int busy;                       /* a job runs on a worker */
    char name[256];                 /* the archive's top directory */
};

static void tar_free(struct tar_download *t)
{
    if (t->a)
        archive_write_free(t->a);
    for (int i = 0; i < t->depth; i++) {
        closedir(t->stack[i].dir);
        free(t->stack[i].rel);
    }
    if (t->file_fd >= 0)
        close(t->file_fd);
    sb_fs_close(&t->fs);
    free(t->buf);
    free(t);
}

static la_ssize_t on_archive_write(struct archive *a, void *arg, const void *data, size_t len)
{
    struct tar_download *t = arg;
    if (t->len + len > t->cap) {
        size_t cap = t->cap ? t->cap : CHUNK + 64 * 1024;
        while (cap < t->len + len)
            cap *= 2;
        char *n = realloc(t->buf, cap);
        if (!n) {
            archive_set_error(a, ENOMEM, "out of memory");
            return -1;
        }
        t->buf = n;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, data, len);
    t->len += len;
    return (la_ssize_t)len;
}

static int push_dir(struct tar_download *t, int fd, const char *rel)
{
    struct stat st;
    DIR *d = NULL;
    if (t->depth >= MAX_DEPTH || fstat(fd, &st) != 0 || !(d = fdopendir(fd))) {
        close(fd);
        return -1;
    }
    char *copy = strdup(rel);
    if (!copy) {
        closedir(d);
        return -1;
    }
    t->stack[t->depth++] = (struct tar_frame){.dir = d, .rel = copy, .dev = st.st_dev};
    return 0;
}

/* Writes the header of the entry name in the top directory; for a regular
 * file leaves it open in t->file_fd; for a directory pushes it. -1 on an
 * archive error (the stream is cut). */
static int add_entry(struct tar_download *t, const char *name)
{
    struct tar_frame *top = &t->stack[t->depth - 1];
    int dfd = dirfd(top->dir);
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;   /* gone meanwhile */
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
        return 0;   /* FIFOs, devices, sockets: not archived */
    char rel[SB_FS_PATH_MAX];
    if (snprintf(rel, sizeof rel, "%s/%s", top->rel, name) >= (int)sizeof rel)
        return 0;
    int fd = -1;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        int flags = S_ISDIR(st.st_mode) ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK | O_NOCTTY;
        fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
        struct stat now;
        /* only directories tell mounts apart: overlayfs gives files the st_dev
         * of the layer they live on */
        if (fd < 0 || fstat(fd, &now) != 0 || (now.st_mode & S_IFMT) != (st.st_mode & S_IFMT) ||
            (S_ISDIR(now.st_mode) && now.st_dev != top->dev)) {
            if (fd >= 0)
                close(fd);
            return 0;   /* unreadable, swapped, or another filesystem: left out */
        }
        st = now;
    }
    struct archive_entry *e = archive_entry_new();
    if (!e) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    archive_entry_set_pathname(e, rel);
    st.st_uid = sb_fs_sandbox_id(&t->fs, st.st_uid);
    st.st_gid = sb_fs_sandbox_id(&t->fs, st.st_gid);
    archive_entry_copy_stat(e, &st);
    if (S_ISLNK(st.st_mode)) {
        char target[SB_FS_PATH_MAX];
        ssize_t n = readlinkat(dfd, name, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        archive_entry_set_symlink(e, target);
        archive_entry_set_size(e, 0);
    }
    if (S_ISDIR(st.st_mode))
        archive_entry_set_size(e, 0);
    int rc = archive_write_header(t->a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (S_ISREG(st.st_mode))
        t->file_fd = fd;
    else if (S_ISDIR(st.st_mode) && push_dir(t, fd, rel) < 0)
        return 0;
    return 0;
}

/* One step of the walk: a piece of the current file, or the next entry. */
static int walk_step(struct tar_download *t)
{
    if (t->file_fd >= 0) {
        char piece[READ_PIECE];
        ssize_t n = read(t->file_fd, piece, sizeof piece);
        if (n > 0) {
            la_ssize_t w = archive_write_data(t->a, piece, (size_t)n);
            if (w >= 0 && w == n)
                return 0;
            if (w < 0)
                return -1;
            /* the file grew past its header's size: the rest is cut */
        }
        close(t->file_fd);
        t->file_fd = -1;
        return archive_write_finish_entry(t->a) == ARCHIVE_OK ? 0 : -1;
    }
    struct tar_frame *top = &t->stack[t->depth - 1];
    struct dirent *de;
    while ((de = readdir(top->dir))) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return add_entry(t, de->d_name);
    }
    closedir(top->dir);
    free(top->rel);
    t->depth--;
    if (t->depth == 0) {
        t->done = 1;
        return archive_write_close(t->a) == ARCHIVE_OK ? 0 : -1;
    }
    return 0;
}

static void submit_chunk(struct tar_download *t);

/* Loop: a chunk is ready (or the archive ended). */
static void on_chunk(struct sb_loop *loop, void *arg)
{
    (void)loop;
    struct tar_download *t = arg;
    t->busy = 0;
    if (t->client_gone || !t->stream) {
        tar_free(t);
        return;
    }
    if (t->len && sb_stream_write(t->stream, t->buf, t->len) < 0)
        t->done = 1;
    t->len = 0;
    if (t->done) {
        sb_stream_end(t->stream);
        return;
    }
    submit_chunk(t);
}

/* Worker: fill about CHUNK bytes of archive. */
static void chunk_job(void *arg)
{
    struct tar_download *t = arg;
    struct sb_fs_creds c;
    struct sb_err err = {0};
    if (sb_fs_creds_enter(&t->fs, &c, &err) < 0) {
        t->done = 1;
    } else {
        while (!t->done && t->len < CHUNK)
            if (walk_step(t) < 0) {
                sb_warn("tar download: %s; the archive is cut short", archive_error_string(t->a));
                t->done = 1;
            }
        sb_fs_creds_leave(&c);
    }
    if (sb_loop_post(t->app->loop, on_chunk, t) < 0)
        sb_error("tar download: cannot post a chunk: out of memory");
}

static void on_drained(struct sb_stream *s, void *arg)
{
    (void)s;
    submit_chunk(arg);
}

static void submit_chunk(struct tar_download *t)
{
    if (sb_stream_queued(t->stream) > WINDOW) {
        sb_stream_on_drain(t->stream, WINDOW / 4, on_drained, t);
        return;
    }
    t->busy = 1;
    if (sb_worker_submit(t->app->workers, chunk_job, t) < 0) {
        t->busy = 0;
        sb_stream_end(t->stream);
    }
}

static void on_stream_close(void *arg, enum sb_stream_end why)
{
    (void)why;
    struct tar_download *t = arg;
    t->stream = NULL;
    t->client_gone = 1;
    if (!t->busy)
        tar_free(t);
}

/* Loop: the directory is open; answer with the stream. */
static void open_stream(struct sb_loop *loop, void *arg)
{
    (void)loop;
    struct tar_download *t = arg;
    struct sb_err err = {0};
    t->stream = sb_stream_open(t->req, 200, "application/x-tar", &err);
    if (!t->stream) {
        sb_request_complete_error(t->req, &err);
        tar_free(t);
        return;
    }
    char cd[400];
    snprintf(cd, sizeof cd, "attachment; filename=\"%s.tar\"", t->name);
    sb_stream_header(t->stream, "Content-Disposition", cd);
    sb_stream_on_close(t->stream, on_stream_close, t);
    submit_chunk(t);
}

int files_tar_start(struct files_job *job, struct sb_fs *fs, const char *abs, struct sb_err *err)
{
    struct tar_download *t = calloc(1, sizeof *t);
    if (!t)
        return sb_err_set(err, 500, "out of memory");
    t->app = api_app(job->req);
    t->req = job->req;
    t->file_fd = -1;
    t->fs = *fs;
    t->fs.passwd = t->fs.group = NULL;
    t->fs.root_fd = dup(fs->root_fd);
    const char *base = strrchr(abs, '/');
    base = base && base[1] ? base + 1 : "root";
    for (size_t i = 0; base[i] && i < sizeof t->name - 1; i++)
        t->name[i] = (unsigned char)base[i] < 0x20 || base[i] == '"' || base[i] == '\\' || base[i] == '/'
                         ? '_' : base[i];
    int fd;
    if (t->fs.root_fd < 0 || sb_fs_open_dir(&t->fs, abs, &fd, err) < 0) {
        if (t->fs.root_fd < 0)
            sb_err_sys(err, 500, "tar: dup");
        tar_free(t);
        return -1;
    }
    if (push_dir(t, fd, t->name) < 0) {
        tar_free(t);
        return sb_err_set(err, 500, "tar: cannot read directory '%s'", abs);
    }
    t->a = archive_write_new();
    if (!t->a || archive_write_set_format_pax_restricted(t->a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(t->a, 1) != ARCHIVE_OK ||
        archive_write_open2(t->a, t, NULL, on_archive_write, NULL, NULL) != ARCHIVE_OK) {
        tar_free(t);
        return sb_err_set(err, 500, "tar: cannot start the archive");
    }
    /* the top directory's own entry */
    struct archive_entry *e = archive_entry_new();
    struct stat st;
    if (!e || fstat(dirfd(t->stack[0].dir), &st) != 0) {
        archive_entry_free(e);
        tar_free(t);
        return sb_err_set(err, 500, "tar: out of memory");
    }
    st.st_uid = sb_fs_sandbox_id(&t->fs, st.st_uid);
    st.st_gid = sb_fs_sandbox_id(&t->fs, st.st_gid);
    archive_entry_set_pathname(e, t->name);
    archive_entry_copy_stat(e, &st);
    archive_entry_set_size(e, 0);
    int rc = archive_write_header(t->a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK) {
        sb_err_set(err, 500, "tar: %s", archive_error_string(t->a));
        tar_free(t);
        return -1;
    }
    if (sb_loop_post(t->app->loop, open_stream, t) < 0) {
        tar_free(t);
        return sb_err_set(err, 500, "out of memory");
    }
    return 0;
}
