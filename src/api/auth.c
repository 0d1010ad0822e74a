/*
 * auth.c - API key authentication for the HTTP server (an sb_auth_fn).
 *
 * The key (sk-sb-<40 hex> or the same secret as e2b_<40 hex>) is hashed and
 * looked up on every request, so a revoked key stops working at once.
 */
#include <stdio.h>

#include "api/app.h"
#include "core/apikey.h"
#include "core/id.h"

int api_authenticate(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX], struct sb_err *err)
{
    struct sb_app *app = app_ctx;
    char prefix[24];
    unsigned char hash[32];
    struct sb_api_key rec;
    if (apikey_parse(key, prefix, hash, err) < 0)
        return -1;
    if (store_key_authenticate(app->store, prefix, hash, &rec, err) < 0) {
        if (err->status != 401)
            return -1;
        return sb_err_set(err, 401, "invalid API key");
    }
    /* last_used_at has minute resolution: skip the write when it is fresh. */
    int64_t now = sb_wall_ms();
    if (now - rec.last_used_at >= 60000)
        store_key_touch(app->store, rec.id, now);
    snprintf(org_id, SB_ORG_ID_MAX, "%s", rec.org_id);
    return 0;
}
