/*
 * sandbox_pins.c - the in-memory table of sandboxes' pinned exec values
 * (see sandbox_pins.h).
 *
 * Owns: PINS_SLOTS slots, each an id and its values (env_json malloc'd),
 * under one mutex held only for a lookup or a copy. Never reads a file with
 * the mutex held.
 */
#include "runtime/sandbox_pins.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/spec.h"
#include "runtime/sandbox_spec.h"

#define PINS_SLOTS 4096         /* ~2.5 MiB at most, plus the environments */

struct slot {
    char id[32];                /* "" = empty */
    struct sandbox_pin pin;
};

static struct slot slots[PINS_SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct slot *slot_of(const char *id)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &slots[h % PINS_SLOTS];
}

static int pin_copy(struct sandbox_pin *dst, const struct sandbox_pin *src)
{
    *dst = *src;
    dst->env_json = strdup(src->env_json ? src->env_json : "{}");
    return dst->env_json ? 0 : -1;
}

static void pin_from_spec(struct sandbox_pin *pin, const struct sb_spec *spec)
{
    memset(pin, 0, sizeof *pin);
    snprintf(pin->template_name, sizeof pin->template_name, "%s", spec->template_name);
    snprintf(pin->user, sizeof pin->user, "%s", spec->user);
    pin->uid = spec->uid;
    pin->gid = spec->gid;
    snprintf(pin->home, sizeof pin->home, "%s", spec->home);
    snprintf(pin->workdir, sizeof pin->workdir, "%s", spec->workdir);
    pin->env_json = spec->env_json;     /* borrowed: pin_copy duplicates it */
}

void sandbox_pin_remember(const struct sb_spec *spec)
{
    struct sandbox_pin borrowed, owned;
    pin_from_spec(&borrowed, spec);
    if (pin_copy(&owned, &borrowed) < 0)
        return;                         /* out of memory: the next exec reads the file */
    pthread_mutex_lock(&lock);
    struct slot *s = slot_of(spec->id);
    char *old = s->id[0] ? s->pin.env_json : NULL;
    snprintf(s->id, sizeof s->id, "%s", spec->id);
    s->pin = owned;
    pthread_mutex_unlock(&lock);
    free(old);
}

int sandbox_pin_get(const char *run_dir, const char *id, struct sandbox_pin *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&lock);
    struct slot *s = slot_of(id);
    int hit = strcmp(s->id, id) == 0, rc = hit ? pin_copy(out, &s->pin) : 0;
    pthread_mutex_unlock(&lock);
    if (hit)
        return rc < 0 ? sb_err_set(err, 500, "out of memory") : 0;
    struct sb_spec spec;
    if (sandbox_spec_load(run_dir, id, &spec, err) < 0)
        return -1;
    sandbox_pin_remember(&spec);
    struct sandbox_pin borrowed;
    pin_from_spec(&borrowed, &spec);
    rc = pin_copy(out, &borrowed);
    sb_spec_clear(&spec);
    return rc < 0 ? sb_err_set(err, 500, "out of memory") : 0;
}

void sandbox_pin_clear(struct sandbox_pin *pin)
{
    free(pin->env_json);
    pin->env_json = NULL;
}
