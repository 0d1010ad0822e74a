/*
 * test_lifecycle.c - the sandbox lifecycle (runtime/registry.c over a real
 * SQLite store, runtime/pool.c and runtime/shim_spawn.c) when the shim
 * fails: it dies in the middle of a create (cold, or a pool refill), of an
 * exec (run on a real loop, as serve runs it), of a destroy, while its
 * sandbox runs, and while it waits in the warm pool.
 *
 * The shim is a real process speaking the real protocol on a real socket
 * in a temp run dir: this binary itself, started by shim_spawn as
 * `sandbase-shim` (cfg.shim_path points here), in the failure mode named by
 * $SANDBASE_FAKE_SHIM. It builds no sandbox (no cgroups, mounts or
 * namespaces), so the test needs no root, but it leaves what a real shim
 * would leave behind when it dies: its run dir, spec, pid file and a
 * sandbox dir. Every `sandbase-shim --cleanup ID` serve runs is logged to
 * $SANDBASE_FAKE_SHIM_LOG, so the test sees that a dead shim's cgroups
 * were handed to the shim binary to clean.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/fs.h"
#include "core/loop.h"
#include "core/worker.h"
#include "proto/proto.h"
#include "proto/spec.h"
#include "runtime/pool.h"
#include "runtime/registry.h"
#include "runtime/shim_client.h"
#include "store/store.h"

/* ---- the fake shim (this binary run as sandbase-shim) ---- */

static void fake_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ssize_t n = write(fd, text, strlen(text));
        (void)n;
        close(fd);
    }
}

static void fake_log(const char *line)
{
    const char *path = getenv("SANDBASE_FAKE_SHIM_LOG");
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    if (fd >= 0) {
        ssize_t n = write(fd, line, strlen(line));
        (void)n;
        close(fd);
    }
}

/* Answers requests on one connection (501 to all) until a "destroy"
 * arrives, or in mode die-mid-exec a "start", at which point the shim dies
 * without answering. */
static void fake_serve_connection(int fd)
{
    struct sb_frame_reader r;
    struct sb_err err = {0};
    if (sb_frame_reader_init(&r, &err) < 0)
        _exit(3);
    for (;;) {
        size_t room;
        uint8_t *dst = sb_frame_reader_space(&r, &room);
        ssize_t n = read(fd, dst, room);
        if (n <= 0)
            break;
        sb_frame_reader_commit(&r, (size_t)n);
        struct sb_frame f;
        while (sb_frame_reader_next(&r, &f, &err) == 1) {
            json_t *req = sb_frame_parse_json(&f, &err);
            const char *op = json_string_value(json_object_get(req, "op"));
            if (op && strcmp(op, "destroy") == 0) {
                fake_log("destroy received\n");
                _exit(0);                       /* dies mid-destroy */
            }
            if (op && strcmp(op, "start") == 0 && strcmp(getenv("SANDBASE_FAKE_SHIM"), "die-mid-exec") == 0) {
                fake_log("start received\n");
                _exit(0);                       /* dies mid-exec */
            }
            json_t *resp = json_pack("{s:O,s:b,s:i,s:s}", "seq", json_object_get(req, "seq"), "ok", 0,
                                     "status", 501, "error", "fake shim");
            size_t len;
            uint8_t *bytes = sb_frame_json(resp, &len);
            if (bytes && write(fd, bytes, len) != (ssize_t)len)
                break;
            free(bytes);
            json_decref(resp);
            json_decref(req);
        }
    }
    sb_frame_reader_free(&r);
    close(fd);
}

