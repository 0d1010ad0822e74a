/*
 * cgroup.c - v1 and v2 backends behind cgroup.h.
 *
 * The two versions differ only in which files they write (see the table in
 * cgroup_set_limits and the freeze/kill helpers); directory handling, pid
 * listing and waiting are shared. Every kernel file is opened without O_CREAT
 * so a missing controller file is reported instead of silently created.
 *
 * Owns: the directories under <hierarchy>/<parent>/<id>.
 * Never: prints, follows symlinks out of a hierarchy, or signals a pid it did
 * not just read from one of its own cgroup.procs files.
 */
#include "shim/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "core/id.h"
#include "core/fs.h"

#define FREEZE_TIMEOUT_MS 5000
#define KILL_TIMEOUT_MS 3000
#define RMDIR_TIMEOUT_MS 1000
#define MAX_DEPTH 8

static const char *const v1_names[SB_CG_CTL_COUNT] = { "memory", "pids", "cpu", "freezer" };
static const char *const v2_controllers[] = { "memory", "pids", "cpu" };

/* ---- small file helpers ------------------------------------------------ */

/* Sleeps a little longer each round: 100 us, 200 us, ... up to 5 ms. */
static void backoff(int round)
{
    long us = 100L << (round < 6 ? round : 6);
    if (us > 5000)
        us = 5000;
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

/* out = dir[/leaf][/file]; -1 (ENAMETOOLONG) if it does not fit. */
static int path_join(char *out, size_t len, const char *dir, const char *leaf, const char *file)
{
    int n = snprintf(out, len, "%s%s%s%s%s", dir, leaf ? "/" : "", leaf ? leaf : "",
                     file ? "/" : "", file ? file : "");
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}


/* Reads up to len-1 bytes, NUL-terminated. Returns bytes read or -1. */
static ssize_t read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off + 1 < len) {
        ssize_t n = read(fd, buf + off, len - 1 - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    buf[off] = '\0';
    close(fd);
    return (ssize_t)off;
}

/* Writes dir/file; on failure fills err naming the file. */
static int set_value(const char *dir, const char *file, const char *value, struct sb_err *err)
{
    char path[SB_PATH_MAX];
    if (path_join(path, sizeof(path), dir, NULL, file) < 0 || sb_write_file(path, value) < 0)
        return sb_err_sys(err, 500, "cgroup: writing \"%s\" to %s/%s", value, dir, file);
    return 0;
}

/* True when text (space/newline/comma separated words) contains word. */
static int has_word(const char *text, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += wl) {
        int start_ok = p == text || p[-1] == ' ' || p[-1] == ',' || p[-1] == '\n';
        char end = p[wl];
        if (start_ok && (end == '\0' || end == ' ' || end == ',' || end == '\n'))
            return 1;
    }
    return 0;
}

static int make_dir(const char *path, struct sb_err *err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return sb_err_sys(err, 500, "cgroup: creating %s", path);
    return 0;
}

/* ---- detection ---------------------------------------------------------- */

static int find_v1_mounts(const char *mounts_file, struct sb_cgroup_roots *out, struct sb_err *err)
{
    FILE *f = fopen(mounts_file, "re");
    if (!f)
        return sb_err_sys(err, 500, "cgroup: reading %s", mounts_file);
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        char dev[256], dir[512], type[64], opts[512];
        if (sscanf(line, "%255s %511s %63s %511s", dev, dir, type, opts) != 4 || strcmp(type, "cgroup") != 0)
            continue;
        for (int i = 0; i < SB_CG_CTL_COUNT; i++)
            if (!out->v1[i][0] && has_word(opts, v1_names[i]))
                snprintf(out->v1[i], sizeof(out->v1[i]), "%s", dir);
    }
    fclose(f);
    for (int i = 0; i < SB_CG_CTL_COUNT; i++)
        if (!out->v1[i][0])
            return sb_err_set(err, 500, "cgroup: the v1 \"%s\" controller is not mounted", v1_names[i]);
    return 0;
}

