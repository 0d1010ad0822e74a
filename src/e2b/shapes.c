/*
 * shapes.c - E2B's JSON for a sandbox (see shapes.h and the protocol's
 * §2.5-2.7).
 *
 * What is answered is the truth, not what was asked: allowInternetAccess
 * and network are the sandbox's egress policy as resolved at create;
 * lifecycle is what the sandbox's timeout does (autoPause: pause, else
 * kill); autoResume is stored, not acted on, so it is reported false.
 * templateID is the template's name, also its alias; domain is the
 * configured domain with the API's port ("localhost:3000"), so the SDK's
 * getHost(port) gives <port>-<id>.localhost:3000, which the port proxy
 * answers (its sandboxUrl, when set, still wins for envd).
 */
#include "e2b/shapes.h"

#include "api/ports.h"
#include "api/sandbox_flows.h"
#include "core/id.h"
#include "runtime/registry.h"

const char *e2b_state_name(enum sb_sandbox_status status)
{
    switch (status) {
    case SB_SANDBOX_RUNNING: return "running";
    case SB_SANDBOX_PAUSED: return "paused";
    default: return NULL;
    }
}

static json_t *metadata_of(const struct sb_sandbox_rec *rec)
{
    json_t *obj = rec->metadata_json ? json_loads(rec->metadata_json, 0, NULL) : NULL;
    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    return obj;
}

static json_t *token_of(const struct sb_sandbox_rec *rec)
{
    return rec->envd_token[0] ? json_string(rec->envd_token) : json_null();
}

static json_t *traffic_token_of(const struct sb_sandbox_rec *rec)
{
    char token[64];
    api_traffic_token(rec, token, sizeof token);
    return token[0] ? json_string(token) : json_null();
}

json_t *e2b_sandbox_shape(const struct sb_sandbox_rec *rec)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:o}", "sandboxID", rec->id, "templateID",
                     rec->template_id, "alias", rec->template_id, "clientID", "sandbase", "envdVersion",
                     API_ENVD_VERSION, "envdAccessToken", token_of(rec), "domain", api_ports_domain(),
                     "trafficAccessToken", traffic_token_of(rec));
}

/* The fields ListedSandbox and SandboxDetail share. */
static json_t *common_shape(const struct sb_sandbox_rec *rec)
{
    char started[32], end[32];
    sb_time_rfc3339(rec->started_at, started, sizeof started);
    sb_time_rfc3339(rec->end_at, end, sizeof end);
    const char *state = e2b_state_name(rec->status);
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:s, s:o, s:s, s:[]}", "sandboxID",
                     rec->id, "templateID", rec->template_id, "alias", rec->template_id, "clientID",
                     "sandbase", "cpuCount", rec->cpu_count, "memoryMB", rec->memory_mb, "diskSizeMB",
                     rec->disk_mb, "startedAt", started, "endAt", end, "envdVersion", API_ENVD_VERSION,
                     "metadata", metadata_of(rec), "state", state ? state : "running", "volumeMounts");
}

json_t *e2b_listed_shape(const struct sb_sandbox_rec *rec)
{
    return common_shape(rec);
}

json_t *e2b_detail_shape(const struct sb_sandbox_rec *rec)
{
    json_t *obj = common_shape(rec);
    if (obj && json_object_set_new(obj, "envdAccessToken", token_of(rec)) == 0 &&
        json_object_set_new(obj, "domain", json_string(api_ports_domain())) == 0 &&
        json_object_set_new(obj, "lifecycle", json_pack("{s:s, s:b}", "onTimeout",
                                                        rec->pause_on_timeout ? "pause" : "kill",
                                                        "autoResume", 0)) == 0) {
        api_add_network_json(obj, rec->network_json);
        json_object_set_new(obj, "ports", api_ports_json(rec->id));
        return obj;
    }
    json_decref(obj);
    return NULL;
}

json_t *e2b_metric_shape(const struct sb_sandbox_metrics *m)
{
    char ts[40];
    sb_time_rfc3339(m->ts_ms, ts, sizeof ts);
    return json_pack("{s:s, s:I, s:i, s:f, s:I, s:I, s:I, s:I, s:I}", "timestamp", ts, "timestampUnix",
                     (json_int_t)(m->ts_ms / 1000), "cpuCount", m->cpu_count, "cpuUsedPct", m->cpu_used_pct,
                     "memUsed", (json_int_t)m->mem_used, "memTotal", (json_int_t)m->mem_total, "memCache",
                     (json_int_t)m->mem_cache, "diskUsed", (json_int_t)m->disk_used, "diskTotal",
                     (json_int_t)m->disk_total);
}