static int fake_shim(int argc, char **argv)
{
    static const struct option opts[] = {
        {"id", required_argument, 0, 'i'}, {"spec", required_argument, 0, 's'},
        {"ready-fd", required_argument, 0, 'f'}, {"detach", no_argument, 0, 'D'},
        {"cleanup", required_argument, 0, 'C'}, {0, 0, 0, 0},
    };
    const char *spec_path = NULL, *mode = getenv("SANDBASE_FAKE_SHIM");
    int ready_fd = -1, detach = 0, ch;
    char line[128];
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 's')
            spec_path = optarg;
        else if (ch == 'f')
            ready_fd = atoi(optarg);
        else if (ch == 'D')
            detach = 1;
        else if (ch == 'C') {
            snprintf(line, sizeof line, "cleanup %s\n", optarg);
            fake_log(line);
            return 0;
        }
    }
    if (detach && fork() > 0)
        _exit(0);
    struct sb_spec spec;
    struct sb_err err = {0};
    if (!spec_path || !mode || sb_spec_read_file(spec_path, &spec, &err) < 0)
        return 2;
    char dir[SB_PATH_MAX + 64], path[SB_PATH_MAX + 128], pid[32];
    snprintf(dir, sizeof dir, "%s/sandboxes/%s", spec.run_dir, spec.id);
    snprintf(path, sizeof path, "%s/shim.pid", dir);
    snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    fake_write_file(path, pid);
    /* what a half-built sandbox leaves: its dir on the data disk */
    snprintf(path, sizeof path, "%s/sandboxes", spec.data_dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/sandboxes/%s", spec.data_dir, spec.id);
    mkdir(path, 0700);
    snprintf(path + strlen(path), sizeof path - strlen(path), "/disk.img");
    fake_write_file(path, "half a disk");
    if (strcmp(mode, "die-mid-create") == 0) {
        fprintf(stderr, "fake shim: about to die mid-create\n");
        raise(SIGKILL);
    }

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (snprintf(addr.sun_path, sizeof addr.sun_path, "%s/shim.sock", dir) >= (int)sizeof addr.sun_path)
        return 2;
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 16) < 0)
        return 2;
    if (write(ready_fd, "ok\n", 3) != 3)
        return 2;
    close(ready_fd);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            fake_serve_connection(fd);
    }
}

/* ---- fixture: a store, a registry, a template, and this binary as the shim ---- */

static struct {
    char dir[64];
    char log[96];
    struct sb_config cfg;
    struct sb_store *store;
    struct sb_worker_pool *workers;
    struct sb_registry *reg;
    struct sb_org org;
} fx;

