/*
 * process_sse.h - a process's output as Server-Sent Events: the streamed
 * POST /sandboxes/:id/processes and GET …/processes/:pid/output.
 *
 * Events (docs/API.md): "start" {processID, pid} (the streamed start only),
 * "dropped" {stdout, stderr} first when the ring no longer held bytes from
 * the offsets asked for (how many were lost on each stream), "stdout" /
 * "stderr" {data | dataB64, offset}, and "end" {exitCode, signal,
 * oomKilled, timedOut, durationMs}; "error" {code, message} instead of
 * "end" when the sandbox's runtime went away. Every event but "error" has
 * the id "<stdout offset>-<stderr offset>": where the stream stands after
 * it, which a client sends back as Last-Event-ID (or as stdoutOffset and
 * stderrOffset) to resume, getting every later byte exactly once.
 *
 * Bytes that are valid UTF-8 travel as data, others as dataB64; a UTF-8
 * sequence cut by a chunk boundary is held back until the rest arrives (or
 * the process ends), so text is never turned into base64 by chance.
 *
 * Back-pressure: while more than a window of events waits for the client,
 * the attachment is paused (registry_proc_pause) and resumed on drain; the
 * process then blocks writing, and serve holds at most that window.
 * A client that leaves closes the attachment only: the process runs on.
 */
#ifndef SB_API_PROCESS_SSE_H
#define SB_API_PROCESS_SSE_H

#include <stdint.h>

#include "core/err.h"
#include "http/request.h"
#include "runtime/registry.h"

/* Starts preq in the request's sandbox (:id) and streams it. On success req
 * is deferred and answered with the stream (or the start's error); -1 with
 * err and req untouched when it fails at once. preq's strings need only
 * live during the call. */
int api_process_stream_start(struct sb_request *req, const struct sb_process_request *preq, struct sb_err *err);

/* Streams the output of the process sel names from the given offsets. */
int api_process_stream_output(struct sb_request *req, const char *sel, uint64_t stdout_offset,
                              uint64_t stderr_offset, struct sb_err *err);

/* Parses an event id ("<stdout>-<stderr>") into offsets: 0, or -1 when it
 * is not one of ours. */
int api_process_event_id_parse(const char *id, uint64_t *stdout_offset, uint64_t *stderr_offset);

#endif
