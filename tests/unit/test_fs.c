/*
 * test_fs.c - the filesystem helpers of core/fs.c on real directories:
 * sb_remove_tree never follows a symlink out of the tree and never empties
 * a filesystem mounted inside it; sb_unmount_below detaches such mounts;
 * sb_path_absolute and sb_mkdir_p.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"

static char root[64];

static int setup(void **state)
{
    snprintf(root, sizeof root, "/tmp/sandbase-test-fs-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    struct sb_err err = {0};
    sb_unmount_below(root);
    return sb_remove_tree(root, &err);
}

static void write_file(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x\n", f);
    fclose(f);
}

static void path_in(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", root, rel);
}

static void test_remove_tree_keeps_what_symlinks_point_at(void **state)
{
    char tree[PATH_MAX], outside[PATH_MAX], keep[PATH_MAX], link[PATH_MAX], deep[PATH_MAX];
    struct sb_err err = {0};
    path_in(tree, sizeof tree, "tree/a/b");
    path_in(outside, sizeof outside, "outside");
    path_in(keep, sizeof keep, "outside/keep");
    assert_int_equal(sb_mkdir_p(tree, 0755, &err), 0);
    assert_int_equal(sb_mkdir_p(outside, 0755, &err), 0);
    write_file(keep);
    path_in(deep, sizeof deep, "tree/a/b/file");
    write_file(deep);
    path_in(link, sizeof link, "tree/a/link");
    assert_int_equal(symlink(outside, link), 0);
    path_in(tree, sizeof tree, "tree");
    assert_int_equal(sb_remove_tree(tree, &err), 0);
    assert_int_equal(access(tree, F_OK), -1);
    assert_int_equal(access(keep, F_OK), 0);
    /* gone already: still 0 */
    assert_int_equal(sb_remove_tree(tree, &err), 0);
}

static void test_remove_tree_stops_at_a_mount(void **state)
{
    if (geteuid() != 0)
        skip();
    char tree[PATH_MAX], mnt[PATH_MAX], inside[PATH_MAX];
    struct sb_err err = {0};
    path_in(mnt, sizeof mnt, "tree/mnt/deeper");
    assert_int_equal(sb_mkdir_p(mnt, 0755, &err), 0);
    path_in(mnt, sizeof mnt, "tree/mnt");
    assert_int_equal(mount("tmpfs", mnt, "tmpfs", 0, "size=1m"), 0);
    path_in(inside, sizeof inside, "tree/mnt/file");
    write_file(inside);
    path_in(tree, sizeof tree, "tree");
    assert_int_equal(sb_remove_tree(tree, &err), -1);
    assert_non_null(strstr(err.msg, "another filesystem is mounted there"));
    assert_int_equal(access(inside, F_OK), 0);     /* the mounted filesystem is untouched */
    sb_unmount_below(tree);
    assert_int_equal(access(inside, F_OK), -1);
    assert_int_equal(sb_remove_tree(tree, &err), 0);
    assert_int_equal(access(tree, F_OK), -1);
}

static void test_path_absolute(void **state)
{
    char out[PATH_MAX], cwd[PATH_MAX];
    struct sb_err err = {0};
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(sb_path_absolute("/a/../b/./c//", out, sizeof out, &err), 0);
    assert_string_equal(out, "/b/c");
    assert_int_equal(sb_path_absolute(".", out, sizeof out, &err), 0);
    assert_string_equal(out, cwd);
    assert_int_equal(sb_path_absolute("", out, sizeof out, &err), -1);
    assert_int_equal(err.status, 400);
    char tiny[4];
    assert_int_equal(sb_path_absolute("/abcdef", tiny, sizeof tiny, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_remove_tree_keeps_what_symlinks_point_at, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_tree_stops_at_a_mount, setup, teardown),
        cmocka_unit_test(test_path_absolute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
