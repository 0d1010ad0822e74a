/*
 * test_template.c - templates for real on this machine: host builds into a
 * fresh data dir (layout, mapped ownership, modes, template.json), loading,
 * listing, removal, limits, owners ("org") and snapshots of a hostile
 * tree (template_snapshot), and a debian build against a dead mirror (the
 * failure path: progress lines streamed, nothing left behind). The slow real
 * debootstrap lives in the integration tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/fs.h"
#include "runtime/template.h"

#define UID_BASE 100000u

static char data_dir[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(data_dir, sizeof data_dir, "/tmp/sb-template-test-XXXXXX");
    return mkdtemp(data_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(data_dir, remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static void rootfs_path(char *out, size_t len, const char *name, const char *rel)
{
    snprintf(out, len, "%s/templates/%s/rootfs/%s", data_dir, name, rel);
}

static struct stat lstat_in(const char *name, const char *rel)
{
    char path[512];
    struct stat st;
    rootfs_path(path, sizeof path, name, rel);
    if (lstat(path, &st) < 0)
        fail_msg("missing %s", path);
    return st;
}

static char *read_in(const char *name, const char *rel)
{
    char path[512];
    rootfs_path(path, sizeof path, name, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Names in <data-dir>/templates starting with '.': leftovers of builds/removals. */
