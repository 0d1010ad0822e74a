/*
 * test_shim.c - the shim and its client for real, as root: a host template
 * in a temp data dir, a detached shim per sandbox, processes entering the
 * sandbox. Covers exec (output, stderr, exit codes, stdin, large and
 * interleaved output, caps), start errors, timeouts killing whole trees,
 * background children that outlive their command (and keep their stdout),
 * pause/resume, status, the raw protocol (attach/replay, list, signal, wait),
 * a client killed mid-exec, a spawner that exits, and destroy (with and
 * without a live shim).
 *
 * The shim it starts is the real sandbase-shim, found beside this binary
 * (cfg.shim_path's default), as serve finds it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
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

#include "core/id.h"
#include "core/config.h"
#include "proto/proto.h"
#include "runtime/sandbox_spec.h"
#include "runtime/shim_client.h"
#include "runtime/template.h"

static struct sb_config cfg;
static struct sb_template tpl;
static char data_dir[128];
static char sandbox_id[32];

static void make_id(char *out, const char *tag)
{
    static int n;
    snprintf(out, 32, "sbx_%s%d_%d", tag, (int)getpid() % 100000, n++);
}

static const struct sb_limits limits = {.cpu_count = 1, .memory_mb = 256, .pids = 256, .disk_mb = 256};

/* Spawns a shim for id on a spec resolved from t, as serve does. */
static int spawn_from(const struct sb_template *t, const char *id, struct sb_err *err)
{
    struct sb_spec spec;
    if (sandbox_spec_resolve(&cfg, t, id, &limits, &spec, err) < 0)
        return -1;
    int rc = shim_spawn(&cfg, &spec, err);
    sb_spec_clear(&spec);
    return rc;
}

static int spawn_sandbox(const char *id, struct sb_err *err)
{
    return spawn_from(&tpl, id, err);
}

static int group_setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_shim: needs root (real namespaces and cgroups)\n");
        return -1;
    }
    snprintf(data_dir, sizeof data_dir, "/tmp/sbshim-XXXXXX");
    if (!mkdtemp(data_dir))
        return -1;
    sb_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", data_dir);
    snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s/run", data_dir);
    struct sb_err err = {0};
    if (sb_config_finish(&cfg, &err) < 0 ||
        template_build_host(data_dir, "base", cfg.uid_base, 0, &err) < 0 ||
        template_load(data_dir, "base", &tpl, &err) < 0) {
        fprintf(stderr, "test_shim: set-up: %s\n", err.msg);
        return -1;
    }
    make_id(sandbox_id, "main");
    if (spawn_sandbox(sandbox_id, &err) < 0) {
        fprintf(stderr, "test_shim: spawn: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    struct sb_err err = {0};
    shim_destroy(&cfg, sandbox_id, &err);
    template_clear(&tpl);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf --one-file-system %s", data_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs argv (NULL-terminated, argv[0] = cmd) in the main sandbox. */
static int run(struct sb_exec_result *res, struct sb_err *err, size_t cap, int timeout_s,
               const char *stdin_data, size_t stdin_len, const char *cmd, ...)
{
    const char *args[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, cmd);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 16)
        args[n++] = a;
    va_end(ap);
    struct sb_exec_request req = {
        .cmd = cmd, .args = args, .arg_count = n, .cwd = "/", .user = "user",
        .stdin_data = stdin_data, .stdin_len = stdin_len, .timeout_s = timeout_s, .output_cap = cap,
    };
    sb_err_clear(err);
    int rc = shim_exec(cfg.run_dir, sandbox_id, &req, res, err);
    if (rc < 0)
        print_message("exec %s: %d %s\n", cmd, err->status, err->msg);
    return rc;
}

static void test_echo(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    assert_int_equal(run(&res, &err, 1 << 20, 10, NULL, 0, "echo", "hi", NULL), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.signal, 0);
    assert_int_equal(res.out_len, 3);
    assert_memory_equal(res.out, "hi\n", 3);
    assert_int_equal(res.err_len, 0);
    assert_true(res.pid > 1);           /* a pid inside the sandbox's namespace */
    assert_false(res.truncated);
    assert_false(res.timed_out);
    shim_exec_result_clear(&res);
}

static void test_stderr_and_exit_code(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    assert_int_equal(run(&res, &err, 1 << 20, 10, NULL, 0, "sh", "-c", "echo out; echo err >&2; exit 3", NULL), 0);
    assert_int_equal(res.exit_code, 3);
    assert_int_equal(res.out_len, 4);
    assert_memory_equal(res.out, "out\n", 4);
    assert_int_equal(res.err_len, 4);
    assert_memory_equal(res.err_out, "err\n", 4);
    shim_exec_result_clear(&res);

    /* the sandbox user, not root, by default */
    assert_int_equal(run(&res, &err, 1 << 20, 10, NULL, 0, "id", "-u", NULL), 0);
    assert_string_equal(res.out, "1000\n");
    shim_exec_result_clear(&res);
}

static void test_stdin_round_trip(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    assert_int_equal(run(&res, &err, 1 << 20, 10, "hello\nworld", 11, "cat", NULL), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.out_len, 11);
    assert_memory_equal(res.out, "hello\nworld", 11);
    shim_exec_result_clear(&res);

    /* 8 MiB through cat: stdin and stdout flow at once, nothing deadlocks */
    size_t big = 8u << 20;
    char *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 23);
    assert_int_equal(run(&res, &err, big, 60, data, big, "cat", NULL), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.out_len, big);
    assert_memory_equal(res.out, data, big);
    assert_false(res.truncated);
    shim_exec_result_clear(&res);

    /* a process that stops reading its stdin early does not hold the exec */
    assert_int_equal(run(&res, &err, 1024, 30, data, big, "head", "-c", "5", NULL), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.out_len, 5);
    assert_memory_equal(res.out, data, 5);
    shim_exec_result_clear(&res);
    free(data);
}

