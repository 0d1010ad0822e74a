/*
 * sandbox_pins.h - what each sandbox's exec needs of its resolved spec (the
 * default user and its ids, home, workdir, base environment), kept in
 * memory once known, so an exec neither reads nor parses a file.
 *
 * A spec never changes once written and sandbox ids are never reused, so a
 * remembered entry is right for as long as its sandbox lives; entries of
 * ended sandboxes are simply overwritten later. The memory is bounded: a
 * fixed table of PINS_SLOTS entries (by hash of the id), where a newer
 * sandbox may push out an older one, which is then read back from
 * <run-dir>/sandboxes/<id>/spec.json on its next exec (as after a restart
 * of serve). Thread-safe.
 */
#ifndef SB_RUNTIME_SANDBOX_PINS_H
#define SB_RUNTIME_SANDBOX_PINS_H

#include <stdint.h>

#include "core/err.h"

struct sb_spec;

struct sandbox_pin {
    char template_name[64];
    char user[32];
    uint32_t uid, gid;
    char home[256];
    char workdir[256];
    char *env_json;             /* owned: JSON object text */
};

/* Remembers spec's values for its sandbox (shim_spawn, once its shim is up). */
void sandbox_pin_remember(const struct sb_spec *spec);
/* The values sandbox id was created with into *out (caller clears it): from
 * memory, or else from its spec file, then remembered. A hit costs a mutex
 * and a copy; a miss reads one small file (cheap enough for the HTTP loop,
 * and rare). 404 when the sandbox has no spec. */
int sandbox_pin_get(const char *run_dir, const char *id, struct sandbox_pin *out, struct sb_err *err);
void sandbox_pin_clear(struct sandbox_pin *pin);    /* frees env_json */

#endif
