/*
 * test_cgroup.c - cgroup.c: the v2 file-writing layer against a directory
 * that imitates a cgroup2 tree (we create the files the kernel would, then
 * read what was written), detection against a fake mounts file, and the v1
 * backend for real on this host (limits read back, a process moved in,
 * frozen and thawed, a fork bomb stopped by pids.max, a memory hog
 * OOM-killed and counted, kill, removal). The real part needs root and v1
 * controllers; it is skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim/cgroup.h"

/* ---- helpers -------------------------------------------------------------- */

static void put_file(const char *dir, const char *name, const char *content)
{
    char path[SB_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void get_file(const char *dir, const char *name, char *buf, size_t len)
{
    char path[SB_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void assert_file(const char *dir, const char *name, const char *want)
{
    char got[256];
    get_file(dir, name, got, sizeof(got));
    assert_string_equal(got, want);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A directory the kernel would have populated for a v2 cgroup. */
static void fake_v2_cgroup(const char *dir, const char *controllers)
{
    mkdir(dir, 0755);
    put_file(dir, "cgroup.controllers", controllers);
    put_file(dir, "cgroup.subtree_control", "");
    put_file(dir, "cgroup.procs", "");
    put_file(dir, "cgroup.freeze", "0");
    put_file(dir, "cgroup.events", "populated 0\nfrozen 1\n");
    put_file(dir, "cgroup.kill", "");
    put_file(dir, "memory.max", "max");
    put_file(dir, "memory.swap.max", "max");
    put_file(dir, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
    put_file(dir, "pids.max", "max");
    put_file(dir, "cpu.max", "max 100000");
}

struct fake_tree {
    char root[64];
    char sandbase[128];
    char sandbox[192];
    char leaf[256];
};

static void fake_tree_make(struct fake_tree *t, const char *root_controllers)
{
    snprintf(t->root, sizeof(t->root), "/tmp/test_cgroup_v2.XXXXXX");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->sandbase, sizeof(t->sandbase), "%s/sandbase", t->root);
    snprintf(t->sandbox, sizeof(t->sandbox), "%s/sbx_one", t->sandbase);
    snprintf(t->leaf, sizeof(t->leaf), "%s/p1", t->sandbox);
    put_file(t->root, "cgroup.controllers", root_controllers);
    put_file(t->root, "cgroup.subtree_control", "");
    fake_v2_cgroup(t->sandbase, "cpu memory pids");
    fake_v2_cgroup(t->sandbox, "cpu memory pids");
    fake_v2_cgroup(t->leaf, "");
}

static struct sb_cgroup *fake_tree_open(const struct fake_tree *t)
{
    struct sb_cgroup_roots roots;
    memset(&roots, 0, sizeof(roots));
    roots.v2 = 1;
    snprintf(roots.unified, sizeof(roots.unified), "%s", t->root);
    struct sb_cgroup *cg = NULL;
    struct sb_err err;
    sb_err_clear(&err);
    assert_int_equal(cgroup_create(&roots, "sandbase", "sbx_one", &cg, &err), 0);
    return cg;
}

/* ---- v2 against a fake tree -------------------------------------------------- */

static void test_v2_create_enables_controllers(void **state)
{
    (void)state;
    struct fake_tree t;
    fake_tree_make(&t, "cpuset cpu io memory hugetlb pids rdma");
    struct sb_cgroup *cg = fake_tree_open(&t);
    assert_int_equal(cg->v2, 1);
    assert_string_equal(cg->dirs[0], t.sandbox);
    assert_file(t.root, "cgroup.subtree_control", "+memory +pids +cpu");
    assert_file(t.sandbase, "cgroup.subtree_control", "+memory +pids +cpu");
    /* controllers already enabled are not written again */
    put_file(t.root, "cgroup.subtree_control", "cpu memory");
    put_file(t.sandbase, "cgroup.subtree_control", "cpu memory pids");
    put_file(t.sandbase, "cgroup.procs", "marker");
    cgroup_free(cg);
    cg = fake_tree_open(&t);
    assert_file(t.root, "cgroup.subtree_control", "+pids");
    assert_file(t.sandbase, "cgroup.subtree_control", "cpu memory pids");
    cgroup_free(cg);
    rm_rf(t.root);
}

static void test_v2_missing_controller(void **state)
{
    (void)state;
    struct fake_tree t;
    fake_tree_make(&t, "cpu memory io");
    struct sb_cgroup_roots roots;
    memset(&roots, 0, sizeof(roots));
    roots.v2 = 1;
    snprintf(roots.unified, sizeof(roots.unified), "%s", t.root);
    struct sb_cgroup *cg = NULL;
    struct sb_err err;
    sb_err_clear(&err);
    assert_int_equal(cgroup_create(&roots, "sandbase", "sbx_one", &cg, &err), -1);
    assert_non_null(strstr(err.msg, "\"pids\""));
    assert_null(cg);
    rm_rf(t.root);
}

static void test_v2_limits(void **state)
{
    (void)state;
    struct fake_tree t;
    fake_tree_make(&t, "cpu memory pids");
    struct sb_cgroup *cg = fake_tree_open(&t);
    struct sb_err err;
    struct sb_limits lim = { .cpu_count = 2, .memory_mb = 64, .pids = 100, .disk_mb = 64 };
    assert_int_equal(cgroup_set_limits(cg, &lim, &err), 0);
    assert_file(t.sandbox, "memory.max", "67108864");
    assert_file(t.sandbox, "memory.swap.max", "0");
    assert_file(t.sandbox, "pids.max", "100");
    assert_file(t.sandbox, "cpu.max", "200000 100000");
    struct sb_limits none = { 0 };
    assert_int_equal(cgroup_set_limits(cg, &none, &err), 0);
    assert_file(t.sandbox, "memory.max", "max");
    assert_file(t.sandbox, "pids.max", "max");
    assert_file(t.sandbox, "cpu.max", "max 100000");
    /* a kernel without a file we need: the write fails and names the file */
    char path[SB_PATH_MAX];
    snprintf(path, sizeof(path), "%s/cpu.max", t.sandbox);
    unlink(path);
    sb_err_clear(&err);
    assert_int_equal(cgroup_set_limits(cg, &lim, &err), -1);
    assert_non_null(strstr(err.msg, "cpu.max"));
    cgroup_free(cg);
    rm_rf(t.root);
}

static void test_v2_leaf_enter_count_freeze_kill(void **state)
{
    (void)state;
    struct fake_tree t;
    fake_tree_make(&t, "cpu memory pids");
    struct sb_cgroup *cg = fake_tree_open(&t);
    struct sb_err err;
    sb_err_clear(&err);
    assert_int_equal(cgroup_leaf_create(cg, "p1", &err), 0);
    assert_int_equal(cgroup_leaf_create(cg, "../escape", &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(cgroup_enter(cg, "p1", 4321, &err), 0);
    assert_file(t.leaf, "cgroup.procs", "4321");
    assert_int_equal(cgroup_enter(cg, NULL, 0, &err), 0);
    assert_file(t.sandbox, "cgroup.procs", "0");

    put_file(t.leaf, "cgroup.procs", "11\n12\n");
    put_file(t.sandbox, "cgroup.procs", "10\n");
    assert_int_equal(cgroup_count(cg, "p1"), 2);
    assert_int_equal(cgroup_count(cg, NULL), 3);

    assert_int_equal(cgroup_freeze(cg, "p1", 1, &err), 0); /* cgroup.events says frozen 1 */
    assert_file(t.leaf, "cgroup.freeze", "1");
    assert_int_equal(cgroup_freeze(cg, "p1", 0, &err), 0);
    assert_file(t.leaf, "cgroup.freeze", "0");

    put_file(t.leaf, "cgroup.procs", ""); /* what the kernel shows once the kill landed */
    assert_int_equal(cgroup_kill(cg, "p1", &err), 0);
    assert_file(t.leaf, "cgroup.kill", "1");
    cgroup_free(cg);
    rm_rf(t.root);
}

static void test_v2_oom_events(void **state)
{
    (void)state;
    struct fake_tree t;
    fake_tree_make(&t, "cpu memory pids");
    struct sb_cgroup *cg = fake_tree_open(&t);
    uint64_t n = 99;
    assert_int_equal(cgroup_oom_kills(cg, &n, NULL), 0);
    assert_int_equal(n, 0);
    put_file(t.sandbox, "memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n");
    assert_int_equal(cgroup_oom_kills(cg, &n, NULL), 1);
    assert_int_equal(n, 2);
    assert_int_equal(cgroup_oom_kills(cg, &n, NULL), 0);
    assert_int_equal(n, 2);
    cgroup_free(cg);
    rm_rf(t.root);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(cgroup_name_valid("sbx_abc234"));
    assert_true(cgroup_name_valid("p12"));
    assert_false(cgroup_name_valid(""));
    assert_false(cgroup_name_valid(".."));
    assert_false(cgroup_name_valid("a/b"));
    assert_false(cgroup_name_valid("a b"));
    assert_false(cgroup_name_valid(NULL));
}

/* ---- detection ----------------------------------------------------------------- */

static void test_detect_fake_v1_mounts(void **state)
{
    (void)state;
    char mounts[] = "/tmp/test_cgroup_mounts.XXXXXX";
    int fd = mkstemp(mounts);
    assert_true(fd >= 0);
    const char *text =
        "tmpfs /sys/fs/cgroup tmpfs rw,mode=755 0 0\n"
        "cgroup /cg/cpuacct cgroup rw,relatime,cpuacct 0 0\n"
        "cgroup /cg/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0\n"
        "cgroup /cg/memory cgroup rw,memory 0 0\n"
        "cgroup /cg/pids cgroup rw,nosuid,pids 0 0\n"
        "cgroup /cg/freezer cgroup rw,freezer 0 0\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct sb_cgroup_roots roots;
    enum sb_cgroup_mode mode;
    struct sb_err err;
    /* /dev/shm is a tmpfs without a cgroup2 "unified" below it: LEGACY */
    assert_int_equal(cgroup_detect("/dev/shm", mounts, &roots, &mode, &err), 0);
    assert_int_equal(mode, SB_CGROUP_LEGACY);
    assert_int_equal(roots.v2, 0);
    assert_string_equal(roots.v1[SB_CG_CPU], "/cg/cpu,cpuacct");
    assert_string_equal(roots.v1[SB_CG_MEMORY], "/cg/memory");
    assert_string_equal(roots.v1[SB_CG_PIDS], "/cg/pids");
    assert_string_equal(roots.v1[SB_CG_FREEZER], "/cg/freezer");
    /* no freezer: a clear error */
    fd = open(mounts, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, text, strlen(text) - strlen("cgroup /cg/freezer cgroup rw,freezer 0 0\n")),
                     (ssize_t)(strlen(text) - strlen("cgroup /cg/freezer cgroup rw,freezer 0 0\n")));
    close(fd);
    sb_err_clear(&err);
    assert_int_equal(cgroup_detect("/dev/shm", mounts, &roots, &mode, &err), -1);
    assert_non_null(strstr(err.msg, "freezer"));
    unlink(mounts);
}

static void test_detect_this_host(void **state)
{
    (void)state;
    struct sb_cgroup_roots roots;
    enum sb_cgroup_mode mode;
    struct sb_err err;
    sb_err_clear(&err);
    if (cgroup_detect("/sys/fs/cgroup", "/proc/self/mounts", &roots, &mode, &err) < 0)
        fail_msg("detect: %s", err.msg);
    if (mode == SB_CGROUP_UNIFIED)
        assert_int_equal(roots.v2, 1);
    else
        for (int i = 0; i < SB_CG_CTL_COUNT; i++)
            assert_true(roots.v1[i][0] == '/');
}

/* ---- v1 for real ------------------------------------------------------------------ */

struct real {
    const struct sb_cgroup_roots *roots;
    struct sb_cgroup *cg;
    char id[32];
};

static int real_setup(void **state)
{
    static struct real r;
    struct sb_err err;
    if (geteuid() != 0 || cgroup_default_roots(&r.roots, &err) < 0 || r.roots->v2)
        return 0; /* tests skip */
    snprintf(r.id, sizeof(r.id), "t%ld", (long)getpid());
    if (cgroup_create(r.roots, "sandbase-test", r.id, &r.cg, &err) < 0) {
        fprintf(stderr, "cgroup_create: %s\n", err.msg);
        return -1;
    }
    *state = &r;
    return 0;
}

static int real_teardown(void **state)
{
    struct real *r = *state;
    if (!r)
        return 0;
    struct sb_err err;
    cgroup_kill(r->cg, NULL, &err);
    int rc = cgroup_remove(r->cg, &err);
    for (int i = 0; i < SB_CG_CTL_COUNT; i++) {
        char parent[SB_PATH_MAX + 16];
        snprintf(parent, sizeof(parent), "%s/sandbase-test", r->roots->v1[i]);
        rmdir(parent);
    }
    cgroup_free(r->cg);
    return rc;
}

#define SKIP_UNLESS_REAL(state)                                                                    \
    do {                                                                                            \
        if (!*(state))                                                                              \
            skip();                                                                                 \
    } while (0)

/* Forks a child that waits for a byte on a pipe (sent after it was moved into
 * the leaf) and then runs fn. */
static pid_t spawn_in_leaf(struct sb_cgroup *cg, const char *leaf, int (*fn)(void *), void *arg)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(p[1]);
        if (read(p[0], &c, 1) != 1)
            _exit(99);
        _exit(fn(arg));
    }
    close(p[0]);
    struct sb_err err;
    assert_int_equal(cgroup_enter(cg, leaf, pid, &err), 0);
    assert_int_equal(write(p[1], "g", 1), 1);
    close(p[1]);
    return pid;
}

static int spin_counter(void *arg)
{
    volatile uint64_t *counter = arg;
    for (;;)
        (*counter)++;
    return 0;
}

static int fork_until_fail(void *arg)
{
    (void)arg;
    for (int n = 0; n < 1000; n++) {
        pid_t pid = fork();
        if (pid == 0) {
            pause();
            _exit(0);
        }
        if (pid < 0)
            return errno == EAGAIN && n < 20 ? 0 : 1; /* pids.max (10) stopped us */
    }
    return 2;
}

static int hog_memory(void *arg)
{
    (void)arg;
    for (size_t total = 0; total < ((size_t)512 << 20); total += 1 << 20) {
        char *p = malloc(1 << 20);
        if (!p)
            return 3;
        memset(p, 1, 1 << 20);
    }
    return 4; /* not stopped: the limit does not hold */
}

static void read_value(const char *dir, const char *file, char *buf, size_t len)
{
    get_file(dir, file, buf, len);
    buf[strcspn(buf, "\n")] = '\0';
}

static void test_v1_limits_read_back(void **state)
{
    SKIP_UNLESS_REAL(state);
    struct real *r = *state;
    struct sb_err err;
    struct sb_limits lim = { .cpu_count = 1, .memory_mb = 32, .pids = 10, .disk_mb = 0 };
    if (cgroup_set_limits(r->cg, &lim, &err) < 0)
        fail_msg("%s", err.msg);
    char v[64], memsw[SB_PATH_MAX + 32];
    read_value(r->cg->dirs[SB_CG_MEMORY], "memory.limit_in_bytes", v, sizeof(v));
    assert_string_equal(v, "33554432");
    snprintf(memsw, sizeof(memsw), "%s/memory.memsw.limit_in_bytes", r->cg->dirs[SB_CG_MEMORY]);
    if (access(memsw, F_OK) == 0) {
        read_value(r->cg->dirs[SB_CG_MEMORY], "memory.memsw.limit_in_bytes", v, sizeof(v));
        assert_string_equal(v, "33554432");
    }
    read_value(r->cg->dirs[SB_CG_PIDS], "pids.max", v, sizeof(v));
    assert_string_equal(v, "10");
    read_value(r->cg->dirs[SB_CG_CPU], "cpu.cfs_quota_us", v, sizeof(v));
    assert_string_equal(v, "100000");
    read_value(r->cg->dirs[SB_CG_CPU], "cpu.cfs_period_us", v, sizeof(v));
    assert_string_equal(v, "100000");
    /* v1 memory is hierarchical on this kernel, so leaf usage counts against the sandbox */
    read_value(r->cg->dirs[SB_CG_MEMORY], "memory.use_hierarchy", v, sizeof(v));
    assert_string_equal(v, "1");
}

static void test_v1_freeze_thaw_kill(void **state)
{
    SKIP_UNLESS_REAL(state);
    struct real *r = *state;
    struct sb_err err;
    assert_int_equal(cgroup_leaf_create(r->cg, "spin", &err), 0);
    volatile uint64_t *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(counter != MAP_FAILED);
    pid_t pid = spawn_in_leaf(r->cg, "spin", spin_counter, (void *)counter);
    while (*counter == 0)
        ;
    assert_int_equal(cgroup_count(r->cg, "spin"), 1);
    assert_int_equal(cgroup_count(r->cg, NULL), 1);
    /* the leaf is in the freezer hierarchy; memory, pids and cpu hold it in the sandbox dir */
    char procs[64], want[32];
    snprintf(want, sizeof(want), "%ld\n", (long)pid);
    get_file(r->cg->dirs[SB_CG_MEMORY], "cgroup.procs", procs, sizeof(procs));
    assert_string_equal(procs, want);

    if (cgroup_freeze(r->cg, NULL, 1, &err) < 0) /* freezing the sandbox freezes its leaves */
        fail_msg("%s", err.msg);
    uint64_t before = *counter;
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    assert_int_equal(*counter, before);
    assert_int_equal(cgroup_freeze(r->cg, NULL, 0, &err), 0);
    nanosleep(&ts, NULL);
    assert_true(*counter > before);

    if (cgroup_kill(r->cg, "spin", &err) < 0)
        fail_msg("%s", err.msg);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(cgroup_count(r->cg, "spin"), 0);
    assert_int_equal(cgroup_leaf_remove(r->cg, "spin", &err), 0);
    char leaf[SB_PATH_MAX + 8];
    for (int i = 0; i < SB_CG_CTL_COUNT; i++) {
        snprintf(leaf, sizeof(leaf), "%s/spin", r->cg->dirs[i]);
        assert_int_equal(access(leaf, F_OK), -1);
    }
    munmap((void *)counter, 4096);
}

static void test_v1_pids_limit_stops_fork_bomb(void **state)
{
    SKIP_UNLESS_REAL(state);
    struct real *r = *state;
    struct sb_err err;
    struct sb_limits lim = { .cpu_count = 1, .memory_mb = 32, .pids = 10 };
    assert_int_equal(cgroup_set_limits(r->cg, &lim, &err), 0);
    assert_int_equal(cgroup_leaf_create(r->cg, "bomb", &err), 0);
    pid_t pid = spawn_in_leaf(r->cg, "bomb", fork_until_fail, NULL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the paused children are still in the leaf: kill them as a tree */
    assert_true(cgroup_count(r->cg, "bomb") > 0);
    if (cgroup_kill(r->cg, "bomb", &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(cgroup_count(r->cg, "bomb"), 0);
    assert_int_equal(cgroup_leaf_remove(r->cg, "bomb", &err), 0);
}

static void test_v1_oom_kill_counted(void **state)
{
    SKIP_UNLESS_REAL(state);
    struct real *r = *state;
    struct sb_err err;
    struct sb_limits lim = { .cpu_count = 1, .memory_mb = 32, .pids = 10 };
    assert_int_equal(cgroup_set_limits(r->cg, &lim, &err), 0);
    uint64_t before = 0, after = 0;
    assert_true(cgroup_oom_kills(r->cg, &before, &err) >= 0);
    assert_int_equal(cgroup_leaf_create(r->cg, "hog", &err), 0);
    pid_t pid = spawn_in_leaf(r->cg, "hog", hog_memory, NULL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(cgroup_oom_kills(r->cg, &after, &err), 1);
    assert_true(after > before);
    assert_int_equal(cgroup_oom_kills(r->cg, &after, &err), 0);
    assert_int_equal(cgroup_leaf_remove(r->cg, "hog", &err), 0);
}

int main(void)
{
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_v2_create_enables_controllers),
        cmocka_unit_test(test_v2_missing_controller),
        cmocka_unit_test(test_v2_limits),
        cmocka_unit_test(test_v2_leaf_enter_count_freeze_kill),
        cmocka_unit_test(test_v2_oom_events),
        cmocka_unit_test(test_detect_fake_v1_mounts),
        cmocka_unit_test(test_detect_this_host),
    };
    const struct CMUnitTest real[] = {
        cmocka_unit_test(test_v1_limits_read_back),
        cmocka_unit_test(test_v1_freeze_thaw_kill),
        cmocka_unit_test(test_v1_pids_limit_stops_fork_bomb),
        cmocka_unit_test(test_v1_oom_kill_counted),
    };
    int failed = cmocka_run_group_tests_name("cgroup_fake_v2", fake, NULL, NULL);
    failed += cmocka_run_group_tests_name("cgroup_v1_real", real, real_setup, real_teardown);
    return failed;
}