static void test_oom_killed(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    /* the shell holds 300 MB in a variable: past the sandbox's 256 MiB limit */
    assert_int_equal(run(&res, &err, 1024, 60, NULL, 0, "sh", "-c",
                         "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived", NULL), 0);
    assert_int_equal(res.out_len, 0);
    assert_int_equal(res.signal, SIGKILL);
    assert_true(res.oom_killed);
    assert_false(res.timed_out);
    shim_exec_result_clear(&res);
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "true", NULL), 0);   /* the sandbox lives on */
    shim_exec_result_clear(&res);
}

static void test_large_output_truncated(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    int64_t t0 = sb_mono_ms();
    assert_int_equal(run(&res, &err, 1 << 20, 60, NULL, 0, "head", "-c", "20971520", "/dev/zero", NULL), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.out_len, 1 << 20);
    assert_true(res.truncated);
    assert_true(sb_mono_ms() - t0 < 30000);
    shim_exec_result_clear(&res);
}

static void test_interleaved_streams_complete(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    const char *script = "i=0; while [ $i -lt 12 ]; do head -c 1048576 /dev/zero; "
                         "head -c 1048576 /dev/zero >&2; i=$((i+1)); done; echo end";
    assert_int_equal(run(&res, &err, 16u << 20, 60, NULL, 0, "sh", "-c", script, NULL), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.out_len, (12u << 20) + 4);  /* more than a ring holds: nothing dropped */
    assert_int_equal(res.err_len, 12u << 20);
    assert_memory_equal(res.out + res.out_len - 4, "end\n", 4);
    assert_false(res.truncated);
    shim_exec_result_clear(&res);
}

static void test_start_errors(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "no-such-command-xyz", NULL), -1);
    assert_int_equal(err.status, 502);
    assert_string_equal(err.msg, "command not found: no-such-command-xyz");
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "/etc/passwd", NULL), -1);
    assert_int_equal(err.status, 502);
    assert_string_equal(err.msg, "permission denied: /etc/passwd");
    const char *args[] = {"-c", "true"};
    struct sb_exec_request req = {.cmd = "sh", .args = args, .arg_count = 2, .cwd = "/does/not/exist",
                                  .timeout_s = 10, .output_cap = 1024};
    assert_int_equal(shim_exec(cfg.run_dir, sandbox_id, &req, &res, &err), -1);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.msg, "working directory not found: /does/not/exist");
    /* the sandbox still works afterwards */
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "true", NULL), 0);
    shim_exec_result_clear(&res);
}

