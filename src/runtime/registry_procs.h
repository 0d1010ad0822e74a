/*
 * registry_procs.h - the processes of a live sandbox, on the loop thread
 * over the sandbox's shim link (shim_link.h). For now only the listing,
 * which E2B's Process/List needs; issue 8 brings the rest of this API
 * (start, attach, stdin, signals), with this same call.
 *
 * The sandbox is checked first as for every route (404 for other orgs and
 * stopped sandboxes). The answer goes to fn once, on the loop thread, never
 * inside the call; -1 with err when it fails at once (fn is then not
 * called). fn's arg must live until fn ran (a deferred request does).
 * Loop thread only.
 */
#ifndef SB_RUNTIME_REGISTRY_PROCS_H
#define SB_RUNTIME_REGISTRY_PROCS_H

#include <jansson.h>

#include "core/err.h"
#include "runtime/registry.h"

/* The shim's answer: reply is its {"ok": true, ...} object (borrowed: valid
 * during the call), or NULL with err (the shim's own error, 502 link
 * closed, 504 no answer in time, 503 shutting down). The same type as
 * shim_link.h's shim_reply_fn, which callers above runtime/ cannot see. */
typedef void (*registry_reply_fn)(void *arg, json_t *reply, const struct sb_err *err);

/* {processes: [...]} (shim list fields, see proto/proto.h). */
int registry_proc_list(struct sb_registry *reg, const char *org_id, const char *id, registry_reply_fn fn,
                       void *arg, struct sb_err *err);

#endif
