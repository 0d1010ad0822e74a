/*
 * container.c - builds one sandbox and puts processes into it (container.h).
 *
 * Design decisions (in the order the kernel needs them):
 *
 * Namespaces. container_create clones PID 1 with CLONE_NEWNS|NEWPID|NEWUTS|
 * NEWIPC|NEWNET. These namespaces are owned by the *initial* user namespace,
 * so even a sandboxed root holding every capability of its own user
 * namespace can never mount, unmount, set the hostname or reconfigure the
 * network: stronger than a rootless container, where the sandbox owns them.
 * Only at the end does PID 1 unshare CLONE_NEWUSER; the shim (host root)
 * writes gid_map/uid_map "0 <uid_base> 65536" (no setgroups=deny needed: the
 * writer has CAP_SETGID in the parent namespace).
 *
 * Sync. A SOCK_SEQPACKET socketpair: PID 1 reports "user namespace ready" or
 * an error (errno + message); the shim writes the maps and answers; PID 1
 * reports "ready" after dropping to sandbox root with no capabilities.
 * No sleeps or polls anywhere on this path.
 *
 * PID 1, while still host root: resets signals, closes every inherited fd
 * and points stdio at /dev/null; sets oom_score_adj -1000 where the host
 * allows it (the reaper must survive a memory-cgroup OOM); joins the
 * sandbox cgroup, unshares CLONE_NEWCGROUP there (so the sandbox
 * sees its own cgroup as "/") and moves into the "init" leaf (v2 forbids
 * processes in a cgroup whose children get controllers, and per-process
 * leaves keep PID 1 out of any process-tree kill); sets the spec's hostname;
 * brings lo up; builds the root filesystem (mounts.c) and pivots into it.
 * Then: unshare(CLONE_NEWUSER), wait for the maps, setresuid/gid to sandbox
 * root (host uid_base, so PID 1 no longer owns host-root files), drop all
 * capabilities, no_new_privs, non-dumpable, PR_SET_PDEATHSIG SIGKILL (a
 * sandbox whose shim died is unreachable: let it die), and reap forever.
 *
 * Filesystem. Everything is mounted inside PID 1's private mount namespace;
 * nothing is ever mounted in the host's, so teardown is: processes dead,
 * namespace fds closed, the loop device clears itself (LO_FLAGS_AUTOCLEAR).
 * The writable layer is a sparse ext4 image of limits.disk_mb on a loop
 * device (container_disk.c). On the host, <sandbox_dir> holds only disk.img
 * and the empty root/ mount point; the shim sees the sandbox's files through
 * root_dir = /proc/<init_pid>/root (its file API must openat2 beneath it
 * with RESOLVE_IN_ROOT).
 *
 * Entering (container_enter_and_exec, in a child the shim forked): reset
 * signals, non-dumpable, oom_score_adj 100 (sandboxed code is the preferred
 * victim of a host OOM), join the process's leaf cgroup, rlimits (raising a
 * hard limit needs host privilege, so before the user namespace), setns mnt,
 * uts, ipc, net, cgroup, pid as host root and user LAST (afterwards the
 * others would need capabilities we no longer have), clone(CLONE_VM|
 * CLONE_VFORK) so the child lands in the PID namespace without copying the
 * shim's page tables again (the intermediate reports the grandchild's host
 * pid once it has exec'd, and exits), setsid (and the terminal on stdin as
 * controlling terminal, for a PTY), ids, capabilities (none for
 * the template user, Docker's default set for root), chdir, mark fds >= 3 close-on-exec,
 * no_new_privs, seccomp as the very last step, then execve along the
 * sandbox's PATH. In a sudo template (spec.sudo) there is no no_new_privs
 * and seccomp goes on before the capabilities are dropped (exec_inside).
 *
 * Requirements on the caller (the shim): it is single-threaded; it must be
 * a child subreaper (PR_SET_CHILD_SUBREAPER) before it forks for
 * container_enter_and_exec, so the grandchild, orphaned when the
 * intermediate exits, is re-parented to the shim and can be waited for; it
 * must keep reaping its children (PID 1 finishes dying only after every
 * process the shim started in the sandbox has been reaped); its signal
 * handlers are reset in every process this file starts.
 *
 * Owns: struct sb_container's fds, cgroup and spec.env_json; the sandbox
 * directory. Never: prints, or mounts anything in the host's namespace.
 */
