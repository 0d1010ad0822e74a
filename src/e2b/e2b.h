/*
 * e2b.h - E2B's wire protocol on sandbase's port: the control plane (REST +
 * JSON, as E2B's API serves it) and envd (the in-sandbox daemon's plain
 * HTTP routes and Connect RPCs), so the unmodified `e2b` SDKs run against
 * this server (docs/E2B.md; the protocol facts: spec/e2b-protocol.md).
 *
 * Dialects (router.h): a request carrying E2b-Sandbox-Id is for envd; one
 * whose API key is written e2b_... speaks E2B's control plane, and gets E2B's
 * shapes on the paths SandBase shares (GET /sandboxes/:id, ...); anything
 * else is SandBase's. E2B-only paths (/v2/...) serve every dialect.
 *
 * This layer calls api/'s shared flows, the registry and the store, never
 * the other way round: the envd RPCs are encodings of the runtime's calls,
 * not a second implementation.
 *
 * envdVersion (API_ENVD_VERSION, api/sandbox_flows.h) gates SDK features:
 * below a version the SDK refuses the feature locally. Reported: 0.5.7,
 * the highest whose gates are all served: 0.1.0 create, 0.1.4 recursive
 * watchDir (WatchDir), 0.1.5 getMetrics (e2b/metrics.c), 0.3.0
 * stdin:false (Process/Start), 0.4.0 the user only when named (Basic
 * auth, ?username=), 0.5.2 closeStdin, 0.5.7 octet-stream and gzip
 * uploads (POST /files). Above: 0.6.2 upload metadata, 0.6.3
 * includeEntry, 0.6.4 allowNetworkMounts.
 */
#ifndef SB_E2B_E2B_H
#define SB_E2B_E2B_H

#include "http/router.h"
#include "store/store.h"

enum e2b_dialect {
    E2B_DIALECT_SANDBASE = 0,       /* the router's default: SandBase's routes */
    E2B_DIALECT_CONTROL = 1,        /* E2B's control plane: a key written e2b_... */
    E2B_DIALECT_ENVD = 2,           /* envd: the request names its sandbox in E2b-Sandbox-Id */
    E2B_DIALECT_PORT_OPEN = 3,      /* a sandbox port by Host or E2b-Sandbox-Id + -Port (api/ports.h) */
    E2B_DIALECT_PORT_PATH = 4,      /* a sandbox port by /sandboxes/:id/ports/:port/... */
};

/* The server's sb_dialect_fn (server.h). */
int e2b_request_dialect(void *app_ctx, const struct sb_request *req, const char *api_key);

/* Registers E2B's control-plane and envd routes (after api_register_routes). */
int e2b_register_routes(struct sb_router *router);

/* ---- control plane (e2b/sandboxes.c) ---- */
void e2b_sandbox_create_v2(struct sb_request *req);     /* POST /v2/sandboxes */
void e2b_sandbox_create_v1(struct sb_request *req);     /* POST /sandboxes */
void e2b_sandbox_list_v2(struct sb_request *req);       /* GET /v2/sandboxes */
void e2b_sandbox_list_v1(struct sb_request *req);       /* GET /sandboxes */
void e2b_sandbox_get(struct sb_request *req);           /* GET /sandboxes/:id */
void e2b_sandbox_delete(struct sb_request *req);        /* DELETE /sandboxes/:id */
void e2b_sandbox_timeout(struct sb_request *req);       /* POST /sandboxes/:id/timeout */
void e2b_sandbox_pause(struct sb_request *req);         /* POST /sandboxes/:id/pause */
void e2b_sandbox_network(struct sb_request *req);       /* PUT /sandboxes/:id/network (sbx.updateNetwork) */
void e2b_sandbox_connect(struct sb_request *req);       /* POST /v2/sandboxes/:id/connect, v1 connect, resume */
void e2b_sandbox_fork(struct sb_request *req);          /* POST /sandboxes/:id/fork (snapshots: api/snapshots.h) */

/* ---- metrics (e2b/metrics.c) ---- */
void e2b_sandbox_metrics(struct sb_request *req);       /* GET /sandboxes/:id/metrics */
void e2b_sandboxes_metrics(struct sb_request *req);     /* GET /sandboxes/metrics?sandbox_ids= */

/* ---- envd (e2b/envd.c, e2b/envd_process*.c, e2b/envd_stream_input.c) ----
 * The process methods are POST /process.Process/<Method>. */
void e2b_envd_health(struct sb_request *req);           /* GET /health */
void e2b_envd_unimplemented(struct sb_request *req);    /* /files, POST /:service/:method not served */
void e2b_process_list(struct sb_request *req);          /* List (unary) */
void e2b_process_send_input(struct sb_request *req);    /* SendInput (unary) */
void e2b_process_send_signal(struct sb_request *req);   /* SendSignal (unary) */
void e2b_process_close_stdin(struct sb_request *req);   /* CloseStdin (unary) */
void e2b_process_update(struct sb_request *req);        /* Update (unary: pty resize) */
void e2b_process_start(struct sb_request *req);         /* Start (server stream) */
void e2b_process_connect(struct sb_request *req);       /* Connect (server stream) */
void e2b_process_stream_input(struct sb_request *req);  /* StreamInput (client stream) */

/* ---- envd's files (e2b/envd_files.c, envd_filesystem.c, envd_watch.c) ---- */
void e2b_envd_files_get(struct sb_request *req);        /* GET /files */
void e2b_envd_files_post(struct sb_request *req);       /* POST /files */
void e2b_fs_stat(struct sb_request *req);               /* POST /filesystem.Filesystem/Stat */
void e2b_fs_make_dir(struct sb_request *req);           /* .../MakeDir */
void e2b_fs_move(struct sb_request *req);               /* .../Move */
void e2b_fs_list_dir(struct sb_request *req);           /* .../ListDir */
void e2b_fs_remove(struct sb_request *req);             /* .../Remove */
void e2b_fs_watch_dir(struct sb_request *req);          /* .../WatchDir (server stream) */
void e2b_fs_create_watcher(struct sb_request *req);     /* .../CreateWatcher */
void e2b_fs_get_watcher_events(struct sb_request *req); /* .../GetWatcherEvents */
void e2b_fs_remove_watcher(struct sb_request *req);     /* .../RemoveWatcher */

#endif
