/*
 * test_sandbox_files.c - file operations inside a root (runtime/
 * sandbox_files.c) on a real directory standing in for a sandbox's /: the
 * lexical path rules, symlinks and ".." that must stay inside the root,
 * a FIFO that must not be opened, atomic replace, recursive delete that
 * never follows a link out, and the acting user's permissions (a thread
 * with an unprivileged fsuid cannot read what root can).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "runtime/sandbox_files.h"

#define TEST_UID 54321      /* a host id no file here belongs to */

struct fixture {
    char base[256];         /* holds root/ and outside/ */
    char root[300];
    char outside[300];
    struct sb_fs fs;
};

static void put(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->base, sizeof f->base, "/tmp/sb-files-XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->root, sizeof f->root, "%s/root", f->base);
    snprintf(f->outside, sizeof f->outside, "%s/outside", f->base);
    char p[600];
    mkdir(f->root, 0755);
    mkdir(f->outside, 0755);
    snprintf(p, sizeof p, "%s/secret", f->outside);
    put(p, "host secret\n", 0644);
    snprintf(p, sizeof p, "%s/home", f->root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/home/user", f->root);
    mkdir(p, 0777);
    chmod(p, 0777);     /* past the umask: the test user may write here */
    snprintf(p, sizeof p, "%s/etc", f->root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/etc/secret", f->root);
    put(p, "inside secret\n", 0644);
    snprintf(p, sizeof p, "%s/etc/shadow", f->root);
    put(p, "root only\n", 0600);
    /* escapes planted by a hostile sandbox */
    char target[600];
    snprintf(p, sizeof p, "%s/home/user/out", f->root);
    snprintf(target, sizeof target, "%s", f->outside);
    assert_int_equal(symlink(target, p), 0);                        /* absolute host path */
    snprintf(p, sizeof p, "%s/home/user/up", f->root);
    assert_int_equal(symlink("../../../../../../..", p), 0);        /* .. past the root */
    snprintf(p, sizeof p, "%s/home/user/etc", f->root);
    assert_int_equal(symlink("/etc", p), 0);                        /* absolute inside */
    snprintf(p, sizeof p, "%s/home/user/proc1", f->root);
    assert_int_equal(symlink("/proc/self/root", p), 0);             /* "self" from here: a dangling link */
    snprintf(p, sizeof p, "%s/home/user/fifo", f->root);
    assert_int_equal(mkfifo(p, 0666), 0);
    f->fs.root_fd = open(f->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->fs.root_fd >= 0);
    f->fs.as_user = 0;
    f->fs.uid = 0;
    f->fs.gid = 0;
    snprintf(f->fs.home, sizeof f->fs.home, "/home/user");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sb_fs_close(&f->fs);
    struct sb_err err;
    sb_remove_tree(f->base, &err);
    free(f);
    return 0;
}

static char *read_all(struct sb_fs *fs, const char *path, struct sb_err *err)
{
    int fd;
    struct stat st;
    if (sb_fs_open_read(fs, path, &fd, &st, err) < 0)
        return NULL;
    char *buf = calloc(1, (size_t)st.st_size + 1);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    close(fd);
    return buf;
}

static void test_paths_are_made_absolute_lexically(void **state)
{
    struct fixture *f = *state;
    char out[SB_FS_PATH_MAX];
    struct sb_err err = {0};
    assert_int_equal(sb_fs_path(&f->fs, "a/./b//c", out, &err), 0);
    assert_string_equal(out, "/home/user/a/b/c");
    assert_int_equal(sb_fs_path(&f->fs, "~", out, &err), 0);
    assert_string_equal(out, "/home/user");
    assert_int_equal(sb_fs_path(&f->fs, "~/x", out, &err), 0);
    assert_string_equal(out, "/home/user/x");
    assert_int_equal(sb_fs_path(&f->fs, "~x", out, &err), 0);
    assert_string_equal(out, "/home/user/~x");
    assert_int_equal(sb_fs_path(&f->fs, "///", out, &err), 0);
    assert_string_equal(out, "/");
    assert_int_equal(sb_fs_path(&f->fs, "/a/../b", out, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(sb_fs_path(&f->fs, "..", out, &err), -1);
    assert_int_equal(sb_fs_path(&f->fs, "", out, &err), -1);
    char longp[SB_FS_PATH_MAX + 10];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(sb_fs_path(&f->fs, longp, out, &err), -1);
    assert_int_equal(err.status, 400);
}

static void test_symlinks_resolve_inside_the_root(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    char *s;
    /* the host's outside/secret is never reached */
    assert_null(read_all(&f->fs, "/home/user/out/secret", &err));
    assert_int_equal(err.status, 404);
    /* ../../.. stops at the root: up/etc/secret is the root's etc */
    s = read_all(&f->fs, "/home/user/up/etc/secret", &err);
    assert_non_null(s);
    assert_string_equal(s, "inside secret\n");
    free(s);
    s = read_all(&f->fs, "/home/user/etc/secret", &err);
    assert_non_null(s);
    assert_string_equal(s, "inside secret\n");
    free(s);
    assert_null(read_all(&f->fs, "/home/user/proc1/etc/secret", &err));
    assert_true(err.status >= 400 && err.status < 500);
    /* writes through links land inside */
    assert_int_equal(sb_fs_write(&f->fs, "/home/user/up/new.txt", "x", 1, &err), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/new.txt", f->root);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/new.txt", f->base);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(sb_fs_write(&f->fs, "/home/user/out/evil", "x", 1, &err), -1);
    snprintf(p, sizeof p, "%s/evil", f->outside);
    assert_int_equal(access(p, F_OK), -1);
    /* a listing of the link that points out lists nothing of the host */
    struct sb_fs_entry *list;
    size_t n;
    assert_int_equal(sb_fs_list(&f->fs, "/home/user/out", 1, 100, &list, &n, &err), -1);
    assert_int_equal(err.status, 404);
    /* stat shows links as links, with their target made absolute */
    struct sb_fs_entry e;
    assert_int_equal(sb_fs_stat(&f->fs, "/home/user/etc", &e, &err), 0);
    assert_int_equal(e.type, SB_FS_SYMLINK);
    assert_string_equal(e.symlink_target, "/etc");
    sb_fs_entry_clear(&e);
    assert_int_equal(sb_fs_stat(&f->fs, "/home/user/up", &e, &err), 0);
    assert_string_equal(e.symlink_target, "/");
    sb_fs_entry_clear(&e);
}

static void test_fifo_is_refused_without_opening(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    int fd;
    struct stat st;
    assert_int_equal(sb_fs_open_read(&f->fs, "/home/user/fifo", &fd, &st, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(sb_fs_open_read(&f->fs, "/home/user", &fd, &st, &err), -1);
    assert_non_null(strstr(err.msg, "is a directory"));
}

static void test_write_replaces_atomically_and_creates_parents(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    struct sb_fs_writer w;
    assert_int_equal(sb_fs_write(&f->fs, "deep/er/file", "old", 3, &err), 0);
    assert_int_equal(sb_fs_write_begin(&f->fs, "deep/er/file", &w, &err), 0);
    assert_int_equal(sb_fs_write_chunk(&f->fs, &w, "new!", 4, &err), 0);
    char *s = read_all(&f->fs, "deep/er/file", &err);
    assert_string_equal(s, "old");     /* not replaced before the commit */
    free(s);
    assert_int_equal(sb_fs_write_commit(&f->fs, &w, &err), 0);
    s = read_all(&f->fs, "deep/er/file", &err);
    assert_string_equal(s, "new!");
    free(s);
    /* an aborted write leaves the old file and no temporary */
    assert_int_equal(sb_fs_write_begin(&f->fs, "deep/er/file", &w, &err), 0);
    assert_int_equal(sb_fs_write_chunk(&f->fs, &w, "zzz", 3, &err), 0);
    sb_fs_write_abort(&f->fs, &w);
    struct sb_fs_entry *list;
    size_t n;
    assert_int_equal(sb_fs_list(&f->fs, "deep/er", 1, 100, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "file");
    assert_int_equal(list[0].size, 4);
    sb_fs_entries_free(list, n);
    assert_int_equal(sb_fs_write(&f->fs, "deep", "x", 1, &err), -1);
    assert_non_null(strstr(err.msg, "is a directory"));
}

static void test_remove_never_follows_links(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    char p[600];
    assert_int_equal(sb_fs_mkdir(&f->fs, "/home/user/tree/a/b", 1, &err), 0);
    snprintf(p, sizeof p, "%s/home/user/tree/a/link", f->root);
    assert_int_equal(symlink(f->outside, p), 0);
    assert_int_equal(sb_fs_remove(&f->fs, "/home/user/tree", 0, &err), -1);
    assert_non_null(strstr(err.msg, "recursive"));
    assert_int_equal(sb_fs_remove(&f->fs, "/home/user/tree", 1, &err), 0);
    snprintf(p, sizeof p, "%s/secret", f->outside);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(sb_fs_remove(&f->fs, "/home/user/tree", 1, &err), -1);
    assert_int_equal(err.status, 404);
    /* removing the link that points out removes the link only */
    assert_int_equal(sb_fs_remove(&f->fs, "/home/user/out", 1, &err), 0);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(sb_fs_remove(&f->fs, "/", 1, &err), -1);
    assert_int_equal(err.status, 400);
}

static void test_move(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    assert_int_equal(sb_fs_write(&f->fs, "m1", "1", 1, &err), 0);
    assert_int_equal(sb_fs_write(&f->fs, "m2", "2", 1, &err), 0);
    assert_int_equal(sb_fs_move(&f->fs, "m1", "m2", 0, &err), -1);
    assert_int_equal(err.status, 409);
    assert_int_equal(sb_fs_move(&f->fs, "m1", "sub/m3", 0, &err), 0);
    assert_int_equal(sb_fs_move(&f->fs, "sub/m3", "m2", 1, &err), 0);
    char *s = read_all(&f->fs, "m2", &err);
    assert_string_equal(s, "1");
    free(s);
    assert_int_equal(sb_fs_move(&f->fs, "nothing", "x", 0, &err), -1);
    assert_int_equal(err.status, 404);
}

static void test_user_permissions_hold(void **state)
{
    struct fixture *f = *state;
    struct sb_err err = {0};
    struct sb_fs user = f->fs;
    user.as_user = 1;
    user.uid = TEST_UID;
    user.gid = TEST_UID;
    char *s = read_all(&f->fs, "/etc/shadow", &err);
    assert_non_null(s);     /* root reads it */
    free(s);
    assert_null(read_all(&user, "/etc/shadow", &err));
    assert_int_equal(err.status, 403);
    s = read_all(&user, "/etc/secret", &err);   /* world-readable */
    assert_non_null(s);
    free(s);
    assert_int_equal(sb_fs_write(&user, "/etc/evil", "x", 1, &err), -1);
    assert_int_equal(err.status, 403);
    assert_int_equal(sb_fs_write(&user, "/home/user/mine", "x", 1, &err), 0);
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/home/user/mine", f->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, TEST_UID);     /* created as the user */
    assert_int_equal(sb_fs_remove(&user, "/etc/secret", 0, &err), -1);
    assert_int_equal(err.status, 403);
    /* the thread is root again afterwards */
    assert_int_equal(sb_fs_write(&f->fs, "/etc/root-again", "x", 1, &err), 0);
    snprintf(p, sizeof p, "%s/etc/root-again", f->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_uid, 0);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_sandbox_files: needs root (changes fsuid); skipped\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_paths_are_made_absolute_lexically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks_resolve_inside_the_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_is_refused_without_opening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_replaces_atomically_and_creates_parents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_never_follows_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_permissions_hold, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
