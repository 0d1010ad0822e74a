/*
 * template_build.c - building a template: staging it in
 * <data-dir>/templates/.build-<name>-XXXXXX, writing its template.json and
 * /etc, and committing it in one rename (renameat2 EXCHANGE when replacing),
 * so a reader sees either the old template or the new one and a failed build
 * leaves nothing behind. Host builds are here; debian builds use the same
 * steps (template_debian.c).
 *
 * Owns: a build's staging directory until it is committed or removed. Never
 * prints, never copies host secrets (only a fixed list of harmless /etc
 * entries), never runs on the HTTP loop (builds block).
 */
#include "runtime/template.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/id.h"
#include "runtime/template_internal.h"

/* ---------------------------------------------------------------- staging a build */

static int exists_error(const char *name, struct sb_err *err)
{
    return sb_err_set(err, 409, "template %s already exists; rebuild it with --force (running "
                                "sandboxes keep the tree they started from)", name);
}

int build_begin(const char *data_dir, const char *name, uint32_t id_add, int force,
                struct build *b, struct sb_err *err)
{
    memset(b, 0, sizeof *b);
    b->rootfs.fd = -1;
    b->rootfs.id_add = id_add;
    if (!template_name_valid(name))
        return sb_err_set(err, 400, "invalid template name '%s': use 1-63 of [a-z0-9_-], starting "
                                    "with a letter or digit", name ? name : "");
    char templates[SB_PATH_MAX], staging[SB_PATH_MAX];
    if (path_fmt(templates, sizeof templates, err, "%s/templates", data_dir) < 0 ||
        path_fmt(b->final, sizeof b->final, err, "%s/%s", templates, name) < 0 ||
        path_fmt(staging, sizeof staging, err, "%s/.build-%s-XXXXXX", templates, name) < 0)
        return -1;
    b->force = force;
    if (!force && access(b->final, F_OK) == 0)
        return exists_error(name, err);
    if (mkdir_if_missing(data_dir, 0755, err) < 0 || mkdir_if_missing(templates, 0755, err) < 0)
        return -1;
    if (!mkdtemp(staging))
        return sb_err_sys(err, 500, "cannot create build directory in %s", templates);
    memcpy(b->dir, staging, sizeof b->dir);
    /* Sandboxes' mapped root must be able to traverse to the rootfs. */
    if (chmod(b->dir, 0755) < 0 ||
        path_fmt(b->rootfs_path, sizeof b->rootfs_path, err, "%s/rootfs", b->dir) < 0 ||
        mkdir(b->rootfs_path, 0755) < 0 ||
        (b->rootfs.fd = open(b->rootfs_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return sb_err_sys(err, 500, "cannot set up build directory %s", b->dir);
    if (fchown(b->rootfs.fd, id_add, id_add) < 0 || fchmod(b->rootfs.fd, 0755) < 0)
        return sb_err_sys(err, 500, "cannot chown %s", b->rootfs_path);
    return 0;
}

/* Removes everything a failed build made. */
void build_abort(struct build *b)
{
    if (b->rootfs.fd >= 0)
        close(b->rootfs.fd);
    b->rootfs.fd = -1;
    if (b->dir[0]) {
        struct sb_err ignored;
        remove_tree(b->dir, &ignored);
    }
    b->dir[0] = '\0';
}

/* Moves the finished build into place in one rename. With force, an
 * existing template of the same name is swapped out atomically and retired:
 * sandboxes running on it keep it until they end (template_gc). */
int build_commit(struct build *b, const char *data_dir, const char *name, struct sb_err *err)
{
    close(b->rootfs.fd);
    b->rootfs.fd = -1;
    if (renameat2(AT_FDCWD, b->dir, AT_FDCWD, b->final, RENAME_NOREPLACE) == 0) {
        b->dir[0] = '\0';
        return 0;
    }
    if (errno != EEXIST)
        return sb_err_sys(err, 500, "cannot move build into %s", b->final);
    if (!b->force)
        return exists_error(name, err);
    if (renameat2(AT_FDCWD, b->dir, AT_FDCWD, b->final, RENAME_EXCHANGE) < 0)
        return sb_err_sys(err, 500, "cannot replace %s", b->final);
    /* b->dir now holds the old template and the new one is live: a failure
     * to retire the old copy only leaves a hidden .build-* behind. */
    struct sb_err ignored;
    if (retire_dir(data_dir, name, b->dir, &ignored) < 0)
        remove_tree(b->dir, &ignored);
    b->dir[0] = '\0';
    struct sb_err gc_err = {0};
    template_gc(data_dir, &gc_err);
    return 0;
}

/* ---------------------------------------------------------------- template.json */

static json_t *packages_array(const char *packages)
{
    json_t *arr = json_array();
    if (!packages)
        return arr;
    char *copy = strdup(packages), *save = NULL;
    for (char *p = copy ? strtok_r(copy, ",", &save) : NULL; p; p = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(p));
    free(copy);
    return arr;
}

int write_template_json(const struct build *b, const char *name, const char *kind,
                        const char *packages, int bind_usr, int sudo, struct sb_err *err)
{
    char created[32];
    sb_time_rfc3339(sb_wall_ms(), created, sizeof created);
    json_t *binds = json_array();
    if (bind_usr)
        json_array_append_new(binds, json_pack("{s:s, s:s, s:b}", "source", "/usr", "target", "/usr",
                                               "readonly", 1));
    /* HOME is the default user's; a sandbox run as root should use /root. */
    json_t *root = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:{s:s, s:s, s:s}, s:o, s:o, s:b, s:s}",
                             "name", name, "kind", kind, "user", DEFAULT_USER, "uid", DEFAULT_UID,
                             "gid", DEFAULT_UID, "home", DEFAULT_HOME, "workdir", DEFAULT_WORKDIR,
                             "env", "PATH", DEFAULT_PATH, "HOME", DEFAULT_HOME, "LANG", "C.UTF-8",
                             "binds", binds, "packages", packages_array(packages), "sudo", sudo,
                             "createdAt", created);
    if (!root)
        return sb_err_set(err, 500, "cannot build template.json");
    char path[SB_PATH_MAX];
    int rc = path_fmt(path, sizeof path, err, "%s/template.json", b->dir);
    if (rc == 0 && json_dump_file(root, path, JSON_INDENT(2)) < 0)
        rc = sb_err_sys(err, 500, "cannot write %s", path);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- /etc contents */

int write_network_files(const struct rootfs *r, struct sb_err *err)
{
    if (rootfs_write(r, "etc/hostname", "sandbox\n", 0644, 0, err) < 0 ||
        rootfs_write(r, "etc/hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                     0644, 0, err) < 0 ||
        rootfs_write(r, "etc/resolv.conf", "# sandboxes have loopback-only networking\nnameserver 127.0.0.1\n",
                     0644, 0, err) < 0)
        return -1;
    return 0;
}

static int write_host_etc(const struct rootfs *r, struct sb_err *err)
{
    const char *shell = access("/usr/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
    char passwd[512];
    snprintf(passwd, sizeof passwd,
             "root:x:0:0:root:/root:%s\n"
             DEFAULT_USER ":x:%d:%d::" DEFAULT_HOME ":%s\n"
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
             shell, DEFAULT_UID, DEFAULT_UID, shell);
    char group[256];
    snprintf(group, sizeof group,
             "root:x:0:\ntty:x:5:\nusers:x:100:" DEFAULT_USER "\n" DEFAULT_USER ":x:%d:\nnogroup:x:65534:\n",
             DEFAULT_UID);
    if (rootfs_write(r, "etc/passwd", passwd, 0644, 0, err) < 0 ||
        rootfs_write(r, "etc/group", group, 0644, 0, err) < 0 ||
        rootfs_write(r, "etc/nsswitch.conf",
                     "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                     "networks: files\nprotocols: files\nservices: files\n", 0644, 0, err) < 0 ||
        rootfs_write(r, "etc/profile",
                     "# sandbase host template: login shell environment\n"
                     "export PATH=\"" DEFAULT_PATH "\"\nexport LANG=C.UTF-8\numask 022\n",
                     0644, 0, err) < 0 ||
        rootfs_write(r, "etc/sandbase-template",
                     "This root was assembled from the host's /usr (read-only bind).\n"
                     "Install nothing here: build a debian template for that.\n", 0644, 0, err) < 0 ||
        rootfs_symlink(r, "../usr/lib/os-release", "etc/os-release", err) < 0 ||
        rootfs_symlink(r, "../proc/self/mounts", "etc/mtab", err) < 0)
        return -1;
    return write_network_files(r, err);
}

/*
 * Host /etc entries that programs from /usr need to run sanely: the dynamic
 * linker cache, Debian's alternatives symlink farm (/usr/bin/awk -> ...),
 * CA certificates (never /etc/ssl/private), python's site config, terminfo.
 * A fixed list, so no host secret can leak into a template.
 */
static const char *const host_etc_copies[] = {
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl/certs", "ssl/openssl.cnf",
    "python3", "python3.11", "python3.12", "python3.13", "bash.bashrc", "inputrc", "protocols",
    "services", "mime.types", "localtime", "timezone", "debian_version", "terminfo", "gai.conf",
    "host.conf", "skel",
};

static int copy_host_etc(const struct rootfs *r, struct sb_err *err)
{
    int host_etc = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dst_etc = openat(r->fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = 0;
    if (host_etc < 0 || dst_etc < 0)
        rc = sb_err_sys(err, 500, "cannot open /etc for copying");
    struct copy_owner owner = {.dst = r, .force_id = -1};
    for (size_t i = 0; rc == 0 && i < sizeof host_etc_copies / sizeof host_etc_copies[0]; i++) {
        const char *name = host_etc_copies[i];
        if (faccessat(host_etc, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (strncmp(name, "ssl/", 4) == 0 && mkdirat(dst_etc, "ssl", 0755) == 0)
            rc = rootfs_chown(r, "etc/ssl", 0, err);
        if (rc == 0)
            rc = copy_entry(host_etc, name, dst_etc, name, &owner, err);
    }
    if (host_etc >= 0)
        close(host_etc);
    if (dst_etc >= 0)
        close(dst_etc);
    return rc;
}

/* The default user's home, seeded from the rootfs's own etc/skel if any. */
int make_user_dirs(const struct rootfs *r, struct sb_err *err)
{
    if (rootfs_mkdir(r, "home", 0755, 0, err) < 0 ||
        rootfs_mkdir(r, "home/user", 0755, DEFAULT_UID, err) < 0 ||
        rootfs_mkdir(r, "workspace", 0755, DEFAULT_UID, err) < 0)
        return -1;
    if (faccessat(r->fd, "etc/skel", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    struct copy_owner owner = {.dst = r, .force_id = DEFAULT_UID};
    int home = openat(r->fd, "home", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int skel = openat(r->fd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = home < 0 || skel < 0 ? sb_err_sys(err, 500, "cannot open rootfs/home")
                                  : copy_entry(skel, "skel", home, "user", &owner, err);
    if (home >= 0)
        close(home);
    if (skel >= 0)
        close(skel);
    /* copy_entry gave home/user skel's mode; the contract is 0755. */
    if (rc == 0 && fchmodat(r->fd, "home/user", 0755, 0) < 0)
        rc = sb_err_sys(err, 500, "cannot chmod rootfs/home/user");
    return rc;
}

/* ---------------------------------------------------------------- host builds */

struct layout_entry {
    const char *path;
    mode_t mode;        /* 0 = symlink to `target` */
    const char *target;
};

static const struct layout_entry host_layout[] = {
    {"usr", 0755, NULL},      {"bin", 0, "usr/bin"},    {"sbin", 0, "usr/sbin"},
    {"lib", 0, "usr/lib"},    {"etc", 0755, NULL},      {"tmp", 01777, NULL},
    {"root", 0700, NULL},     {"proc", 0755, NULL},     {"dev", 0755, NULL},
    {"sys", 0755, NULL},      {"run", 0755, NULL},      {"var", 0755, NULL},
    {"var/tmp", 01777, NULL}, {"opt", 0755, NULL},      {"mnt", 0755, NULL},
};

static int host_fill_rootfs(const struct rootfs *r, struct sb_err *err)
{
    for (size_t i = 0; i < sizeof host_layout / sizeof host_layout[0]; i++) {
        const struct layout_entry *e = &host_layout[i];
        int rc = e->mode ? rootfs_mkdir(r, e->path, e->mode, 0, err)
                         : rootfs_symlink(r, e->target, e->path, err);
        if (rc < 0)
            return -1;
    }
    if (access("/usr/lib64", F_OK) == 0 && rootfs_symlink(r, "usr/lib64", "lib64", err) < 0)
        return -1;
    if (copy_host_etc(r, err) < 0 || write_host_etc(r, err) < 0)
        return -1;
    return make_user_dirs(r, err);
}

int template_build_host(const char *data_dir, const char *name, uint32_t uid_base, int force,
                        struct sb_err *err)
{
    struct build b;
    if (build_begin(data_dir, name, uid_base, force, &b, err) < 0 || host_fill_rootfs(&b.rootfs, err) < 0 ||
        write_template_json(&b, name, "host", NULL, 1, 0, err) < 0 || build_commit(&b, data_dir, name, err) < 0) {
        build_abort(&b);
        return sb_err_prefix(err, "building template %s", name ? name : "");
    }
    return 0;
}
