/*
 * test_container.c - real sandboxes, as root: container_create on a host
 * template (template_build_host), processes entered with
 * container_enter_and_exec, and assertions made from inside the sandbox
 * (nsjail-style: a shell prints what it sees, the test checks it) and from
 * the host (cgroups, loop devices, directories). The seccomp policy is also
 * checked directly in a forked child, syscall by syscall.
 *
 * The test process plays the shim: it is a child subreaper and reaps what
 * it starts. Skipped when not root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/id.h"
#include "runtime/sandbox_spec.h"
#include "runtime/template.h"
#include "shim/cgroup.h"
#include "shim/container.h"
#include "shim/seccomp.h"
#include "shim/caps.h"

#define UID_BASE 100000u
#define OUT_MAX 65536

struct fixture {
    char data_dir[64];
    struct sb_template tpl;
    struct sb_container c;
    int ready;
};
static struct fixture fx;
static unsigned leaf_seq;

/* ---- helpers ------------------------------------------------------------------ */

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

/* Builds sandbox id from the fixture's template the way the shim does: a
 * spec resolved as serve resolves it, the rootfs mounted by path. */
static int create_sandbox(struct sb_container *c, const char *id, struct sb_limits lim, struct sb_err *err)
{
    struct sb_config server;
    struct sb_spec spec;
    sb_config_defaults(&server);
    server.uid_base = UID_BASE;
    snprintf(server.data_dir, sizeof(server.data_dir), "%s", fx.data_dir);
    snprintf(server.run_dir, sizeof(server.run_dir), "%s/run", fx.data_dir);
    if (sandbox_spec_resolve(&server, &fx.tpl, id, &lim, &spec, err) < 0)
        return -1;
    struct sb_container_config cfg = { .spec = &spec, .rootfs = fx.tpl.rootfs };
    int rc = container_create(&cfg, c, err);
    sb_spec_clear(&spec);
    return rc;
}

struct proc {
    pid_t pid;          /* host pid of the process in the sandbox */
    int out;            /* read end of its stdout+stderr */
    int enter_errno;    /* errno reported before exec, 0 if it exec'd */
    char leaf[16];
};

/* Starts argv in the sandbox the way the shim does. */
static void start(struct sb_container *c, int as_root, const char *cwd, char *const *argv, struct proc *p)
{
    static char *const envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/user", "LC_ALL=C", NULL };
    struct sb_err err;
    memset(p, 0, sizeof(*p));
    snprintf(p->leaf, sizeof(p->leaf), "p%u", ++leaf_seq);
    if (container_leaf_create(c, p->leaf, &err) < 0)
        fail_msg("leaf: %s", err.msg);
    int out[2], report[2], errp[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(report, O_CLOEXEC), 0);
    assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
    struct sb_container_exec ex = {
        .path = argv[0], .argv = argv, .envp = envp, .cwd = cwd, .as_root = as_root, .cgroup_leaf = p->leaf,
    };
    pid_t mid = fork();
    assert_true(mid >= 0);
    if (mid == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        container_enter_and_exec(c, &ex, report[1], errp[1]);
    }
    close(out[1]);
    close(report[1]);
    close(errp[1]);
    int status;
    assert_int_equal(waitpid(mid, &status, 0), mid);
    pid_t pid = 0;
    ssize_t n = read(report[0], &pid, sizeof(pid));
    p->pid = n == (ssize_t)sizeof(pid) ? pid : 0;
    int e = 0;
    n = read(errp[0], &e, sizeof(e));
    p->enter_errno = n == (ssize_t)sizeof(e) ? e : 0;
    close(report[0]);
    close(errp[0]);
    p->out = out[0];
}

/* Reads p's output until EOF (or timeout), waits for it; returns the status. */
static int finish(struct sb_container *c, struct proc *p, char *buf, size_t len, int timeout_ms)
{
    size_t used = 0;
    int64_t deadline = sb_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - sb_mono_ms();
        struct pollfd pfd = { .fd = p->out, .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        char tmp[4096];
        ssize_t n = read(p->out, tmp, sizeof(tmp));
        if (n <= 0)
            break;
        size_t take = (size_t)n < len - 1 - used ? (size_t)n : len - 1 - used;
        memcpy(buf + used, tmp, take);
        used += take;
    }
    buf[used] = '\0';
    close(p->out);
    int status = -1;
    if (p->pid > 0) {
        struct sb_err err;
        container_leaf_kill(c, p->leaf, &err); /* anything still running after the timeout */
        waitpid(p->pid, &status, 0);
    }
    container_leaf_remove(c, p->leaf);
    return status;
}

