/*
 * serve.c - `sandbase serve`: configuration, store, runtime and the HTTP
 * server on one event loop, until SIGTERM/SIGINT.
 *
 * Start-up order: config (defaults < config file < env < flags, every path
 * made absolute), the data dir (must exist unless --bootstrap) and its lock
 * (one server per data dir), run dirs, store (migrations), bind the port,
 * optional --bootstrap (built-in templates, default org + key), then the
 * registry's reconciliation with surviving shims, then serve. Nothing that
 * can fail on a wrong flag, a busy port or a locked data dir comes after
 * the first step that touches sandboxes. While serving, the loop also
 * watches every live shim (cli/shim_watch.c), so a shim that dies makes its
 * sandbox stopped ("lost") at once. Shutdown: stop accepting, finish
 * in-flight requests, join the workers; running sandboxes are left to their
 * shims.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/app.h"
#include "api/ports.h"
#include "cli/bootstrap.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "cli/shim_watch.h"
#include "e2b/e2b.h"
#include "core/fs.h"
#include "core/log.h"
#include "runtime/event_bus.h"
#include "runtime/registry.h"
#include "runtime/webhook_delivery.h"

#define TTL_TICK_MS 1000

static const char serve_usage[] =
    "usage: sandbase serve [--listen ADDR:PORT] [--data-dir DIR] [--config FILE] "
    "[--log-format auto|text|json] [--bootstrap]\n";

struct serve_opts {
    const char *listen, *data_dir, *config, *log_format;
    int bootstrap;
};

static int parse_serve_opts(int argc, char **argv, struct serve_opts *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},     {"data-dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},     {"log-format", required_argument, NULL, 'f'},
        {"bootstrap", no_argument, NULL, 'b'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': o->listen = optarg; break;
        case 'd': o->data_dir = optarg; break;
        case 'c': o->config = optarg; break;
        case 'f': o->log_format = optarg; break;
        case 'b': o->bootstrap = 1; break;
        case 'h': fputs(serve_usage, stdout); exit(0);
        default: return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

/* defaults < config file < environment < flags */
static int load_config(const struct serve_opts *o, struct sb_config *cfg, struct sb_err *err)
{
    sb_config_defaults(cfg);
    sb_config_apply_env(cfg);
    if (o->data_dir)
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", o->data_dir);
    /* The data dir (env or flag) says where config.json lives; env and
     * flags are applied again below so they win over the file. */
    char config_path[SB_PATH_MAX];
    if (o->config && sb_path_absolute(o->config, config_path, sizeof config_path, err) < 0)
        return sb_err_prefix(err, "--config");
    int rc = o->config ? sb_config_load_file(cfg, config_path, err)
                       : sb_config_load_data_dir(cfg, cfg->data_dir, err);
    if (rc < 0)
        return -1;
    sb_config_apply_env(cfg);
    if (o->data_dir)
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", o->data_dir);
    if (o->listen)
        snprintf(cfg->listen, sizeof cfg->listen, "%s", o->listen);
    if (o->log_format)
        snprintf(cfg->log_format, sizeof cfg->log_format, "%s", o->log_format);
    return sb_config_finish(cfg, err);
}

/* ---- signals and the TTL tick, on the loop thread ---- */

static void on_signal(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct sb_app *app = arg;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof si) != sizeof si)
        return;
    sb_info("received %s: shutting down", strsignal((int)si.ssi_signo));
    sb_server_shutdown(app->server);
}

static atomic_int reaper_busy;

static void reap_job(void *arg)
{
    struct sb_app *app = arg;
    registry_reap_expired(app->registry);
    atomic_store(&reaper_busy, 0);
}

static void on_ttl_tick(struct sb_loop *loop, void *arg)
{
    struct sb_app *app = arg;
    if (!atomic_exchange(&reaper_busy, 1) && sb_worker_submit(app->workers, reap_job, app) < 0)
        atomic_store(&reaper_busy, 0);
    sb_loop_timer(loop, TTL_TICK_MS, on_ttl_tick, app);
}

