/*
 * main.c - the shim (`sandbase-shim`, src/main_shim.c): one process per
 * sandbox, started detached by shim_spawn (runtime/shim_spawn.c), never by
 * hand in normal operation.
 *
 *   sandbase-shim --id ID --spec PATH [--ready-fd FD] [--detach]
 *   sandbase-shim --cleanup ID
 *
 * Reads the resolved spec serve wrote (proto/spec.h; its id must be ID),
 * builds the sandbox from it alone (container_create), serves
 * <run-dir>/sandboxes/<id>/shim.sock (dir 0700, shim.pid beside it) until
 * destroyed, then removes its run dir. Readiness goes to --ready-fd: "ok\n"
 * once the socket listens, or "error <status> <message>\n" when set-up
 * failed (exit status 1).
 *
 * The shim is a child subreaper (processes entering the sandbox are
 * reparented to it), ignores SIGPIPE and SIGHUP, and protects itself from
 * the OOM killer (oom_score_adj -1000 where the host allows it; sandboxed
 * processes get 100, so they are the OOM killer's first choice).
 * It owns the container for its whole life and must outlive `serve`.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim/shim.h"
#include "core/fs.h"
#include "core/log.h"
#include "proto/spec.h"
#include "shim/container.h"
#include "shim/cgroup.h"
#include "shim/server.h"

struct shim_args {
    const char *id;         /* on the command line too, so ps and serve see whose shim it is */
    const char *spec_path;
    int detach;             /* fork once and let the parent exit: nobody's child */
    const char *cleanup;    /* --cleanup ID: remove a dead shim's cgroups, then exit */
    int ready_fd;
};

static void usage(void)
{
    fputs("usage: sandbase-shim --id ID --spec PATH [--ready-fd FD] [--detach]\n"
          "       sandbase-shim --cleanup ID\n"
          "(internal: started by `sandbase serve`)\n", stderr);
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct shim_args *a)
{
    static const struct option opts[] = {
        {"id", required_argument, 0, 'i'},       {"spec", required_argument, 0, 's'},
        {"ready-fd", required_argument, 0, 'f'}, {"detach", no_argument, 0, 'D'},
        {"cleanup", required_argument, 0, 'C'},  {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->ready_fd = -1;
    optind = 1;
    int ch;
    long v;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'i': a->id = optarg; break;
        case 's': a->spec_path = optarg; break;
        case 'f':
            if (parse_int(optarg, 0, 1 << 20, &v) < 0) {
                fprintf(stderr, "sandbase-shim: bad --ready-fd \"%s\"\n", optarg);
                return -1;
            }
            a->ready_fd = (int)v;
            break;
        case 'D': a->detach = 1; break;
        case 'C': a->cleanup = optarg; break;
        default: return -1;
        }
    }
    if (optind != argc)
        return -1;
    if (a->cleanup) {
        if (!sb_spec_id_valid(a->cleanup)) {
            fprintf(stderr, "sandbase-shim: --cleanup takes one sandbox id\n");
            return -1;
        }
        return 0;
    }
    if (!a->id || !a->spec_path)
        return -1;
    if (!sb_spec_id_valid(a->id)) {
        fprintf(stderr, "sandbase-shim: bad sandbox id \"%s\"\n", a->id);
        return -1;
    }
    return 0;
}

static void report_ready(int fd, const struct sb_err *err)
{
    if (fd < 0)
        return;
    char line[SB_ERR_MSG_MAX + 32];
    int n = err ? snprintf(line, sizeof line, "error %d %s\n", err->status ? err->status : 502, err->msg)
                : snprintf(line, sizeof line, "ok\n");
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    ssize_t rc = write(fd, line, (size_t)n);
    (void)rc;
    close(fd);
}


