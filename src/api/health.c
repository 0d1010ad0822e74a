/*
 * health.c - GET /health: liveness without authentication.
 */
#include "api/app.h"

void api_health(struct sb_request *req)
{
    sb_respond_json(req, 200, json_pack("{s:s, s:s}", "status", "ok", "version", SANDBASE_VERSION));
}