/* Runs a shell script in the main sandbox; returns its exit code, output in out. */
static int sh(int as_root, const char *script, char *out)
{
    char *const argv[] = { "sh", "-c", (char *)script, NULL };
    struct proc p;
    start(&fx.c, as_root, NULL, argv, &p);
    assert_int_equal(p.enter_errno, 0);
    int status = finish(&fx.c, &p, out, OUT_MAX, 20000);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("expected \"%s\" in:\n%s", needle, text);
}

/* ---- fixture: a host template and one sandbox ---------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (geteuid() != 0)
        return 0;
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    snprintf(fx.data_dir, sizeof(fx.data_dir), "/tmp/test_container.XXXXXX");
    if (!mkdtemp(fx.data_dir))
        return -1;
    struct sb_err err;
    sb_err_clear(&err);
    if (template_build_host(fx.data_dir, "host", UID_BASE, 0, &err) < 0 ||
        template_load(fx.data_dir, "host", &fx.tpl, &err) < 0) {
        fprintf(stderr, "template: %s\n", err.msg);
        return -1;
    }
    struct sb_limits lim = { .cpu_count = 1, .memory_mb = 64, .pids = 32, .disk_mb = 64 };
    char id[32];
    snprintf(id, sizeof(id), "sbx_test%ld", (long)getpid());
    int64_t t0 = sb_mono_ms();
    if (create_sandbox(&fx.c, id, lim, &err) < 0) {
        fprintf(stderr, "create: %s\n", err.msg);
        return -1;
    }
    fprintf(stderr, "# container_create took %lld ms\n", (long long)(sb_mono_ms() - t0));
    fx.ready = 1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    struct sb_err err;
    int rc = 0;
    if (fx.ready && container_destroy(&fx.c, &err) < 0) {
        fprintf(stderr, "destroy: %s\n", err.msg);
        rc = -1;
    }
    if (fx.data_dir[0]) {
        template_clear(&fx.tpl);
        nftw(fx.data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return rc;
}

#define NEED_SANDBOX()                                                                              \
    do {                                                                                            \
        if (!fx.ready)                                                                              \
            skip();                                                                                 \
    } while (0)

/* ---- identity, capabilities, seccomp, hostname ------------------------------------ */

static void test_user_identity(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    int rc = sh(0, "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status;"
                   "echo uid=$(id -u) gid=$(id -g); echo host=$(cat /proc/sys/kernel/hostname); pwd",
                out);
    assert_int_equal(rc, 0);
    assert_contains(out, "CapInh:\t0000000000000000");
    assert_contains(out, "CapPrm:\t0000000000000000");
    assert_contains(out, "CapEff:\t0000000000000000");
    assert_contains(out, "CapBnd:\t0000000000000000");
    assert_contains(out, "CapAmb:\t0000000000000000");
    assert_contains(out, "NoNewPrivs:\t1");
    assert_contains(out, "Seccomp:\t2");
    assert_contains(out, "uid=1000 gid=1000");
    char want[64];
    snprintf(want, sizeof(want), "host=%s", fx.c.id);
    assert_contains(out, want);
    assert_contains(out, fx.tpl.workdir);
    free(out);
}

static void test_root_identity(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    int rc = sh(1, "grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status; echo uid=$(id -u)", out);
    assert_int_equal(rc, 0);
    /* Docker's default set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID
     * SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE */
    assert_contains(out, "CapEff:\t00000000a80425fb");
    assert_contains(out, "CapBnd:\t00000000a80425fb");
    assert_contains(out, "NoNewPrivs:\t1");
    assert_contains(out, "Seccomp:\t2");
    assert_contains(out, "uid=0");
    free(out);
}

