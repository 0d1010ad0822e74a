/*
 * registry_fs.c - looking into a live sandbox from the host: its root
 * filesystem for the file API (registry_fs_open), its environment
 * (registry_envs), its health and its usage (registry_health,
 * registry_metrics): the org check, the shim's word on the sandbox and
 * the pinned spec for its user and limits.
 *
 * The host reaches the sandbox's / through /proc/<init>/root, opened here
 * as an O_PATH fd while serve still has its own credentials (it needs the
 * ptrace-read right over PID 1); everything after goes through
 * sandbox_files.c. Paused sandboxes are served too: the freezer stops
 * their processes, not their files. Blocks (store, shim): workers only.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "core/id.h"
#include "proto/spec.h"
#include "runtime/registry_internal.h"
#include "runtime/sandbox_files.h"
#include "runtime/sandbox_spec.h"

/* Sandbox id -> the host pids of its PID 1 and shim, from the shim's
 * status, so that a file request need not ask the shim each time (a round
 * trip that costs about a millisecond). An entry is trusted only while
 * that pid's parent is still that shim and its root is still the same
 * directory (device and inode), checked through the pid's own /proc
 * directory, which is also where the root is opened from, so a pid reused
 * meanwhile (even by a process of the shim's that has not entered the
 * sandbox yet) is never taken for the sandbox. Process-wide, because
 * pids are; small, because a miss only costs the round trip. */
#define INIT_CACHE_SIZE 256
static struct {
    pthread_mutex_t lock;
    struct { char id[32]; pid_t init_pid, shim_pid; dev_t root_dev; ino_t root_ino; } slots[INIT_CACHE_SIZE];
} init_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned cache_slot(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % INIT_CACHE_SIZE;
}

/* The parent pid in /proc/<pid>/stat read through pid_dir, or -1. */
static pid_t parent_of(int pid_dir)
{
    char text[1024];
    int fd = openat(pid_dir, "stat", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    const char *p = strrchr(text, ')');
    int ppid;
    return p && sscanf(p + 1, " %*c %d", &ppid) == 1 ? (pid_t)ppid : -1;
}

/* The /proc/<init> directory of id and its root, if the cached pids still
 * hold; else -1 (nothing open). */
static int open_cached(const char *id, int *dir_out)
{
    unsigned slot = cache_slot(id);
    pid_t init_pid = 0, shim_pid = 0;
    dev_t dev = 0;
    ino_t ino = 0;
    pthread_mutex_lock(&init_cache.lock);
    if (strcmp(init_cache.slots[slot].id, id) == 0) {
        init_pid = init_cache.slots[slot].init_pid;
        shim_pid = init_cache.slots[slot].shim_pid;
        dev = init_cache.slots[slot].root_dev;
        ino = init_cache.slots[slot].root_ino;
    }
    pthread_mutex_unlock(&init_cache.lock);
    if (init_pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)init_pid);
    int dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    int root = parent_of(dir) == shim_pid ? openat(dir, "root", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    struct stat st;
    if (root >= 0 && (fstat(root, &st) != 0 || st.st_dev != dev || st.st_ino != ino)) {
        close(root);
        root = -1;
    }
    if (root < 0 || !dir_out)
        close(dir);
    else
        *dir_out = dir;
    return root;
}

/* /proc/<init>/root of id, if the cached pids still hold; else -1. */
static int open_root_cached(const char *id) { return open_cached(id, NULL); }

/* Opens the root of the PID 1 the shim just named and remembers it; -1
 * when it cannot be opened (or is not the shim's child). */
static int open_root_fresh(const char *id, const struct sb_shim_status *sst)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)sst->init_pid);
    int dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    int root = parent_of(dir) == sst->shim_pid ? openat(dir, "root", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    close(dir);
    struct stat st;
    if (root < 0 || fstat(root, &st) != 0) {
        if (root >= 0)
            close(root);
        return -1;
    }
    unsigned slot = cache_slot(id);
    pthread_mutex_lock(&init_cache.lock);
    snprintf(init_cache.slots[slot].id, sizeof init_cache.slots[slot].id, "%s", id);
    init_cache.slots[slot].init_pid = sst->init_pid;
    init_cache.slots[slot].shim_pid = sst->shim_pid;
    init_cache.slots[slot].root_dev = st.st_dev;
    init_cache.slots[slot].root_ino = st.st_ino;
    pthread_mutex_unlock(&init_cache.lock);
    return root;
}