/* Blocks SIGTERM/SIGINT (before any thread starts, so all inherit it) and
 * returns a signalfd for them. */
static int signal_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Binds the port before anything else touches the data dir's sandboxes, so a
 * second server with a busy port or a bad --listen changes nothing. */
static int start_http(struct sb_app *app, int sfd, struct sb_err *err)
{
    app->loop = sb_loop_new();
    app->router = sb_router_new();
    app->workers = sb_worker_pool_new(0);
    if (!app->loop || !app->router || !app->workers || api_register_routes(app->router) < 0 ||
        e2b_register_routes(app->router) < 0)
        return sb_err_set(err, 500, "out of memory while starting");
    struct sb_server_config scfg = {
        .listen = app->cfg.listen, .max_body = app->cfg.max_body,
        .connection_limit = (unsigned)app->cfg.max_connections,
        .per_address_limit = (unsigned)app->cfg.max_connections_per_address,
        .request_read_timeout_s = (unsigned)app->cfg.request_read_timeout_s,
        .auth = api_authenticate, .dialect = e2b_request_dialect, .app_ctx = app,
    };
    app->server = sb_server_new(app->loop, app->router, &scfg, err);
    if (!app->server)
        return -1;
    api_ports_configure(app->cfg.domain, sb_server_port(app->server));
    if (sb_loop_watch(app->loop, sfd, EPOLLIN, on_signal, app) < 0)
        return sb_err_sys(err, 500, "cannot watch signals");
    return 0;
}

/* The in-process event bus the store publishes every committed event to,
 * and the webhook delivery thread (woken by it), before anything writes an
 * event. The API port is known: the policy keeps deliveries off it. */
static int start_events(struct sb_app *app, struct sb_err *err)
{
    app->events = event_bus_new();
    if (!app->events)
        return sb_err_set(err, 500, "out of memory while starting");
    store_set_event_listener(app->store, event_bus_publish, app->events);
    const struct sb_webhook_config *w = &app->cfg.webhook;
    struct webhook_delivery_config dcfg = {
        .store = app->store,
        .dest = {.allow_private = w->allow_private, .api_port = sb_server_port(app->server)},
        .retry = {.base_ms = w->retry_base_ms, .max_delay_ms = (int64_t)w->retry_max_delay_s * 1000,
                  .max_attempts = w->max_attempts},
        .timeout_ms = w->timeout_s * 1000,
        .max_in_flight = w->max_in_flight,
    };
    app->delivery = webhook_delivery_start(&dcfg, err);
    if (!app->delivery)
        return -1;
    if (!event_bus_subscribe(app->events, webhook_delivery_on_event, app->delivery) ||
        !event_bus_subscribe(app->events, api_ports_on_event, NULL))
        return sb_err_set(err, 500, "out of memory while starting");
    return 0;
}

/* Adopts the sandboxes of the previous run and starts the TTL reaper. */
static int start_runtime(struct sb_app *app, struct sb_err *err)
{
    if (start_events(app, err) < 0)
        return -1;
    app->registry = registry_new(&app->cfg, app->store, app->workers, err);
    if (!app->registry)
        return -1;
    if (registry_serve_on(app->registry, app->loop, err) < 0)
        return -1;
    registry_watch_shims(app->registry, shim_watch_start, app);
    if (registry_reconcile(app->registry, err) < 0)
        return -1;
    sb_loop_timer(app->loop, TTL_TICK_MS, on_ttl_tick, app);
    return 0;
}

static void stop_app(struct sb_app *app)
{
    if (app->server)
        sb_server_free(app->server);
    if (app->workers)
        sb_worker_pool_free(app->workers);
    if (app->loop)
        shim_watches_close(app);
    registry_free(app->registry, 1);   /* pooled sandboxes have no owner: destroy them */
    if (app->store)                    /* nothing writes events any more */
        store_set_event_listener(app->store, NULL, NULL);
    webhook_delivery_stop(app->delivery);
    event_bus_free(app->events);
    if (app->router)
        sb_router_free(app->router);
    if (app->loop)
        sb_loop_free(app->loop);
    store_close(app->store);
}