int cgroup_detect(const char *fs_root, const char *mounts_file, struct sb_cgroup_roots *out,
                  enum sb_cgroup_mode *mode, struct sb_err *err)
{
    memset(out, 0, sizeof(*out));
    struct statfs st;
    if (statfs(fs_root, &st) < 0)
        return sb_err_sys(err, 500, "cgroup: statfs %s", fs_root);
    if (st.f_type == CGROUP2_SUPER_MAGIC) {
        out->v2 = 1;
        snprintf(out->unified, sizeof(out->unified), "%s", fs_root);
        if (mode)
            *mode = SB_CGROUP_UNIFIED;
        return 0;
    }
    if (st.f_type != TMPFS_MAGIC)
        return sb_err_set(err, 500, "cgroup: %s is neither cgroup2 nor a tmpfs of v1 hierarchies", fs_root);
    char unified[SB_PATH_MAX];
    int hybrid = 0;
    if (path_join(unified, sizeof(unified), fs_root, "unified", NULL) == 0 && statfs(unified, &st) == 0)
        hybrid = st.f_type == CGROUP2_SUPER_MAGIC;
    if (mode)
        *mode = hybrid ? SB_CGROUP_HYBRID : SB_CGROUP_LEGACY;
    return find_v1_mounts(mounts_file, out, err);
}

int cgroup_default_roots(const struct sb_cgroup_roots **out, struct sb_err *err)
{
    static struct sb_cgroup_roots roots;
    static int ready;
    if (!ready) {
        if (cgroup_detect("/sys/fs/cgroup", "/proc/self/mounts", &roots, NULL, err) < 0)
            return -1;
        ready = 1;
    }
    *out = &roots;
    return 0;
}

int cgroup_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= SB_CGROUP_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* ---- creation and limits ------------------------------------------------ */

/* v2: makes sure dir's children get memory, pids and cpu. */
static int v2_enable_controllers(const char *dir, struct sb_err *err)
{
    char path[SB_PATH_MAX], have[512], want[128] = "";
    if (path_join(path, sizeof(path), dir, NULL, "cgroup.controllers") < 0 ||
        read_file(path, have, sizeof(have)) < 0)
        return sb_err_sys(err, 500, "cgroup: reading %s/cgroup.controllers", dir);
    for (size_t i = 0; i < sizeof(v2_controllers) / sizeof(v2_controllers[0]); i++)
        if (!has_word(have, v2_controllers[i]))
            return sb_err_set(err, 500, "cgroup: controller \"%s\" is not available in %s",
                              v2_controllers[i], dir);
    if (path_join(path, sizeof(path), dir, NULL, "cgroup.subtree_control") < 0 ||
        read_file(path, have, sizeof(have)) < 0)
        return sb_err_sys(err, 500, "cgroup: reading %s/cgroup.subtree_control", dir);
    for (size_t i = 0; i < sizeof(v2_controllers) / sizeof(v2_controllers[0]); i++) {
        if (has_word(have, v2_controllers[i]))
            continue;
        size_t used = strlen(want);
        snprintf(want + used, sizeof(want) - used, "%s+%s", used ? " " : "", v2_controllers[i]);
    }
    return want[0] ? set_value(dir, "cgroup.subtree_control", want, err) : 0;
}

int cgroup_create(const struct sb_cgroup_roots *roots, const char *parent, const char *id,
                  struct sb_cgroup **out, struct sb_err *err)
{
    if (!cgroup_name_valid(parent) || !cgroup_name_valid(id))
        return sb_err_set(err, 400, "cgroup: invalid cgroup name \"%s/%s\"", parent ? parent : "",
                          id ? id : "");
    struct sb_cgroup *cg = calloc(1, sizeof(*cg));
    if (!cg)
        return sb_err_sys(err, 500, "cgroup: allocating");
    cg->v2 = roots->v2;
    cg->dir_count = roots->v2 ? 1 : SB_CG_CTL_COUNT;
    for (int i = 0; i < cg->dir_count; i++) {
        const char *root = roots->v2 ? roots->unified : roots->v1[i];
        char parent_dir[SB_PATH_MAX];
        if (path_join(parent_dir, sizeof(parent_dir), root, parent, NULL) < 0 ||
            path_join(cg->dirs[i], sizeof(cg->dirs[i]), parent_dir, id, NULL) < 0) {
            sb_err_sys(err, 500, "cgroup: path under %s", root);
            goto fail;
        }
        if ((roots->v2 && v2_enable_controllers(root, err) < 0) || make_dir(parent_dir, err) < 0 ||
            (roots->v2 && v2_enable_controllers(parent_dir, err) < 0) || make_dir(cg->dirs[i], err) < 0)
            goto fail;
    }
    *out = cg;
    return 0;
fail:
    free(cg);
    return -1;
}

