/*
 * app.h - the state of one `sandbase serve`: configuration, store, loop,
 * HTTP server, worker pool, and the sandbox runtime. Handlers reach it
 * through req->server_ctx.
 *
 * Threading: handlers run on the loop thread and must not block; anything
 * that waits on a shim or the disk is submitted to `workers` and answers the
 * (deferred) request from there. The store is safe from any thread.
 * Ownership: cli/serve.c creates and frees everything here.
 */
#ifndef SB_API_APP_H
#define SB_API_APP_H

#include "core/config.h"
#include "core/worker.h"
#include "core/loop.h"
#include "http/router.h"
#include "http/server.h"
#include "store/store.h"

struct sb_registry;
struct sb_event_bus;
struct sb_webhook_delivery;

struct sb_app {
    struct sb_config cfg;
    struct sb_store *store;
    struct sb_loop *loop;
    struct sb_router *router;
    struct sb_server *server;
    struct sb_worker_pool *workers;
    struct sb_registry *registry;     /* runtime/registry.h */
    struct sb_event_bus *events;      /* runtime/event_bus.h: committed events, in process */
    struct sb_webhook_delivery *delivery; /* runtime/webhook_delivery.h */
};

/* Registers every REST route on app->router. */
int api_register_routes(struct sb_router *router);

/* The sb_auth_fn for the HTTP server (api/auth.c). */
int api_authenticate(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX], struct sb_err *err);

/* Route handlers, one file per resource. */
void api_health(struct sb_request *req);                 /* api/health.c */
void api_templates_list(struct sb_request *req);         /* api/templates.c */
void api_sandbox_create(struct sb_request *req);         /* api/sandboxes.c */
void api_sandbox_list(struct sb_request *req);
void api_sandbox_get(struct sb_request *req);
void api_sandbox_delete(struct sb_request *req);
void api_sandbox_timeout(struct sb_request *req);
void api_sandbox_pause(struct sb_request *req);
void api_sandbox_connect(struct sb_request *req);
void api_sandbox_fork(struct sb_request *req);          /* api/snapshots.c */
void api_sandbox_network(struct sb_request *req);         /* PUT /sandboxes/:id/network */
void api_process_run(struct sb_request *req);            /* api/processes.c */
void api_process_list(struct sb_request *req);           /* api/process_control.c */
void api_process_get(struct sb_request *req);
void api_process_output(struct sb_request *req);
void api_process_stdin(struct sb_request *req);
void api_process_stdin_close(struct sb_request *req);
void api_process_signal(struct sb_request *req);
void api_process_kill(struct sb_request *req);
void api_process_resize(struct sb_request *req);
void api_process_attach(struct sb_request *req);         /* api/process_ws.c */
void api_files_list(struct sb_request *req);             /* api/files.c */
void api_files_read(struct sb_request *req);
void api_files_write(struct sb_request *req);
void api_files_delete(struct sb_request *req);
void api_files_stat(struct sb_request *req);
void api_files_mkdir(struct sb_request *req);
void api_files_move(struct sb_request *req);
void api_files_download(struct sb_request *req);         /* api/files_download.c */
void api_files_get(struct sb_request *req);              /* GET /files: the guide's alias */
void api_files_upload(struct sb_request *req);           /* api/files_upload.c */
void api_files_watch(struct sb_request *req);            /* api/files_watch.c */
void api_sandbox_health(struct sb_request *req);         /* api/sandbox_runtime.c */
void api_sandbox_metrics(struct sb_request *req);
void api_sandbox_envs(struct sb_request *req);
void api_events_list(struct sb_request *req);            /* api/events.c */
void api_events_sandbox(struct sb_request *req);
void api_events_stream(struct sb_request *req);          /* api/events_stream.c */
void api_webhook_create(struct sb_request *req);         /* api/webhooks.c */
void api_webhook_create_legacy(struct sb_request *req);
void api_webhook_list(struct sb_request *req);
void api_webhook_get(struct sb_request *req);
void api_webhook_update(struct sb_request *req);
void api_webhook_delete(struct sb_request *req);
void api_webhook_deliveries(struct sb_request *req);
void api_webhook_delivery_retry(struct sb_request *req);

static inline struct sb_app *api_app(const struct sb_request *req)
{
    return (struct sb_app *)req->server_ctx;
}

#endif
