/*
 * registry_fs.c - a live sandbox's root filesystem for the file API
 * (registry_fs_open) and its environment (registry_envs): the org check,
 * the shim's word on the sandbox's PID 1 and the pinned spec for the user.
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
#include <unistd.h>

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