static int write_template(void)
{
    char path[SB_PATH_MAX];
    struct sb_err err = {0};
    snprintf(path, sizeof path, "%s/templates/base/rootfs", fx.dir);
    if (sb_mkdir_p(path, 0755, &err) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/templates/base/template.json", fx.dir);
    fake_write_file(path, "{\"name\":\"base\",\"kind\":\"host\",\"user\":\"user\",\"uid\":1000,\"gid\":1000,"
                          "\"home\":\"/home/user\",\"workdir\":\"/home/user\",\"env\":{\"PATH\":\"/bin\"}}");
    return 0;
}

static int setup(void **state)
{
    (void)state;
    struct sb_err err = {0};
    snprintf(fx.dir, sizeof fx.dir, "/tmp/test_lifecycle.XXXXXX");
    if (!mkdtemp(fx.dir) || write_template() < 0)
        return -1;
    snprintf(fx.log, sizeof fx.log, "%s/fake-shim.log", fx.dir);
    setenv("SANDBASE_FAKE_SHIM_LOG", fx.log, 1);
    sb_config_defaults(&fx.cfg);
    fx.cfg.pool_size = 0;
    snprintf(fx.cfg.data_dir, sizeof fx.cfg.data_dir, "%s", fx.dir);
    ssize_t n = readlink("/proc/self/exe", fx.cfg.shim_path, sizeof fx.cfg.shim_path - 1);
    if (n <= 0 || sb_config_finish(&fx.cfg, &err) < 0 || store_open(fx.dir, &fx.store, &err) < 0 ||
        store_org_create(fx.store, "lifecycle", &fx.org, &err) < 0) {
        fprintf(stderr, "set-up: %s\n", err.msg);
        return -1;
    }
    fx.workers = sb_worker_pool_new(2);
    fx.reg = fx.workers ? registry_new(&fx.cfg, fx.store, fx.workers, &err) : NULL;
    return fx.reg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    struct sb_err err = {0};
    registry_free(fx.reg, 1);
    sb_worker_pool_free(fx.workers);
    store_close(fx.store);
    sb_remove_tree(fx.dir, &err);
    return 0;
}

/* ---- helpers ---- */

/* Entries in <fx.dir>/<sub>, -1 if it cannot be read. */
static int entries_in(const char *sub)
{
    char cmd[SB_PATH_MAX];
    snprintf(cmd, sizeof cmd, "ls -A %s/%s 2>/dev/null | wc -l", fx.dir, sub);
    FILE *p = popen(cmd, "r");
    int count = -1;
    if (p && fscanf(p, "%d", &count) != 1)
        count = -1;
    if (p)
        pclose(p);
    return count;
}

/* 1 if <fx.dir>/<sub>/<id> exists. */
static int exists_in(const char *sub, const char *id)
{
    char path[SB_PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/%s", fx.dir, sub, id);
    return lstat(path, &st) == 0;
}

/* 1 if the fake shim log holds line. */
static int logged(const char *line)
{
    FILE *f = fopen(fx.log, "re");
    char buf[256];
    int found = 0;
    while (f && fgets(buf, sizeof buf, f))
        found |= strcmp(buf, line) == 0;
    if (f)
        fclose(f);
    return found;
}

static int shim_pid_of(const char *id)
{
    char path[SB_PATH_MAX];
    snprintf(path, sizeof path, "%s/run/sandboxes/%s/shim.pid", fx.dir, id);
    FILE *f = fopen(path, "re");
    int pid = 0;
    if (f && fscanf(f, "%d", &pid) != 1)
        pid = 0;
    if (f)
        fclose(f);
    return pid;
}

static void wait_gone(int pid)
{
    for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) {
        waitpid(pid, NULL, WNOHANG);
        usleep(10000);
    }
}

static struct sb_create_request create_request(void)
{
    return (struct sb_create_request){.org_id = fx.org.id, .template_id = "base", .timeout_s = 300};
}

static void create_running(struct sb_sandbox_rec *rec)
{
    struct sb_err err = {0};
    struct sb_create_request req = create_request();
    if (registry_create(fx.reg, &req, rec, &err) < 0)
        fail_msg("create: %d %s", err.status, err.msg);
    assert_int_equal(rec->status, SB_SANDBOX_RUNNING);
    assert_true(shim_pid_of(rec->id) > 0);
}

static void assert_no_leftovers(const char *id)
{
    assert_false(exists_in("run/sandboxes", id));
    assert_false(exists_in("sandboxes", id));
}

/* ---- tests ---- */

/* The shim dies before it is ready: the create fails with 502, leaves no
 * row (it never was a sandbox), and what the shim left (its run dir, spec,
 * pid file, half a sandbox dir, cgroups) is cleaned up at once. */
static void test_shim_dies_mid_create(void **state)
{
    (void)state;
    setenv("SANDBASE_FAKE_SHIM", "die-mid-create", 1);
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    struct sb_create_request req = create_request();
    assert_int_equal(registry_create(fx.reg, &req, &rec, &err), -1);
    assert_int_equal(err.status, 502);
    assert_non_null(strstr(err.msg, "exited during set-up"));
    /* its log is gone with its run dir, so its last line is in the error */
    assert_non_null(strstr(err.msg, "its log ended: fake shim: about to die mid-create"));

    struct sb_sandbox_rec *list = NULL;
    size_t count = 9;
    unsigned every = SB_SANDBOX_STATUS_BIT(SB_SANDBOX_CREATING) | SB_SANDBOX_STATUS_BIT(SB_SANDBOX_RUNNING) |
                     SB_SANDBOX_STATUS_BIT(SB_SANDBOX_STOPPED);
    assert_int_equal(store_sandbox_list(fx.store, fx.org.id, every, &list, &count, &err), 0);
    assert_int_equal(count, 0);
    store_sandbox_list_free(list, count);
    assert_int_equal(entries_in("run/sandboxes"), 0);
    assert_int_equal(entries_in("sandboxes"), 0);
    FILE *f = fopen(fx.log, "re");
    char line[128] = "";
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));      /* one cgroup clean-up, for the dead shim */
    assert_non_null(strstr(line, "cleanup sbx_"));
    fclose(f);
}