/* Refuses to start a second shim for a sandbox whose shim still answers. */
static int check_not_running(const char *dir, struct sb_err *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/shim.sock", dir);
    if (n < 0 || (size_t)n >= sizeof addr.sun_path)
        return 0;                   /* shim_server_init reports the long path */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    close(fd);
    if (rc == 0)
        return sb_err_set(err, 409, "a shim is already running for this sandbox (%s)", addr.sun_path);
    return 0;
}

static int write_pid_file(const char *dir, struct sb_err *err)
{
    char path[SB_PATH_MAX + 16], text[32];
    snprintf(path, sizeof path, "%s/shim.pid", dir);
    int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, (size_t)n) != n) {
        if (fd >= 0)
            close(fd);
        return sb_err_sys(err, 500, "write %s", path);
    }
    close(fd);
    return 0;
}

/* Removes the shim's run dir: socket, pid file, log, spec, the dir itself. */
static void remove_run_dir(const char *dir)
{
    static const char *files[] = {"shim.sock", "shim.pid", "shim.log", "spec.json"};
    char path[SB_PATH_MAX + 16];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void protect_from_oom(void)
{
    if (sb_write_file("/proc/self/oom_score_adj", "-1000") < 0)
        sb_warn("shim: cannot set oom_score_adj: %s", strerror(errno));
}

/* Set-up (seccomp compilation, template parsing, mount plans with
 * path-sized buffers on the stack) leaves freed heap and a deep stack
 * behind. Give both back: an idle sandbox should cost the host little.
 * Stack pages below the current frame hold only dead frames; dropping
 * them makes the next use fault in zero pages. */
static void release_setup_memory(void)
{
    malloc_trim(0);
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return;
    char line[512];
    unsigned long lo = 0, hi = 0;
    while (fgets(line, sizeof line, maps))
        if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            break;
    fclose(maps);
    long page = sysconf(_SC_PAGESIZE);
    volatile char here;
    unsigned long below = ((unsigned long)&here & ~((unsigned long)page - 1)) - 4 * (unsigned long)page;
    if (lo && below > lo && below < hi)
        madvise((void *)lo, below - lo, MADV_DONTNEED);
}

/* The template's tree stays held (sb_dir_hold) until the shim exits, so a
 * rebuild or removal of the template retires it instead of deleting it
 * under this sandbox, and the rootfs is mounted through the held
 * descriptor, so the tree mounted is the one held. *held_fd is never
 * closed: the kernel drops the lock when the shim exits. */
static int build_sandbox(const struct sb_spec *spec, struct sb_container *c, int *held_fd, struct sb_err *err)
{
    if (sb_dir_hold(spec->template_dir, spec->template_identity, held_fd, err) < 0) {
        if (err->status == 409)
            sb_err_set(err, 409, "template %s was rebuilt or removed while this sandbox was "
                                 "being created; try again", spec->template_name);
        return sb_err_prefix(err, "create sandbox %s", spec->id);
    }
    char rootfs[64];
    snprintf(rootfs, sizeof rootfs, "/proc/self/fd/%d/rootfs", *held_fd);
    struct sb_container_config cfg = {.spec = spec, .rootfs = rootfs};
    if (container_create(&cfg, c, err) < 0)
        return sb_err_prefix(err, "create sandbox %s", spec->id);
    return 0;
}

/* Reads the spec and checks it is the one for the sandbox the command line names. */
static int read_spec(const struct shim_args *a, struct sb_spec *spec, struct sb_err *err)
{
    if (sb_spec_read_file(a->spec_path, spec, err) < 0)
        return -1;
    if (strcmp(spec->id, a->id) != 0) {
        sb_err_set(err, 400, "spec %s is for sandbox %s, not %s", a->spec_path, spec->id, a->id);
        sb_spec_clear(spec);
        return -1;
    }
    return 0;
}

/* `shim --cleanup ID`: what a shim that died left of its cgroups (thawed,
 * every process killed, the directories removed). serve runs it when a
 * destroy finds leftovers, so serve itself holds no cgroup code. */
static int cleanup_cgroups(const char *id)
{
    const struct sb_cgroup_roots *roots;
    struct sb_cgroup *cg = NULL;
    struct sb_err err = {0};
    if (cgroup_default_roots(&roots, &err) < 0 || cgroup_create(roots, "sandbase", id, &cg, &err) < 0) {
        fprintf(stderr, "sandbase-shim: cleanup %s: %s\n", id, err.msg);
        return 1;
    }
    cgroup_freeze(cg, NULL, 0, NULL);
    cgroup_kill(cg, NULL, NULL);
    int rc = cgroup_remove(cg, &err);
    cgroup_free(cg);
    if (rc < 0) {
        fprintf(stderr, "sandbase-shim: cleanup %s: %s\n", id, err.msg);
        return 1;
    }
    return 0;
}

int shim_main(int argc, char **argv)
{
    struct shim_args a;
    if (parse_args(argc, argv, &a) < 0) {
        usage();
        return 2;
    }
    if (a.cleanup)
        return cleanup_cgroups(a.cleanup);
    /* serve starts the shim with posix_spawn (no copy of its own address
     * space); the shim's own fork here, while it is still tiny, is what
     * re-parents it away from serve. */
    if (a.detach) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "sandbase-shim: fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid > 0)
            _exit(0);
    }
    sb_log_init(SB_LOG_JSON, SB_LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        sb_warn("shim: cannot become a child subreaper: %s", strerror(errno));

    char dir[SB_PATH_MAX];
    struct sb_err err = {0};
    struct sb_spec spec;
    struct sb_container c;
    struct sb_shim_server s;
    int created = 0, rc = 1, template_fd = -1;
    if (read_spec(&a, &spec, &err) < 0) {
        sb_error("shim: %s", err.msg);
        report_ready(a.ready_fd, &err);
        return 1;
    }
    int n = snprintf(dir, sizeof dir, "%s/sandboxes/%s", spec.run_dir, spec.id);
    if (n < 0 || (size_t)n >= sizeof dir - 16)
        sb_err_set(&err, 400, "run dir path too long: %s", spec.run_dir);
    if (err.status || sb_mkdir_p(dir, 0700, &err) < 0) {
        sb_spec_clear(&spec);
        report_ready(a.ready_fd, &err);
        return 1;
    }
    if (check_not_running(dir, &err) < 0) {
        sb_spec_clear(&spec);
        report_ready(a.ready_fd, &err);     /* the live shim's files stay */
        return 1;
    }
    memset(&s, 0, sizeof s);
    s.listen_fd = s.signal_fd = s.epfd = -1;
    if (write_pid_file(dir, &err) < 0 || build_sandbox(&spec, &c, &template_fd, &err) < 0)
        goto fail;
    created = 1;
    sb_spec_clear(&spec);       /* the container keeps its own copy */
    protect_from_oom();
    if (shim_server_init(&s, &c, dir, &err) < 0)
        goto fail;
    sb_info("shim: sandbox %s ready (init pid %d)", c.id, (int)c.init_pid);
    report_ready(a.ready_fd, NULL);
    release_setup_memory();
    rc = shim_server_run(&s) < 0 ? 1 : 0;
    if (!s.destroyed) {
        struct sb_err derr = {0};
        proc_table_free(&s.procs);
        s.destroyed = 1;
        if (container_destroy(&c, &derr) < 0)
            sb_error("shim: destroying sandbox %s: %s", c.id, derr.msg);
    }
    shim_server_free(&s);
    remove_run_dir(dir);
    sb_info("shim: sandbox %s destroyed", a.id);
    return rc;

fail:
    sb_error("shim: %s", err.msg);
    sb_spec_clear(&spec);
    shim_server_free(&s);
    if (created) {
        struct sb_err derr = {0};
        container_destroy(&c, &derr);
    }
    remove_run_dir(dir);                /* before answering: the caller may look at once */
    report_ready(a.ready_fd, &err);
    return 1;
}
