/*
 * cp.c - `sandbase cp SRC DST`: copies files and directories between this
 * machine and a sandbox, like `docker cp`; one side is SANDBOX:/path.
 *
 * It talks to a running server through the file API (SANDBASE_URL, default
 * http://127.0.0.1:3000; the key from --key or SANDBASE_API_KEY): a file
 * goes up as one octet-stream upload and comes down as one download; a
 * directory goes up file by file (and mkdir for empty ones) and comes down
 * as the server's tar stream, unpacked by libarchive with its secure
 * extraction flags (no "..", no absolute paths, no writing through
 * symlinks), since a sandbox's archive is hostile input. A DST that is an
 * existing directory (or ends with "/") receives SRC under its own name.
 * Large transfers show a progress line when stderr is a terminal.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/http_client.h"
#include "core/id.h"

#define USAGE "usage: sandbase cp [--url URL] [--key KEY] [--user user|root] SRC DST  (one of them SANDBOX:/path)\n"
#define PROGRESS_MIN (8u << 20)
#define PATH_MAX_CP 4096

struct cp {
    struct cli_http http;
    const char *user;
    /* progress */
    int tty;
    const char *label;
    int64_t start_ms, last_ms;
    int shown;
};

static void progress(void *arg, uint64_t done, uint64_t total)
{
    struct cp *cp = arg;
    if (!cp->tty || (total != UINT64_MAX && total < PROGRESS_MIN))
        return;
    int64_t now = sb_mono_ms();
    if (now - cp->last_ms < 200 && done != total)
        return;
    cp->last_ms = now;
    double s = (double)(now - cp->start_ms) / 1000.0;
    double mib = (double)done / 1048576.0;
    if (total != UINT64_MAX)
        fprintf(stderr, "\r%s  %.1f / %.1f MiB  %3d%%  %.0f MiB/s   ", cp->label, mib, (double)total / 1048576.0,
                (int)(done * 100 / (total ? total : 1)), s > 0 ? mib / s : 0.0);
    else
        fprintf(stderr, "\r%s  %.1f MiB  %.0f MiB/s   ", cp->label, mib, s > 0 ? mib / s : 0.0);
    cp->shown = 1;
}

static void progress_start(struct cp *cp, const char *label)
{
    cp->label = label;
    cp->start_ms = sb_mono_ms();
    cp->last_ms = 0;
    cp->shown = 0;
}

static void progress_end(struct cp *cp)
{
    if (cp->shown)
        fputc('\n', stderr);
    cp->shown = 0;
}

/* "/sandboxes/ID/filesystem<route>?path=P[&user=U]<extra>" */
static void api_path(const struct cp *cp, char *out, size_t len, const char *id, const char *route,
                     const char *path, const char *extra)
{
    snprintf(out, len, "/sandboxes/%s/filesystem%s?path=", id, route);
    cli_http_escape(path, out, len);
    if (cp->user) {
        size_t n = strlen(out);
        snprintf(out + n, len - n, "&user=%s", cp->user);
    }
    if (extra) {
        size_t n = strlen(out);
        snprintf(out + n, len - n, "%s", extra);
    }
}

/* The entry type at a sandbox path ("file", "dir", ...), or "" when missing. */
static int remote_type(struct cp *cp, const char *id, const char *path, char *type, size_t len,
                       struct sb_err *err)
{
    char url[PATH_MAX_CP * 3 + 128], body[8192];
    struct cli_http_response r;
    api_path(cp, url, sizeof url, id, "/stat", path, NULL);
    if (cli_http_request(&cp->http, "GET", url, NULL, &r, err) < 0)
        return -1;
    type[0] = '\0';
    if (r.status == 404) {
        /* the sandbox or the path: only a missing path is fine */
        int rc = cli_http_error(&r, err);
        cli_http_close(&r);
        if (!strstr(err->msg, "does not exist"))
            return rc;
        sb_err_clear(err);
        return 0;
    }
    if (r.status != 200) {
        cli_http_error(&r, err);
        cli_http_close(&r);
        return -1;
    }
    size_t n = 0;
    long got;
    while (n < sizeof body - 1 && (got = cli_http_read(&r, body + n, sizeof body - 1 - n, err)) > 0)
        n += (size_t)got;
    body[n] = '\0';
    cli_http_close(&r);
    json_t *j = json_loads(body, 0, NULL);
    snprintf(type, len, "%s", j && json_string_value(json_object_get(j, "type")) ?
             json_string_value(json_object_get(j, "type")) : "");
    json_decref(j);
    return 0;
}