static int sandbox_process_count(void)
{
    struct sb_shim_status st;
    struct sb_err err = {0};
    if (shim_status(cfg.run_dir, sandbox_id, &st, &err) < 0)
        return -1;
    return st.process_count;
}

static void test_timeout_kills_tree(void **state)
{
    int before = sandbox_process_count();
    assert_true(before >= 1);
    struct sb_exec_result res;
    struct sb_err err;
    int64_t t0 = sb_mono_ms();
    assert_int_equal(run(&res, &err, 1024, 1, NULL, 0, "sh", "-c", "setsid sleep 100 & echo started; sleep 100", NULL), 0);
    int64_t took = sb_mono_ms() - t0;
    assert_true(res.timed_out);
    assert_int_equal(res.signal, SIGKILL);
    assert_int_equal(res.exit_code, -1);
    assert_string_equal(res.out, "started\n");
    assert_true(took >= 900 && took < 6000);
    shim_exec_result_clear(&res);
    /* the setsid'd grandchild died with its leaf */
    int after = -1;
    for (int i = 0; i < 40 && (after = sandbox_process_count()) != before; i++)
        usleep(50000);
    assert_int_equal(after, before);
}

/* How many processes named name run in the main sandbox (pgrep -c -x). */
static int sandbox_count(const char *name)
{
    struct sb_exec_result res;
    struct sb_err err;
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "pgrep", "-c", "-x", name, NULL), 0);
    int n = atoi(res.out);
    shim_exec_result_clear(&res);
    return n;
}

/* Kills what a test left running in the main sandbox, so that process
 * counts of later tests hold. */
static void sandbox_kill_all(const char *name)
{
    struct sb_exec_result res;
    struct sb_err err;
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "pkill", "-KILL", "-x", name, NULL), 0);
    shim_exec_result_clear(&res);
    for (int i = 0; i < 40 && sandbox_count(name) > 0; i++)
        usleep(50000);
    assert_int_equal(sandbox_count(name), 0);
}

/* `server &` in a command: the call returns when the shell exits, though the
 * child still holds the output pipe, and the child lives on. */
static void test_background_child_lives_on(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    int64_t t0 = sb_mono_ms();
    assert_int_equal(run(&res, &err, 1024, 30, NULL, 0, "sh", "-c", "sleep 100 & echo started", NULL), 0);
    int64_t took = sb_mono_ms() - t0;
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(res.out, "started\n");
    assert_true(took < 400);
    shim_exec_result_clear(&res);
    usleep(200000);
    assert_int_equal(sandbox_count("sleep"), 1);
    sandbox_kill_all("sleep");
}

/* Output of a chatty background child cannot keep the call open. */
static void test_chatty_background_child_does_not_hold_the_call(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    int64_t t0 = sb_mono_ms();
    assert_int_equal(run(&res, &err, 1 << 20, 30, NULL, 0, "sh", "-c", "yes & sleep 0.05; echo started >&2", NULL), 0);
    int64_t took = sb_mono_ms() - t0;
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(res.err_out, "started\n");
    assert_true(res.out_len > 0);
    assert_memory_equal(res.out, "y\ny\n", 4);
    assert_true(took < 1000);
    shim_exec_result_clear(&res);
    assert_int_equal(sandbox_count("yes"), 1);
    sandbox_kill_all("yes");
}

/* A command that ends after writing more than a pipe holds: the bytes still
 * in the pipe at its exit are part of the result, without waiting for the
 * child that keeps the pipe open. */
static void test_output_in_the_pipe_at_exit_is_returned(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    int64_t t0 = sb_mono_ms();
    assert_int_equal(run(&res, &err, 1 << 20, 30, NULL, 0, "sh", "-c",
                         "sleep 100 & exec head -c 204800 /dev/zero", NULL), 0);
    int64_t took = sb_mono_ms() - t0;
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.out_len, 204800);
    assert_false(res.truncated);
    assert_true(took < 400);
    shim_exec_result_clear(&res);
    sandbox_kill_all("sleep");
}

/* The timeout still kills everything in the leaf, the child holding the
 * pipe included. */
static void test_timeout_kills_background_child(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    assert_int_equal(run(&res, &err, 1024, 1, NULL, 0, "sh", "-c", "sleep 100 & echo started; sleep 101", NULL), 0);
    assert_true(res.timed_out);
    assert_int_equal(res.signal, SIGKILL);
    assert_string_equal(res.out, "started\n");
    shim_exec_result_clear(&res);
    assert_int_equal(sandbox_count("sleep"), 0);
}

