/*
 * shim_spawn.c - a shim's life from the server's side: starting one
 * (posix_spawn, then its readiness line), watching it (pidfd), destroying it
 * and cleaning up what a dead one left (processes, cgroups, mounts, run and
 * sandbox dirs), and listing the sandboxes that have a run dir.
 *
 * Owns nothing between calls. Never kills a process it has not checked to be
 * the sandbox's shim (its command line), never runs on the HTTP loop thread.
 * Holds no cgroup code: a dead shim's cgroups are removed by the shim binary
 * itself (`sandbase-shim --cleanup ID`, run and waited for here).
 */
#include "runtime/shim_client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/id.h"
#include "core/spawn.h"
#include "proto/proto.h"
#include "runtime/sandbox_pins.h"
#include "runtime/sandbox_spec.h"
#include "runtime/shim_conn.h"

#define DESTROY_TIMEOUT_MS (CONTROL_TIMEOUT_MS * 2)   /* the destroy op kills and unmounts: a little more */
#define CLEANUP_TIMEOUT_MS 30000        /* `shim --cleanup`: thaw, kill, rmdir */
#define SPAWN_TIMEOUT_MS 120000         /* container_create: overlay, disk image, namespaces */

static int cleanup_leftovers(const struct sb_config *cfg, const char *id, struct sb_err *err);

/* ---- spawn ---- */

struct spawn_argv {
    char spec_path[SB_PATH_MAX];
    char *argv[16];
};

static void spawn_argv_build(struct spawn_argv *a, const struct sb_spec *spec)
{
    char *v[] = {"sandbase-shim", "--id", (char *)spec->id, "--spec", a->spec_path,
                 "--ready-fd", "3", "--detach", NULL};
    memcpy(a->argv, v, sizeof v);
}

/* Starts the shim with posix_spawn (vfork-like: serve's address space is
 * not copied, so a spawn does not stall the server's other threads):
 * new session, default signals, stdin /dev/null, stdout/stderr to the log,
 * the ready pipe as fd 3, nothing else open, cwd /. The shim's --detach
 * then forks once so it is nobody's child; *pid is the short-lived parent. */