static const char *base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *p = path + n;
    while (p > path && p[-1] != '/')
        p--;
    return p;
}

static void join(char *out, size_t len, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    snprintf(out, len, "%.*s/%s", (int)n, dir, name);
    size_t m = strlen(out);
    while (m > 1 && out[m - 1] == '/')
        out[--m] = '\0';
}

/* ---- up ---- */

static int upload_file(struct cp *cp, const char *local, const char *id, const char *remote, struct sb_err *err)
{
    int fd = open(local, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return sb_err_sys(err, 400, "%s", local);
    }
    char url[PATH_MAX_CP * 3 + 128];
    api_path(cp, url, sizeof url, id, "/upload", remote, NULL);
    struct cli_http_body body = {"application/octet-stream", fd, NULL, (uint64_t)st.st_size};
    struct cli_http_response r;
    progress_start(cp, base_name(local));
    int rc = cli_http_request(&cp->http, "POST", url, &body, &r, err);
    progress_end(cp);
    close(fd);
    if (rc < 0)
        return -1;
    if (r.status != 200)
        rc = cli_http_error(&r, err);
    cli_http_close(&r);
    return rc;
}

static int remote_mkdir(struct cp *cp, const char *id, const char *remote, struct sb_err *err)
{
    json_t *j = json_pack("{s:s, s:b}", "path", remote, "parents", 1);
    if (cp->user)
        json_object_set_new(j, "user", json_string(cp->user));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char url[128];
    snprintf(url, sizeof url, "/sandboxes/%s/filesystem/mkdir", id);
    struct cli_http_body body = {"application/json", -1, text, text ? strlen(text) : 0};
    struct cli_http_response r;
    int rc = text ? cli_http_request(&cp->http, "POST", url, &body, &r, err) : sb_err_set(err, 500, "out of memory");
    free(text);
    if (rc < 0)
        return -1;
    if (r.status != 200)
        rc = cli_http_error(&r, err);
    cli_http_close(&r);
    return rc;
}