/* ---- raw protocol helpers ---- */

static int raw_connect(const char *id)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/sandboxes/%s/shim.sock", cfg.run_dir, id);
    assert_true(n > 0 && (size_t)n < sizeof addr.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

static void raw_send(int fd, json_t *req)
{
    size_t len;
    uint8_t *frame = sb_frame_json(req, &len);
    json_decref(req);
    assert_non_null(frame);
    assert_int_equal(send(fd, frame, len, MSG_NOSIGNAL), (ssize_t)len);
    free(frame);
}

struct raw {
    int fd;
    struct sb_frame_reader r;
    size_t out_bytes;
    char first[64];                 /* first stdout bytes seen */
    size_t first_len;
    uint64_t first_offset;
    char seen[256];                 /* every stdout byte, as far as it fits */
    size_t seen_len;
};

/* Reads frames for up to ms; returns the first JSON frame matching want_seq
 * (or any "exit" event when want_seq is -1), NULL on timeout. */
static json_t *raw_read(struct raw *x, int64_t want_seq, int ms)
{
    int64_t deadline = sb_mono_ms() + ms;
    for (;;) {
        struct sb_frame f;
        struct sb_err err = {0};
        int rc;
        while ((rc = sb_frame_reader_next(&x->r, &f, &err)) == 1) {
            if (f.type == SB_FRAME_OUTPUT) {
                struct sb_output_chunk ch;
                assert_int_equal(sb_frame_parse_output(&f, &ch, &err), 0);
                if (x->first_len == 0 && ch.stream == SB_STREAM_STDOUT && ch.len > 0) {
                    x->first_len = ch.len < sizeof x->first ? ch.len : sizeof x->first;
                    memcpy(x->first, ch.data, x->first_len);
                    x->first_offset = ch.offset;
                }
                if (ch.stream == SB_STREAM_STDOUT && x->seen_len < sizeof x->seen) {
                    size_t n = ch.len < sizeof x->seen - x->seen_len ? ch.len : sizeof x->seen - x->seen_len;
                    memcpy(x->seen + x->seen_len, ch.data, n);
                    x->seen_len += n;
                }
                x->out_bytes += ch.len;
                continue;
            }
            json_t *o = sb_frame_parse_json(&f, &err);
            assert_non_null(o);
            const char *ev = json_string_value(json_object_get(o, "event"));
            if ((want_seq < 0 && ev && strcmp(ev, "exit") == 0) ||
                (want_seq >= 0 && !ev && json_integer_value(json_object_get(o, "seq")) == want_seq))
                return o;
            json_decref(o);
        }
        assert_int_equal(rc, 0);
        int left = (int)(deadline - sb_mono_ms());
        if (left <= 0)
            return NULL;
        struct pollfd pfd = {.fd = x->fd, .events = POLLIN};
        if (poll(&pfd, 1, left) <= 0)
            return NULL;
        size_t room;
        uint8_t *dst = sb_frame_reader_space(&x->r, &room);
        ssize_t n = recv(x->fd, dst, room, 0);
        assert_true(n > 0);
        sb_frame_reader_commit(&x->r, (size_t)n);
    }
}

static void raw_open(struct raw *x, const char *id)
{
    memset(x, 0, sizeof *x);
    x->fd = raw_connect(id);
    assert_int_equal(sb_frame_reader_init(&x->r, NULL), 0);
}

static void raw_close(struct raw *x)
{
    close(x->fd);
    sb_frame_reader_free(&x->r);
}

/* The pipes stay open after the call returned: a child writing to stdout
 * later is not killed by SIGPIPE, and its bytes reach the ring. */
static void test_background_child_keeps_its_stdout(void **state)
{
    struct sb_exec_result res;
    struct sb_err err;
    const char *script = "rm -f /tmp/later-ok; (sleep 0.3; echo later; touch /tmp/later-ok) & echo now";
    assert_int_equal(run(&res, &err, 1024, 30, NULL, 0, "sh", "-c", script, NULL), 0);
    assert_string_equal(res.out, "now\n");     /* returned before "later" was written */
    shim_exec_result_clear(&res);
    usleep(1000000);
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "test", "-e", "/tmp/later-ok", NULL), 0);
    assert_int_equal(res.exit_code, 0);
    shim_exec_result_clear(&res);

    struct raw x;
    raw_open(&x, sandbox_id);
    raw_send(x.fd, json_pack("{s:s, s:i}", "op", "list", "seq", 1));
    json_t *resp = raw_read(&x, 1, 2000);
    assert_non_null(resp);
    json_t *procs = json_object_get(resp, "processes"), *found = NULL;
    for (size_t i = 0; i < json_array_size(procs); i++) {
        json_t *p = json_array_get(procs, i);
        const char *arg = json_string_value(json_array_get(json_object_get(p, "argv"), 2));
        if (arg && strcmp(arg, script) == 0)
            found = p;
    }
    assert_non_null(found);
    assert_false(json_is_true(json_object_get(found, "running")));
    assert_int_equal(json_integer_value(json_object_get(found, "stdout_end")), strlen("now\nlater\n"));
    json_decref(resp);
    raw_close(&x);
}