/* The shim dies after taking the destroy, before answering: the destroy
 * still succeeds, the row is stopped with the caller's reason, and the
 * dead shim's leftovers are gone. */
static void test_shim_dies_mid_destroy(void **state)
{
    (void)state;
    setenv("SANDBASE_FAKE_SHIM", "serve-then-die-on-destroy", 1);
    struct sb_sandbox_rec rec, got;
    struct sb_err err = {0};
    create_running(&rec);
    int pid = shim_pid_of(rec.id);
    assert_true(exists_in("sandboxes", rec.id));

    assert_int_equal(registry_destroy(fx.reg, fx.org.id, rec.id, "deleted", &err), 0);
    assert_true(logged("destroy received\n"));
    wait_gone(pid);
    assert_int_not_equal(kill(pid, 0), 0);
    char line[64];
    snprintf(line, sizeof line, "cleanup %s\n", rec.id);
    assert_true(logged(line));
    assert_no_leftovers(rec.id);
    assert_int_equal(store_sandbox_get(fx.store, fx.org.id, rec.id, &got, &err), 0);
    assert_int_equal(got.status, SB_SANDBOX_STOPPED);
    assert_string_equal(got.stop_reason, "deleted");
    store_sandbox_rec_clear(&got);
    /* every action on it now is the 404 of a stopped sandbox */
    assert_int_equal(registry_destroy(fx.reg, fx.org.id, rec.id, "deleted", &err), -1);
    assert_int_equal(err.status, 404);
    store_sandbox_rec_clear(&rec);
}

/* The shim of a running sandbox is killed: once the registry hears of it
 * the sandbox is stopped, reason lost, and its leftovers are cleaned; a
 * second report changes nothing. */
static void test_shim_dies_while_running(void **state)
{
    (void)state;
    setenv("SANDBASE_FAKE_SHIM", "serve-then-die-on-destroy", 1);
    struct sb_sandbox_rec rec, got;
    struct sb_err err = {0};
    create_running(&rec);
    int pid = shim_pid_of(rec.id);
    assert_int_equal(kill(pid, SIGKILL), 0);
    wait_gone(pid);
    registry_shim_died(fx.reg, rec.id);
    assert_int_equal(store_sandbox_get(fx.store, fx.org.id, rec.id, &got, &err), 0);
    assert_int_equal(got.status, SB_SANDBOX_STOPPED);
    assert_string_equal(got.stop_reason, "lost");
    int64_t stopped_at = got.stopped_at;
    store_sandbox_rec_clear(&got);
    assert_no_leftovers(rec.id);
    registry_shim_died(fx.reg, rec.id);
    assert_int_equal(store_sandbox_get(fx.store, fx.org.id, rec.id, &got, &err), 0);
    assert_string_equal(got.stop_reason, "lost");
    assert_true(got.stopped_at == stopped_at);
    store_sandbox_rec_clear(&got);
    store_sandbox_rec_clear(&rec);
}

/* A shim still alive is never taken for dead: a false report leaves the
 * sandbox running. */