/* The data dir must exist unless --bootstrap may create it; then it is
 * locked for this server alone, before anything in it is read. */
static int claim_data_dir(const struct sb_app *app, int bootstrap, int *lock_fd, struct sb_err *err)
{
    struct stat st;
    if (stat(app->cfg.data_dir, &st) < 0 && !bootstrap)
        return sb_err_set(err, 400,
                          "data dir %s does not exist; create it with `sandbase serve --bootstrap "
                          "--data-dir %s` (what `make run` does) or pass --data-dir",
                          app->cfg.data_dir, app->cfg.data_dir);
    if (sb_mkdir_p(app->cfg.data_dir, 0700, err) < 0)
        return -1;
    char path[SB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/serve.lock", app->cfg.data_dir);
    pid_t holder;
    if (sb_lock_file(path, lock_fd, &holder, err) < 0) {
        if (err->status == 409)
            sb_err_set(err, 409,
                       "data dir %s already used by pid %d (another sandbase serve); stop it first "
                       "or give this one another --data-dir",
                       app->cfg.data_dir, (int)holder);
        return -1;
    }
    return 0;
}

int cli_serve(int argc, char **argv)
{
    struct serve_opts opts;
    if (parse_serve_opts(argc, argv, &opts) < 0) {
        fputs(serve_usage, stderr);
        return 2;
    }
    /* Output buffers and answers come and go in megabytes: a fixed mmap
     * threshold (glibc's moving one climbs to 32 MiB after the first frees)
     * returns them to the system when freed, so serve's memory falls back
     * to idle after a burst instead of staying at its peak. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    static struct sb_app app;
    struct sb_err err = {0};
    if (load_config(&opts, &app.cfg, &err) < 0)
        return cli_fail(&err);
    enum sb_log_format fmt;
    if (sb_log_format_parse(app.cfg.log_format, &fmt) < 0) {
        fprintf(stderr, "sandbase: unknown --log-format '%s' (expected auto, text or json)\n",
                app.cfg.log_format);
        return 2;
    }
    sb_log_init(fmt, SB_LOG_INFO);
    int lock_fd = -1;
    if (claim_data_dir(&app, opts.bootstrap, &lock_fd, &err) < 0)
        return cli_fail(&err);
    char sandboxes_dir[SB_PATH_MAX + 16];
    snprintf(sandboxes_dir, sizeof sandboxes_dir, "%s/sandboxes", app.cfg.run_dir);
    if (sb_mkdir_p(sandboxes_dir, 0700, &err) < 0 || cli_open_store(app.cfg.data_dir, &app.store) != 0) {
        close(lock_fd);
        return err.status ? cli_fail(&err) : 1;
    }
    int sfd = signal_fd();
    if (sfd < 0)
        sb_err_sys(&err, 500, "signalfd");
    struct bootstrap_result boot = {0};
    if (sfd < 0 || start_http(&app, sfd, &err) < 0 ||
        (opts.bootstrap && bootstrap_run(&app.cfg, app.store, &boot, &err) < 0) ||
        start_runtime(&app, &err) < 0) {
        stop_app(&app);
        close(lock_fd);
        return cli_fail(&err);
    }
    sb_info("sandbase %s listening on %s (port %u, data dir %s)", SANDBASE_VERSION, app.cfg.listen,
            sb_server_port(app.server), app.cfg.data_dir);
    if (opts.bootstrap)
        bootstrap_print_welcome(&app.cfg, sb_server_port(app.server), &boot);
    sb_loop_run(app.loop);
    stop_app(&app);
    close(sfd);
    sb_info("stopped");
    close(lock_fd);
    return 0;
}
