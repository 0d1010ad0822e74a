/*
 * template_debian.c - `debian` template builds: debootstrap (minbase, with
 * the requested packages and sudo, which every debian template carries as
 * E2B's do) into a staged build's rootfs as root, then add the default user
 * with sandbox ids and its NOPASSWD sudoers entry, drop apt's caches and
 * shift the whole tree by uid_base once. The template says "sudo": true
 * (template.h): its sandboxes run without no_new_privs so setuid sudo works.
 *
 * Owns: debootstrap's child process and its wgetrc for one build. Never
 * prints (its output goes to the progress callback), never passes
 * debootstrap more of the caller's environment than the proxy variables,
 * never runs on the HTTP loop (builds block).
 */
#include "runtime/template.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/spawn.h"
#include "runtime/template_internal.h"

#define DEBIAN_SUITE "bookworm"
#define DEBIAN_MIRROR "http://deb.debian.org/debian"

/* ---------------------------------------------------------------- debian builds */

static int packages_valid(const char *packages)
{
    for (const char *p = packages; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("+-.,", *p))
            return 0;
    return packages[0] != ',' && !strstr(packages, ",,");
}

/* wget (debootstrap's downloader) would wait 15 minutes x 20 tries on a
 * silent mirror; a wgetrc makes it fail within minutes, so callers can fall back. */
static int write_wget_limits(const struct build *b, char *path, size_t len, struct sb_err *err)
{
    static const char limits[] = "timeout = 30\ntries = 3\n";
    if (path_fmt(path, len, err, "%s/wgetrc", b->dir) < 0)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 || sb_write_all(fd, limits, strlen(limits)) < 0 ? -1 : 0;
    if (fd >= 0 && close(fd) < 0)
        rc = -1;
    return rc < 0 ? sb_err_sys(err, 500, "cannot write %s", path) : 0;
}

/* Feeds each line to progress until EOF (closes fd). Keeps the last "E:"
 * line (or else the last line) in `last`: it is what explains a failure. */
static void stream_lines(int fd, sb_progress_fn progress, void *arg, char *last, size_t last_len)
{
    FILE *in = fdopen(fd, "r");
    if (!in) {
        close(fd);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int have_error = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        int is_error = strncmp(line, "E:", 2) == 0;
        if (is_error || !have_error)
            snprintf(last, last_len, "%s", line);
        have_error |= is_error;
        if (progress)
            progress(arg, line);
    }
    free(line);
    fclose(in);
}

/* Runs debootstrap into the build's rootfs, streaming its output to progress. */
static int run_debootstrap(const struct build *b, const char *packages, const char *mirror,
                           const char *cache_dir, sb_progress_fn progress, void *arg, struct sb_err *err)
{
    char wgetrc_path[SB_PATH_MAX], wgetrc[SB_PATH_MAX + 8];
    if (write_wget_limits(b, wgetrc_path, sizeof wgetrc_path, err) < 0)
        return -1;
    snprintf(wgetrc, sizeof wgetrc, "WGETRC=%s", wgetrc_path);
    char include[4096] = "", cache[SB_PATH_MAX + 16];
    snprintf(cache, sizeof cache, "--cache-dir=%s", cache_dir);
    char *argv[8] = {"debootstrap", "--variant=minbase", cache};
    int argc = 3;
    if (packages && snprintf(include, sizeof include, "--include=%s", packages) < (int)sizeof include)
        argv[argc++] = include;
    argv[argc++] = DEBIAN_SUITE;
    argv[argc++] = (char *)b->rootfs_path;
    argv[argc++] = (char *)mirror;
    char *envp[8] = {"PATH=" DEFAULT_PATH, "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive", wgetrc};
    int envc = 4;
    static const char *const passed[] = {"http_proxy", "https_proxy", "no_proxy"};
    char proxy[3][1024];
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(passed[i]);
        if (v && *v && snprintf(proxy[i], sizeof proxy[i], "%s=%s", passed[i], v) < (int)sizeof proxy[i])
            envp[envc++] = proxy[i];
    }
    pid_t pid = -1;
    int out_fd = -1;
    int src = sb_spawn_captured("/usr/sbin/debootstrap", argv, envp, &pid, &out_fd);
    if (src != 0) {
        errno = src;
        return sb_err_sys(err, 500, "cannot run /usr/sbin/debootstrap (install it: scripts/install-deps)");
    }
    char last[256] = "";
    stream_lines(out_fd, progress, arg, last, sizeof last);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    unlink(wgetrc_path);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return sb_err_set(err, 502, "debootstrap %s from %s failed (%s %d): %s", DEBIAN_SUITE, mirror,
                      WIFEXITED(status) ? "exit" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), last);
}

