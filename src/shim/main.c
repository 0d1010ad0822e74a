/*
 * main.c - `sandbase shim`: one process per sandbox, started detached by
 * shim_spawn (runtime/shim_client.c), never by hand in normal operation.
 *
 *   sandbase shim --id ID --data-dir DIR --run-dir DIR --template NAME
 *                 --uid-base N --cpus N --memory-mb N --pids N --disk-mb N
 *                 [--ready-fd FD] [--detach]
 *
 * Builds the sandbox (container_create), serves <run-dir>/sandboxes/<id>/
 * shim.sock (dir 0700, shim.pid beside it) until destroyed, then removes its
 * run dir. Readiness goes to --ready-fd: "ok\n" once the socket listens, or
 * "error <status> <message>\n" when set-up failed (exit status 1).
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
#include "runtime/template.h"
#include "shim/container.h"
#include "shim/cgroup.h"
#include "shim/server.h"

struct shim_args {
    const char *id, *data_dir, *run_dir, *template_name;
    uint32_t uid_base;
    int detach;             /* fork once and let the parent exit: nobody's child */
    const char *cleanup;    /* --cleanup ID: remove a dead shim's cgroups, then exit */
    struct sb_limits limits;
    int ready_fd;
};

static void usage(void)
{
    fputs("usage: sandbase shim --id ID --data-dir DIR --run-dir DIR --template NAME --uid-base N\n"
          "                     --cpus N --memory-mb N --pids N --disk-mb N [--ready-fd FD]\n"
          "       sandbase shim --cleanup ID\n"
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

/* Sandbox ids name directories and sockets: keep them to [a-z0-9_-]. */
static int id_safe(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '_' || id[i] == '-'))
            return 0;
    return 1;
}

