/*
 * port_grants.c - the proxy's cache of sandbox checks (see port_grants.h).
 *
 * A small table by id hash, written and read on the loop thread only. Its
 * validity is an epoch: every committed lifecycle event, from whichever
 * thread commits it, bumps one atomic counter, and an entry counts only
 * while the epoch it was filled in is still current. Events are few beside
 * proxied requests (creates, pauses, deletes), so forgetting everything on
 * each one costs a row read per sandbox afterwards, and nothing stale is
 * ever used past the event that made it stale: the event is published
 * right after the row's commit (store.h), before any later request can
 * have read the new row.
 *
 * Owns: the table. Never blocks.
 */
#include "api/port_grants.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/loop.h"

#define PORT_GRANTS 256
#define PORT_GRANT_MS 5000

static atomic_uint_fast64_t epoch = 1;

static struct {
    char id[32];
    uint64_t epoch, until;
    struct port_grant grant;
} grants[PORT_GRANTS];

static unsigned slot_of(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % PORT_GRANTS;
}

int port_grants_lookup(const char *id, struct port_grant *out)
{
    unsigned s = slot_of(id);
    if (strcmp(grants[s].id, id) != 0 || grants[s].epoch != atomic_load(&epoch) ||
        grants[s].until <= sb_now_ms())
        return 0;
    *out = grants[s].grant;
    return 1;
}

unsigned long long port_grants_epoch(void) { return (unsigned long long)atomic_load(&epoch); }

void port_grants_remember(const char *id, const struct port_grant *grant, unsigned long long at)
{
    unsigned s = slot_of(id);
    snprintf(grants[s].id, sizeof grants[s].id, "%s", id);
    grants[s].epoch = at;
    grants[s].until = sb_now_ms() + PORT_GRANT_MS;
    grants[s].grant = *grant;
}

void port_grants_on_event(void *arg, const struct sb_event *ev)
{
    atomic_fetch_add(&epoch, 1);
}