static void test_a_live_shim_reported_dead_stays_running(void **state)
{
    (void)state;
    setenv("SANDBASE_FAKE_SHIM", "serve-then-die-on-destroy", 1);
    struct sb_sandbox_rec rec, got;
    struct sb_err err = {0};
    create_running(&rec);
    registry_shim_died(fx.reg, rec.id);
    assert_int_equal(store_sandbox_get(fx.store, fx.org.id, rec.id, &got, &err), 0);
    assert_int_equal(got.status, SB_SANDBOX_RUNNING);
    store_sandbox_rec_clear(&got);
    int pid = shim_pid_of(rec.id);
    assert_int_equal(registry_destroy(fx.reg, fx.org.id, rec.id, "deleted", &err), 0);
    wait_gone(pid);
    assert_no_leftovers(rec.id);
    store_sandbox_rec_clear(&rec);
}

/* ---- exec ---- */

struct exec_outcome {
    struct sb_loop *loop;
    int done;
    struct sb_err err;
};

static void exec_done(void *arg, struct sb_exec_result *res, const struct sb_err *err)
{
    struct exec_outcome *o = arg;
    o->done = 1;
    if (err)
        o->err = *err;
    if (res)
        registry_exec_result_clear(fx.reg, res);
    sb_loop_stop(o->loop);
}

static void stop_loop(struct sb_loop *loop, void *arg)
{
    (void)arg;
    sb_loop_stop(loop);
}

/* The shim dies after taking the start of an exec run on the loop: the
 * exec answers the 404 of a lost sandbox (found on a worker, answered back
 * on the loop), the row says lost, and the leftovers are gone. */
static void test_shim_dies_mid_exec(void **state)
{
    (void)state;
    setenv("SANDBASE_FAKE_SHIM", "die-mid-exec", 1);
    struct sb_sandbox_rec rec, got;
    struct sb_err err = {0};
    create_running(&rec);
    struct exec_outcome o = {.loop = sb_loop_new()};
    assert_non_null(o.loop);
    assert_int_equal(registry_serve_on(fx.reg, o.loop, &err), 0);
    struct sb_process_request preq = {.cmd = "true", .timeout_s = 10};
    assert_non_null(registry_exec_start(fx.reg, fx.org.id, rec.id, &preq, exec_done, &o, &err));
    sb_loop_timer(o.loop, 20000, stop_loop, NULL);      /* bound: never hang the suite */
    assert_int_equal(sb_loop_run(o.loop), 0);
    assert_true(o.done);
    assert_true(logged("start received\n"));
    assert_int_equal(o.err.status, 404);
    assert_non_null(strstr(o.err.msg, "lost"));
    assert_int_equal(store_sandbox_get(fx.store, fx.org.id, rec.id, &got, &err), 0);
    assert_int_equal(got.status, SB_SANDBOX_STOPPED);
    assert_string_equal(got.stop_reason, "lost");
    store_sandbox_rec_clear(&got);
    assert_no_leftovers(rec.id);
    store_sandbox_rec_clear(&rec);
    registry_free(fx.reg, 1);           /* before the loop it serves on */
    fx.reg = NULL;
    sb_loop_free(o.loop);
}

/* ---- the warm pool ---- */

/* Ids of the sandboxes that have a run dir with a socket. */
static int live_run_dirs(char ids[][32], int max)
{
    char cmd[SB_PATH_MAX];
    snprintf(cmd, sizeof cmd, "cd %s/run/sandboxes 2>/dev/null && ls -d */shim.sock 2>/dev/null", fx.dir);
    FILE *p = popen(cmd, "r");
    int n = 0;
    char line[128];
    while (p && n < max && fgets(line, sizeof line, p)) {
        char *slash = strchr(line, '/');
        if (slash && slash - line < 32) {
            memcpy(ids[n], line, (size_t)(slash - line));
            ids[n++][slash - line] = '\0';
        }
    }
    if (p)
        pclose(p);
    return n;
}

static int log_lines(const char *prefix)
{
    FILE *f = fopen(fx.log, "re");
    char buf[256];
    int n = 0;
    while (f && fgets(buf, sizeof buf, f))
        n += strncmp(buf, prefix, strlen(prefix)) == 0;
    if (f)
        fclose(f);
    return n;
}

