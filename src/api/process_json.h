/*
 * process_json.h - what the REST process routes say about a process, made
 * from the shim's list entries and exit events (proto/proto.h), and the
 * signal names clients may use. One place, so the list, get, wait, the SSE
 * end event and the WebSocket exit frame all agree.
 */
#ifndef SB_API_PROCESS_JSON_H
#define SB_API_PROCESS_JSON_H

#include <jansson.h>

#include "core/err.h"

/* {processID, pid, tag, cmd, args, cwd, user, pty, state, exitCode,
 * startedAt, endedAt} of a shim list entry (borrowed). New reference. */
json_t *api_process_view(json_t *entry);
/* {exitCode, signal, oomKilled, timedOut, durationMs} of a finished entry
 * or exit event (borrowed). New reference. */
json_t *api_process_result(json_t *entry);
/* The processID of a shim answer carrying "pid", as a string. */
void api_process_id(json_t *entry, char out[16]);

/* A signal given as a name ("SIGTERM", "TERM", case as written) or a
 * number (1-64). 400 naming what is accepted otherwise. */
int api_signal_parse(json_t *v, int *sig, struct sb_err *err);

#endif