static int v1_set_memory(const char *dir, uint64_t bytes, struct sb_err *err)
{
    char value[32], memsw[SB_PATH_MAX];
    snprintf(value, sizeof(value), "%" PRIu64, bytes);
    int has_memsw = path_join(memsw, sizeof(memsw), dir, NULL, "memory.memsw.limit_in_bytes") == 0 &&
                    access(memsw, F_OK) == 0;
    /* memsw must stay >= the memory limit: when raising past it, memsw goes first. */
    if (set_value(dir, "memory.limit_in_bytes", value, NULL) == 0)
        return has_memsw ? set_value(dir, "memory.memsw.limit_in_bytes", value, err) : 0;
    if (has_memsw && set_value(dir, "memory.memsw.limit_in_bytes", value, err) < 0)
        return -1;
    return set_value(dir, "memory.limit_in_bytes", value, err);
}

/*
 * File map (crun's v1 <-> v2 table):
 *   memory   memory.limit_in_bytes (+ memory.memsw.limit_in_bytes)  <->  memory.max + memory.swap.max=0
 *   pids     pids.max                                              <->  pids.max
 *   cpu      cpu.cfs_period_us + cpu.cfs_quota_us                  <->  cpu.max "QUOTA PERIOD"
 */
int cgroup_set_limits(struct sb_cgroup *cg, const struct sb_limits *limits, struct sb_err *err)
{
    char value[64];
    const long period = 100000;
    if (limits->pids > 0)
        snprintf(value, sizeof(value), "%d", limits->pids);
    else
        snprintf(value, sizeof(value), "max");
    if (set_value(cg->dirs[cg->v2 ? 0 : SB_CG_PIDS], "pids.max", value, err) < 0)
        return -1;
    uint64_t bytes = (uint64_t)(limits->memory_mb > 0 ? limits->memory_mb : 0) << 20;
    if (cg->v2) {
        const char *dir = cg->dirs[0];
        char swap[SB_PATH_MAX];
        if (bytes)
            snprintf(value, sizeof(value), "%" PRIu64, bytes);
        else
            snprintf(value, sizeof(value), "max");
        if (set_value(dir, "memory.max", value, err) < 0)
            return -1;
        if (bytes && path_join(swap, sizeof(swap), dir, NULL, "memory.swap.max") == 0 &&
            access(swap, F_OK) == 0 && set_value(dir, "memory.swap.max", "0", err) < 0)
            return -1;
        if (limits->cpu_count > 0)
            snprintf(value, sizeof(value), "%ld %ld", (long)limits->cpu_count * period, period);
        else
            snprintf(value, sizeof(value), "max %ld", period);
        return set_value(dir, "cpu.max", value, err);
    }
    if (bytes && v1_set_memory(cg->dirs[SB_CG_MEMORY], bytes, err) < 0)
        return -1;
    snprintf(value, sizeof(value), "%ld", period);
    if (set_value(cg->dirs[SB_CG_CPU], "cpu.cfs_period_us", value, err) < 0)
        return -1;
    snprintf(value, sizeof(value), "%ld", limits->cpu_count > 0 ? (long)limits->cpu_count * period : -1L);
    return set_value(cg->dirs[SB_CG_CPU], "cpu.cfs_quota_us", value, err);
}

/* ---- leaves, membership ------------------------------------------------- */

/* v1 keeps leaves in the freezer hierarchy only: memory, pids and cpu hold
 * every process in the sandbox directory itself. Leaves there would add
 * nothing (limits are sandbox-wide) and would hide OOM kills, which v1
 * counts only in the victim's own memory cgroup, not in its ancestors. */
static int has_leaves(const struct sb_cgroup *cg, int i)
{
    return cg->v2 || i == SB_CG_FREEZER;
}

static int check_leaf(const char *leaf, struct sb_err *err)
{
    if (leaf && !cgroup_name_valid(leaf))
        return sb_err_set(err, 400, "cgroup: invalid leaf name \"%s\"", leaf);
    return 0;
}

int cgroup_leaf_create(struct sb_cgroup *cg, const char *leaf, struct sb_err *err)
{
    if (!leaf || check_leaf(leaf, err) < 0)
        return leaf ? -1 : sb_err_set(err, 400, "cgroup: leaf name required");
    for (int i = 0; i < cg->dir_count; i++) {
        char path[SB_PATH_MAX];
        if (!has_leaves(cg, i))
            continue;
        if (path_join(path, sizeof(path), cg->dirs[i], leaf, NULL) < 0)
            return sb_err_sys(err, 500, "cgroup: leaf path");
        if (make_dir(path, err) < 0)
            return -1;
    }
    return 0;
}

