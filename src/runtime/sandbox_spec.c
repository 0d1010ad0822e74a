/*
 * sandbox_spec.c - resolving a sandbox's spec from its template and the
 * server's config, and finding a running sandbox's spec (see sandbox_spec.h).
 *
 * Owns nothing between calls. The one place that decides what a sandbox is
 * built from: the shim takes the result as it is, so everything a template
 * or the config may change is settled here, once, at create.
 */
#include "runtime/sandbox_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sandbox_spec_resolve(const struct sb_config *cfg, const struct sb_template *tpl, const char *id,
                         const struct sb_limits *limits, struct sb_spec *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    if (tpl->bind_count > SB_SPEC_MAX_BINDS)
        return sb_err_set(err, 500, "template %s: more than %d binds", tpl->name, SB_SPEC_MAX_BINDS);
    snprintf(out->id, sizeof out->id, "%s", id);
    snprintf(out->hostname, sizeof out->hostname, "%s", id);
    snprintf(out->data_dir, sizeof out->data_dir, "%s", cfg->data_dir);
    snprintf(out->run_dir, sizeof out->run_dir, "%s", cfg->run_dir);
    snprintf(out->template_name, sizeof out->template_name, "%s", tpl->name);
    snprintf(out->template_dir, sizeof out->template_dir, "%s", tpl->dir);
    out->template_identity = tpl->identity;
    out->uid_map = out->gid_map =
        (struct sb_spec_idmap){.inside = 0, .outside = cfg->uid_base, .count = SB_UID_RANGE};
    snprintf(out->user, sizeof out->user, "%s", tpl->user);
    out->uid = tpl->uid;
    out->gid = tpl->gid;
    snprintf(out->home, sizeof out->home, "%s", tpl->home);
    snprintf(out->workdir, sizeof out->workdir, "%s", tpl->workdir[0] ? tpl->workdir : "/");
    out->bind_count = tpl->bind_count;
    for (int i = 0; i < tpl->bind_count; i++) {
        snprintf(out->binds[i].source, sizeof out->binds[i].source, "%s", tpl->binds[i].source);
        snprintf(out->binds[i].target, sizeof out->binds[i].target, "%s", tpl->binds[i].target);
        out->binds[i].readonly = tpl->binds[i].readonly;
    }
    out->limits = *limits;
    out->sudo = tpl->sudo;
    out->output_ring = (uint32_t)(cfg->output_ring_kb > 0 ? cfg->output_ring_kb : 1024) * 1024u;
    out->env_json = strdup(tpl->env_json ? tpl->env_json : "{}");
    if (!out->env_json)
        return sb_err_set(err, 500, "out of memory");
    return 0;
}

int sandbox_spec_path(char *out, size_t len, const char *run_dir, const char *id)
{
    int n = snprintf(out, len, "%s/sandboxes/%s/spec.json", run_dir, id);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int sandbox_spec_load(const char *run_dir, const char *id, struct sb_spec *out, struct sb_err *err)
{
    char path[SB_PATH_MAX];
    memset(out, 0, sizeof *out);
    if (sandbox_spec_path(path, sizeof path, run_dir, id) < 0)
        return sb_err_set(err, 500, "sandbox %s: run dir path too long", id);
    return sb_spec_read_file(path, out, err);
}