static int hidden_entries(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/templates", data_dir);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] == '.' && strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void build_host(const char *name, uint32_t uid_base)
{
    struct sb_err err = {0};
    if (template_build_host(data_dir, name, uid_base, 1, &err) < 0)
        fail_msg("build %s: %s", name, err.msg);
}

static void test_name_valid(void **state)
{
    (void)state;
    char longest[64], too_long[65];
    memset(longest, 'a', 63);
    longest[63] = '\0';
    memset(too_long, 'a', 64);
    too_long[64] = '\0';
    assert_true(template_name_valid("base"));
    assert_true(template_name_valid("code_interpreter"));
    assert_true(template_name_valid("0-x"));
    assert_true(template_name_valid(longest));
    assert_false(template_name_valid(too_long));
    assert_false(template_name_valid(""));
    assert_false(template_name_valid(NULL));
    assert_false(template_name_valid("A"));
    assert_false(template_name_valid("../x"));
    assert_false(template_name_valid("a/b"));
    assert_false(template_name_valid("-a"));
    assert_false(template_name_valid("_a"));
    assert_false(template_name_valid(".build-x"));
    assert_false(template_name_valid("a.b"));
}

static void test_build_host_layout_and_ownership(void **state)
{
    (void)state;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    build_host("t1", UID_BASE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(seconds < 1.0);

    struct stat st = lstat_in("t1", "");
    assert_int_equal(st.st_uid, UID_BASE);
    assert_int_equal(st.st_mode & 07777, 0755);
    st = lstat_in("t1", "home/user");
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_uid, UID_BASE + 1000);
    assert_int_equal(st.st_gid, UID_BASE + 1000);
    assert_int_equal(st.st_mode & 07777, 0755);
    st = lstat_in("t1", "workspace");
    assert_int_equal(st.st_uid, UID_BASE + 1000);
    st = lstat_in("t1", "etc/passwd");
    assert_int_equal(st.st_uid, UID_BASE);
    assert_int_equal(st.st_gid, UID_BASE);
    assert_int_equal(lstat_in("t1", "tmp").st_mode & 07777, 01777);
    assert_int_equal(lstat_in("t1", "var/tmp").st_mode & 07777, 01777);
    assert_int_equal(lstat_in("t1", "root").st_mode & 07777, 0700);
    const char *dirs[] = {"usr", "etc", "proc", "dev", "sys", "run"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        assert_true(S_ISDIR(lstat_in("t1", dirs[i]).st_mode));

    char path[512], target[64];
    rootfs_path(path, sizeof path, "t1", "bin");
    ssize_t n = readlink(path, target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "usr/bin");
    assert_int_equal(lstat_in("t1", "bin").st_uid, UID_BASE);
    rootfs_path(path, sizeof path, "t1", "lib64");
    assert_int_equal(access("/usr/lib64", F_OK) == 0, lstat(path, &st) == 0);

    assert_non_null(strstr(read_in("t1", "etc/passwd"), "\nuser:x:1000:1000::/home/user:/bin/"));
    assert_non_null(strstr(read_in("t1", "etc/passwd"), "root:x:0:0:"));
    assert_non_null(strstr(read_in("t1", "etc/group"), "tty:x:5:"));
    assert_non_null(strstr(read_in("t1", "etc/hosts"), "127.0.0.1"));
    assert_non_null(strstr(read_in("t1", "etc/profile"), "PATH="));
    rootfs_path(path, sizeof path, "t1", "etc/ssl/private");
    assert_int_equal(lstat(path, &st), -1); /* host secrets are never copied */
    assert_int_equal(hidden_entries(), 0);
}

static void test_host_copies_alternatives(void **state)
{
    (void)state;
    char host_target[512];
    ssize_t n = readlink("/etc/alternatives/awk", host_target, sizeof host_target - 1);
    if (n < 0)
        skip();
    host_target[n] = '\0';
    build_host("alt", UID_BASE);
    char path[512], target[512];
    rootfs_path(path, sizeof path, "alt", "etc/alternatives/awk");
    n = readlink(path, target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, host_target);
    assert_int_equal(lstat_in("alt", "etc/alternatives/awk").st_uid, UID_BASE);
}

static void test_uid_base_is_honoured(void **state)
{
    (void)state;
    build_host("shifted", 300000);
    assert_int_equal(lstat_in("shifted", "etc/passwd").st_uid, 300000);
    assert_int_equal(lstat_in("shifted", "home/user").st_uid, 301000);
}

static void test_load_round_trip(void **state)
{
    (void)state;
    build_host("rt", UID_BASE);
    struct sb_template t;
    struct sb_err err = {0};
    if (template_load(data_dir, "rt", &t, &err) < 0)
        fail_msg("load: %s", err.msg);
    assert_string_equal(t.name, "rt");
    assert_string_equal(t.kind, "host");
    assert_string_equal(t.user, "user");
    assert_int_equal(t.uid, 1000);
    assert_int_equal(t.gid, 1000);
    assert_string_equal(t.home, "/home/user");
    assert_string_equal(t.workdir, "/workspace");
    char expect[512];
    snprintf(expect, sizeof expect, "%s/templates/rt/rootfs", data_dir);
    assert_string_equal(t.rootfs, expect);
    assert_int_equal(t.bind_count, 1);
    assert_string_equal(t.binds[0].source, "/usr");
    assert_string_equal(t.binds[0].target, "/usr");
    assert_int_equal(t.binds[0].readonly, 1);
    assert_non_null(strstr(t.env_json, "\"PATH\":\"/usr/local/sbin:"));
    assert_non_null(strstr(t.env_json, "\"HOME\":\"/home/user\""));
    assert_int_equal(strlen(t.created_at), 20);
    assert_int_equal(t.created_at[19], 'Z');
    assert_int_equal(t.limits.memory_mb, 0);
    assert_int_equal(t.sudo, 0);    /* host builds: the host's /usr is nosuid and root's */
    template_clear(&t);
    assert_null(t.env_json);
}

static void test_load_unknown(void **state)
{
    (void)state;
    struct sb_template t;
    struct sb_err err = {0};
    assert_int_equal(template_load(data_dir, "nope", &t, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.msg, "unknown template: nope");
    assert_int_equal(template_load(data_dir, "../x", &t, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.msg, "unknown template: ../x");
}

static void write_template_json(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/templates", data_dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/templates/%s", data_dir, name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/templates/%s/template.json", data_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_corrupt_names_the_file(void **state)
{
    (void)state;
    build_host("good", UID_BASE);
    write_template_json("broken", "{\"kind\": ");
    struct sb_template t;
    struct sb_err err = {0};
    assert_int_equal(template_load(data_dir, "broken", &t, &err), -1);
    assert_int_equal(err.status, 500);
    assert_non_null(strstr(err.msg, "templates/broken/template.json"));
    write_template_json("wrongtype", "{\"kind\":\"host\",\"user\":\"user\",\"uid\":\"x\",\"gid\":1000,"
                                     "\"home\":\"/h\",\"workdir\":\"/h\",\"env\":{}}");
    assert_int_equal(template_load(data_dir, "wrongtype", &t, &err), -1);
    assert_int_equal(err.status, 500);
    assert_non_null(strstr(err.msg, "\"uid\""));
    struct sb_template *list;
    size_t count;
    assert_int_equal(template_list(data_dir, &list, &count, &err), -1);
    assert_int_equal(err.status, 500);
}

/* "sudo": a boolean, false when absent; anything else names the file and
 * the field, and loads nothing. */
static void test_sudo_field(void **state)
{
    (void)state;
    static const char head[] = "{\"kind\":\"debian\",\"user\":\"user\",\"uid\":1000,\"gid\":1000,"
                               "\"home\":\"/home/user\",\"workdir\":\"/workspace\",\"env\":{}";
    char text[512];
    struct sb_template t;
    struct sb_err err = {0};
    const struct { const char *name, *field; int ok, sudo; } cases[] = {
        {"on", ",\"sudo\":true}", 1, 1},     {"off", ",\"sudo\":false}", 1, 0},
        {"absent", "}", 1, 0},                 {"string", ",\"sudo\":\"yes\"}", 0, 0},
        {"number", ",\"sudo\":1}", 0, 0},      {"null", ",\"sudo\":null}", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, cases[i].field);
        write_template_json(cases[i].name, text);
        err = (struct sb_err){0};
        int rc = template_load(data_dir, cases[i].name, &t, &err);
        if (cases[i].ok) {
            if (rc < 0)
                fail_msg("%s: %s", cases[i].name, err.msg);
            assert_int_equal(t.sudo, cases[i].sudo);
            template_clear(&t);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(err.status, 500);
            assert_non_null(strstr(err.msg, "\"sudo\" must be true or false"));
            assert_non_null(strstr(err.msg, "template.json"));
        }
    }
}

/* "org" and "snapshot" load; template_visible is the owner rule. */
static void test_org_and_snapshot_fields(void **state)
{
    (void)state;
    static const char head[] = "{\"kind\":\"host\",\"user\":\"user\",\"uid\":1000,\"gid\":1000,"
                               "\"home\":\"/home/user\",\"workdir\":\"/workspace\",\"env\":{}";
    char text[512];
    struct sb_template t;
    struct sb_err err = {0};
    snprintf(text, sizeof text, "%s,\"org\":\"org_a\",\"snapshot\":{\"sandboxID\":\"sbx_1\",\"name\":\"n\"}}", head);
    write_template_json("owned", text);
    assert_int_equal(template_load(data_dir, "owned", &t, &err), 0);
    assert_string_equal(t.org_id, "org_a");
    assert_string_equal(t.snapshot_of, "sbx_1");
    assert_string_equal(t.snapshot_name, "n");
    assert_true(template_visible(&t, "org_a"));
    assert_false(template_visible(&t, "org_b"));
    assert_false(template_visible(&t, NULL));
    template_clear(&t);
    snprintf(text, sizeof text, "%s}", head);
    write_template_json("shared", text);
    assert_int_equal(template_load(data_dir, "shared", &t, &err), 0);
    assert_string_equal(t.org_id, "");
    assert_true(template_visible(&t, "org_b"));
    template_clear(&t);
    const char *bad[] = {",\"org\":7}", ",\"snapshot\":\"x\"}", ",\"snapshot\":{\"name\":\"n\"}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, bad[i]);
        write_template_json("bad", text);
        err = (struct sb_err){0};
        assert_int_equal(template_load(data_dir, "bad", &t, &err), -1);
        assert_int_equal(err.status, 500);
        assert_non_null(strstr(err.msg, "\"org\""));
    }
}

static int count_hidden_dirs(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/templates", data_dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] == '.' && strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* A snapshot of a hostile tree: links copied as links (never followed),
 * special files left out, set-uid dropped (no sudo), owners kept in range
 * and mapped to root outside it, hard links split; the bound refuses with
 * 507 and leaves nothing. */
static void test_snapshot_of_a_hostile_tree(void **state)
{
    (void)state;
    build_host("base", UID_BASE);
    char src[512], path[600], outside[512];
    snprintf(src, sizeof src, "%s/src", data_dir);
    snprintf(outside, sizeof outside, "%s/outside", data_dir);
    assert_int_equal(mkdir(src, 0755), 0);
    snprintf(path, sizeof path, "%s/a", src);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("hello", f);
    fclose(f);
    assert_int_equal(chown(path, UID_BASE + 1000, UID_BASE + 1000), 0);
    assert_int_equal(chmod(path, 04755), 0);
    char h2[600];
    snprintf(h2, sizeof h2, "%s/h2", src);
    assert_int_equal(link(path, h2), 0);
    snprintf(path, sizeof path, "%s/evil", src);
    assert_int_equal(symlink(outside, path), 0);
    snprintf(path, sizeof path, "%s/fifo", src);
    assert_int_equal(mkfifo(path, 0644), 0);
    snprintf(path, sizeof path, "%s/null", src);
    assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(1, 3)), 0);
    snprintf(path, sizeof path, "%s/d", src);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chown(path, 12345, 12345), 0);     /* outside the sandbox range */

    int root = open(src, O_RDONLY | O_DIRECTORY);
    assert_true(root >= 0);
    struct sb_snapshot_request req = {
        .root_fd = root, .name = "snap-aaaaaaaaaaaaaaaaaaaa", .source_template = "base", .org_id = "org_a",
        .sandbox_id = "sbx_bbbbbbbbbbbbbbbbbbbb", .label = "lbl", .uid_base = UID_BASE, .max_bytes = 10,
    };
    struct sb_err err = {0};
    assert_int_equal(template_snapshot(data_dir, &req, &err), -1);
    assert_int_equal(err.status, 507);
    struct sb_template t;
    assert_int_equal(template_load(data_dir, req.name, &t, &err), -1);
    assert_int_equal(count_hidden_dirs(), 0);

    uint64_t need = 0;
    assert_int_equal(template_snapshot_measure(root, 0, &need, &err), 0);
    /* a, h2, evil, d (the root itself is not counted; fifo and null are left out) and "hello" twice */
    assert_int_equal(need, 4 * SB_SNAPSHOT_ENTRY_BYTES + 10);
    req.max_bytes = need;
    if (template_snapshot(data_dir, &req, &err) < 0)
        fail_msg("%s", err.msg);
    close(root);
    assert_int_equal(template_load(data_dir, req.name, &t, &err), 0);
    assert_string_equal(t.org_id, "org_a");
    assert_string_equal(t.snapshot_of, "sbx_bbbbbbbbbbbbbbbbbbbb");
    assert_string_equal(t.snapshot_name, "lbl");
    assert_string_equal(t.kind, "host");
    template_clear(&t);

    struct stat a = lstat_in(req.name, "a"), b = lstat_in(req.name, "h2"), d = lstat_in(req.name, "d");
    assert_int_equal(a.st_mode & 07777, 0755);
    assert_int_equal(a.st_uid, UID_BASE + 1000);
    assert_int_not_equal(a.st_ino, b.st_ino);
    assert_int_equal(d.st_uid, UID_BASE);
    assert_int_equal(d.st_mode & 07777, 0700);
    char target[512];
    rootfs_path(path, sizeof path, req.name, "evil");
    ssize_t n = readlink(path, target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, outside);
    assert_int_equal(access(outside, F_OK), -1);
    rootfs_path(path, sizeof path, req.name, "fifo");
    assert_int_equal(access(path, F_OK), -1);
    rootfs_path(path, sizeof path, req.name, "null");
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_hidden_dirs(), 0);

    /* the id must be a snapshot's */
    req.name = "plain";
    assert_int_equal(template_snapshot(data_dir, &req, &err), -1);
    assert_int_equal(err.status, 400);
}

static void test_limits_override_and_clamp(void **state)
{
    (void)state;
    write_template_json("lim", "{\"kind\":\"host\",\"user\":\"user\",\"uid\":1000,\"gid\":1000,"
                               "\"home\":\"/home/user\",\"workdir\":\"/home/user\",\"env\":{},"
                               "\"binds\":[],\"limits\":{\"memory_mb\":100000,\"pids\":64}}");
    struct sb_template t;
    struct sb_err err = {0};
    if (template_load(data_dir, "lim", &t, &err) < 0)
        fail_msg("load: %s", err.msg);
    assert_int_equal(t.limits.memory_mb, 100000);
    assert_int_equal(t.limits.pids, 64);
    struct sb_config cfg;
    sb_config_defaults(&cfg);
    struct sb_limits eff;
    template_effective_limits(&t, &cfg, &eff);
    assert_int_equal(eff.memory_mb, cfg.maxima.memory_mb);   /* clamped */
    assert_int_equal(eff.pids, 64);                          /* overridden */
    assert_int_equal(eff.cpu_count, cfg.defaults.cpu_count); /* default */
    assert_int_equal(eff.disk_mb, cfg.defaults.disk_mb);
    cfg.defaults.disk_mb = 20000; /* a default above the maximum is clamped too */
    template_effective_limits(&t, &cfg, &eff);
    assert_int_equal(eff.disk_mb, cfg.maxima.disk_mb);
    template_clear(&t);
}

static void test_list_sorted_skips_non_templates(void **state)
{
    (void)state;
    build_host("zeta", UID_BASE);
    build_host("alpha", UID_BASE);
    build_host("mid", UID_BASE);
    char path[512];
    snprintf(path, sizeof path, "%s/templates/not-a-template", data_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/templates/.build-x-abcdef", data_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    struct sb_template *list;
    size_t count;
    struct sb_err err = {0};
    if (template_list(data_dir, &list, &count, &err) < 0)
        fail_msg("list: %s", err.msg);
    assert_int_equal(count, 3);
    assert_string_equal(list[0].name, "alpha");
    assert_string_equal(list[1].name, "mid");
    assert_string_equal(list[2].name, "zeta");
    assert_string_equal(list[2].kind, "host");
    template_list_free(list, count);
}

static void test_list_without_templates_dir(void **state)
{
    (void)state;
    struct sb_template *list = (struct sb_template *)&list;
    size_t count = 7;
    struct sb_err err = {0};
    assert_int_equal(template_list(data_dir, &list, &count, &err), 0);
    assert_int_equal(count, 0);
    assert_null(list);
}

static void test_remove(void **state)
{
    (void)state;
    build_host("gone", UID_BASE);
    struct sb_err err = {0};
    if (template_remove(data_dir, "gone", &err) < 0)
        fail_msg("remove: %s", err.msg);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/templates/gone", data_dir);
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(hidden_entries(), 0);
    assert_int_equal(template_remove(data_dir, "gone", &err), -1);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.msg, "unknown template: gone");
    assert_int_equal(template_remove(data_dir, "../x", &err), -1);
    assert_int_equal(err.status, 404);
}

static void test_rebuild_replaces_atomically(void **state)
{
    (void)state;
    build_host("again", UID_BASE);
    char marker[512];
    rootfs_path(marker, sizeof marker, "again", "workspace/old-build");
    FILE *f = fopen(marker, "w");
    assert_non_null(f);
    fclose(f);
    build_host("again", UID_BASE);
    assert_int_equal(access(marker, F_OK), -1);
    assert_int_equal(lstat_in("again", "home/user").st_uid, UID_BASE + 1000);
    assert_int_equal(hidden_entries(), 0);
}

/* Without force an existing template is never replaced; with force a held
 * tree is retired, not deleted, and collected once nobody holds it. */
static void test_rebuild_of_a_template_in_use(void **state)
{
    (void)state;
    struct sb_err err = {0};
    build_host("busy", UID_BASE);
    assert_int_equal(template_build_host(data_dir, "busy", UID_BASE, 0, &err), -1);
    assert_int_equal(err.status, 409);
    assert_non_null(strstr(err.msg, "--force"));
    assert_int_equal(hidden_entries(), 0);

    struct sb_template old;
    int held = -1;
    assert_int_equal(template_load(data_dir, "busy", &old, &err), 0);
    assert_int_equal(sb_dir_hold(old.dir, old.identity, &held, &err), 0);
    char marker[SB_PATH_MAX + 16];
    snprintf(marker, sizeof marker, "%s/templates/busy/rootfs/marker", data_dir);
    FILE *f = fopen(marker, "w");
    assert_non_null(f);
    fclose(f);
    uint64_t before = 0, after = 0;
    assert_int_equal(template_identity(data_dir, "busy", &before), 0);

    build_host("busy", UID_BASE);       /* force */
    assert_int_equal(template_identity(data_dir, "busy", &after), 0);
    assert_true(before != after);
    assert_int_equal(access(marker, F_OK), -1);        /* the live tree is new */
    assert_int_equal(hidden_entries(), 1);             /* the old one is retired, whole */
    assert_int_equal(template_gc(data_dir, &err), 0);
    assert_int_equal(hidden_entries(), 1);
    /* a hold taken on the old load now fails: that tree is retired */
    int late = -1;
    assert_int_equal(sb_dir_hold(old.dir, old.identity, &late, &err), -1);
    assert_int_equal(err.status, 409);

    close(held);
    assert_int_equal(template_gc(data_dir, &err), 0);
    assert_int_equal(hidden_entries(), 0);
    template_clear(&old);

    /* removing works the same way */
    assert_int_equal(template_load(data_dir, "busy", &old, &err), 0);
    assert_int_equal(sb_dir_hold(old.dir, old.identity, &held, &err), 0);
    assert_int_equal(template_remove(data_dir, "busy", &err), 0);
    assert_int_equal(template_identity(data_dir, "busy", &after), -1);
    assert_int_equal(hidden_entries(), 1);
    close(held);
    assert_int_equal(template_gc(data_dir, &err), 0);
    assert_int_equal(hidden_entries(), 0);
    template_clear(&old);
}

static void test_invalid_name_builds_nothing(void **state)
{
    (void)state;
    struct sb_err err = {0};
    assert_int_equal(template_build_host(data_dir, "../evil", UID_BASE, 0, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(template_build_host(data_dir, "A", UID_BASE, 0, &err), -1);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/evil", data_dir);
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(hidden_entries(), 0);
}

struct progress_log {
    int lines;
};

static void count_progress(void *arg, const char *line)
{
    (void)line;
    ((struct progress_log *)arg)->lines++;
}

/* A real debootstrap against a port nobody listens on: it must fail with the
 * mirror in the message, stream its output, and leave no template behind. */
static void test_debian_failed_build_leaves_nothing(void **state)
{
    (void)state;
    if (geteuid() != 0 || access("/usr/sbin/debootstrap", X_OK) != 0)
        skip();
    build_host("deb", UID_BASE); /* an existing template survives a failed rebuild */
    struct progress_log log = {0};
    struct sb_err err = {0};
    assert_int_equal(template_build_debian(data_dir, "deb", UID_BASE, "python3", "http://127.0.0.1:9/debian", 1,
                                           count_progress, &log, &err), -1);
    assert_int_equal(err.status, 502);
    assert_non_null(strstr(err.msg, "http://127.0.0.1:9/debian"));
    assert_true(log.lines > 0);
    assert_int_equal(hidden_entries(), 0);
    struct sb_template t;
    if (template_load(data_dir, "deb", &t, &err) < 0)
        fail_msg("old template lost: %s", err.msg);
    assert_string_equal(t.kind, "host");
    template_clear(&t);
}

static void test_debian_rejects_bad_packages(void **state)
{
    (void)state;
    struct sb_err err = {0};
    assert_int_equal(template_build_debian(data_dir, "deb", UID_BASE, "python3;rm -rf /", NULL, 0, NULL, NULL,
                                           &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(template_build_debian(data_dir, "deb", UID_BASE, "a,,b", NULL, 0, NULL, NULL, &err), -1);
    assert_int_equal(err.status, 400);
}

static int run_cli(int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    return cli_template(argc, argv);
}

static void test_cli(void **state)
{
    (void)state;
    assert_int_equal(run_cli(1, "template"), 2);
    assert_int_equal(run_cli(2, "template", "frobnicate"), 2);
    assert_int_equal(run_cli(3, "template", "build", "x"), 2);                        /* no --from */
    assert_int_equal(run_cli(5, "template", "build", "x", "--from", "scratch"), 2);
    assert_int_equal(run_cli(7, "template", "build", "x", "--from", "host", "--packages", "vim"), 2);
    assert_int_equal(run_cli(4, "template", "list", "--bogus", "1"), 2);
    assert_int_equal(run_cli(2, "template", "rm"), 2);
    /* flags before and after NAME */
    assert_int_equal(run_cli(7, "template", "build", "--data-dir", data_dir, "cli1", "--from", "host"), 0);
    assert_int_equal(lstat_in("cli1", "workspace").st_uid, UID_BASE + 1000);
    assert_int_equal(run_cli(4, "template", "list", "--data-dir", data_dir), 0);
    assert_int_equal(run_cli(7, "template", "build", "Bad", "--from", "host", "--data-dir", data_dir), 1);
    assert_int_equal(run_cli(5, "template", "rm", "cli1", "--data-dir", data_dir), 0);
    assert_int_equal(run_cli(5, "template", "rm", "cli1", "--data-dir", data_dir), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test_setup_teardown(test_build_host_layout_and_ownership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_copies_alternatives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uid_base_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sudo_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_corrupt_names_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_org_and_snapshot_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_of_a_hostile_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_override_and_clamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_sorted_skips_non_templates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_without_templates_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_replaces_atomically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_of_a_template_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_name_builds_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debian_failed_build_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debian_rejects_bad_packages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