static int parse_args(int argc, char **argv, struct shim_args *a)
{
    static const struct option opts[] = {
        {"id", required_argument, 0, 'i'},        {"data-dir", required_argument, 0, 'd'},
        {"run-dir", required_argument, 0, 'r'},   {"template", required_argument, 0, 't'},
        {"uid-base", required_argument, 0, 'u'},  {"cpus", required_argument, 0, 'c'},
        {"memory-mb", required_argument, 0, 'm'}, {"pids", required_argument, 0, 'p'},
        {"disk-mb", required_argument, 0, 'k'},   {"ready-fd", required_argument, 0, 'f'},
        {"detach", no_argument, 0, 'D'},           {"cleanup", required_argument, 0, 'C'},
        {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->ready_fd = -1;
    optind = 1;
    int ch;
    long v;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'i': a->id = optarg; break;
        case 'd': a->data_dir = optarg; break;
        case 'r': a->run_dir = optarg; break;
        case 't': a->template_name = optarg; break;
        case 'u': bad = parse_int(optarg, 65536, 4294901759L, &v); a->uid_base = (uint32_t)v; break;
        case 'c': bad = parse_int(optarg, 1, 1024, &v); a->limits.cpu_count = (int)v; break;
        case 'm': bad = parse_int(optarg, 16, 1 << 24, &v); a->limits.memory_mb = (int)v; break;
        case 'p': bad = parse_int(optarg, 8, 1 << 22, &v); a->limits.pids = (int)v; break;
        case 'k': bad = parse_int(optarg, 16, 1 << 26, &v); a->limits.disk_mb = (int)v; break;
        case 'f': bad = parse_int(optarg, 0, 1 << 20, &v); a->ready_fd = (int)v; break;
        case 'D': a->detach = 1; break;
        case 'C': a->cleanup = optarg; break;
        default: return -1;
        }
        if (bad) {
            fprintf(stderr, "sandbase shim: bad numeric value \"%s\"\n", optarg);
            return -1;
        }
    }
    if (a->cleanup) {
        if (!id_safe(a->cleanup) || optind != argc) {
            fprintf(stderr, "sandbase shim: --cleanup takes one sandbox id\n");
            return -1;
        }
        return 0;
    }
    if (!a->id || !a->data_dir || !a->run_dir || !a->template_name || !a->uid_base ||
        !a->limits.cpu_count || !a->limits.memory_mb || !a->limits.pids || !a->limits.disk_mb)
        return -1;
    if (!id_safe(a->id)) {
        fprintf(stderr, "sandbase shim: bad sandbox id \"%s\"\n", a->id);
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

/* Removes the shim's run dir: socket, pid file, log, the dir itself. */
static void remove_run_dir(const char *dir)
{
    static const char *files[] = {"shim.sock", "shim.pid", "shim.log"};
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

/* The template's tree stays held (template_hold) until the shim exits, so a
 * rebuild or removal of the template retires it instead of deleting it
 * under this sandbox; its template.json is copied into the run dir for
 * serve to build process environments from. *held_fd is never closed: the
 * kernel drops the lock when the shim exits. */
static int build_sandbox(const struct shim_args *a, const char *dir, struct sb_container *c,
                         int *held_fd, struct sb_err *err)
{
    struct sb_template tpl;
    char snapshot[SB_PATH_MAX + 16];
    snprintf(snapshot, sizeof snapshot, "%s/template.json", dir);
    if (template_load(a->data_dir, a->template_name, &tpl, err) < 0)
        return -1;
    if (template_hold(&tpl, held_fd, err) < 0 || template_snapshot(&tpl, snapshot, err) < 0) {
        template_clear(&tpl);
        return -1;
    }
    struct sb_container_config cfg = {
        .id = a->id, .data_dir = a->data_dir, .tpl = &tpl, .limits = a->limits, .uid_base = a->uid_base,
    };
    int rc = container_create(&cfg, c, err);
    template_clear(&tpl);
    return rc < 0 ? sb_err_prefix(err, "create sandbox %s", a->id) : 0;
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
        fprintf(stderr, "sandbase shim: cleanup %s: %s\n", id, err.msg);
        return 1;
    }
    cgroup_freeze(cg, NULL, 0, NULL);
    cgroup_kill(cg, NULL, NULL);
    int rc = cgroup_remove(cg, &err);
    cgroup_free(cg);
    if (rc < 0) {
        fprintf(stderr, "sandbase shim: cleanup %s: %s\n", id, err.msg);
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
            fprintf(stderr, "sandbase shim: fork: %s\n", strerror(errno));
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
    struct sb_container c;
    struct sb_shim_server s;
    int created = 0, rc = 1, template_fd = -1;
    snprintf(dir, sizeof dir, "%s/sandboxes/%s", a.run_dir, a.id);
    if (sb_mkdir_p(dir, 0700, &err) < 0) {
        report_ready(a.ready_fd, &err);
        return 1;
    }
    if (check_not_running(dir, &err) < 0) {
        report_ready(a.ready_fd, &err);     /* the live shim's files stay */
        return 1;
    }
    memset(&s, 0, sizeof s);
    s.listen_fd = s.signal_fd = s.epfd = -1;
    if (write_pid_file(dir, &err) < 0 || build_sandbox(&a, dir, &c, &template_fd, &err) < 0)
        goto fail;
    created = 1;
    protect_from_oom();
    if (shim_server_init(&s, &c, dir, &err) < 0)
        goto fail;
    sb_info("shim: sandbox %s ready (init pid %d)", a.id, (int)c.init_pid);
    report_ready(a.ready_fd, NULL);
    release_setup_memory();
    rc = shim_server_run(&s) < 0 ? 1 : 0;
    if (!s.destroyed) {
        struct sb_err derr = {0};
        proc_table_free(&s.procs);
        s.destroyed = 1;
        if (container_destroy(&c, &derr) < 0)
            sb_error("shim: destroying sandbox %s: %s", a.id, derr.msg);
    }
    shim_server_free(&s);
    remove_run_dir(dir);
    sb_info("shim: sandbox %s destroyed", a.id);
    return rc;

fail:
    sb_error("shim: %s", err.msg);
    shim_server_free(&s);
    if (created) {
        struct sb_err derr = {0};
        container_destroy(&c, &derr);
    }
    remove_run_dir(dir);                /* before answering: the caller may look at once */
    report_ready(a.ready_fd, &err);
    return 1;
}