/* Syscalls from inside, as root (who holds capabilities in its user namespace). */
static void test_root_cannot_escape(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    const char *script =
        "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED;"
        "unshare -U true 2>/dev/null && echo UNSHARED;"
        "unshare -m true 2>/dev/null && echo UNSHARED_MNT;"
        "hostname evil 2>/dev/null && echo HOSTNAME;"
        "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo PROCSYS;"
        "echo x > /sys/kernel/uevent_helper 2>/dev/null && echo SYSFS;"
        "touch /sys/x 2>/dev/null && echo SYSTOUCH;"
        "ip link set lo down 2>/dev/null && echo IPLINK;"
        "mknod /tmp/sda b 8 0 2>/dev/null && echo MKNOD;"
        "touch /usr/x 2>/dev/null && echo USRWRITE;"
        "echo 'b' > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ;"
        "echo masked=$(cat /proc/timer_list /proc/keys /proc/interrupts | wc -c)"
        " acpi=$(ls -A /proc/acpi | wc -l) fw=$(ls -A /sys/firmware | wc -l);"
        "python3 - <<'EOF'\n"
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def errno_of(nr, *args):\n"
        "    r = libc.syscall(nr, *args)\n"
        "    return 0 if r >= 0 else ctypes.get_errno()\n"
        "print('keyctl', errno_of(250, 0, 0, 0, 0))\n"
        "print('ptrace', errno_of(101, 16, 1, 0, 0))\n"
        "print('setns', errno_of(308, 0, 0))\n"
        "print('bpf', errno_of(321, 0, 0, 0))\n"
        "print('perf', errno_of(298, 0, 0, -1, -1, 0))\n"
        "EOF\n";
    int rc = sh(1, script, out);
    assert_int_equal(rc, 0);
    const char *forbidden[] = { "MOUNTED", "UNSHARED", "HOSTNAME", "PROCSYS", "SYSFS", "SYSTOUCH",
                                "IPLINK", "MKNOD", "USRWRITE", "SYSRQ" };
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
        if (strstr(out, forbidden[i]))
            fail_msg("sandboxed root could: %s\n%s", forbidden[i], out);
    assert_contains(out, "masked=0 acpi=0 fw=0");
    assert_contains(out, "keyctl 1\n");
    assert_contains(out, "ptrace 1\n");
    assert_contains(out, "setns 1\n");
    assert_contains(out, "bpf 1\n");
    assert_contains(out, "perf 1\n");
    free(out);
}

/* ---- what the sandbox can see ----------------------------------------------------------- */

static void test_isolated_views(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    int rc = sh(0, "echo pids=$(ls -d /proc/[0-9]* | wc -l); echo net=$(ls /sys/class/net);"
                   "echo flags=$(cat /sys/class/net/lo/flags); ls /proc/1/ >/dev/null && echo has1;"
                   "echo mounts=$(wc -l < /proc/self/mounts); ls -ld /tmp /dev/shm; ls -l /dev/null",
                out);
    assert_int_equal(rc, 0);
    /* PID 1, sh, ls (and the subshell) only: no host processes */
    int pids = -1;
    const char *p = strstr(out, "pids=");
    assert_non_null(p);
    pids = atoi(p + 5);
    assert_true(pids >= 2 && pids <= 5);
    assert_contains(out, "net=lo\n");
    assert_contains(out, "flags=0x9"); /* IFF_UP | IFF_LOOPBACK */
    assert_contains(out, "has1");
    assert_contains(out, "drwxrwxrwt");
    assert_contains(out, "crw-rw-rw- 1 root root 1, 3");
    free(out);
}

/* The template user can serve on a low port over lo and open a pty in the
 * sandbox's own devpts instance. */
static void test_loopback_port_and_pty(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    const char *script = "python3 - <<'EOF'\n"
                         "import os, pty, socket\n"
                         "s = socket.socket(); s.bind(('127.0.0.1', 80)); s.listen()\n"
                         "c = socket.create_connection(('127.0.0.1', 80)); a, _ = s.accept()\n"
                         "c.sendall(b'ping'); print('lo', a.recv(4).decode())\n"
                         "m, t = pty.openpty(); print('pty', os.ttyname(t))\n"
                         "EOF\n";
    int rc = sh(0, script, out);
    assert_int_equal(rc, 0);
    assert_contains(out, "lo ping");
    assert_contains(out, "pty /dev/pts/");
    free(out);
}

