/*
 * config.h - the server configuration: defaults, then a JSON config file
 * (--config FILE or <data-dir>/config.json when present), then environment
 * (SANDBASE_LISTEN, SANDBASE_DATA_DIR, SANDBASE_RUN_DIR, SANDBASE_SHIM), then
 * flags.
 *
 * Limits: `defaults` apply to every sandbox unless a template overrides them;
 * `maxima` cap what a template may ask for. Plain data: nothing to free.
 */
#ifndef SB_CORE_CONFIG_H
#define SB_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SB_PATH_MAX 4096
/* Every sandbox maps its ids 0..SB_UID_RANGE-1 to host uid_base.. (and gids alike). */
#define SB_UID_RANGE 65536u

struct sb_limits {
    int cpu_count;          /* CPUs of quota */
    int memory_mb;
    int pids;
    int disk_mb;
};

/* Sandbox egress (issue 12). No uplink = no egress for any sandbox: the
 * safe default, so a fresh server never NATs sandboxes anywhere. */
#define SB_NET_MAX_ALLOW_PRIVATE 16
struct sb_net_config {
    char uplink[16];                /* host interface sandboxes are NATed to; "" = egress off */
    char range[32];                 /* IPv4 CIDR sandbox addresses come from (10.200.0.0/16) */
    char default_mode[16];          /* internet | none: egress when a create does not say */
    char dns_upstream[64];          /* "IP" or "IP:port" the DNS forwarder asks; "" = /etc/resolv.conf */
    int allow_private_count;
    char allow_private[SB_NET_MAX_ALLOW_PRIVATE][48];   /* private CIDRs sandboxes may reach */
};

struct sb_config {
    char listen[128];               /* "127.0.0.1:3000" */
    char domain[128];               /* sandbox ports are <port>-<id>.<domain> (localhost) */
    int ports_timeout_s;            /* a proxied port's answer, or silence mid-body, within (60) */
    char data_dir[SB_PATH_MAX];     /* db, templates, sandboxes' upper dirs */
    char run_dir[SB_PATH_MAX];      /* shim sockets; default <data-dir>/run */
    char shim_path[SB_PATH_MAX];    /* the sandbase-shim binary; default: beside the running one */
    char log_format[8];             /* auto | text | json */
    size_t max_body;                /* JSON body cap, bytes (default 1 MiB) */
    int pool_size;                  /* warm sandboxes per template (default 2) */
    int org_sandbox_cap;            /* running+paused sandboxes per org (default 100) */
    size_t exec_output_cap;         /* per stream, bytes (default 10 MiB) */
    int default_timeout_s;          /* sandbox TTL when create omits it (300) */
    int max_timeout_s;              /* largest TTL accepted (86400) */
    int retention_days;             /* stopped sandboxes stay readable this long (30) */
    uint32_t uid_base;              /* first host uid of the sandbox range (100000) */
    int disk_reserve_mb;            /* data dir space no sandbox disk may promise away (512) */
    int max_connections;            /* open HTTP connections, all clients (4096) */
    int max_connections_per_address; /* ... from one client address (256) */
    int request_read_timeout_s;     /* a request's headers and body must arrive within (30) */
    int shim_call_timeout_ms;       /* a shim that does not answer a call within this is stuck (10000) */
    int exec_output_budget_mb;      /* process output all pending execs together hold (128) */
    int output_ring_kb;             /* the shim's replay ring per process stream (1024) */
    size_t files_read_max;          /* GET /filesystem (base64 JSON): largest file, bytes (10 MiB) */
    size_t files_upload_file_max;   /* one uploaded file, bytes (1 GiB) */
    size_t files_upload_max;        /* one upload request's body, bytes (1 GiB + 1 MiB: a 1 GiB
                                       file and its multipart framing) */
    struct sb_webhook_config {      /* delivery of webhooks (runtime/webhook_delivery.c) */
        int allow_private;          /* webhook_allow_private: loopback/private destinations (false) */
        int timeout_s;              /* webhook_timeout_s: one attempt's deadline (10) */
        int retry_base_ms;          /* webhook_retry_base_ms: first retry delay, before jitter (5000) */
        int retry_max_delay_s;      /* webhook_retry_max_delay_s: longest single delay (43200) */
        int max_attempts;           /* webhook_max_attempts: attempts before failed (15) */
        int max_in_flight;          /* webhook_max_in_flight: deliveries sent at once (64) */
    } webhook;
    struct sb_limits defaults;      /* 2 CPUs, 512 MiB, 512 pids, 1024 MiB disk */
    struct sb_limits maxima;        /* 8 CPUs, 8192 MiB, 4096 pids, 10240 MiB disk */
    struct sb_net_config network;   /* {"network": {"uplink", "range", "default", "dns_upstream", "allow_private"}} */
};

void sb_config_defaults(struct sb_config *cfg);
/* Applies a JSON object's keys (same names as the struct fields; limits as
 * {"defaults": {...}, "maxima": {...}}). Unknown keys and wrong types are
 * errors (400) that name the key. */
int sb_config_apply_json(struct sb_config *cfg, const char *json_text, struct sb_err *err);
int sb_config_load_file(struct sb_config *cfg, const char *path, struct sb_err *err);
/* Applies <data_dir>/config.json when that file exists (no file: no change). */
int sb_config_load_data_dir(struct sb_config *cfg, const char *data_dir, struct sb_err *err);
void sb_config_apply_env(struct sb_config *cfg);
/* Makes data_dir, run_dir and shim_path absolute (against the current
 * directory), fills derived values (run_dir, shim_path) and checks ranges;
 * 400 with the field name. */
int sb_config_finish(struct sb_config *cfg, struct sb_err *err);

#endif
