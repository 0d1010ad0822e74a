/*
 * auth.c - API key authentication for the HTTP server (an sb_auth_fn).
 *
 * The key (sk-sb-<40 hex> or the same secret as e2b_<40 hex>) is parsed and
 * hashed (SHA-256) on every request. A key the store has accepted is kept in
 * a small cache (direct-mapped by hash, loop thread only), so most requests
 * cost no store lookup; every lookup first asks the revocation watch
 * (store/key_changes.h, one non-blocking read) whether any process revoked
 * a key since, and empties the cache if so. A revoked key therefore stops
 * working at once, also when `sandbase key revoke` ran in another process.
 * Keys that fail are never cached: they always go to the store.
 *
 * Owns the cache and the watch (one per process, made on first use).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "core/apikey.h"
#include "core/id.h"
#include "core/log.h"
#include "store/key_changes.h"

#define CACHE_SLOTS 512
#define TOUCH_EVERY_MS 60000        /* last_used_at has minute resolution */

struct cached_key {
    int used;
    unsigned char hash[32];
    char key_id[40];
    char org_id[40];
    int64_t last_used_at;
};

static struct cached_key cache[CACHE_SLOTS];
static struct store_key_watch *watch;
static int watch_failed;

/* Empties the cache when keys may have changed; 0 when it may be used. */
static int cache_usable(const struct sb_app *app)
{
    if (!watch && !watch_failed) {
        struct sb_err err = {0};
        watch = store_key_watch_open(app->cfg.data_dir, &err);
        if (!watch) {
            watch_failed = 1;
            sb_warn("API keys are looked up on every request (no revocation watch: %s)", err.msg);
        }
    }
    if (!watch)
        return -1;
    if (store_key_watch_changed(watch))
        memset(cache, 0, sizeof cache);
    return 0;
}

static struct cached_key *slot_of(const unsigned char hash[32])
{
    return &cache[(hash[0] | (unsigned)hash[1] << 8) % CACHE_SLOTS];
}

static void touch(struct sb_app *app, const char *key_id, int64_t *last_used_at)
{
    int64_t now = sb_wall_ms();
    if (now - *last_used_at < TOUCH_EVERY_MS)
        return;
    store_key_touch(app->store, key_id, now);
    *last_used_at = now;
}

int api_authenticate(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX], struct sb_err *err)
{
    struct sb_app *app = app_ctx;
    char prefix[24];
    unsigned char hash[32];
    if (apikey_parse(key, prefix, hash, err) < 0)
        return -1;
    int cached = cache_usable(app) == 0;
    struct cached_key *slot = slot_of(hash);
    if (cached && slot->used && sodium_memcmp(slot->hash, hash, sizeof hash) == 0) {
        touch(app, slot->key_id, &slot->last_used_at);
        snprintf(org_id, SB_ORG_ID_MAX, "%s", slot->org_id);
        return 0;
    }
    struct sb_api_key rec;
    if (store_key_authenticate(app->store, prefix, hash, &rec, err) < 0) {
        if (err->status != 401)
            return -1;
        return sb_err_set(err, 401, "invalid API key");
    }
    touch(app, rec.id, &rec.last_used_at);
    if (cached) {
        slot->used = 1;
        memcpy(slot->hash, hash, sizeof hash);
        snprintf(slot->key_id, sizeof slot->key_id, "%s", rec.id);
        snprintf(slot->org_id, sizeof slot->org_id, "%s", rec.org_id);
        slot->last_used_at = rec.last_used_at;
    }
    snprintf(org_id, SB_ORG_ID_MAX, "%s", rec.org_id);
    return 0;
}