#include "shim/container.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/close_range.h>

#include "core/fs.h"
#include "shim/caps.h"
#include "shim/cgroup.h"
#include "shim/container_disk.h"
#include "shim/container_net.h"
#include "shim/init.h"
#include "shim/mounts.h"
#include "shim/seccomp.h"
#include "shim/userns.h"

#define CGROUP_PARENT "sandbase"
#define INIT_LEAF "init"
#define SETUP_TIMEOUT_S 30
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const struct { const char *name; int type; } ns_files[SB_NS_COUNT] = {
    [SB_NS_USER] = { "user", CLONE_NEWUSER }, [SB_NS_MNT] = { "mnt", CLONE_NEWNS },
    [SB_NS_PID] = { "pid", CLONE_NEWPID },    [SB_NS_UTS] = { "uts", CLONE_NEWUTS },
    [SB_NS_IPC] = { "ipc", CLONE_NEWIPC },    [SB_NS_NET] = { "net", CLONE_NEWNET },
    [SB_NS_CGROUP] = { "cgroup", CLONE_NEWCGROUP },
};
/* setns order for entering: everything owned by the initial user namespace first, user last. */
static const enum sb_ns_index enter_order[] = {
    SB_NS_MNT, SB_NS_UTS, SB_NS_IPC, SB_NS_NET, SB_NS_CGROUP, SB_NS_PID, SB_NS_USER,
};

enum sync_kind { SYNC_USERNS = 1, SYNC_MAPPED, SYNC_READY, SYNC_ERROR };
struct sync_msg {
    int kind;
    int sys_errno;
    char text[SB_ERR_MSG_MAX];
};

/* Everything PID 1 needs, prepared by the shim before clone. */
struct init_args {
    const struct sb_container *c;
    const struct sb_cgroup *cg;
    struct sb_mount_plan plan;
    int sync_fd;
    int loop_fd;
};

/* ---- helpers shared by PID 1 and entering processes --------------------- */

static void reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL); /* fails harmlessly for SIGKILL, SIGSTOP and libc-reserved ones */
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int write_proc_self(const char *file, const char *value)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/%s", file);
    return sb_write_file(path, value);
}

/* Closes every fd >= 3 except the (at most two) given. */
static void close_fds_except(int a, int b)
{
    int lo = a < b ? a : b, hi = a < b ? b : a;
    unsigned start = 3;
    int keep[2] = { lo, hi };
    for (int i = 0; i < 2; i++) {
        if (keep[i] < 3 || (unsigned)keep[i] < start)
            continue;
        if ((unsigned)keep[i] > start)
            syscall(SYS_close_range, start, (unsigned)keep[i] - 1, 0);
        start = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, start, ~0U, 0);
}

/* ---- PID 1 --------------------------------------------------------------- */

static void sync_send(int fd, int kind, int sys_errno, const char *text)
{
    struct sync_msg m = { .kind = kind, .sys_errno = sys_errno };
    if (text)
        snprintf(m.text, sizeof(m.text), "%s", text);
    send(fd, &m, sizeof(m), MSG_NOSIGNAL);
}