/* A refill whose shim dies mid-create adds nothing and leaves nothing; the
 * pool then has nothing to hand out. */
static void test_pool_refill_whose_shim_dies_leaves_nothing(void **state)
{
    (void)state;
    setenv("SANDBASE_FAKE_SHIM", "die-mid-create", 1);
    fx.cfg.pool_size = 2;
    struct sb_pool *pool = pool_new(&fx.cfg, fx.workers);
    assert_non_null(pool);
    pool_fill_all(pool);
    for (int i = 0; i < 300 && log_lines("cleanup ") == 0; i++)
        usleep(10000);
    char id[32];
    struct sb_limits lim;
    int pidfd = -1;
    assert_int_equal(pool_take(pool, "base", id, &lim, &pidfd), -1);
    pool_free(pool, 1);                 /* waits for the refills in flight */
    assert_true(log_lines("cleanup ") >= 1);
    assert_int_equal(entries_in("run/sandboxes"), 0);
    assert_int_equal(entries_in("sandboxes"), 0);
}

/* Pooled sandboxes whose shims were killed are skipped by a claim and
 * cleaned up; the refill that claim schedules builds live ones, and the
 * next claim gets one of those. */
static void test_pooled_sandboxes_whose_shims_died_are_not_handed_out(void **state)
{
    (void)state;
    setenv("SANDBASE_FAKE_SHIM", "serve-then-die-on-destroy", 1);
    fx.cfg.pool_size = 2;
    struct sb_pool *pool = pool_new(&fx.cfg, fx.workers);
    assert_non_null(pool);
    pool_fill_all(pool);
    char dead[2][32], id[32];
    int n = 0;
    for (int i = 0; i < 500 && (n = live_run_dirs(dead, 2)) < 2; i++)
        usleep(10000);
    assert_int_equal(n, 2);
    usleep(200000);                     /* their refill jobs have added them to the pool */
    for (int i = 0; i < 2; i++) {
        int pid = shim_pid_of(dead[i]);
        assert_true(pid > 0);
        assert_int_equal(kill(pid, SIGKILL), 0);
        wait_gone(pid);
    }
    struct sb_limits lim;
    int pidfd = -1;
    assert_int_equal(pool_take(pool, "base", id, &lim, &pidfd), -1);
    /* the dead ones are destroyed on workers (their cgroups handed to the
     * shim binary), and the take scheduled refills */
    int got = -1;
    for (int i = 0; i < 500 && got != 0; i++) {
        usleep(10000);
        got = pool_take(pool, "base", id, &lim, &pidfd);
    }
    assert_int_equal(got, 0);
    assert_string_not_equal(id, dead[0]);
    assert_string_not_equal(id, dead[1]);
    assert_true(pidfd >= 0);
    close(pidfd);
    for (int i = 0; i < 2; i++) {
        char line[64];
        snprintf(line, sizeof line, "cleanup %s\n", dead[i]);
        /* on a worker: its cgroups go first, then its dirs */
        for (int j = 0; j < 300 && (!logged(line) || exists_in("run/sandboxes", dead[i])); j++)
            usleep(10000);
        assert_true(logged(line));
        assert_no_leftovers(dead[i]);
    }
    struct sb_err err = {0};
    int pid = shim_pid_of(id);
    assert_int_equal(shim_destroy(&fx.cfg, id, &err), 0);
    wait_gone(pid);
    assert_no_leftovers(id);
    pool_free(pool, 1);                 /* destroys what the refills built */
    assert_int_equal(entries_in("run/sandboxes"), 0);
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    if (strcmp(base ? base + 1 : argv[0], "sandbase-shim") == 0)
        return fake_shim(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shim_dies_mid_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shim_dies_mid_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shim_dies_mid_exec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shim_dies_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_live_shim_reported_dead_stays_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_refill_whose_shim_dies_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pooled_sandboxes_whose_shims_died_are_not_handed_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