/* An explicit SIGKILL ends the whole tree at once, children included. */
static void test_sigkill_kills_background_child(void **state)
{
    struct raw x;
    raw_open(&x, sandbox_id);
    raw_send(x.fd, json_pack("{s:s, s:i, s:[s,s,s], s:b}", "op", "start", "seq", 1, "argv", "sh", "-c",
                             "sleep 100 & echo started; sleep 101", "attach", 1));
    json_t *resp = raw_read(&x, 1, 5000);
    assert_non_null(resp);
    assert_true(json_is_true(json_object_get(resp, "ok")));
    json_int_t proc = json_integer_value(json_object_get(resp, "proc"));
    json_decref(resp);
    assert_null(raw_read(&x, 99, 200));
    assert_memory_equal(x.first, "started\n", 8);
    int64_t t0 = sb_mono_ms();
    raw_send(x.fd, json_pack("{s:s, s:i, s:I, s:i}", "op", "signal", "seq", 2, "proc", proc, "signal", SIGKILL));
    json_t *ev = raw_read(&x, -1, 5000);
    assert_non_null(ev);
    assert_true(sb_mono_ms() - t0 < 400);
    assert_int_equal(json_integer_value(json_object_get(ev, "signal")), SIGKILL);
    json_decref(ev);
    raw_close(&x);
    assert_int_equal(sandbox_count("sleep"), 0);
}