/* The shim's status of a sandbox the store has live: 502 when its shim
 * does not answer, after which the sandbox is found lost if it is. */
static int live_shim_status(struct sb_registry *reg, const char *org_id, const char *id,
                            struct sb_shim_status *st, struct sb_err *err)
{
    if (shim_status(reg->cfg->run_dir, id, st, err) == 0)
        return 0;
    if (err->status == 404)
        err->status = 502;
    check_lost(reg, org_id, id, err);
    return -1;
}

int registry_fs_open(struct sb_registry *reg, const char *org_id, const char *id, const char *user,
                     struct sb_fs *fs, struct sb_err *err)
{
    memset(fs, 0, sizeof *fs);
    fs->root_fd = -1;
    struct sb_sandbox_rec rec;
    if (load_live(reg, org_id, id, &rec, err) < 0)
        return -1;
    store_sandbox_rec_clear(&rec);
    struct sb_spec spec;
    if (sandbox_spec_load(reg->cfg->run_dir, id, &spec, err) < 0)
        return sb_err_prefix(err, "sandbox %s", id);
    int as_root = user && strcmp(user, "root") == 0;
    if (user && *user && !as_root && strcmp(user, "user") != 0 && strcmp(user, spec.user) != 0) {
        sb_err_set(err, 400, "unknown user '%s' (this sandbox has 'root' and '%s')", user, spec.user);
        sb_spec_clear(&spec);
        return -1;
    }
    fs->as_user = !as_root;
    fs->id_base = spec.uid_map.outside;
    fs->uid = spec.uid_map.outside + (as_root ? 0 : spec.uid);
    fs->gid = spec.gid_map.outside + (as_root ? 0 : spec.gid);
    snprintf(fs->home, sizeof fs->home, "%s", as_root ? "/root" : spec.home);
    sb_spec_clear(&spec);

    fs->root_fd = open_root_cached(id);
    if (fs->root_fd >= 0)
        return 0;
    struct sb_shim_status st;
    if (live_shim_status(reg, org_id, id, &st, err) < 0)
        return -1;
    fs->root_fd = open_root_fresh(id, &st);
    if (fs->root_fd < 0)
        return sb_err_sys(err, 502, "sandbox %s: cannot reach its files", id);
    return 0;
}

int registry_envs(struct sb_registry *reg, const char *org_id, const char *id, char ***env,
                  size_t *count, struct sb_err *err)
{
    struct sb_sandbox_rec rec;
    struct sb_template tpl;
    if (load_live(reg, org_id, id, &rec, err) < 0)
        return -1;
    int rc = load_sandbox_template(reg, &rec, &tpl, err);
    if (rc == 0) {
        *env = build_env(&tpl, &rec, tpl.user, 0, NULL, count);
        if (!*env)
            rc = sb_err_set(err, 500, "out of memory");
        template_clear(&tpl);
    }
    store_sandbox_rec_clear(&rec);
    return rc;
}

int registry_health(struct sb_registry *reg, const char *org_id, const char *id, int *paused,
                    struct sb_err *err)
{
    struct sb_sandbox_rec rec;
    if (load_live(reg, org_id, id, &rec, err) < 0)
        return -1;
    store_sandbox_rec_clear(&rec);
    struct sb_shim_status st;
    if (live_shim_status(reg, org_id, id, &st, err) < 0)
        return -1;
    *paused = st.paused;
    return 0;
}

#define CPU_SAMPLE_MS 100

/* One sandbox's part of a sample before the pause: its disk (the overlay
 * reports its upper layer: the disk image), its limits from the pinned
 * spec, and its first CPU and memory reading. */
static int metrics_begin(struct sb_registry *reg, const char *org_id, const char *id,
                         struct sb_sandbox_metrics *out, struct sb_shim_stats *first, int64_t *t0,
                         struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    struct sb_fs fs;
    if (registry_fs_open(reg, org_id, id, "root", &fs, err) < 0) {
        sb_fs_close(&fs);
        return -1;
    }
    struct statfs sfs;
    if (fstatfs(fs.root_fd, &sfs) == 0) {
        out->disk_total = (uint64_t)sfs.f_blocks * (uint64_t)sfs.f_bsize;
        out->disk_used = (uint64_t)(sfs.f_blocks - sfs.f_bfree) * (uint64_t)sfs.f_bsize;
    }
    sb_fs_close(&fs);
    struct sb_spec spec;
    if (sandbox_spec_load(reg->cfg->run_dir, id, &spec, err) < 0)
        return sb_err_prefix(err, "sandbox %s", id);
    out->cpu_count = spec.limits.cpu_count;
    out->mem_total = (uint64_t)spec.limits.memory_mb << 20;
    sb_spec_clear(&spec);
    *t0 = sb_mono_ms();
    if (shim_stats(reg->cfg->run_dir, id, first, err) < 0)
        goto failed;
    return 0;
failed:
    if (err->status == 404)
        err->status = 502;
    check_lost(reg, org_id, id, err);
    return -1;
}

