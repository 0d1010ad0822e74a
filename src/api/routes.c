/*
 * routes.c - the REST route table: every path the server answers, in one
 * place, with the handler that serves it and the query parameters it takes
 * (any other is a 400, answered by the server before the handler runs).
 */
#include "api/app.h"
#include "api/snapshots.h"

struct route {
    const char *method;
    const char *pattern;
    sb_handler_fn handler;
    int flags;
    const char *query;      /* accepted query parameters, comma-separated; "" = none */
};

static const struct route routes[] = {
    {"GET", "/health", api_health, SB_ROUTE_NO_AUTH, ""},
    {"GET", "/templates", api_templates_list, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes", api_sandbox_create, SB_ROUTE_AUTH, ""},
    {"GET", "/sandboxes", api_sandbox_list, SB_ROUTE_AUTH, "status"},
    {"GET", "/sandboxes/:id", api_sandbox_get, SB_ROUTE_AUTH, ""},
    {"DELETE", "/sandboxes/:id", api_sandbox_delete, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/timeout", api_sandbox_timeout, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/pause", api_sandbox_pause, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/connect", api_sandbox_connect, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/resume", api_sandbox_connect, SB_ROUTE_AUTH, ""},
    {"PUT", "/sandboxes/:id/network", api_sandbox_network, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/snapshots", api_snapshot_create, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/fork", api_sandbox_fork, SB_ROUTE_AUTH, ""},
    {"GET", "/snapshots", api_snapshot_list, SB_ROUTE_AUTH, "sandboxID,name,limit,nextToken"},
    {"DELETE", "/snapshots/:id", api_snapshot_delete, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/processes", api_process_run, SB_ROUTE_AUTH, ""},
    {"GET", "/sandboxes/:id/processes", api_process_list, SB_ROUTE_AUTH, ""},
    {"GET", "/sandboxes/:id/processes/:pid", api_process_get, SB_ROUTE_AUTH, ""},
    {"DELETE", "/sandboxes/:id/processes/:pid", api_process_kill, SB_ROUTE_AUTH, ""},
    {"GET", "/sandboxes/:id/processes/:pid/output", api_process_output, SB_ROUTE_AUTH,
     "stdoutOffset,stderrOffset,wait"},
    {"POST", "/sandboxes/:id/processes/:pid/stdin", api_process_stdin, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/processes/:pid/stdin/close", api_process_stdin_close, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/processes/:pid/signal", api_process_signal, SB_ROUTE_AUTH, ""},
    {"POST", "/sandboxes/:id/processes/:pid/resize", api_process_resize, SB_ROUTE_AUTH, ""},
    {"GET", "/sandboxes/:id/processes/:pid/attach", api_process_attach, SB_ROUTE_AUTH, "stdoutOffset,stderrOffset"},
    /* files: `user` picks who acts (E2B's envd calls it `username`) */
    {"GET", "/sandboxes/:id/filesystem/list", api_files_list, SB_ROUTE_AUTH, "path,depth,user,username"},
    {"GET", "/sandboxes/:id/filesystem", api_files_read, SB_ROUTE_AUTH, "path,user,username"},
    {"POST", "/sandboxes/:id/filesystem", api_files_write, SB_ROUTE_STREAM_BODY, "user,username"},
    {"DELETE", "/sandboxes/:id/filesystem", api_files_delete, SB_ROUTE_AUTH, "path,recursive,user,username"},
    {"GET", "/sandboxes/:id/filesystem/stat", api_files_stat, SB_ROUTE_AUTH, "path,user,username"},
    {"POST", "/sandboxes/:id/filesystem/mkdir", api_files_mkdir, SB_ROUTE_AUTH, "user,username"},
    {"POST", "/sandboxes/:id/filesystem/move", api_files_move, SB_ROUTE_AUTH, "user,username"},
    {"GET", "/sandboxes/:id/filesystem/download", api_files_download, SB_ROUTE_AUTH, "path,format,user,username"},
    {"GET", "/sandboxes/:id/files", api_files_get, SB_ROUTE_AUTH, "path,format,user,username"},
    {"POST", "/sandboxes/:id/filesystem/upload", api_files_upload, SB_ROUTE_STREAM_BODY, "path,user,username"},
    {"POST", "/sandboxes/:id/files", api_files_upload, SB_ROUTE_STREAM_BODY, "path,user,username"},
    {"GET", "/sandboxes/:id/health", api_sandbox_health, SB_ROUTE_AUTH, ""},
    {"GET", "/sandboxes/:id/metrics", api_sandbox_metrics, SB_ROUTE_AUTH, ""},
    {"GET", "/sandboxes/:id/envs", api_sandbox_envs, SB_ROUTE_AUTH, ""},
    {"GET", "/sandboxes/:id/filesystem/watch", api_files_watch, SB_ROUTE_AUTH, "path,recursive,user,username"},
    {"GET", "/events/sandboxes", api_events_list, SB_ROUTE_AUTH, "limit,cursor,type,since"},
    {"GET", "/events/sandboxes/:id", api_events_sandbox, SB_ROUTE_AUTH, "limit,cursor,type,since"},
    {"GET", "/events/stream", api_events_stream, SB_ROUTE_AUTH, "type"},
    {"POST", "/events/webhooks", api_webhook_create, SB_ROUTE_AUTH, ""},
    {"GET", "/events/webhooks", api_webhook_list, SB_ROUTE_AUTH, ""},
    {"GET", "/events/webhooks/:id", api_webhook_get, SB_ROUTE_AUTH, ""},
    {"PATCH", "/events/webhooks/:id", api_webhook_update, SB_ROUTE_AUTH, ""},
    {"DELETE", "/events/webhooks/:id", api_webhook_delete, SB_ROUTE_AUTH, ""},
    {"GET", "/events/webhooks/:id/deliveries", api_webhook_deliveries, SB_ROUTE_AUTH, "limit"},
    {"POST", "/events/webhooks/:id/deliveries/:delivery/retry", api_webhook_delivery_retry, SB_ROUTE_AUTH, ""},
    {"POST", "/webhooks", api_webhook_create_legacy, SB_ROUTE_AUTH, ""},
};

int api_register_routes(struct sb_router *router)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (sb_router_add_query(router, routes[i].method, routes[i].pattern, routes[i].handler,
                                routes[i].flags, routes[i].query) < 0)
            return -1;
    return 0;
}