/* packages plus sudo (once) into out, as debootstrap's --include list. */
static int with_sudo(const char *packages, char *out, size_t len, struct sb_err *err)
{
    int has = 0;
    for (const char *p = packages; p && *p;) {
        size_t n = strcspn(p, ",");
        has |= n == 4 && strncmp(p, "sudo", 4) == 0;
        p += n + (p[n] == ',');
    }
    int n = packages && has ? snprintf(out, len, "%s", packages)
                            : snprintf(out, len, "%s%ssudo", packages ? packages : "", packages ? "," : "");
    return n < 0 || (size_t)n >= len ? sb_err_set(err, 400, "package list too long") : 0;
}

/* `user` may run anything as anyone without a password, as in E2B's
 * templates (sudo reads /etc/sudoers.d/; the file must be 0440 and root's). */
static int debian_add_sudoers(const struct rootfs *r, struct sb_err *err)
{
    if (faccessat(r->fd, "etc/sudoers.d", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return sb_err_set(err, 500, "the sudo package left no /etc/sudoers.d in the rootfs");
    return rootfs_write(r, "etc/sudoers.d/sandbase-user", DEFAULT_USER " ALL=(ALL:ALL) NOPASSWD: ALL\n", 0440,
                        0, err);
}

/* Adds `user` (uid/gid 1000) to a freshly bootstrapped system. */
static int debian_add_user(const struct rootfs *r, struct sb_err *err)
{
    const char *shell = faccessat(r->fd, "usr/bin/bash", X_OK, 0) == 0 ? "/bin/bash" : "/bin/sh";
    char line[256];
    snprintf(line, sizeof line, DEFAULT_USER ":x:%d:%d::" DEFAULT_HOME ":%s\n", DEFAULT_UID, DEFAULT_UID, shell);
    if (rootfs_append(r, "etc/passwd", line, err) < 0)
        return -1;
    snprintf(line, sizeof line, DEFAULT_USER ":x:%d:\n", DEFAULT_UID);
    if (rootfs_append(r, "etc/group", line, err) < 0 ||
        rootfs_append(r, "etc/shadow", DEFAULT_USER ":*:19000:0:99999:7:::\n", err) < 0 ||
        rootfs_append(r, "etc/gshadow", DEFAULT_USER ":!::\n", err) < 0)
        return -1;
    return make_user_dirs(r, err);
}

/* Deletes regular files in one rootfs directory whose names end in `suffix`
 * ("" = all), keeping `keep`. */
static int remove_files_in(const struct rootfs *r, const char *dir, const char *suffix,
                           const char *keep, struct sb_err *err)
{
    int fd = openat(r->fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : sb_err_sys(err, 500, "cannot open rootfs/%s", dir);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return sb_err_sys(err, 500, "cannot read rootfs/%s", dir);
    }
    int rc = 0;
    size_t suffix_len = strlen(suffix);
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_type != DT_REG || len < suffix_len || strcmp(de->d_name + len - suffix_len, suffix) != 0 ||
            (keep && strcmp(de->d_name, keep) == 0))
            continue;
        if (unlinkat(fd, de->d_name, 0) < 0)
            rc = sb_err_sys(err, 500, "cannot remove rootfs/%s/%s", dir, de->d_name);
    }
    closedir(d);
    return rc;
}