static int init_setup_as_host_root(struct init_args *a, struct sb_err *err)
{
    /* Lowering needs CAP_SYS_RESOURCE, which some hosts withhold even from
     * root (this dev VM does): then PID 1 keeps the shim's value, and the
     * sandbox's own processes (100) are still chosen before it. */
    if (write_proc_self("oom_score_adj", "-1000") < 0 && errno != EACCES && errno != EPERM)
        return sb_err_sys(err, 500, "init: setting oom_score_adj");
    if (cgroup_enter(a->cg, NULL, 0, err) < 0)
        return -1;
    if (unshare(CLONE_NEWCGROUP) < 0)
        return sb_err_sys(err, 500, "init: unshare(CLONE_NEWCGROUP)");
    if (cgroup_enter(a->cg, INIT_LEAF, 0, err) < 0)
        return -1;
    if (sethostname(a->c->spec.hostname, strlen(a->c->spec.hostname)) < 0)
        return sb_err_sys(err, 500, "init: sethostname");
    if (net_setup_loopback(a->c->spec.uid_map.outside, err) < 0 || mounts_build_root(&a->plan, err) < 0)
        return -1;
    close(a->loop_fd); /* the ext4 mount holds the device now */
    if (unshare(CLONE_NEWUSER) < 0)
        return sb_err_sys(err, 500, "init: unshare(CLONE_NEWUSER)");
    return 0;
}

/* After the shim wrote the id maps: become sandbox root with nothing. */
static int init_drop_privileges(struct sb_err *err)
{
    if (caps_set_ids(0, 0) < 0)
        return sb_err_sys(err, 500, "init: switching to sandbox root");
    if (caps_apply(SB_CAPS_NONE) < 0 || caps_no_new_privs() < 0)
        return sb_err_sys(err, 500, "init: dropping capabilities");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return sb_err_sys(err, 500, "init: prctl");
    return 0;
}

__attribute__((noreturn)) static void init_main(struct init_args *a)
{
    struct sb_err err;
    sb_err_clear(&err);
    reset_signals();
    umask(0);
    close_fds_except(a->sync_fd, a->loop_fd);
    /* PID 1 must not hold the shim's stdio (a pipe would never see EOF). */
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3 && null >= 0; fd++)
        if (fd != null && fd != a->sync_fd && fd != a->loop_fd)
            dup2(null, fd);
    if (null > 2)
        close(null);
    if (init_setup_as_host_root(a, &err) < 0)
        goto fail;
    sync_send(a->sync_fd, SYNC_USERNS, 0, NULL);
    struct sync_msg m;
    if (recv(a->sync_fd, &m, sizeof(m), 0) != (ssize_t)sizeof(m) || m.kind != SYNC_MAPPED)
        _exit(1); /* the shim gave up; it reports the error */
    if (init_drop_privileges(&err) < 0)
        goto fail;
    sync_send(a->sync_fd, SYNC_READY, 0, NULL);
    close(a->sync_fd);
    umask(022);
    init_reap_forever();
fail:
    sync_send(a->sync_fd, SYNC_ERROR, err.sys_errno, err.msg);
    _exit(1);
}

/* ---- container_create ---------------------------------------------------- */