static int spawn_detached(const char *shim_path, int ready_fd, const char *log_path, char *const argv[],
                          pid_t *pid)
{
    extern char **environ;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_adddup2(&fa, ready_fd, 3);   /* clears close-on-exec */
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    posix_spawn_file_actions_addchdir_np(&fa, "/");
    int rc = posix_spawn(pid, shim_path, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

/* Reads the shim's one readiness line ("ok" / "error <status> <message>").
 * *reported is the status the shim gave, 0 when it gave none (it died, or
 * did not answer in time). */
static int spawn_wait_ready(int fd, int *reported, struct sb_err *err)
{
    *reported = 0;
    char line[SB_ERR_MSG_MAX + 64];
    size_t len = 0;
    int64_t deadline = sb_mono_ms() + SPAWN_TIMEOUT_MS;
    while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left_ms(deadline));
        if (pr == 0)
            return sb_err_set(err, 502, "sandbox runtime did not become ready in %d s",
                              SPAWN_TIMEOUT_MS / 1000);
        if (pr < 0 && errno == EINTR)
            continue;
        ssize_t n = read(fd, line + len, sizeof line - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    line[len] = '\0';
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    if (strcmp(line, "ok") == 0)
        return 0;
    int status = 0, skip = 0;
    if (sscanf(line, "error %d %n", &status, &skip) >= 1 && skip > 0) {
        *reported = status;
        return sb_err_set(err, 502, "%s", line + skip);
    }
    return sb_err_set(err, 502, "sandbox runtime exited during set-up");
}

/* The last non-empty line of the shim's log (at most len-1 bytes of it),
 * or "" when there is none. */
static void log_last_line(const char *log_path, char *out, size_t len)
{
    char buf[1024];
    out[0] = '\0';
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    char *start = strrchr(buf, '\n');
    snprintf(out, len, "%s", start ? start + 1 : buf);
}

int shim_spawn(const struct sb_config *cfg, const struct sb_spec *spec, struct sb_err *err)
{
    char dir[SB_PATH_MAX], log_path[SB_PATH_MAX + 16];
    struct spawn_argv a;
    if (sandbox_run_dir(dir, sizeof dir, cfg->run_dir, spec->id) < 0 ||
        sandbox_spec_path(a.spec_path, sizeof a.spec_path, cfg->run_dir, spec->id) < 0)
        return sb_err_set(err, 500, "run dir path too long");
    if (sb_mkdir_p(dir, 0700, err) < 0)
        return -1;
    if (sb_spec_write_file(spec, a.spec_path, err) < 0) {
        struct sb_err ignored;
        sb_remove_tree(dir, &ignored);      /* no shim ran: the empty run dir is all there is */
        return -1;
    }
    snprintf(log_path, sizeof log_path, "%s/shim.log", dir);
    spawn_argv_build(&a, spec);
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return sb_err_sys(err, 500, "spawn sandbox runtime: pipe");
    pid_t pid;
    int src = spawn_detached(cfg->shim_path, ready[1], log_path, a.argv, &pid);
    close(ready[1]);
    if (src != 0) {
        close(ready[0]);
        errno = src;
        return sb_err_sys(err, 500, "cannot start the sandbox runtime %s (build it with `make build`, "
                                    "or set shim_path / SANDBASE_SHIM)", cfg->shim_path);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int reported;
    int rc = spawn_wait_ready(ready[0], &reported, err);
    close(ready[0]);
    /* A shim that failed on its own removed what it built; one that died
     * or hung mid-create left its process, cgroups, mounts and dirs, and
     * nobody owns them now: clean up as for a dead shim, keeping the last
     * thing it logged in the error, since its log goes with its run dir.
     * Never when it found another shim already serving this id (409). */
    if (rc < 0 && reported == 0) {
        char last[200];
        log_last_line(log_path, last, sizeof last);
        char msg[SB_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        sb_err_set(err, 502, "%s; %s%s", msg, last[0] ? "its log ended: " : "it logged nothing",
                   last);
    }
    if (rc < 0 && reported != 409) {
        struct sb_err ignored = {0};
        cleanup_leftovers(cfg, spec->id, &ignored);
    }
    if (rc == 0)
        sandbox_pin_remember(spec);     /* its execs need not read the spec back */
    return rc;
}

/* ---- destroy and leftovers ---- */

/* The pid in <dir>/shim.pid, or 0. */
static int read_shim_pid(const char *dir)
{
    char path[SB_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/shim.pid", dir);
    FILE *f = fopen(path, "re");
    int pid = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%d", &pid) != 1 || pid <= 1)
        pid = 0;
    fclose(f);
    return pid;
}

/* 1 if process pid is the shim for id: its command line is sandbase-shim's
 * (argv[0], or the "shim" verb of a shim an older `sandbase` started) and
 * names id. */
static int is_shim_of(int pid, const char *id)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return 0;
    buf[len] = '\0';
    const char *base = strrchr(buf, '/');
    int is_shim = strcmp(base ? base + 1 : buf, "sandbase-shim") == 0, has_id = 0;
    for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
        is_shim |= strcmp(buf + i, "shim") == 0;
        has_id |= strcmp(buf + i, id) == 0;
    }
    return is_shim && has_id;
}

/* A shim that no longer answers but still runs is killed, if the pid file's
 * process really is the shim for id. */
static void kill_stale_shim(const char *dir, const char *id)
{
    int pid = read_shim_pid(dir);
    if (pid > 1 && is_shim_of(pid, id))
        kill(pid, SIGKILL);
}

int shim_pidfd_open(const char *run_dir, const char *id, int *pidfd, struct sb_err *err)
{
    *pidfd = -1;
    char dir[SB_PATH_MAX];
    if (sandbox_run_dir(dir, sizeof dir, run_dir, id) < 0)
        return sb_err_set(err, 500, "watch %s: run dir path too long", id);
    int pid = read_shim_pid(dir);
    int fd = pid > 1 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    /* Checked after the open: a pid reused before it no longer names the shim,
     * and one reused after cannot be, since the pidfd pins the process. */
    if (fd >= 0 && is_shim_of(pid, id) && shim_alive(run_dir, id)) {
        *pidfd = fd;
        return 0;
    }
    if (fd >= 0)
        close(fd);
    if (!shim_alive(run_dir, id))
        return sb_err_set(err, 404, "sandbox not found: no runtime answers for %s", id);
    return sb_err_set(err, 500, "watch %s: shim.pid in %s does not name its running shim", id, dir);
}

/* Runs `sandbase-shim --cleanup ID` (the shim binary owns every cgroup
 * operation) and waits for it, bounded; its stderr becomes the error. */
static int run_cgroup_cleanup(const char *shim_path, const char *id, struct sb_err *err)
{
    extern char **environ;
    char *argv[] = {"sandbase-shim", "--cleanup", (char *)id, NULL};
    pid_t pid;
    int out;
    int src = sb_spawn_captured(shim_path, argv, environ, &pid, &out);
    if (src != 0) {
        errno = src;
        return sb_err_sys(err, 500, "destroy %s: cannot start the cgroup clean-up", id);
    }
    char msg[SB_ERR_MSG_MAX] = "";
    size_t len = 0;
    int64_t deadline = sb_mono_ms() + CLEANUP_TIMEOUT_MS;
    for (;;) {
        struct pollfd p = {.fd = out, .events = POLLIN};
        if (poll(&p, 1, left_ms(deadline)) <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        ssize_t n = read(out, msg + len, sizeof msg - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof msg - 1)
            break;
    }
    msg[len] = '\0';
    close(out);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    return sb_err_set(err, 500, "destroy %s: %s", id, msg[0] ? msg : "cgroup clean-up failed");
}

static int cleanup_leftovers(const struct sb_config *cfg, const char *id, struct sb_err *err)
{
    char dir[SB_PATH_MAX], sandbox_dir[SB_PATH_MAX];
    if (sandbox_run_dir(dir, sizeof dir, cfg->run_dir, id) < 0 ||
        snprintf(sandbox_dir, sizeof sandbox_dir, "%s/sandboxes/%s", cfg->data_dir, id) >= (int)sizeof sandbox_dir)
        return sb_err_set(err, 500, "destroy %s: path too long", id);
    /* A shim that ended normally removed its cgroups and then its run dir;
     * a run dir still there means it died and left them. */
    struct stat run_st;
    if (lstat(dir, &run_st) == 0) {
        kill_stale_shim(dir, id);
        run_cgroup_cleanup(cfg->shim_path, id, err);
    }
    sb_unmount_below(sandbox_dir);
    struct sb_err ignored;
    sb_remove_tree(sandbox_dir, &ignored);    /* best effort: leftovers of a dead shim */
    sb_remove_tree(dir, &ignored);
    struct stat st;
    if (lstat(sandbox_dir, &st) == 0)
        return sb_err_set(err, 500, "destroy %s: could not remove %s", id, sandbox_dir);
    return err && err->status ? -1 : 0;
}

/* Waits (bounded) until the shim closes the connection: it has exited. */
static void wait_closed(struct conn *c, int timeout_ms)
{
    int64_t deadline = sb_mono_ms() + timeout_ms;
    for (;;) {
        struct sb_err ignored = {0};
        struct sb_frame f;
        if (conn_next_frame(c, &f, deadline, &ignored) < 0)
            return;
    }
}

/* Waits (bounded) until the process behind pidfd has exited; SIGKILLs it
 * if it is still there after timeout_ms (it closed its socket but hangs in
 * exit, e.g. a sanitizer's leak check). Closes pidfd. */
static void wait_exited(int pidfd, int timeout_ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) == 0) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        poll(&p, 1, 1000);
    }
    close(pidfd);
}

int shim_destroy(const struct sb_config *cfg, const char *id, struct sb_err *err)
{
    struct conn c;
    if (conn_open(cfg->run_dir, id, &c, NULL) == 0) {
        /* Pin the shim process while it still answers, so "destroyed" means
         * the process is gone, not only its socket. */
        char dir[SB_PATH_MAX];
        int pid = sandbox_run_dir(dir, sizeof dir, cfg->run_dir, id) == 0 ? read_shim_pid(dir) : 0;
        int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
        json_t *resp = NULL;
        struct sb_err call_err = {0};
        /* A shim that does not answer within the call timeout is stuck
         * (stopped, wedged): it is killed and its leftovers cleaned up below. */
        int answered = conn_call(&c, json_pack("{s:s}", "op", "destroy"), &resp,
                                 sb_mono_ms() + DESTROY_TIMEOUT_MS, &call_err) == 0;
        if (answered)
            wait_closed(&c, 5000);
        json_decref(resp);
        conn_close(&c);
        if (pidfd >= 0)
            wait_exited(pidfd, answered ? 10000 : 0);
    }
    sb_err_clear(err);
    return cleanup_leftovers(cfg, id, err);
}


/* ---- listing ---- */

int shim_list_ids(const char *run_dir, char (**ids)[32], size_t *count, struct sb_err *err)
{
    *ids = NULL;
    *count = 0;
    char path[SB_PATH_MAX];
    snprintf(path, sizeof path, "%s/sandboxes", run_dir);
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return sb_err_sys(err, 500, "list %s", path);
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t name_len = strnlen(de->d_name, 32);
        if (de->d_name[0] == '.' || name_len >= 32 || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        char(*grown)[32] = realloc(*ids, (*count + 1) * sizeof **ids);
        if (!grown) {
            closedir(d);
            free(*ids);
            *ids = NULL;
            *count = 0;
            return sb_err_set(err, 500, "list %s: out of memory", path);
        }
        *ids = grown;
        memcpy((*ids)[*count], de->d_name, name_len + 1);
        (*count)++;
    }
    closedir(d);
    return 0;
}