static void test_pause_resume_and_protocol(void **state)
{
    struct raw x;
    raw_open(&x, sandbox_id);
    raw_send(x.fd, json_pack("{s:s, s:i, s:[s,s,s], s:s, s:b, s:i}", "op", "start", "seq", 1, "argv", "sh", "-c",
                             "i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done",
                             "tag", "counter", "attach", 1, "timeout_ms", 30000));
    json_t *resp = raw_read(&x, 1, 5000);
    assert_non_null(resp);
    if (!json_is_true(json_object_get(resp, "ok")))
        fail_msg("start: %s", json_string_value(json_object_get(resp, "error")));
    json_int_t proc = json_integer_value(json_object_get(resp, "proc"));
    json_decref(resp);

    assert_null(raw_read(&x, 99, 400));
    assert_true(x.out_bytes > 0);
    assert_memory_equal(x.first, "1\n", 2);

    struct sb_err err = {0};
    if (shim_pause(cfg.run_dir, sandbox_id, &err) < 0)
        fail_msg("pause: %s", err.msg);
    struct sb_shim_status st;
    assert_int_equal(shim_status(cfg.run_dir, sandbox_id, &st, &err), 0);
    assert_true(st.paused);
    assert_null(raw_read(&x, 99, 200));     /* what was in flight */
    size_t frozen_at = x.out_bytes;
    assert_null(raw_read(&x, 99, 600));
    assert_int_equal(x.out_bytes, frozen_at); /* the counter stopped */

    struct sb_exec_result res;
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "echo", "x", NULL), -1);
    assert_int_equal(err.status, 409);
    assert_string_equal(err.msg, "sandbox is paused");

    assert_int_equal(shim_resume(cfg.run_dir, sandbox_id, &err), 0);
    assert_null(raw_read(&x, 99, 400));
    assert_true(x.out_bytes > frozen_at);   /* and runs again */
    assert_int_equal(shim_status(cfg.run_dir, sandbox_id, &st, &err), 0);
    assert_false(st.paused);

    /* a second client replays from offset 0, then sees the list */
    struct raw y;
    raw_open(&y, sandbox_id);
    raw_send(y.fd, json_pack("{s:s, s:i, s:I, s:i, s:i}", "op", "attach", "seq", 1, "proc", proc,
                             "stdout_offset", 0, "stderr_offset", 0));
    resp = raw_read(&y, 1, 2000);
    assert_non_null(resp);
    assert_int_equal(json_integer_value(json_object_get(resp, "stdout_offset")), 0);
    json_decref(resp);
    assert_null(raw_read(&y, 99, 200));
    assert_int_equal(y.first_offset, 0);
    assert_memory_equal(y.first, "1\n2\n", 4);
    raw_send(y.fd, json_pack("{s:s, s:i}", "op", "list", "seq", 2));
    resp = raw_read(&y, 2, 2000);
    assert_non_null(resp);
    json_t *procs = json_object_get(resp, "processes");
    int found = 0;
    for (size_t i = 0; i < json_array_size(procs); i++) {
        json_t *p = json_array_get(procs, i);
        if (json_integer_value(json_object_get(p, "proc")) == proc) {
            found = 1;
            assert_string_equal(json_string_value(json_object_get(p, "tag")), "counter");
            assert_true(json_is_true(json_object_get(p, "running")));
        }
    }
    assert_true(found);
    json_decref(resp);
    raw_send(y.fd, json_pack("{s:s, s:i, s:I}", "op", "wait", "seq", 3, "proc", proc));

    /* resize needs a terminal (400 for pipes); SIGTERM ends the counter; both clients learn it */
    raw_send(x.fd, json_pack("{s:s, s:i, s:I, s:i, s:i}", "op", "resize", "seq", 2, "proc", proc, "rows", 24, "cols", 80));
    resp = raw_read(&x, 2, 2000);
    assert_non_null(resp);
    assert_int_equal(json_integer_value(json_object_get(resp, "status")), 400);
    json_decref(resp);
    raw_send(x.fd, json_pack("{s:s, s:i, s:I, s:i}", "op", "signal", "seq", 3, "proc", proc, "signal", SIGTERM));
    json_t *ev = raw_read(&x, -1, 5000);
    assert_non_null(ev);
    assert_int_equal(json_integer_value(json_object_get(ev, "signal")), SIGTERM);
    json_decref(ev);
    resp = raw_read(&y, 3, 5000);
    assert_non_null(resp);
    assert_int_equal(json_integer_value(json_object_get(resp, "signal")), SIGTERM);
    assert_false(json_is_true(json_object_get(resp, "running")));
    json_decref(resp);
    raw_close(&x);
    raw_close(&y);
}

/* A PTY of the sandbox's own devpts: the process's controlling terminal,
 * of the size asked, owned by the process's user; its output is one
 * stream. get finds it by tag and by pid; resize needs it running. */