int cgroup_enter(const struct sb_cgroup *cg, const char *leaf, pid_t pid, struct sb_err *err)
{
    if (check_leaf(leaf, err) < 0)
        return -1;
    char value[24], path[SB_PATH_MAX];
    snprintf(value, sizeof(value), "%ld", (long)pid);
    for (int i = 0; i < cg->dir_count; i++) {
        const char *sub = has_leaves(cg, i) ? leaf : NULL;
        if (path_join(path, sizeof(path), cg->dirs[i], sub, "cgroup.procs") < 0 || sb_write_file(path, value) < 0)
            return sb_err_sys(err, 500, "cgroup: moving pid %ld into %s", (long)pid, path);
    }
    return 0;
}

/* The directory whose cgroup.procs files name every process: v2's only
 * hierarchy, v1's freezer (the one we freeze and kill through). */
static const char *primary_dir(const struct sb_cgroup *cg)
{
    return cg->dirs[cg->v2 ? 0 : SB_CG_FREEZER];
}

typedef int (*pid_fn)(pid_t pid, void *arg);

/* Calls fn for every pid in dir/cgroup.procs and in sub-cgroups. Returns the
 * number of pids seen, or -1 (errno set). ENOENT of dir counts as empty. */
static int walk_pids(const char *dir, int depth, pid_fn fn, void *arg)
{
    char path[SB_PATH_MAX];
    if (path_join(path, sizeof(path), dir, NULL, "cgroup.procs") < 0)
        return -1;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    int seen = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1) {
        seen++;
        if (fn)
            fn((pid_t)pid, arg);
    }
    fclose(f);
    DIR *d = depth < MAX_DEPTH ? opendir(dir) : NULL;
    if (!d)
        return seen;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (path_join(path, sizeof(path), dir, de->d_name, NULL) < 0)
            continue;
        int n = walk_pids(path, depth + 1, fn, arg);
        if (n > 0)
            seen += n;
    }
    closedir(d);
    return seen;
}

int cgroup_count(const struct sb_cgroup *cg, const char *leaf)
{
    char dir[SB_PATH_MAX];
    if (check_leaf(leaf, NULL) < 0 || path_join(dir, sizeof(dir), primary_dir(cg), leaf, NULL) < 0)
        return -1;
    return walk_pids(dir, 0, NULL, NULL);
}

/* ---- freeze and kill ---------------------------------------------------- */

/* v1: freezer.state reads FROZEN once every task (and every child cgroup)
 * stopped. The kernel tries to freeze tasks only when FROZEN is written, so
 * a task that was mid-fork or busy at that moment can leave the cgroup in
 * FREEZING on a loaded machine: write FROZEN again now and then. */