static int upload_tree(struct cp *cp, const char *local, const char *id, const char *remote, struct sb_err *err)
{
    if (remote_mkdir(cp, id, remote, err) < 0)
        return -1;
    DIR *d = opendir(local);
    if (!d)
        return sb_err_sys(err, 400, "%s", local);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char l[PATH_MAX_CP], rpath[PATH_MAX_CP];
        join(l, sizeof l, local, de->d_name);
        join(rpath, sizeof rpath, remote, de->d_name);
        struct stat st;
        if (lstat(l, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = upload_tree(cp, l, id, rpath, err);
        else if (S_ISREG(st.st_mode))
            rc = upload_file(cp, l, id, rpath, err);
        /* symlinks, FIFOs, devices: left out, as the server's tar does */
    }
    closedir(d);
    return rc;
}

static int copy_up(struct cp *cp, const char *local, const char *id, const char *remote, struct sb_err *err)
{
    struct stat st;
    if (stat(local, &st) != 0)
        return sb_err_sys(err, 400, "%s", local);
    char type[16] = "", target[PATH_MAX_CP];
    snprintf(target, sizeof target, "%s", remote);
    int into = remote[strlen(remote) - 1] == '/';
    if (!into && remote_type(cp, id, remote, type, sizeof type, err) < 0)
        return -1;
    if (into || strcmp(type, "dir") == 0)
        join(target, sizeof target, remote, base_name(local));
    return S_ISDIR(st.st_mode) ? upload_tree(cp, local, id, target, err) : upload_file(cp, local, id, target, err);
}

/* ---- down ---- */

static int download_file(struct cp *cp, const char *id, const char *remote, const char *local, struct sb_err *err)
{
    char url[PATH_MAX_CP * 3 + 128], tmp[PATH_MAX_CP + 32];
    api_path(cp, url, sizeof url, id, "/download", remote, NULL);
    struct cli_http_response r;
    if (cli_http_request(&cp->http, "GET", url, NULL, &r, err) < 0)
        return -1;
    if (r.status != 200) {
        cli_http_error(&r, err);
        cli_http_close(&r);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.sbcp-%d", local, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        cli_http_close(&r);
        return sb_err_sys(err, 400, "%s", local);
    }
    static char buf[1 << 20];
    uint64_t done = 0;
    long got;
    int rc = 0;
    progress_start(cp, base_name(remote));
    while ((got = cli_http_read(&r, buf, sizeof buf, err)) > 0) {
        if (write(fd, buf, (size_t)got) != got) {
            rc = sb_err_sys(err, 500, "writing %s", local);
            break;
        }
        done += (uint64_t)got;
        progress(cp, done, r.length);
    }
    progress_end(cp);
    if (got < 0)
        rc = -1;
    cli_http_close(&r);
    if (close(fd) != 0 && rc == 0)
        rc = sb_err_sys(err, 500, "writing %s", local);
    if (rc == 0 && rename(tmp, local) != 0)
        rc = sb_err_sys(err, 500, "renaming to %s", local);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

struct tar_source {
    struct cli_http_response *r;
    struct cp *cp;
    uint64_t done;
    char buf[256 * 1024];
    struct sb_err err;
};

static la_ssize_t tar_read(struct archive *a, void *arg, const void **out)
{
    struct tar_source *t = arg;
    long got = cli_http_read(t->r, t->buf, sizeof t->buf, &t->err);
    if (got < 0) {
        archive_set_error(a, EIO, "%s", t->err.msg);
        return -1;
    }
    t->done += (uint64_t)got;
    progress(t->cp, t->done, UINT64_MAX);
    *out = t->buf;
    return got;
}

/* Unpacks the tar of remote dir into local: under its own name when local
 * is a directory, else as local itself (its top component renamed). */
static int download_tree(struct cp *cp, const char *id, const char *remote, const char *local, int into,
                         struct sb_err *err)
{
    char url[PATH_MAX_CP * 3 + 128];
    api_path(cp, url, sizeof url, id, "/download", remote, "&format=tar");
    struct cli_http_response r;
    if (cli_http_request(&cp->http, "GET", url, NULL, &r, err) < 0)
        return -1;
    if (r.status != 200) {
        cli_http_error(&r, err);
        cli_http_close(&r);
        return -1;
    }
    struct tar_source *t = calloc(1, sizeof *t);
    struct archive *in = archive_read_new(), *out = archive_write_disk_new();
    int rc = 0;
    if (!t || !in || !out) {
        rc = sb_err_set(err, 500, "out of memory");
        goto done;
    }
    t->r = &r;
    t->cp = cp;
    archive_read_support_format_tar(in);
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                        ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                        ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
    if (archive_read_open(in, t, NULL, tar_read, NULL) != ARCHIVE_OK) {
        rc = sb_err_set(err, 502, "reading the archive: %s", archive_error_string(in));
        goto done;
    }
    /* extraction is relative to local (the secure flags refuse absolute
     * paths), so work from inside it; cp is single-threaded */
    if ((!into && mkdir(local, 0755) != 0 && errno != EEXIST) || chdir(local) != 0) {
        rc = sb_err_sys(err, 400, "%s", local);
        goto done;
    }
    progress_start(cp, base_name(remote));
    struct archive_entry *e;
    int ar, skipped = 0;
    while ((ar = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
        char name[PATH_MAX_CP];
        snprintf(name, sizeof name, "%s", archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
        const char *rest = strchr(name, '/');
        if (!into && (!rest || !rest[1]))
            continue;   /* the top directory ("tree" or "tree/") is local itself */
        archive_entry_set_pathname(e, into ? name : rest + 1);
        if (archive_write_header(out, e) != ARCHIVE_OK) {
            fprintf(stderr, "sandbase cp: %s: %s (skipped)\n", name, archive_error_string(out));
            skipped++;
            continue;
        }
        const void *block;
        size_t size;
        la_int64_t offset;
        while (archive_read_data_block(in, &block, &size, &offset) == ARCHIVE_OK)
            archive_write_data_block(out, block, size, offset);
        archive_write_finish_entry(out);
    }
    progress_end(cp);
    if (ar != ARCHIVE_EOF)
        rc = sb_err_set(err, 502, "the archive was cut short: %s", archive_error_string(in));
    else if (skipped)
        rc = sb_err_set(err, 500, "%d entries could not be written (see above)", skipped);
done:
    if (in)
        archive_read_free(in);
    if (out)
        archive_write_free(out);
    free(t);
    cli_http_close(&r);
    return rc;
}

static int copy_down(struct cp *cp, const char *id, const char *remote, const char *local, struct sb_err *err)
{
    char type[16];
    if (remote_type(cp, id, remote, type, sizeof type, err) < 0)
        return -1;
    if (!type[0])
        return sb_err_set(err, 404, "%s:%s does not exist", id, remote);
    struct stat st;
    int local_dir = stat(local, &st) == 0 && S_ISDIR(st.st_mode);
    if (strcmp(type, "dir") == 0)
        return download_tree(cp, id, remote, local, local_dir, err);     /* the last step: it chdirs */
    char target[PATH_MAX_CP];
    snprintf(target, sizeof target, "%s", local);
    if (local_dir)
        join(target, sizeof target, local, base_name(remote));
    return download_file(cp, id, remote, target, err);
}

/* "sbx_…:/path" -> id and path; 0 when spec is a local path. */
static int split_remote(const char *spec, char *id, size_t len, const char **path)
{
    const char *colon = strchr(spec, ':');
    if (!colon || strncmp(spec, "sbx_", 4) != 0 || (size_t)(colon - spec) >= len)
        return 0;
    memcpy(id, spec, (size_t)(colon - spec));
    id[colon - spec] = '\0';
    *path = colon[1] ? colon + 1 : "~";
    return sb_id_valid("sbx_", id) ? 1 : 0;
}

int cli_cp(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'}, {"key", required_argument, NULL, 'k'},
        {"user", required_argument, NULL, 'U'}, {"help", no_argument, NULL, 'h'},
        {"data-dir", required_argument, NULL, 'd'},     /* moved here by main; cp does not use it */
        {NULL, 0, NULL, 0},
    };
    const char *url = getenv("SANDBASE_URL"), *key = getenv("SANDBASE_API_KEY");
    struct cp cp = {.tty = isatty(2)};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u': url = optarg; break;
        case 'k': key = optarg; break;
        case 'U': cp.user = optarg; break;
        case 'h': fputs(USAGE, stdout); return 0;
        case 'd': break;
        default: fputs(USAGE, stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    struct sb_err err = {0};
    if (!key || !*key) {
        sb_err_set(&err, 401, "no API key: pass --key KEY or set SANDBASE_API_KEY");
        return cli_fail(&err);
    }
    if (cli_http_init(&cp.http, url && *url ? url : "http://127.0.0.1:3000", key, &err) < 0)
        return cli_fail(&err);
    cp.http.progress = progress;
    cp.http.progress_arg = &cp;
    char src_id[32], dst_id[32];
    const char *src_path = argv[optind], *dst_path = argv[optind + 1];
    int src_remote = split_remote(argv[optind], src_id, sizeof src_id, &src_path);
    int dst_remote = split_remote(argv[optind + 1], dst_id, sizeof dst_id, &dst_path);
    if (src_remote == dst_remote) {
        fprintf(stderr, "sandbase cp: exactly one of SRC and DST must be SANDBOX:/path\n" USAGE);
        return 2;
    }
    int rc = src_remote ? copy_down(&cp, src_id, src_path, dst_path, &err)
                        : copy_up(&cp, src_path, dst_id, dst_path, &err);
    return rc < 0 ? cli_fail(&err) : 0;
}
