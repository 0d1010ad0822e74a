/*
 * config.c - defaults, JSON file, environment and validation for sb_config.
 */
#include "core/config.h"

#include "core/cidr.h"
#include "core/fs.h"

#include <jansson.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sb_config_defaults(struct sb_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen, sizeof cfg->listen, "127.0.0.1:3000");
    snprintf(cfg->domain, sizeof cfg->domain, "localhost");
    cfg->ports_timeout_s = 60;
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "./sandbase-data");
    snprintf(cfg->log_format, sizeof cfg->log_format, "auto");
    cfg->max_body = 1024 * 1024;
    cfg->pool_size = 2;
    cfg->org_sandbox_cap = 100;
    cfg->exec_output_cap = 10 * 1024 * 1024;
    cfg->default_timeout_s = 300;
    cfg->max_timeout_s = 86400;
    cfg->retention_days = 30;
    cfg->uid_base = 100000;
    cfg->max_connections = 4096;
    cfg->max_connections_per_address = 256;
    cfg->request_read_timeout_s = 30;
    cfg->disk_reserve_mb = 512;
    cfg->shim_call_timeout_ms = 10000;
    cfg->exec_output_budget_mb = 128;
    cfg->output_ring_kb = 1024;
    cfg->files_read_max = 10 * 1024 * 1024;
    cfg->files_upload_file_max = (size_t)1 << 30;
    cfg->files_upload_max = ((size_t)1 << 30) + ((size_t)1 << 20);   /* 1 GiB of file and its framing */
    cfg->webhook = (struct sb_webhook_config){.timeout_s = 10, .retry_base_ms = 5000, .retry_max_delay_s = 43200,
                                              .max_attempts = 15, .max_in_flight = 64};
    cfg->defaults = (struct sb_limits){.cpu_count = 2, .memory_mb = 512, .pids = 512, .disk_mb = 1024};
    cfg->maxima = (struct sb_limits){.cpu_count = 8, .memory_mb = 8192, .pids = 4096, .disk_mb = 10240};
    snprintf(cfg->network.range, sizeof cfg->network.range, "10.200.0.0/16");
    snprintf(cfg->network.default_mode, sizeof cfg->network.default_mode, "internet");
}

static int set_string(char *dst, size_t len, json_t *v, const char *key, struct sb_err *err)
{
    if (!json_is_string(v))
        return sb_err_set(err, 400, "config: %s must be a string", key);
    if (json_string_length(v) >= len)
        return sb_err_set(err, 400, "config: %s is too long", key);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int set_int(long long *out, json_t *v, const char *key, struct sb_err *err)
{
    if (!json_is_integer(v))
        return sb_err_set(err, 400, "config: %s must be an integer", key);
    *out = json_integer_value(v);
    if (*out < 0)
        return sb_err_set(err, 400, "config: %s must not be negative", key);
    return 0;
}

static int apply_limits(struct sb_limits *lim, json_t *obj, const char *name, struct sb_err *err)
{
    if (!json_is_object(obj))
        return sb_err_set(err, 400, "config: %s must be an object", name);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        long long n;
        char full[96];
        snprintf(full, sizeof full, "%s.%s", name, key);
        if (set_int(&n, v, full, err) < 0)
            return -1;
        if (n > 1 << 30)
            return sb_err_set(err, 400, "config: %s is too large", full);
        if (strcmp(key, "cpu_count") == 0)
            lim->cpu_count = (int)n;
        else if (strcmp(key, "memory_mb") == 0)
            lim->memory_mb = (int)n;
        else if (strcmp(key, "pids") == 0)
            lim->pids = (int)n;
        else if (strcmp(key, "disk_mb") == 0)
            lim->disk_mb = (int)n;
        else
            return sb_err_set(err, 400, "config: unknown key %s", full);
    }
    return 0;
}