static int v1_wait_frozen(const char *dir, int64_t deadline)
{
    char path[SB_PATH_MAX], state[64];
    if (path_join(path, sizeof(path), dir, NULL, "freezer.state") < 0)
        return -1;
    for (int round = 0;; round++) {
        if (read_file(path, state, sizeof(state)) < 0)
            return -1;
        if (strncmp(state, "FROZEN", 6) == 0)
            return 0;
        if (round % 8 == 7)
            set_value(dir, "freezer.state", "FROZEN", NULL);
        if (sb_mono_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        backoff(round);
    }
}

/* v2: cgroup.events says "frozen 1"; the kernel signals changes with POLLPRI. */
static int v2_wait_frozen(const char *dir, int64_t deadline)
{
    char path[SB_PATH_MAX], events[512];
    if (path_join(path, sizeof(path), dir, NULL, "cgroup.events") < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = -1;
    for (int round = 0;; round++) {
        ssize_t n = pread(fd, events, sizeof(events) - 1, 0);
        if (n < 0)
            break;
        events[n] = '\0';
        if (strstr(events, "frozen 1")) {
            rc = 0;
            break;
        }
        int64_t left = deadline - sb_mono_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            break;
        }
        struct pollfd p = { .fd = fd, .events = POLLPRI };
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            break;
        if (p.revents & POLLIN) /* a regular file: not a kernel cgroup file, do not spin hot */
            backoff(round);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int cgroup_freeze(struct sb_cgroup *cg, const char *leaf, int frozen, struct sb_err *err)
{
    char dir[SB_PATH_MAX];
    if (check_leaf(leaf, err) < 0)
        return -1;
    if (path_join(dir, sizeof(dir), primary_dir(cg), leaf, NULL) < 0)
        return sb_err_sys(err, 500, "cgroup: path");
    const char *file = cg->v2 ? "cgroup.freeze" : "freezer.state";
    const char *value = cg->v2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
    if (set_value(dir, file, value, err) < 0)
        return -1;
    if (!frozen)
        return 0;
    int64_t deadline = sb_mono_ms() + FREEZE_TIMEOUT_MS;
    int rc = cg->v2 ? v2_wait_frozen(dir, deadline) : v1_wait_frozen(dir, deadline);
    if (rc < 0)
        return sb_err_sys(err, 500, "cgroup: waiting for %s to freeze", dir);
    return 0;
}

static int kill_one(pid_t pid, void *arg)
{
    (void)arg;
    if (pid > 0)
        kill(pid, SIGKILL);
    return 0;
}

static int wait_empty(const char *dir, int64_t deadline)
{
    for (int round = 0;; round++) {
        int n = walk_pids(dir, 0, NULL, NULL);
        if (n == 0)
            return 0;
        if (n < 0)
            return -1;
        if (sb_mono_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        backoff(round);
    }
}

/* v1: true when an ancestor (the paused sandbox) keeps dir frozen. */
static int ancestor_frozen(const struct sb_cgroup *cg, const char *dir)
{
    char path[SB_PATH_MAX], value[16];
    if (cg->v2 || path_join(path, sizeof(path), dir, NULL, "freezer.parent_freezing") < 0 ||
        read_file(path, value, sizeof(value)) < 0)
        return 0;
    return value[0] == '1';
}

/* Freeze so nothing forks while we list, SIGKILL each pid, thaw so the
 * signals are delivered; repeat if a freeze timed out and something slipped
 * by. Inside a paused sandbox (v1) the kill lands at resume: do not wait. */
static int kill_by_freezing(struct sb_cgroup *cg, const char *leaf, const char *dir, int64_t deadline)
{
    for (int round = 0;; round++) {
        cgroup_freeze(cg, leaf, 1, NULL);
        walk_pids(dir, 0, kill_one, NULL);
        cgroup_freeze(cg, leaf, 0, NULL);
        if (leaf && ancestor_frozen(cg, dir))
            return 0;
        int64_t step = sb_mono_ms() + 250;
        if (wait_empty(dir, step < deadline ? step : deadline) == 0)
            return 0;
        if (sb_mono_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        backoff(round);
    }
}

int cgroup_kill(struct sb_cgroup *cg, const char *leaf, struct sb_err *err)
{
    char dir[SB_PATH_MAX], kill_file[SB_PATH_MAX];
    if (check_leaf(leaf, err) < 0)
        return -1;
    if (path_join(dir, sizeof(dir), primary_dir(cg), leaf, NULL) < 0 ||
        path_join(kill_file, sizeof(kill_file), dir, NULL, "cgroup.kill") < 0)
        return sb_err_sys(err, 500, "cgroup: path");
    int64_t deadline = sb_mono_ms() + KILL_TIMEOUT_MS;
    int rc;
    if (cg->v2 && access(kill_file, F_OK) == 0) {
        if (sb_write_file(kill_file, "1") < 0)
            return sb_err_sys(err, 500, "cgroup: writing 1 to %s", kill_file);
        rc = wait_empty(dir, deadline);
    } else {
        rc = kill_by_freezing(cg, leaf, dir, deadline);
    }
    if (rc < 0)
        return sb_err_sys(err, 500, "cgroup: processes left in %s after SIGKILL", dir);
    return 0;
}

/* ---- removal ------------------------------------------------------------ */

/* rmdir, retrying while the kernel still finishes exiting tasks (EBUSY). */
static int rmdir_retry(const char *path)
{
    int64_t deadline = sb_mono_ms() + RMDIR_TIMEOUT_MS;
    for (int round = 0;; round++) {
        if (rmdir(path) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || sb_mono_ms() >= deadline)
            return -1;
        backoff(round);
    }
}

/* Removes dir's sub-cgroups depth first, then dir. Never follows symlinks. */
static int remove_tree(const char *dir, int depth)
{
    DIR *d = depth < MAX_DEPTH ? opendir(dir) : NULL;
    if (d) {
        struct dirent *de;
        char path[SB_PATH_MAX];
        while ((de = readdir(d)) != NULL) {
            if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (path_join(path, sizeof(path), dir, de->d_name, NULL) == 0)
                remove_tree(path, depth + 1);
        }
        closedir(d);
    } else if (errno == ENOENT) {
        return 0;
    }
    return rmdir_retry(dir);
}

int cgroup_leaf_remove(struct sb_cgroup *cg, const char *leaf, struct sb_err *err)
{
    if (!leaf || check_leaf(leaf, err) < 0)
        return leaf ? -1 : sb_err_set(err, 400, "cgroup: leaf name required");
    int rc = 0;
    for (int i = 0; i < cg->dir_count; i++) {
        char path[SB_PATH_MAX];
        if (!has_leaves(cg, i))
            continue;
        if (path_join(path, sizeof(path), cg->dirs[i], leaf, NULL) < 0 || remove_tree(path, 0) < 0)
            rc = sb_err_sys(err, 500, "cgroup: removing %s", path);
    }
    return rc;
}

int cgroup_remove(struct sb_cgroup *cg, struct sb_err *err)
{
    int rc = 0;
    for (int i = 0; i < cg->dir_count; i++)
        if (remove_tree(cg->dirs[i], 0) < 0)
            rc = sb_err_sys(err, 500, "cgroup: removing %s", cg->dirs[i]);
    return rc;
}

void cgroup_free(struct sb_cgroup *cg)
{
    free(cg);
}

/* ---- OOM events --------------------------------------------------------- */

int cgroup_oom_kills(struct sb_cgroup *cg, uint64_t *count, struct sb_err *err)
{
    const char *dir = cg->dirs[cg->v2 ? 0 : SB_CG_MEMORY];
    const char *file = cg->v2 ? "memory.events" : "memory.oom_control";
    char path[SB_PATH_MAX], text[1024];
    if (path_join(path, sizeof(path), dir, NULL, file) < 0 || read_file(path, text, sizeof(text)) < 0)
        return sb_err_sys(err, 500, "cgroup: reading %s/%s", dir, file);
    const char *line = strstr(text, "oom_kill ");
    while (line && line != text && line[-1] != '\n')
        line = strstr(line + 1, "oom_kill ");
    if (!line)
        return sb_err_set(err, 500, "cgroup: no oom_kill counter in %s/%s", dir, file);
    uint64_t n = strtoull(line + strlen("oom_kill "), NULL, 10);
    *count = n;
    int grew = n > cg->oom_seen;
    cg->oom_seen = n;
    return grew;
}

/* ---- usage (GET /sandboxes/:id/metrics) ---------------------------------- */

/* The number after "key " at the start of a line of text, or 0. */
static uint64_t stat_value(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ' ')
            return strtoull(line + n + 1, NULL, 10);
    return 0;
}

/* Adds a process's user and system time (clock ticks) to *arg. */
static int add_cpu_ticks(pid_t pid, void *arg)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_file(path, text, sizeof text) < 0)
        return 0;
    const char *p = strrchr(text, ')');   /* the command may hold spaces and parentheses */
    unsigned long long utime = 0, stime = 0;
    if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) == 2)
        *(uint64_t *)arg += utime + stime;
    return 0;
}