static void test_pty(void **state)
{
    struct raw x;
    raw_open(&x, sandbox_id);
    raw_send(x.fd, json_pack("{s:s, s:i, s:[s,s,s], s:s, s:{s:i, s:i}, s:b}", "op", "start", "seq", 1, "argv",
                             "sh", "-c", "read go; echo $(tty) $(stty size) $(stat -c %u $(tty)) $$", "tag", "term",
                             "pty", "rows", 5, "cols", 7, "attach", 1));
    json_t *resp = raw_read(&x, 1, 5000);
    assert_non_null(resp);
    if (!json_is_true(json_object_get(resp, "ok")))
        fail_msg("start: %s", json_string_value(json_object_get(resp, "error")));
    json_int_t pid = json_integer_value(json_object_get(resp, "pid"));
    json_decref(resp);

    raw_send(x.fd, json_pack("{s:s, s:i, s:s}", "op", "get", "seq", 2, "tag", "term"));
    resp = raw_read(&x, 2, 2000);
    assert_int_equal(json_integer_value(json_object_get(resp, "pid")), pid);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(resp, "pty"), "rows")), 5);
    json_decref(resp);
    raw_send(x.fd, json_pack("{s:s, s:i, s:I, s:i, s:i}", "op", "resize", "seq", 3, "pid", pid, "rows", 0, "cols", 7));
    resp = raw_read(&x, 3, 2000);
    assert_int_equal(json_integer_value(json_object_get(resp, "status")), 400);
    json_decref(resp);
    raw_send(x.fd, json_pack("{s:s, s:i, s:I, s:i, s:i}", "op", "resize", "seq", 4, "pid", pid, "rows", 6, "cols", 9));
    resp = raw_read(&x, 4, 2000);
    assert_true(json_is_true(json_object_get(resp, "ok")));
    json_decref(resp);

    /* stdin is the terminal: the line goes through it (echoed), then the answer */
    size_t total = SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER + 3;
    uint8_t frame[64];
    raw_send(x.fd, json_pack("{s:s, s:i, s:s}", "op", "get", "seq", 6, "tag", "term"));
    resp = raw_read(&x, 6, 2000);
    uint32_t proc = (uint32_t)json_integer_value(json_object_get(resp, "proc"));
    json_decref(resp);
    sb_frame_stdin_header(frame, 5, proc, 3);
    memcpy(frame + SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER, "go\n", 3);
    assert_int_equal(send(x.fd, frame, total, MSG_NOSIGNAL), (ssize_t)total);
    json_t *ev = raw_read(&x, -1, 5000);
    assert_non_null(ev);
    assert_int_equal(json_integer_value(json_object_get(ev, "exit_code")), 0);
    json_decref(ev);
    char expect[64];
    snprintf(expect, sizeof expect, "go\r\n/dev/pts/");
    assert_true(x.seen_len >= strlen(expect));
    assert_memory_equal(x.seen, expect, strlen(expect));
    char line[80];
    snprintf(line, sizeof line, " 6 9 1000 %lld\r\n", (long long)pid);   /* the template user's terminal */
    if (!memmem(x.seen, x.seen_len, line, strlen(line)))
        fail_msg("no \"%s\" in \"%.*s\"", line, (int)x.seen_len, x.seen);

    raw_send(x.fd, json_pack("{s:s, s:i, s:I, s:i, s:i}", "op", "resize", "seq", 7, "pid", pid, "rows", 6, "cols", 9));
    resp = raw_read(&x, 7, 2000);
    assert_int_equal(json_integer_value(json_object_get(resp, "status")), 409);
    json_decref(resp);
    raw_close(&x);
}

static void test_status(void **state)
{
    struct sb_shim_status st;
    struct sb_err err = {0};
    assert_int_equal(shim_status(cfg.run_dir, sandbox_id, &st, &err), 0);
    assert_true(st.shim_pid > 1);
    assert_int_equal(kill(st.shim_pid, 0), 0);
    assert_true(st.init_pid > 1);
    assert_int_equal(kill(st.init_pid, 0), 0);
    assert_true(st.process_count >= 1);
    assert_false(st.paused);
    assert_int_equal(shim_status(cfg.run_dir, "sbx_nosuchsandbox", &st, &err), -1);
    assert_int_equal(err.status, 404);
    assert_int_equal(shim_pause(cfg.run_dir, "sbx_nosuchsandbox", &err), -1);
    assert_int_equal(err.status, 502);

    char (*ids)[32] = NULL;
    size_t count = 0;
    assert_int_equal(shim_list_ids(cfg.run_dir, &ids, &count, &err), 0);
    int found = 0;
    for (size_t i = 0; i < count; i++)
        found |= strcmp(ids[i], sandbox_id) == 0;
    assert_true(found);
    free(ids);
}

static void test_client_killed_mid_exec(void **state)
{
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct sb_exec_result res;
        struct sb_err err;
        run(&res, &err, 1 << 20, 30, NULL, 0, "sh", "-c", "while true; do echo spam; done", NULL);
        _exit(0);
    }
    usleep(500000);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    struct sb_exec_result res;
    struct sb_err err;
    assert_int_equal(run(&res, &err, 1024, 10, NULL, 0, "echo", "still", NULL), 0);
    assert_string_equal(res.out, "still\n");
    shim_exec_result_clear(&res);
    struct sb_shim_status st;
    assert_int_equal(shim_status(cfg.run_dir, sandbox_id, &st, &err), 0);
}