static void test_overlay_writes_stay_in_sandbox(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    int rc = sh(0, "echo hello > ~/note && cat ~/note && echo t > /tmp/t && ls -ln ~/note", out);
    assert_int_equal(rc, 0);
    assert_contains(out, "hello\n");
    assert_contains(out, " 1000 1000 ");
    char path[SB_PATH_MAX * 2];
    struct stat st;
    /* not in the template */
    snprintf(path, sizeof(path), "%s%s/note", fx.tpl.rootfs, fx.tpl.home);
    assert_int_equal(lstat(path, &st), -1);
    /* visible to the host through root_dir, owned by the mapped uid */
    snprintf(path, sizeof(path), "%s%s/note", fx.c.root_dir, fx.tpl.home);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_uid, UID_BASE + 1000);
    /* nothing lands in the host's sandbox directory besides the image and the mount point */
    DIR *d = opendir(fx.c.sandbox_dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && strcmp(de->d_name, "disk.img") != 0 && strcmp(de->d_name, "root") != 0)
            fail_msg("unexpected %s in %s", de->d_name, fx.c.sandbox_dir);
    closedir(d);
    snprintf(path, sizeof(path), "%s/root", fx.c.sandbox_dir);
    d = opendir(path);
    int entries = 0;
    while ((de = readdir(d)) != NULL)
        entries++;
    closedir(d);
    assert_int_equal(entries, 2);
    free(out);
}

/* ---- limits -------------------------------------------------------------------------------- */

static void test_memory_hog_is_oom_killed(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    uint64_t before = 0, after = 0;
    assert_true(container_oom_events(&fx.c, &before) >= 0);
    int rc = sh(0, "python3 -c \"b = b'x' * (256 << 20); print('survived')\"", out);
    assert_int_equal(rc, 128 + SIGKILL);
    assert_null(strstr(out, "survived"));
    assert_int_equal(container_oom_events(&fx.c, &after), 1);
    assert_true(after > before);
    /* the sandbox still works */
    assert_int_equal(sh(0, "echo alive", out), 0);
    assert_contains(out, "alive");
    free(out);
}

static void test_pids_limit_stops_fork_bomb(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    const char *script = "python3 - <<'EOF'\n"
                         "import os\n"
                         "n = 0\n"
                         "try:\n"
                         "    while n < 1000:\n"
                         "        if os.fork() == 0:\n"
                         "            null = os.open('/dev/null', os.O_WRONLY)\n"
                         "            os.dup2(null, 1); os.dup2(null, 2)\n"
                         "            os.execv('/bin/sleep', ['sleep', '60'])\n"
                         "        n += 1\n"
                         "except OSError as e:\n"
                         "    print('stopped', n, e.errno)\n"
                         "EOF\n";
    sh(0, script, out);
    assert_contains(out, "stopped");
    int n = atoi(strstr(out, "stopped") + 8);
    assert_true(n > 0 && n < 32);
    assert_contains(out, " 11\n"); /* EAGAIN */
    free(out);
}

static void test_disk_quota(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *out = malloc(OUT_MAX);
    int rc = sh(0, "dd if=/dev/zero of=$HOME/big bs=1M count=200 2>&1; echo size=$(stat -c %s $HOME/big);"
                   "rm -f $HOME/big; echo removed",
                out);
    assert_int_equal(rc, 0);
    assert_contains(out, "No space left on device");
    long size = atol(strstr(out, "size=") + 5);
    assert_true(size > (40L << 20) && size <= (64L << 20));
    assert_contains(out, "removed");
    free(out);
}

/* ---- freezing, leaf kill ---------------------------------------------------------------- */

static size_t drain(int fd)
{
    size_t total = 0;
    char buf[65536];
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 0) <= 0)
            return total;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return total;
        total += (size_t)n;
    }
}