int cgroup_usage(const struct sb_cgroup *cg, struct sb_cgroup_usage *out, struct sb_err *err)
{
    char path[SB_PATH_MAX], text[8192];
    const char *mem = cg->dirs[cg->v2 ? 0 : SB_CG_MEMORY];
    memset(out, 0, sizeof *out);
    if (path_join(path, sizeof path, mem, NULL, cg->v2 ? "memory.current" : "memory.usage_in_bytes") < 0 ||
        read_file(path, text, sizeof text) < 0)
        return sb_err_sys(err, 500, "cgroup: reading %s", path);
    out->mem_used = strtoull(text, NULL, 10);
    if (path_join(path, sizeof path, mem, NULL, "memory.stat") == 0 && read_file(path, text, sizeof text) == 0)
        out->mem_cache = stat_value(text, cg->v2 ? "file" : "total_cache");
    if (cg->v2) {
        if (path_join(path, sizeof path, cg->dirs[0], NULL, "cpu.stat") == 0 &&
            read_file(path, text, sizeof text) == 0)
            out->cpu_ns = stat_value(text, "usage_usec") * 1000;
        return 0;
    }
    /* v1's cpuacct is often not split per sandbox (it is not among the
     * controllers we use): the live processes' own times instead */
    uint64_t ticks = 0;
    walk_pids(primary_dir(cg), 0, add_cpu_ticks, &ticks);
    long hz = sysconf(_SC_CLK_TCK);
    out->cpu_ns = ticks * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
    return 0;
}