/* The network namespace of the cached PID 1, checked as its root is. */
static int open_netns_cached(const char *id)
{
    int dir = -1;
    int root = open_cached(id, &dir);
    if (root < 0)
        return -1;
    close(root);
    int ns = openat(dir, "ns/net", O_RDONLY | O_CLOEXEC);
    close(dir);
    return ns;
}

int registry_netns_open(struct sb_registry *reg, const char *id, int *netns_fd, struct sb_err *err)
{
    *netns_fd = open_netns_cached(id);
    if (*netns_fd >= 0)
        return 0;
    struct sb_shim_status st;
    if (shim_status(reg->cfg->run_dir, id, &st, err) < 0) {
        if (err->status == 404)
            err->status = 502;
        return sb_err_prefix(err, "sandbox %s", id);
    }
    int root = open_root_fresh(id, &st);
    if (root >= 0)
        close(root);
    *netns_fd = open_netns_cached(id);
    if (*netns_fd < 0)
        return sb_err_sys(err, 502, "sandbox %s: cannot reach its network namespace", id);
    return 0;
}

/* The second reading, after the pause: memory now, CPU over the interval. */
static int metrics_finish(struct sb_registry *reg, const char *org_id, const char *id,
                          struct sb_sandbox_metrics *out, const struct sb_shim_stats *first, int64_t t0,
                          struct sb_err *err)
{
    struct sb_shim_stats now;
    if (shim_stats(reg->cfg->run_dir, id, &now, err) < 0) {
        if (err->status == 404)
            err->status = 502;
        check_lost(reg, org_id, id, err);
        return -1;
    }
    int64_t dt_ms = sb_mono_ms() - t0;
    out->ts_ms = sb_wall_ms();
    out->mem_used = now.mem_used;
    out->mem_cache = now.mem_cache;
    if (dt_ms > 0 && out->cpu_count > 0 && now.cpu_ns > first->cpu_ns) {
        double pct = (double)(now.cpu_ns - first->cpu_ns) / ((double)dt_ms * 1e6 * out->cpu_count) * 100.0;
        out->cpu_used_pct = pct > 100.0 ? 100.0 : pct;
    }
    return 0;
}

int registry_metrics_many(struct sb_registry *reg, const char *org_id, const char *const *ids, size_t count,
                          struct sb_sandbox_metrics *out, struct sb_err *errs)
{
    struct sb_shim_stats *first = calloc(count ? count : 1, sizeof *first);
    int64_t *t0 = calloc(count ? count : 1, sizeof *t0);
    if (!first || !t0) {
        free(first);
        free(t0);
        for (size_t i = 0; i < count; i++)
            sb_err_set(&errs[i], 500, "out of memory");
        return -1;
    }
    size_t begun = 0;
    for (size_t i = 0; i < count; i++) {
        errs[i] = (struct sb_err){0};
        if (metrics_begin(reg, org_id, ids[i], &out[i], &first[i], &t0[i], &errs[i]) == 0)
            begun++;
        else if (errs[i].status == 0)
            sb_err_set(&errs[i], 500, "sandbox %s: metrics failed", ids[i]);
    }
    if (begun > 0) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = CPU_SAMPLE_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
    for (size_t i = 0; i < count; i++)
        if (errs[i].status == 0)
            metrics_finish(reg, org_id, ids[i], &out[i], &first[i], t0[i], &errs[i]);
    free(first);
    free(t0);
    return 0;
}

int registry_metrics(struct sb_registry *reg, const char *org_id, const char *id,
                     struct sb_sandbox_metrics *out, struct sb_err *err)
{
    const char *ids[1] = {id};
    if (registry_metrics_many(reg, org_id, ids, 1, out, err) < 0 || err->status != 0)
        return -1;
    return 0;
}