__attribute__((format(printf, 1, 2)))
static int path_exists(const char *fmt, ...)
{
    char path[SB_PATH_MAX];
    struct stat st;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof path);
    return lstat(path, &st) == 0;
}

static void assert_all_gone(const char *id, pid_t shim_pid)
{
    assert_false(path_exists("%s/sandboxes/%s", cfg.run_dir, id));
    assert_false(path_exists("%s/sandboxes/%s", cfg.data_dir, id));
    assert_false(path_exists("%s/sandbase/%s", "/sys/fs/cgroup/pids", id));
    assert_false(path_exists("%s/sandbase/%s", "/sys/fs/cgroup/memory", id));
    assert_false(path_exists("%s/sandbase/%s", "/sys/fs/cgroup/freezer", id));
    for (int i = 0; i < 40 && kill(shim_pid, 0) == 0; i++)
        usleep(50000);
    assert_int_equal(kill(shim_pid, 0), -1);
    struct sb_shim_status st;
    struct sb_err err = {0};
    assert_int_equal(shim_status(cfg.run_dir, id, &st, &err), -1);
    assert_int_equal(err.status, 404);
}

static void test_spawner_exits_then_destroy(void **state)
{
    char id[32];
    make_id(id, "orph");
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct sb_err err = {0};
        _exit(spawn_sandbox(id, &err) == 0 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    struct sb_shim_status st;
    struct sb_err err = {0};
    assert_int_equal(shim_status(cfg.run_dir, id, &st, &err), 0);
    assert_int_equal(kill(st.shim_pid, 0), 0);
    assert_true(path_exists("%s/sandboxes/%s/shim.pid", cfg.run_dir, id));

    assert_int_equal(shim_destroy(&cfg, id, &err), 0);
    assert_all_gone(id, st.shim_pid);
    assert_int_equal(shim_destroy(&cfg, id, &err), 0);   /* idempotent */
}

static void test_destroy_after_shim_killed(void **state)
{
    char id[32];
    make_id(id, "kill");
    struct sb_err err = {0};
    assert_int_equal(spawn_sandbox(id, &err), 0);
    struct sb_shim_status st;
    assert_int_equal(shim_status(cfg.run_dir, id, &st, &err), 0);
    assert_int_equal(kill(st.shim_pid, SIGKILL), 0);
    for (int i = 0; i < 40 && shim_status(cfg.run_dir, id, &st, &err) == 0; i++)
        usleep(50000);
    assert_int_equal(shim_destroy(&cfg, id, &err), 0);
    assert_all_gone(id, st.shim_pid);
}

static void test_spawn_error_reported(void **state)
{
    char id[32];
    make_id(id, "bad");
    struct sb_template missing = tpl;
    snprintf(missing.name, sizeof missing.name, "no-such-template");
    snprintf(missing.dir, sizeof missing.dir, "%s/templates/no-such-template", data_dir);
    struct sb_err err = {0};
    int64_t t0 = sb_mono_ms();
    assert_int_equal(spawn_from(&missing, id, &err), -1);
    assert_int_equal(err.status, 502);
    assert_non_null(strstr(err.msg, "no-such-template"));
    assert_true(sb_mono_ms() - t0 < 5000);
    assert_false(path_exists("%s/sandboxes/%s", cfg.run_dir, id));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_stderr_and_exit_code),
        cmocka_unit_test(test_stdin_round_trip),
        cmocka_unit_test(test_large_output_truncated),
        cmocka_unit_test(test_interleaved_streams_complete),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_oom_killed),
        cmocka_unit_test(test_timeout_kills_tree),
        cmocka_unit_test(test_background_child_lives_on),
        cmocka_unit_test(test_chatty_background_child_does_not_hold_the_call),
        cmocka_unit_test(test_output_in_the_pipe_at_exit_is_returned),
        cmocka_unit_test(test_timeout_kills_background_child),
        cmocka_unit_test(test_background_child_keeps_its_stdout),
        cmocka_unit_test(test_sigkill_kills_background_child),
        cmocka_unit_test(test_pause_resume_and_protocol),
        cmocka_unit_test(test_pty),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_client_killed_mid_exec),
        cmocka_unit_test(test_spawner_exits_then_destroy),
        cmocka_unit_test(test_destroy_after_shim_killed),
        cmocka_unit_test(test_spawn_error_reported),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
