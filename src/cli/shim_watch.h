/*
 * shim_watch.h - serve's watch on every live sandbox's shim: a pidfd per
 * shim on the loop; when one exits, registry_shim_died runs on a worker and
 * the sandbox becomes stopped (reason "lost") at once.
 */
#ifndef SB_CLI_SHIM_WATCH_H
#define SB_CLI_SHIM_WATCH_H

#include "api/app.h"

/* The registry's sb_shim_watch_fn (ctx is the sb_app): takes ownership of
 * pidfd and watches it on the loop. Any thread; never blocks. */
void shim_watch_start(void *ctx, const char *id, int pidfd);
/* After the loop and the workers stopped: drops every watch (the shims
 * live on; the next start watches them again). */
void shim_watches_close(struct sb_app *app);

#endif