static int sync_recv(int fd, int want, struct sb_err *err)
{
    struct sync_msg m;
    ssize_t n;
    do
        n = recv(fd, &m, sizeof(m), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return sb_err_sys(err, 500, "sandbox init did not answer");
    if (n != (ssize_t)sizeof(m))
        return sb_err_set(err, 500, "sandbox init exited during setup");
    if (m.kind == SYNC_ERROR) {
        errno = m.sys_errno;
        m.text[sizeof(m.text) - 1] = '\0';
        sb_err_set(err, 500, "%s", m.text);
        if (err)
            err->sys_errno = m.sys_errno;
        return -1;
    }
    if (m.kind != want)
        return sb_err_set(err, 500, "sandbox init: unexpected message %d", m.kind);
    return 0;
}

static int open_ns_fds(struct sb_container *c, struct sb_err *err)
{
    for (int i = 0; i < SB_NS_COUNT; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/ns/%s", (long)c->init_pid, ns_files[i].name);
        c->ns_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (c->ns_fds[i] < 0)
            return sb_err_sys(err, 500, "opening %s", path);
    }
    return 0;
}

/* Clones PID 1 and walks it through the handshake. */
static int start_init(struct sb_container *c, struct init_args *a, struct sb_err *err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return sb_err_sys(err, 500, "socketpair");
    struct timeval tv = { SETUP_TIMEOUT_S, 0 };
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    a->sync_fd = sv[1];
    long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD;
    pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (pid == 0)
        init_main(a);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return sb_err_sys(err, 500, "clone of the sandbox init");
    }
    c->init_pid = pid;
    int rc = sync_recv(sv[0], SYNC_USERNS, err);
    if (rc == 0)
        rc = userns_write_maps(pid, c->spec.uid_map.outside, SB_USERNS_RANGE, err);
    if (rc == 0) {
        sync_send(sv[0], SYNC_MAPPED, 0, NULL);
        rc = sync_recv(sv[0], SYNC_READY, err);
    }
    close(sv[0]);
    if (rc == 0)
        rc = open_ns_fds(c, err);
    return rc < 0 ? sb_err_prefix(err, "starting sandbox %s", c->id) : 0;
}

static int make_dir(const char *path, mode_t mode, struct sb_err *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return sb_err_sys(err, 500, "creating %s", path);
    return 0;
}

static int copy_config(const struct sb_container_config *cfg, struct sb_container *out, struct sb_err *err)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < SB_NS_COUNT; i++)
        out->ns_fds[i] = -1;
    const struct sb_spec *spec = cfg->spec;
    if (!spec || !cfg->rootfs)
        return sb_err_set(err, 400, "container: a spec and a rootfs are required");
    if (!cgroup_name_valid(spec->id) || strlen(spec->id) >= sizeof(out->id))
        return sb_err_set(err, 400, "invalid sandbox id \"%s\"", spec->id);
    const struct sb_spec_idmap *u = &spec->uid_map, *g = &spec->gid_map;
    if (u->inside != 0 || u->count != SB_USERNS_RANGE || g->inside != u->inside || g->outside != u->outside ||
        g->count != u->count || u->outside == 0 || spec->uid >= SB_USERNS_RANGE || spec->gid >= SB_USERNS_RANGE)
        return sb_err_set(err, 400, "container: only the id map 0 <outside> %u (the same for uids and "
                                    "gids, outside > 0) with the user's ids inside it is supported",
                          SB_USERNS_RANGE);
    snprintf(out->id, sizeof(out->id), "%s", spec->id);
    if (sb_spec_copy(&out->spec, spec, err) < 0)
        return -1;
    char data_dir[PATH_MAX];
    if (!realpath(spec->data_dir, data_dir))
        return sb_err_sys(err, 500, "container: data dir %s", spec->data_dir);
    int n = snprintf(out->sandbox_dir, sizeof(out->sandbox_dir), "%s/sandboxes/%s", data_dir, spec->id);
    if (n < 0 || (size_t)n >= sizeof(out->sandbox_dir) - 16)
        return sb_err_set(err, 500, "container: data dir path too long");
    return 0;
}

