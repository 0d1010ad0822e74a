/*
 * snapshots.h - filesystem snapshots and fork, shared by SandBase's routes
 * and E2B's (src/e2b/): take a snapshot of a sandbox, list and delete an
 * org's snapshots, fork a sandbox into count new ones. A snapshot is a
 * private template of the org that took it (runtime/template.h); every
 * other org gets 404 for it and never sees it listed.
 *
 * Handlers call these on the loop thread; the copies run on workers.
 */
#ifndef SB_API_SNAPSHOTS_H
#define SB_API_SNAPSHOTS_H

#include "api/sandbox_flows.h"

#define API_FORK_MAX 10
#define API_SNAPSHOT_PAGE_MAX 100

/* POST .../:id/snapshots, body {"name"?}: 201 {snapshotID, names,
 * sandboxID, createdAt}. 400 bad name, 404 unknown sandbox, 507 disk. */
void api_snapshot_create(struct sb_request *req);
/* GET /snapshots?sandboxID&name&limit&nextToken: the org's snapshots by id
 * (name matches a snapshot's name or its id, as E2B's does), at most limit
 * (1-API_SNAPSHOT_PAGE_MAX, default the maximum) a page, X-Next-Token (the
 * page's last id) when there are more. */
void api_snapshot_list(struct sb_request *req);
/* Deletes the org's snapshot :id (E2B: DELETE /templates/:id): 204; 404
 * for unknown ones and other orgs'; 403 for shared (built) templates. */
void api_snapshot_delete(struct sb_request *req);

/* Sets up one fork's create from its source (e.g. a fresh envd token). */
typedef void (*api_fork_prepare_fn)(const struct sb_sandbox_rec *source, struct api_create *c);
/* POST .../:id/fork {timeout?, count?}: a snapshot of :id (kept, listed
 * like any other) and count (1-API_FORK_MAX) sandboxes made from it;
 * 201 [{sandbox: shape}] or [{error: {code, message}}] per sandbox. */
void api_fork(struct sb_request *req, api_sandbox_shape_fn shape, api_fork_prepare_fn prepare);

#endif