static void test_freeze_and_thaw(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *const argv[] = { "yes", NULL };
    struct proc p;
    struct sb_err err;
    start(&fx.c, 0, NULL, argv, &p);
    assert_int_equal(p.enter_errno, 0);
    struct pollfd pfd = { .fd = p.out, .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    if (container_freeze(&fx.c, &err) < 0)
        fail_msg("freeze: %s", err.msg);
    drain(p.out);
    sleep_ms(150);
    assert_int_equal(drain(p.out), 0); /* frozen: no progress */
    assert_int_equal(container_thaw(&fx.c, &err), 0);
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    assert_true(drain(p.out) > 0);
    char buf[16];
    int status = finish(&fx.c, &p, buf, sizeof(buf), 0);
    assert_true(WIFSIGNALED(status));
}

/* Killing a process of a paused sandbox returns at once; it dies on resume. */
static void test_leaf_kill_while_frozen(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *const argv[] = { "sleep", "600", NULL };
    struct proc p;
    struct sb_err err;
    start(&fx.c, 0, NULL, argv, &p);
    assert_int_equal(p.enter_errno, 0);
    assert_int_equal(container_freeze(&fx.c, &err), 0);
    int64_t t0 = sb_mono_ms();
    if (container_leaf_kill(&fx.c, p.leaf, &err) < 0)
        fail_msg("leaf kill: %s", err.msg);
    assert_true(sb_mono_ms() - t0 < 1000);
    assert_int_equal(container_thaw(&fx.c, &err), 0);
    int status;
    assert_int_equal(waitpid(p.pid, &status, 0), p.pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(container_leaf_count(&fx.c, p.leaf), 0);
    close(p.out);
    container_leaf_remove(&fx.c, p.leaf);
}

static void test_leaf_kill_reaches_setsid_daemon(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char *const argv[] = { "sh", "-c", "setsid sh -c 'sleep 600' </dev/null >/dev/null 2>&1 & echo started", NULL };
    struct proc p;
    struct sb_err err;
    start(&fx.c, 0, NULL, argv, &p);
    assert_int_equal(p.enter_errno, 0);
    char buf[256];
    size_t used = 0;
    struct pollfd pfd = { .fd = p.out, .events = POLLIN };
    while (used < sizeof(buf) - 1 && poll(&pfd, 1, 5000) == 1) {
        ssize_t n = read(p.out, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    buf[used] = '\0';
    assert_contains(buf, "started");
    int status;
    assert_int_equal(waitpid(p.pid, &status, 0), p.pid);
    assert_true(WIFEXITED(status));
    /* the daemon outlived its parent, in its own session */
    int64_t deadline = sb_mono_ms() + 2000;
    while (container_leaf_count(&fx.c, p.leaf) < 1 && sb_mono_ms() < deadline)
        sleep_ms(10);
    assert_true(container_leaf_count(&fx.c, p.leaf) >= 1);
    if (container_leaf_kill(&fx.c, p.leaf, &err) < 0)
        fail_msg("leaf kill: %s", err.msg);
    assert_int_equal(container_leaf_count(&fx.c, p.leaf), 0);
    close(p.out);
    container_leaf_remove(&fx.c, p.leaf);
}

static void test_exec_errors(void **state)
{
    (void)state;
    NEED_SANDBOX();
    char buf[64];
    char *const missing[] = { "no-such-command", NULL };
    struct proc p;
    start(&fx.c, 0, NULL, missing, &p);
    assert_int_equal(p.enter_errno, ENOENT);
    finish(&fx.c, &p, buf, sizeof(buf), 0);
    char *const ok[] = { "true", NULL };
    start(&fx.c, 0, "/no/such/dir", ok, &p);
    assert_int_equal(p.enter_errno, ENOENT);
    finish(&fx.c, &p, buf, sizeof(buf), 0);
    char *const not_exec[] = { "/etc/passwd", NULL };
    start(&fx.c, 0, NULL, not_exec, &p);
    assert_int_equal(p.enter_errno, EACCES);
    finish(&fx.c, &p, buf, sizeof(buf), 0);
    /* a PATH search finds /usr/bin/true */
    start(&fx.c, 0, "/", ok, &p);
    assert_int_equal(p.enter_errno, 0);
    int status = finish(&fx.c, &p, buf, sizeof(buf), 5000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the seccomp policy, syscall by syscall --------------------------------------------- */

static int seccomp_probe(void)
{
    const struct sb_seccomp *f;
    if (seccomp_default(&f, NULL) < 0 || caps_no_new_privs() < 0 || seccomp_apply(f) < 0)
        return 100;
    errno = 0;
    if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
        return 1;
    if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM)
        return 2;
    if (syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, NULL) != -1 || errno != EPERM)
        return 3;
    /* high bits set in the request must not slip past the rule (CVE-2019-10063) */
    if (syscall(SYS_ioctl, 0, TIOCSTI | (1UL << 32), "x") != -1 || errno != EPERM)
        return 4;
    if (ioctl(0, TIOCSTI, "x") != -1 || errno != EPERM)
        return 5;
    if (personality(ADDR_NO_RANDOMIZE) != -1 || errno != EPERM)
        return 6;
    if (personality(0xffffffff) == -1)
        return 7;
    if (socket(40 /* AF_VSOCK */, SOCK_STREAM, 0) != -1 || errno != EPERM)
        return 8;
    if (syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL) != -1 || errno != EPERM)
        return 9;
    if (syscall(SYS_io_uring_setup, 1, NULL) != -1 || errno != EPERM)
        return 10;
    pid_t child = fork(); /* plain clone still works */
    if (child == 0)
        _exit(0);
    if (child < 0 || waitpid(child, NULL, 0) != child)
        return 11;
    return 0;
}

static void test_seccomp_policy(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0)
        _exit(seccomp_probe());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#ifdef __x86_64__
    /* an x32 syscall number is another ABI: the process is killed */
    pid = fork();
    if (pid == 0) {
        const struct sb_seccomp *f;
        if (seccomp_default(&f, NULL) < 0 || caps_no_new_privs() < 0 || seccomp_apply(f) < 0)
            _exit(100);
        syscall(0x40000000 | SYS_getpid);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
#endif
}

/* ---- teardown leaves nothing ---------------------------------------------------------------- */

static int loop_backed_by(const char *image)
{
    glob_t g;
    int found = 0;
    if (glob("/sys/block/loop*/loop/backing_file", 0, NULL, &g) != 0)
        return 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char buf[SB_PATH_MAX] = "";
        FILE *f = fopen(g.gl_pathv[i], "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof(buf), f) && strncmp(buf, image, strlen(image)) == 0)
            found = 1;
        fclose(f);
    }
    globfree(&g);
    return found;
}

static void test_destroy_leaves_nothing(void **state)
{
    (void)state;
    NEED_SANDBOX();
    struct sb_container c;
    struct sb_err err;
    struct sb_limits lim = { .cpu_count = 1, .memory_mb = 64, .pids = 16, .disk_mb = 64 };
    char id[32];
    snprintf(id, sizeof(id), "sbx_gone%ld", (long)getpid());
    if (create_sandbox(&c, id, lim, &err) < 0)
        fail_msg("create: %s", err.msg);
    char image[SB_PATH_MAX + 16], dir[SB_PATH_MAX];
    snprintf(image, sizeof(image), "%s/disk.img", c.sandbox_dir);
    snprintf(dir, sizeof(dir), "%s", c.sandbox_dir);
    assert_true(loop_backed_by(image));
    /* a daemon that would survive its parent */
    char *const argv[] = { "sh", "-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 &", NULL };
    struct proc p;
    start(&c, 0, NULL, argv, &p);
    assert_int_equal(p.enter_errno, 0);
    waitpid(p.pid, NULL, 0);
    close(p.out);
    const struct sb_cgroup *cg = c.cgroup;
    char cg_dirs[SB_CG_CTL_COUNT][SB_PATH_MAX];
    for (int i = 0; i < cg->dir_count; i++)
        snprintf(cg_dirs[i], sizeof(cg_dirs[i]), "%s", cg->dirs[i]);
    int dir_count = cg->dir_count;
    pid_t init = c.init_pid;

    if (container_destroy(&c, &err) < 0)
        fail_msg("destroy: %s", err.msg);
    for (int i = 0; i < dir_count; i++)
        assert_int_equal(access(cg_dirs[i], F_OK), -1);
    assert_int_equal(access(dir, F_OK), -1);
    /* PID 1 is gone once we (the shim) reaped everything we started */
    int64_t deadline = sb_mono_ms() + 3000;
    while (waitpid(init, NULL, WNOHANG) == 0 && sb_mono_ms() < deadline)
        sleep_ms(5);
    assert_int_equal(kill(init, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_false(loop_backed_by(image));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seccomp_policy),
        cmocka_unit_test(test_user_identity),
        cmocka_unit_test(test_root_identity),
        cmocka_unit_test(test_root_cannot_escape),
        cmocka_unit_test(test_isolated_views),
        cmocka_unit_test(test_loopback_port_and_pty),
        cmocka_unit_test(test_overlay_writes_stay_in_sandbox),
        cmocka_unit_test(test_exec_errors),
        cmocka_unit_test(test_memory_hog_is_oom_killed),
        cmocka_unit_test(test_pids_limit_stops_fork_bomb),
        cmocka_unit_test(test_disk_quota),
        cmocka_unit_test(test_freeze_and_thaw),
        cmocka_unit_test(test_leaf_kill_while_frozen),
        cmocka_unit_test(test_leaf_kill_reaches_setsid_daemon),
        cmocka_unit_test(test_destroy_leaves_nothing),
    };
    return cmocka_run_group_tests_name("container", tests, group_setup, group_teardown);
}
