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
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "core/id.h"
#include "proto/spec.h"
#include "runtime/registry_internal.h"
#include "runtime/sandbox_files.h"
#include "runtime/sandbox_spec.h"

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

    struct sb_shim_status st;
    if (shim_status(reg->cfg->run_dir, id, &st, err) < 0) {
        if (err->status == 404)
            err->status = 502;
        check_lost(reg, org_id, id, err);
        return -1;
    }
    char root[64];
    snprintf(root, sizeof root, "/proc/%d/root", (int)st.init_pid);
    fs->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
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
        *env = build_env(&tpl, &rec, tpl.user, NULL, count);
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
    if (shim_status(reg->cfg->run_dir, id, &st, err) < 0) {
        if (err->status == 404)
            err->status = 502;
        check_lost(reg, org_id, id, err);
        return -1;
    }
    *paused = st.paused;
    return 0;
}

#define CPU_SAMPLE_MS 100

int registry_metrics(struct sb_registry *reg, const char *org_id, const char *id,
                     struct sb_sandbox_metrics *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    struct sb_fs fs;
    if (registry_fs_open(reg, org_id, id, "root", &fs, err) < 0) {
        sb_fs_close(&fs);
        return -1;
    }
    struct statfs sfs;
    if (fstatfs(fs.root_fd, &sfs) == 0) {   /* the overlay reports its upper layer: the disk image */
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
    struct sb_shim_stats a, b;
    int64_t t0 = sb_mono_ms();
    if (shim_stats(reg->cfg->run_dir, id, &a, err) < 0)
        goto failed;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = CPU_SAMPLE_MS * 1000000L};
    nanosleep(&pause, NULL);
    if (shim_stats(reg->cfg->run_dir, id, &b, err) < 0)
        goto failed;
    int64_t dt_ms = sb_mono_ms() - t0;
    out->ts_ms = sb_wall_ms();
    out->mem_used = b.mem_used;
    out->mem_cache = b.mem_cache;
    if (dt_ms > 0 && out->cpu_count > 0 && b.cpu_ns > a.cpu_ns) {
        double pct = (double)(b.cpu_ns - a.cpu_ns) / ((double)dt_ms * 1e6 * out->cpu_count) * 100.0;
        out->cpu_used_pct = pct > 100.0 ? 100.0 : pct;
    }
    return 0;
failed:
    if (err->status == 404)
        err->status = 502;
    check_lost(reg, org_id, id, err);
    return -1;
}
