/*
 * sandbox_spec.h - serve's side of the resolved sandbox spec (proto/spec.h):
 * turning a loaded template, the server's config and a sandbox's limits into
 * the spec its shim builds from, and reading back a running sandbox's spec
 * (the values it was pinned to at create).
 *
 * The spec of sandbox <id> lives at <run-dir>/sandboxes/<id>/spec.json:
 * shim_spawn writes it, the shim reads it, and exec gets its values from
 * memory (sandbox_pins.h), which reads it back only when it does not hold
 * them (after a restart). Loading blocks on one small file read.
 */
#ifndef SB_RUNTIME_SANDBOX_SPEC_H
#define SB_RUNTIME_SANDBOX_SPEC_H

#include <stddef.h>

#include "core/config.h"
#include "core/err.h"
#include "proto/spec.h"
#include "runtime/template.h"

/* Fills out (caller clears it with sb_spec_clear) for sandbox id built from
 * tpl (as template_load returned it) with limits: paths, identity, user,
 * env and binds from the template, the uid/gid maps from cfg->uid_base. */
int sandbox_spec_resolve(const struct sb_config *cfg, const struct sb_template *tpl, const char *id,
                         const struct sb_limits *limits, struct sb_spec *out, struct sb_err *err);

/* <run-dir>/sandboxes/<id>/spec.json; -1 when it does not fit. */
int sandbox_spec_path(char *out, size_t len, const char *run_dir, const char *id);

/* The spec sandbox id was created with (caller clears it). 404 when it has
 * none (no such sandbox on this host). */
int sandbox_spec_load(const char *run_dir, const char *id, struct sb_spec *out, struct sb_err *err);

#endif
