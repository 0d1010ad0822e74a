/*
 * routes.c - E2B's route table: the control plane (for keys written e2b_...
 * on the paths SandBase shares, for every dialect on E2B's own /v2 paths)
 * and envd (for requests that name a sandbox in E2b-Sandbox-Id; Connect
 * routes render their errors with Connect's codes).
 */
#include "api/ports.h"
#include "api/snapshots.h"
#include "e2b/e2b.h"
#include "http/connect.h"

#define CONTROL SB_DIALECT_BIT(E2B_DIALECT_CONTROL)
#define ENVD SB_DIALECT_BIT(E2B_DIALECT_ENVD)
#define ANY 0u

static const struct sb_route_spec routes[] = {
    /* control plane */
    {"POST", "/v2/sandboxes", e2b_sandbox_create_v2, SB_ROUTE_AUTH, "", NULL, ANY},
    {"GET", "/v2/sandboxes", e2b_sandbox_list_v2, SB_ROUTE_AUTH,
     "metadata,state,startedAfter,template,order,limit,nextToken", NULL, ANY},
    {"POST", "/v2/sandboxes/:id/connect", e2b_sandbox_connect, SB_ROUTE_AUTH, "", NULL, ANY},
    {"POST", "/sandboxes", e2b_sandbox_create_v1, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"GET", "/sandboxes", e2b_sandbox_list_v1, SB_ROUTE_AUTH, "metadata", NULL, CONTROL},
    {"GET", "/sandboxes/:id", e2b_sandbox_get, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"DELETE", "/sandboxes/:id", e2b_sandbox_delete, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"POST", "/sandboxes/:id/timeout", e2b_sandbox_timeout, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"POST", "/sandboxes/:id/pause", e2b_sandbox_pause, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"POST", "/sandboxes/:id/connect", e2b_sandbox_connect, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"POST", "/sandboxes/:id/resume", e2b_sandbox_connect, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"PUT", "/sandboxes/:id/network", e2b_sandbox_network, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"GET", "/sandboxes/:id/metrics", e2b_sandbox_metrics, SB_ROUTE_AUTH, "start,end", NULL, CONTROL},
    {"GET", "/sandboxes/metrics", e2b_sandboxes_metrics, SB_ROUTE_AUTH, "sandbox_ids", NULL, CONTROL},
    {"POST", "/sandboxes/:id/snapshots", api_snapshot_create, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"POST", "/sandboxes/:id/fork", e2b_sandbox_fork, SB_ROUTE_AUTH, "", NULL, CONTROL},
    {"GET", "/snapshots", api_snapshot_list, SB_ROUTE_AUTH, "sandboxID,name,limit,nextToken", NULL, CONTROL},
    {"DELETE", "/templates/:id", api_snapshot_delete, SB_ROUTE_AUTH, "", NULL, CONTROL},
    /* envd */
    {"GET", "/health", e2b_envd_health, SB_ROUTE_NO_AUTH, NULL, NULL, ENVD},
    {"GET", "/files", e2b_envd_files_get, SB_ROUTE_NO_AUTH, NULL, NULL, ENVD},
    {"POST", "/files", e2b_envd_files_post, SB_ROUTE_NO_AUTH | SB_ROUTE_STREAM_BODY, NULL, NULL, ENVD},
    {"POST", "/process.Process/List", e2b_process_list, SB_ROUTE_NO_AUTH, NULL, sb_connect_render_error, ENVD},
    {"POST", "/process.Process/SendInput", e2b_process_send_input, SB_ROUTE_NO_AUTH, NULL, sb_connect_render_error,
     ENVD},
    {"POST", "/process.Process/SendSignal", e2b_process_send_signal, SB_ROUTE_NO_AUTH, NULL,
     sb_connect_render_error, ENVD},
    {"POST", "/process.Process/CloseStdin", e2b_process_close_stdin, SB_ROUTE_NO_AUTH, NULL,
     sb_connect_render_error, ENVD},
    {"POST", "/process.Process/Update", e2b_process_update, SB_ROUTE_NO_AUTH, NULL, sb_connect_render_error, ENVD},
    {"POST", "/process.Process/Start", e2b_process_start, SB_ROUTE_NO_AUTH, NULL, sb_connect_render_error, ENVD},
    {"POST", "/process.Process/Connect", e2b_process_connect, SB_ROUTE_NO_AUTH, NULL, sb_connect_render_error,
     ENVD},
    {"POST", "/process.Process/StreamInput", e2b_process_stream_input, SB_ROUTE_NO_AUTH | SB_ROUTE_STREAM_BODY, NULL,
     sb_connect_render_error, ENVD},
#define FS(method, fn) {"POST", "/filesystem.Filesystem/" method, fn, SB_ROUTE_NO_AUTH, NULL, sb_connect_render_error, ENVD}
    FS("Stat", e2b_fs_stat),
    FS("MakeDir", e2b_fs_make_dir),
    FS("Move", e2b_fs_move),
    FS("ListDir", e2b_fs_list_dir),
    FS("Remove", e2b_fs_remove),
    FS("WatchDir", e2b_fs_watch_dir),
    FS("CreateWatcher", e2b_fs_create_watcher),
    FS("GetWatcherEvents", e2b_fs_get_watcher_events),
    FS("RemoveWatcher", e2b_fs_remove_watcher),
#undef FS
    {"POST", "/:service/:method", e2b_envd_unimplemented, SB_ROUTE_NO_AUTH, NULL, sb_connect_render_error, ENVD},
};

int e2b_register_routes(struct sb_router *router)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (sb_router_add_spec(router, &routes[i]) < 0)
            return -1;
    /* sandbox ports: every method and path of these dialects is proxied */
    if (sb_router_set_catch_all(router, E2B_DIALECT_PORT_OPEN, api_port_proxy_open,
                                SB_ROUTE_NO_AUTH | SB_ROUTE_STREAM_BODY) < 0 ||
        sb_router_set_catch_all(router, E2B_DIALECT_PORT_PATH, api_port_proxy_path,
                                SB_ROUTE_AUTH | SB_ROUTE_STREAM_BODY) < 0)
        return -1;
    return 0;
}