/* {"network": {...}}: egress settings, checked in sb_config_finish. */
static int apply_network(struct sb_net_config *net, json_t *obj, struct sb_err *err)
{
    if (!json_is_object(obj))
        return sb_err_set(err, 400, "config: network must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int rc;
        if (strcmp(key, "uplink") == 0)
            rc = set_string(net->uplink, sizeof net->uplink, v, "network.uplink", err);
        else if (strcmp(key, "range") == 0)
            rc = set_string(net->range, sizeof net->range, v, "network.range", err);
        else if (strcmp(key, "default") == 0)
            rc = set_string(net->default_mode, sizeof net->default_mode, v, "network.default", err);
        else if (strcmp(key, "dns_upstream") == 0)
            rc = set_string(net->dns_upstream, sizeof net->dns_upstream, v, "network.dns_upstream", err);
        else if (strcmp(key, "allow_private") == 0) {
            if (!json_is_array(v) || json_array_size(v) > SB_NET_MAX_ALLOW_PRIVATE)
                return sb_err_set(err, 400, "config: network.allow_private must be an array of at most %d CIDRs",
                                  SB_NET_MAX_ALLOW_PRIVATE);
            size_t i;
            json_t *item;
            net->allow_private_count = 0;
            rc = 0;
            json_array_foreach(v, i, item) {
                if ((rc = set_string(net->allow_private[i], sizeof net->allow_private[i], item,
                                     "network.allow_private[]", err)) < 0)
                    break;
                net->allow_private_count++;
            }
        } else
            return sb_err_set(err, 400, "config: unknown key network.%s (known: uplink, range, default, "
                                        "dns_upstream, allow_private)", key);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The network section makes sense: a usable range, a known default, CIDRs
 * and an upstream that parse. */
static int check_network(const struct sb_net_config *net, struct sb_err *err)
{
    struct sb_cidr range;
    if (sb_cidr_parse(net->range, &range) < 0 || range.family != AF_INET || range.prefix < 8 ||
        range.prefix > 28)
        return sb_err_set(err, 400, "config: network.range must be an IPv4 CIDR from /8 to /28 (got \"%s\")",
                          net->range);
    if (strcmp(net->default_mode, "internet") != 0 && strcmp(net->default_mode, "none") != 0)
        return sb_err_set(err, 400, "config: network.default must be internet or none");
    for (int i = 0; i < net->allow_private_count; i++) {
        struct sb_cidr c;
        if (sb_cidr_parse(net->allow_private[i], &c) < 0)
            return sb_err_set(err, 400, "config: network.allow_private: not a CIDR: \"%s\"", net->allow_private[i]);
    }
    if (net->uplink[0] && (strchr(net->uplink, '/') || strcmp(net->uplink, ".") == 0 ||
                           strcmp(net->uplink, "..") == 0))
        return sb_err_set(err, 400, "config: network.uplink is not an interface name");
    if (net->dns_upstream[0]) {
        char host[64];
        snprintf(host, sizeof host, "%s", net->dns_upstream);
        char *colon = strrchr(host, ':');
        if (colon && strchr(host, '.'))     /* IPv4 "a.b.c.d:port" */
            *colon = '\0';
        struct sb_cidr c;
        if (sb_cidr_parse(host, &c) < 0 || c.family != AF_INET)
            return sb_err_set(err, 400, "config: network.dns_upstream must be an IPv4 address, optionally with :port");
    }
    return 0;
}

/* One entry per integer option: its key and where it lands. */
struct int_option {
    const char *key;
    size_t offset;
    size_t size;
};
#define INT_OPT(field) {#field, offsetof(struct sb_config, field), sizeof(((struct sb_config *)0)->field)}
#define WEBHOOK_OPT(field) {"webhook_" #field, offsetof(struct sb_config, webhook.field), sizeof(int)}
static const struct int_option int_options[] = {
    INT_OPT(max_body), INT_OPT(pool_size), INT_OPT(org_sandbox_cap), INT_OPT(exec_output_cap),
    INT_OPT(default_timeout_s), INT_OPT(max_timeout_s), INT_OPT(uid_base), INT_OPT(retention_days),
    INT_OPT(max_connections), INT_OPT(max_connections_per_address), INT_OPT(request_read_timeout_s),
    INT_OPT(disk_reserve_mb), INT_OPT(shim_call_timeout_ms), INT_OPT(exec_output_budget_mb), INT_OPT(output_ring_kb),
    INT_OPT(files_read_max), INT_OPT(ports_timeout_s), INT_OPT(files_upload_file_max), INT_OPT(files_upload_max),
    WEBHOOK_OPT(timeout_s), WEBHOOK_OPT(retry_base_ms),
    WEBHOOK_OPT(retry_max_delay_s), WEBHOOK_OPT(max_attempts), WEBHOOK_OPT(max_in_flight),
};

static int apply_int_option(struct sb_config *cfg, const char *key, json_t *v, struct sb_err *err)
{
    for (size_t i = 0; i < sizeof int_options / sizeof int_options[0]; i++) {
        if (strcmp(key, int_options[i].key) != 0)
            continue;
        long long n;
        if (set_int(&n, v, key, err) < 0)
            return -1;
        char *p = (char *)cfg + int_options[i].offset;
        if (int_options[i].size == sizeof(size_t))
            *(size_t *)p = (size_t)n;
        else if (n > 0x7fffffff)
            return sb_err_set(err, 400, "config: %s is too large", key);
        else
            *(int *)p = (int)n;
        return 0;
    }
    return sb_err_set(err, 400, "config: unknown key %s", key);
}

int sb_config_apply_json(struct sb_config *cfg, const char *json_text, struct sb_err *err)
{
    json_error_t jerr;
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sb_err_set(err, 400, "config: invalid JSON at line %d column %d: %s", jerr.line,
                          jerr.column, jerr.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = sb_err_set(err, 400, "config: must be a JSON object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "listen") == 0)
            rc = set_string(cfg->listen, sizeof cfg->listen, v, key, err);
        else if (strcmp(key, "domain") == 0)
            rc = set_string(cfg->domain, sizeof cfg->domain, v, key, err);
        else if (strcmp(key, "data_dir") == 0)
            rc = set_string(cfg->data_dir, sizeof cfg->data_dir, v, key, err);
        else if (strcmp(key, "run_dir") == 0)
            rc = set_string(cfg->run_dir, sizeof cfg->run_dir, v, key, err);
        else if (strcmp(key, "shim_path") == 0)
            rc = set_string(cfg->shim_path, sizeof cfg->shim_path, v, key, err);
        else if (strcmp(key, "log_format") == 0)
            rc = set_string(cfg->log_format, sizeof cfg->log_format, v, key, err);
        else if (strcmp(key, "webhook_allow_private") == 0)
            rc = json_is_boolean(v) ? (cfg->webhook.allow_private = json_is_true(v), 0)
                                    : sb_err_set(err, 400, "config: %s must be true or false", key);
        else if (strcmp(key, "defaults") == 0)
            rc = apply_limits(&cfg->defaults, v, key, err);
        else if (strcmp(key, "maxima") == 0)
            rc = apply_limits(&cfg->maxima, v, key, err);
        else if (strcmp(key, "network") == 0)
            rc = apply_network(&cfg->network, v, err);
        else
            rc = apply_int_option(cfg, key, v, err);
        if (rc < 0)
            break;
    }
out:
    json_decref(root);
    return rc;
}

int sb_config_load_file(struct sb_config *cfg, const char *path, struct sb_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return sb_err_sys(err, 400, "config: cannot open %s", path);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char buf[4096];
    size_t n;
    while (mem && (n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, mem);
    fclose(f);
    if (!mem)
        return sb_err_sys(err, 500, "config: reading %s", path);
    fclose(mem);
    int rc = sb_config_apply_json(cfg, text, err);
    free(text);
    if (rc < 0)
        sb_err_prefix(err, "%s", path);
    return rc;
}

int sb_config_load_data_dir(struct sb_config *cfg, const char *data_dir, struct sb_err *err)
{
    char path[SB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/config.json", data_dir);
    if (access(path, F_OK) != 0)
        return 0;
    return sb_config_load_file(cfg, path, err);
}

void sb_config_apply_env(struct sb_config *cfg)
{
    const char *v;
    if ((v = getenv("SANDBASE_LISTEN")) && *v)
        snprintf(cfg->listen, sizeof cfg->listen, "%s", v);
    if ((v = getenv("SANDBASE_DATA_DIR")) && *v)
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", v);
    if ((v = getenv("SANDBASE_RUN_DIR")) && *v)
        snprintf(cfg->run_dir, sizeof cfg->run_dir, "%s", v);
    if ((v = getenv("SANDBASE_SHIM")) && *v)
        snprintf(cfg->shim_path, sizeof cfg->shim_path, "%s", v);
}

/* A host name suffix: labels of [a-z0-9-], dots between, lower case (Host
 * headers are matched against it case-insensitively). */
static int check_domain(const char *domain, struct sb_err *err)
{
    size_t len = strlen(domain), label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = domain[i];
        if (c == '.') {
            if (label == 0)
                break;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            label++;
        } else {
            label = 0;
            break;
        }
        if (i + 1 == len && label > 0)
            return 0;
    }
    return sb_err_set(err, 400, "config: domain '%.64s' must be a lower-case host name such as "
                      "localhost or sandbox.example.com (ports are <port>-<id>.<domain>)", domain);
}

/* The default shim: sandbase-shim in the directory of the running binary
 * (build/ in a checkout, the install's bin/ otherwise). */
static int default_shim_path(struct sb_config *cfg, struct sb_err *err)
{
    char self[SB_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return sb_err_sys(err, 500, "config: cannot find the running binary to locate sandbase-shim "
                                    "(set shim_path or SANDBASE_SHIM)");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    int len = snprintf(cfg->shim_path, sizeof cfg->shim_path, "%s/sandbase-shim", self);
    if (len < 0 || (size_t)len >= sizeof cfg->shim_path)
        return sb_err_set(err, 400, "config: the path of sandbase-shim beside %s is too long", self);
    return 0;
}

static int check_limits(const struct sb_limits *lim, const char *name, struct sb_err *err)
{
    if (lim->cpu_count < 1 || lim->memory_mb < 16 || lim->pids < 8 || lim->disk_mb < 16)
        return sb_err_set(err, 400,
                          "config: %s limits too small (need cpu_count>=1, memory_mb>=16, pids>=8, disk_mb>=16)",
                          name);
    return 0;
}

/* One address may hold at most half the connections, so others always
 * find room. */
static int check_connections(const struct sb_config *cfg, struct sb_err *err)
{
    if (cfg->max_connections < 16 || cfg->max_connections > 1000000)
        return sb_err_set(err, 400, "config: max_connections must be between 16 and 1000000");
    if (cfg->max_connections_per_address < 1 ||
        cfg->max_connections_per_address > cfg->max_connections / 2)
        return sb_err_set(err, 400,
                          "config: max_connections_per_address must be between 1 and half of "
                          "max_connections (%d), so one address can never hold every connection",
                          cfg->max_connections / 2);
    if (cfg->request_read_timeout_s < 1 || cfg->request_read_timeout_s > 3600)
        return sb_err_set(err, 400, "config: request_read_timeout_s must be between 1 and 3600");
    if (cfg->shim_call_timeout_ms < 100 || cfg->shim_call_timeout_ms > 600000)
        return sb_err_set(err, 400, "config: shim_call_timeout_ms must be between 100 and 600000");
    if (cfg->exec_output_budget_mb < 1 || cfg->exec_output_budget_mb > 1048576)
        return sb_err_set(err, 400, "config: exec_output_budget_mb must be between 1 and 1048576");
    if (cfg->output_ring_kb < 64 || cfg->output_ring_kb > 65536)
        return sb_err_set(err, 400, "config: output_ring_kb must be between 64 and 65536");
    if (cfg->files_read_max < 1 || cfg->files_read_max > ((size_t)512 << 20))
        return sb_err_set(err, 400, "config: files_read_max must be between 1 and 536870912 "
                          "(larger files are for GET /filesystem/download)");
    if (cfg->files_upload_file_max < 1 || cfg->files_upload_max < 1)
        return sb_err_set(err, 400, "config: files_upload_file_max and files_upload_max must be at least 1");
    return 0;
}

static int check_webhooks(const struct sb_webhook_config *w, struct sb_err *err)
{
    if (w->timeout_s < 1 || w->timeout_s > 300)
        return sb_err_set(err, 400, "config: webhook_timeout_s must be between 1 and 300");
    if (w->retry_base_ms < 1 || w->retry_max_delay_s < 1)
        return sb_err_set(err, 400, "config: webhook_retry_base_ms and webhook_retry_max_delay_s must be at least 1");
    if (w->max_attempts < 1 || w->max_attempts > 100)
        return sb_err_set(err, 400, "config: webhook_max_attempts must be between 1 and 100");
    if (w->max_in_flight < 1 || w->max_in_flight > 4096)
        return sb_err_set(err, 400, "config: webhook_max_in_flight must be between 1 and 4096");
    return 0;
}

int sb_config_finish(struct sb_config *cfg, struct sb_err *err)
{
    if (cfg->data_dir[0] == '\0')
        return sb_err_set(err, 400, "config: data_dir must not be empty");
    /* Shims and template builds run with another cwd: every path is made
     * absolute here, once, wherever it came from (flag, env, file). */
    if (sb_path_absolute(cfg->data_dir, cfg->data_dir, sizeof cfg->data_dir, err) < 0)
        return sb_err_prefix(err, "config: data_dir");
    if (cfg->run_dir[0] != '\0' && sb_path_absolute(cfg->run_dir, cfg->run_dir, sizeof cfg->run_dir, err) < 0)
        return sb_err_prefix(err, "config: run_dir");
    if (cfg->run_dir[0] == '\0') {
        int n = snprintf(cfg->run_dir, sizeof cfg->run_dir, "%s/run", cfg->data_dir);
        if (n < 0 || (size_t)n >= sizeof cfg->run_dir)
            return sb_err_set(err, 400, "config: data_dir is too long");
    }
    if (cfg->shim_path[0] != '\0' && sb_path_absolute(cfg->shim_path, cfg->shim_path, sizeof cfg->shim_path, err) < 0)
        return sb_err_prefix(err, "config: shim_path");
    if (cfg->shim_path[0] == '\0' && default_shim_path(cfg, err) < 0)
        return -1;
    if (strcmp(cfg->log_format, "auto") != 0 && strcmp(cfg->log_format, "text") != 0 &&
        strcmp(cfg->log_format, "json") != 0)
        return sb_err_set(err, 400, "config: log_format must be auto, text or json");
    if (cfg->max_body < 1024)
        return sb_err_set(err, 400, "config: max_body must be at least 1024 bytes");
    if (cfg->default_timeout_s < 1 || cfg->default_timeout_s > cfg->max_timeout_s)
        return sb_err_set(err, 400, "config: default_timeout_s must be between 1 and max_timeout_s");
    if (cfg->retention_days < 1 || cfg->retention_days > 3650)
        return sb_err_set(err, 400, "config: retention_days must be between 1 and 3650");
    if (cfg->disk_reserve_mb > 1024 * 1024)
        return sb_err_set(err, 400,
                          "config: disk_reserve_mb must be between 0 and 1048576 (MiB kept free on the data dir for the database and logs)");
    if (check_limits(&cfg->defaults, "defaults", err) < 0 || check_limits(&cfg->maxima, "maxima", err) < 0)
        return -1;
    if (cfg->defaults.cpu_count > cfg->maxima.cpu_count || cfg->defaults.memory_mb > cfg->maxima.memory_mb ||
        cfg->defaults.pids > cfg->maxima.pids || cfg->defaults.disk_mb > cfg->maxima.disk_mb)
        return sb_err_set(err, 400, "config: defaults must not exceed maxima");
    if (check_connections(cfg, err) < 0 || check_webhooks(&cfg->webhook, err) < 0 ||
        check_network(&cfg->network, err) < 0)
        return -1;
    if (cfg->uid_base < SB_UID_RANGE)
        return sb_err_set(err, 400, "config: uid_base must be at least 65536 so sandbox ids never map onto host users");
    if (cfg->ports_timeout_s < 1 || cfg->ports_timeout_s > 3600)
        return sb_err_set(err, 400, "config: ports_timeout_s must be between 1 and 3600 (seconds a sandbox's port may stay silent)");
    return check_domain(cfg->domain, err);
}