static int debian_clean(const struct rootfs *r, struct sb_err *err)
{
    if (remove_files_in(r, "var/cache/apt/archives", ".deb", NULL, err) < 0 ||
        remove_files_in(r, "var/cache/apt", ".bin", NULL, err) < 0 ||
        remove_files_in(r, "var/lib/apt/lists", "", "lock", err) < 0 ||
        write_network_files(r, err) < 0)
        return -1;
    /* No /etc/hosts or /etc/hostname in the template: each sandbox gets its
     * own naming its hostname (the shim writes them, mounts.c), so sudo,
     * which looks its host up, resolves it instead of warning on stderr. */
    static const char *const per_sandbox[] = {"etc/hosts", "etc/hostname"};
    for (size_t i = 0; i < 2; i++)
        if (unlinkat(r->fd, per_sandbox[i], 0) < 0 && errno != ENOENT)
            return sb_err_sys(err, 500, "cannot remove rootfs/%s", per_sandbox[i]);
    return 0;
}

static int debian_fill_rootfs(struct build *b, const char *data_dir, uint32_t uid_base, const char *packages,
                              const char *mirror, sb_progress_fn progress, void *arg, struct sb_err *err)
{
    char cache[SB_PATH_MAX], abs_data[SB_PATH_MAX];
    if (!realpath(data_dir, abs_data))
        return sb_err_sys(err, 500, "cannot resolve %s", data_dir);
    if (path_fmt(cache, sizeof cache, err, "%s/cache", abs_data) < 0 || mkdir_if_missing(cache, 0755, err) < 0 ||
        path_fmt(cache, sizeof cache, err, "%s/cache/debootstrap", abs_data) < 0 ||
        mkdir_if_missing(cache, 0755, err) < 0)
        return -1;
    if (run_debootstrap(b, packages, mirror, cache, progress, arg, err) < 0)
        return -1;
    sb_unmount_below(b->rootfs_path);
    if (progress)
        progress(arg, "sandbase: adding user, cleaning apt caches, mapping ownership");
    if (debian_add_user(&b->rootfs, err) < 0 || debian_add_sudoers(&b->rootfs, err) < 0 ||
        debian_clean(&b->rootfs, err) < 0)
        return -1;
    return shift_ownership(b->rootfs_path, uid_base, err);
}

int template_build_debian(const char *data_dir, const char *name, uint32_t uid_base, const char *packages,
                          const char *mirror, int force, sb_progress_fn progress, void *progress_arg,
                          struct sb_err *err)
{
    if (!mirror || !*mirror)
        mirror = getenv("SANDBASE_DEBIAN_MIRROR");
    if (!mirror || !*mirror)
        mirror = DEBIAN_MIRROR;
    if (packages && *packages == '\0')
        packages = NULL;
    if (packages && !packages_valid(packages))
        return sb_err_set(err, 400, "invalid package list '%s': use comma-separated Debian package names",
                          packages);
    if (geteuid() != 0)
        return sb_err_set(err, 403, "building a debian template needs root (debootstrap chroots and mknods)");
    char include[4000];    /* run_debootstrap's --include=... must fit in 4096 */
    if (with_sudo(packages, include, sizeof include, err) < 0)
        return -1;
    struct build b;
    /* Owners stay sandbox ids (id_add 0) until shift_ownership maps the whole tree. */
    if (build_begin(data_dir, name, 0, force, &b, err) < 0 ||
        debian_fill_rootfs(&b, data_dir, uid_base, include, mirror, progress, progress_arg, err) < 0 ||
        write_template_json(&b, name, "debian", include, 0, 1, err) < 0 ||
        build_commit(&b, data_dir, name, err) < 0) {
        build_abort(&b);
        return sb_err_prefix(err, "building template %s", name ? name : "");
    }
    return 0;
}