/* Sandbox directory, disk image and loop device: everything PID 1 mounts. */
static int prepare_disk(struct sb_container *c, const char *data_dir, struct init_args *a, char *loop_dev,
                        size_t loop_len, struct sb_err *err)
{
    char parent[SB_PATH_MAX], path[SB_PATH_MAX + 16];
    snprintf(parent, sizeof(parent), "%s", c->sandbox_dir);
    *strrchr(parent, '/') = '\0';
    if (make_dir(parent, 0700, err) < 0 || make_dir(c->sandbox_dir, 0700, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/root", c->sandbox_dir);
    if (make_dir(path, 0755, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/disk.img", c->sandbox_dir);
    if (disk_image_create(data_dir, path, c->spec.limits.disk_mb, err) < 0)
        return -1;
    return disk_loop_attach(path, &a->loop_fd, loop_dev, loop_len, err);
}

static int prepare_cgroup(struct sb_container *c, struct sb_err *err)
{
    const struct sb_cgroup_roots *roots;
    struct sb_cgroup *cg;
    if (cgroup_default_roots(&roots, err) < 0 || cgroup_create(roots, CGROUP_PARENT, c->id, &cg, err) < 0)
        return -1;
    c->cgroup = cg;
    if (cgroup_set_limits(cg, &c->spec.limits, err) < 0 || cgroup_leaf_create(cg, INIT_LEAF, err) < 0)
        return -1;
    return 0;
}

int container_create(const struct sb_container_config *cfg, struct sb_container *out, struct sb_err *err)
{
    const struct sb_seccomp *filter;
    struct init_args a = { .c = out, .loop_fd = -1, .sync_fd = -1 };
    char lower[PATH_MAX], loop_dev[64];
    int rc = copy_config(cfg, out, err);
    if (rc == 0) /* compiled once, before any fork needs it */
        rc = seccomp_default(&filter, err);
    if (rc == 0 && !realpath(cfg->rootfs, lower))
        rc = sb_err_sys(err, 500, "template rootfs %s", cfg->rootfs);
    if (rc == 0)
        rc = prepare_cgroup(out, err);
    if (rc == 0)
        rc = prepare_disk(out, out->spec.data_dir, &a, loop_dev, sizeof(loop_dev), err);
    if (rc == 0) {
        a.cg = out->cgroup;
        a.plan = (struct sb_mount_plan){
            .sandbox_dir = out->sandbox_dir, .loop_dev = loop_dev, .lower = lower,
            .root_uid = out->spec.uid_map.outside, .root_gid = out->spec.gid_map.outside,
            .binds = out->spec.binds, .bind_count = out->spec.bind_count, .hostname = out->spec.hostname,
            .allow_setuid = out->spec.sudo,
        };
        rc = start_init(out, &a, err);
    }
    if (a.loop_fd >= 0)
        close(a.loop_fd);
    if (rc == 0) {
        snprintf(out->root_dir, sizeof(out->root_dir), "/proc/%ld/root", (long)out->init_pid);
        return 0;
    }
    sb_err_prefix(err, "creating sandbox %s", cfg->spec ? cfg->spec->id : "");
    if (out->init_pid > 0) { /* our child, alone in its namespace: reap it now */
        kill(out->init_pid, SIGKILL);
        waitpid(out->init_pid, NULL, 0);
        out->init_pid = 0;
    }
    container_destroy(out, NULL);
    return -1;
}

/* ---- container_enter_and_exec -------------------------------------------- */

__attribute__((noreturn)) static void enter_fail(int err_fd, int e)
{
    ssize_t n = write(err_fd, &e, sizeof(e));
    (void)n;
    _exit(127);
}

static const char *env_get(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

/* execve along PATH like execvpe, but never falls back to /bin/sh: ENOENT
 * for every candidate gives ENOENT, any EACCES gives EACCES. Returns only on
 * failure, with errno set. */
static void exec_in_path(const char *file, char *const *argv, char *const *envp)
{
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return;
    }
    const char *path = env_get(envp, "PATH");
    if (!path)
        path = DEFAULT_PATH;
    int saw_eacces = 0;
    char candidate[PATH_MAX];
    for (const char *p = path;; p++) {
        const char *end = strchrnul(p, ':');
        int dir_len = (int)(end - p);
        int n = snprintf(candidate, sizeof(candidate), "%.*s%s%s", dir_len, p, dir_len ? "/" : "", file);
        if (n > 0 && (size_t)n < sizeof(candidate)) {
            execve(candidate, argv, envp);
            if (errno == EACCES)
                saw_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV)
                return;
        }
        if (*end == '\0')
            break;
        p = end;
    }
    errno = saw_eacces ? EACCES : ENOENT;
}

/* In the grandchild, inside every namespace: from here on only sandbox ids.
 * It still holds every capability of the sandbox's user namespace (setns
 * gave them, and setresuid away from host root, which is not that
 * namespace's root, keeps them) until caps_apply.
 *
 * Two orders. Normally: ids, capabilities, no_new_privs, seccomp last. In a
 * sudo template (spec.sudo) there is no no_new_privs, so that setuid sudo
 * works; loading seccomp without it needs CAP_SYS_ADMIN in this user
 * namespace, so the filter goes on before caps_apply drops it. Either way
 * the filter is on before the exec and is inherited by everything after,
 * sudo and its root included. */
__attribute__((noreturn)) static void exec_inside(const struct sb_container *c, const struct sb_container_exec *ex,
                                                  int err_fd)
{
    const struct sb_seccomp *filter;
    if (setsid() < 0 || (ex->ctty && ioctl(0, TIOCSCTTY, 0) < 0))
        enter_fail(err_fd, errno);
    if (seccomp_default(&filter, NULL) < 0)
        enter_fail(err_fd, EINVAL);
    uid_t uid = ex->as_root ? 0 : c->spec.uid;
    gid_t gid = ex->as_root ? 0 : c->spec.gid;
    enum sb_caps_profile profile = ex->as_root ? SB_CAPS_ROOT_DEFAULT
                                               : c->spec.sudo ? SB_CAPS_NONE_MAY_SUDO : SB_CAPS_NONE;
    if (caps_set_ids(uid, gid) < 0)
        enter_fail(err_fd, errno);
    if (c->spec.sudo && seccomp_apply(filter) < 0)
        enter_fail(err_fd, errno);
    if (caps_apply(profile) < 0)
        enter_fail(err_fd, errno);
    umask(022);
    const char *cwd = ex->cwd && ex->cwd[0] ? ex->cwd : (c->spec.workdir[0] ? c->spec.workdir : "/");
    if (chdir(cwd) < 0)
        enter_fail(err_fd, errno);
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    if (!c->spec.sudo && (caps_no_new_privs() < 0 || seccomp_apply(filter) < 0))
        enter_fail(err_fd, errno);
    exec_in_path(ex->path, ex->argv, ex->envp);
    enter_fail(err_fd, errno);
}

struct inside_args {
    const struct sb_container *c;
    const struct sb_container_exec *ex;
    int pid_report_fd, err_fd;
};

static int inside_main(void *arg)
{
    struct inside_args *a = arg;
    close(a->pid_report_fd);
    exec_inside(a->c, a->ex, a->err_fd);
}

/* Starts the process that lands in the PID namespace. Like posix_spawn, it
 * shares our memory (CLONE_VM) and we sleep until it has exec'd or died
 * (CLONE_VFORK), so the shim's page tables are not copied a second time;
 * creds, fds, cwd, signal handlers and seccomp stay per-process. Under
 * AddressSanitizer (which cannot follow a foreign stack) it is a plain fork. */
static pid_t spawn_inside(const struct sb_container *c, const struct sb_container_exec *ex, int pid_report_fd,
                          int err_fd)
{
    struct inside_args a = { c, ex, pid_report_fd, err_fd };
#if defined(__SANITIZE_ADDRESS__)
    pid_t pid = fork();
    if (pid == 0)
        inside_main(&a);
    return pid;
#else
    const size_t stack_size = 256 * 1024;
    char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -1;
    pid_t pid = clone(inside_main, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    /* The grandchild has exec'd (or died): its stack is free. Unmapping it
     * matters when this process itself shares the shim's memory. */
    munmap(stack, stack_size);
    return pid;
#endif
}

void container_enter_and_exec(const struct sb_container *c, const struct sb_container_exec *ex,
                              int pid_report_fd, int err_fd)
{
    reset_signals();
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || write_proc_self("oom_score_adj", "100") < 0)
        enter_fail(err_fd, errno);
    if (!ex->path || !ex->argv || !ex->cgroup_leaf)
        enter_fail(err_fd, EINVAL);
    if (cgroup_enter(c->cgroup, ex->cgroup_leaf, 0, NULL) < 0 || caps_set_rlimits() < 0)
        enter_fail(err_fd, errno);
    for (size_t i = 0; i < sizeof(enter_order) / sizeof(enter_order[0]); i++) {
        enum sb_ns_index ns = enter_order[i];
        if (setns(c->ns_fds[ns], ns_files[ns].type) < 0)
            enter_fail(err_fd, errno);
    }
    pid_t pid = spawn_inside(c, ex, pid_report_fd, err_fd);
    if (pid < 0)
        enter_fail(err_fd, errno);
    ssize_t n = write(pid_report_fd, &pid, sizeof(pid));
    _exit(n == (ssize_t)sizeof(pid) ? 0 : 127);
}

/* ---- leaves, freezing, OOM ----------------------------------------------- */

static int no_cgroup(struct sb_err *err)
{
    return sb_err_set(err, 500, "container: sandbox has no cgroup");
}

int container_leaf_create(struct sb_container *c, const char *leaf, struct sb_err *err)
{
    return c->cgroup ? cgroup_leaf_create(c->cgroup, leaf, err) : no_cgroup(err);
}

int container_leaf_kill(struct sb_container *c, const char *leaf, struct sb_err *err)
{
    return c->cgroup ? cgroup_kill(c->cgroup, leaf, err) : no_cgroup(err);
}

int container_leaf_count(struct sb_container *c, const char *leaf)
{
    return c->cgroup && leaf ? cgroup_count(c->cgroup, leaf) : -1;
}

void container_leaf_remove(struct sb_container *c, const char *leaf)
{
    if (c->cgroup)
        cgroup_leaf_remove(c->cgroup, leaf, NULL);
}

int container_freeze(struct sb_container *c, struct sb_err *err)
{
    return c->cgroup ? cgroup_freeze(c->cgroup, NULL, 1, err) : no_cgroup(err);
}

int container_thaw(struct sb_container *c, struct sb_err *err)
{
    return c->cgroup ? cgroup_freeze(c->cgroup, NULL, 0, err) : no_cgroup(err);
}

int container_oom_events(struct sb_container *c, uint64_t *count)
{
    return c->cgroup ? cgroup_oom_kills(c->cgroup, count, NULL) : -1;
}

int container_usage(struct sb_container *c, struct sb_cgroup_usage *out, struct sb_err *err)
{
    return c->cgroup ? cgroup_usage(c->cgroup, out, err) : no_cgroup(err);
}

/* ---- container_destroy ----------------------------------------------------- */

int container_destroy(struct sb_container *c, struct sb_err *err)
{
    int rc = 0;
    struct sb_cgroup *cg = c->cgroup;
    if (cg && cgroup_kill(cg, NULL, err) < 0)
        rc = -1;
    if (c->init_pid > 0)
        waitpid(c->init_pid, NULL, WNOHANG); /* else the shim's reaper collects it */
    for (int i = 0; i < SB_NS_COUNT; i++) {
        if (c->ns_fds[i] >= 0)
            close(c->ns_fds[i]);
        c->ns_fds[i] = -1;
    }
    if (cg && rc == 0 && cgroup_remove(cg, err) < 0)
        rc = -1;
    cgroup_free(cg);
    c->cgroup = NULL;
    struct sb_err rm_err = {0};
    if (c->sandbox_dir[0] && sb_remove_tree(c->sandbox_dir, &rm_err) < 0 && rc == 0)
        rc = sb_err_set(err, rm_err.status, "removing %s: %s", c->sandbox_dir, rm_err.msg);
    sb_spec_clear(&c->spec);
    c->init_pid = 0;
    return rc < 0 ? sb_err_prefix(err, "destroying sandbox %s", c->id) : 0;
}
