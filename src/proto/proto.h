/*
 * proto.h - the shim protocol: how `sandbase serve` (or any client) talks to
 * one `sandbase shim` over <run-dir>/sandboxes/<id>/shim.sock (SOCK_STREAM).
 *
 * Shared by both ends and free of I/O policy: this file only encodes and
 * decodes frames; the shim's event loop and the client's blocking calls own
 * their sockets. Nothing here allocates except where stated.
 *
 * Framing: every message is
 *     u32 big-endian length L (of what follows the 5-byte header)
 *     u8  type
 *     L bytes of payload
 * L is at most SB_PROTO_MAX_PAYLOAD; a larger length is a protocol error and
 * the receiver drops the connection.
 *
 * Types:
 *   SB_FRAME_JSON   a control message, one JSON object (UTF-8, jansson):
 *       request   {"op": "...", "seq": N, ...}            client -> shim
 *       response  {"seq": N, "ok": true, ...}              shim -> client
 *                 {"seq": N, "ok": false, "status": 409, "error": "..."}
 *       event     {"event": "exit", "proc": P, ...}        shim -> client
 *   SB_FRAME_OUTPUT process output, shim -> client:
 *       u32 proc, u8 stream (1 stdout, 2 stderr), u64 offset, bytes
 *       (offset = absolute position of the first byte in that stream)
 *   SB_FRAME_STDIN  stdin bytes, client -> shim, acknowledged like a request:
 *       u32 seq, u32 proc, bytes
 *
 * Ops (fields beyond "op"/"seq" -> fields of the ok answer). Errors carry an
 * HTTP-like status: 400 bad request, 404 no such process, 409 conflict
 * ("sandbox is paused", stdin closed, already attached), 501 unsupported,
 * 502 start failures ("command not found: X", "permission denied: X").
 *   Ops that act on one process name it by "proc" (the protocol's id), or
 *   by "pid" (its pid inside the sandbox) or "tag": the newest match.
 *   start   argv[] (required), env[] ("K=V"; default: the template's env),
 *           cwd (default: template workdir), user ("user"|"root"),
 *           stdin ("open"|"closed", default closed), tag, timeout_ms
 *           (0 = none; the whole process tree is killed at the deadline),
 *           pty ({rows, cols}, 1-4096 each: a terminal in the sandbox's own
 *           devpts as stdin, stdout and stderr and controlling terminal;
 *           one output stream, stdout; stdin always open),
 *           attach (true: attached from offset 0 before any output is read)
 *           -> proc, pid (inside the sandbox), host_pid
 *   list    -> processes[]: {proc, pid, host_pid, tag, argv, cwd, user,
 *           pty ({rows, cols} or null), running, exited, stdout_end,
 *           stderr_end, started_at_ms (wall clock), and once exited:
 *           exit_code, signal, timed_out, oom_killed, duration_ms,
 *           ended_at_ms}
 *   get     -> the list entry of one process
 *   attach  stdout_offset, stderr_offset -> the list entry and the offsets
 *           actually used (raised to the oldest byte the ring still holds).
 *           Then OUTPUT frames from there on, live, and once the process has
 *           finished (its own process exited and what its pipes held then
 *           was read; what it left running keeps its pipes, drained into the
 *           ring) and the stream ends as of that moment are flushed:
 *           {"event":"exit", <list fields>}.
 *           An attached client that lags slows the process (its pipes are
 *           not read) instead of losing bytes.
 *   detach  proc
 *   (STDIN frame) -> ok once queued; the connection is not read while the
 *           process's stdin queue is full
 *   close_stdin proc (after the queued bytes are written; a terminal gets
 *           an EOF character, ^D, first)
 *   signal  proc, signal (number): SIGKILL kills the process's whole tree
 *           (its leaf cgroup), any other signal goes to the process alone;
 *           409 "sandbox is paused" while frozen, 409 once it has exited
 *   resize  proc, rows, cols -> ok (TIOCSWINSZ: the foreground group gets
 *           SIGWINCH); 400 for a process without a terminal, 409 once exited
 *   wait    proc -> answered when the process finishes, with <list fields>
 *   pause | resume                 (cgroup freezer)
 *   status  -> id, shim_pid, init_pid, init_running, paused, process_count,
 *           running_procs, root_dir, sandbox_dir
 *   destroy -> ok after every process is killed and the sandbox removed; the
 *           shim then closes every connection and exits
 */
#ifndef SB_PROTO_PROTO_H
#define SB_PROTO_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SB_PROTO_HEADER 5u
#define SB_PROTO_MAX_PAYLOAD (1024u * 1024u)    /* 1 MiB: any larger frame is rejected */
#define SB_PROTO_OUTPUT_HEADER 13u              /* proc u32 + stream u8 + offset u64 */
#define SB_PROTO_STDIN_HEADER 8u                /* seq u32 + proc u32 */
#define SB_PROTO_CHUNK (64u * 1024u)            /* output/stdin bytes per frame */

enum sb_frame_type {
    SB_FRAME_JSON = 1,
    SB_FRAME_OUTPUT = 2,
    SB_FRAME_STDIN = 3,
};

enum sb_stream { SB_STREAM_STDOUT = 1, SB_STREAM_STDERR = 2 };

/* A decoded frame. payload points into the reader's buffer: valid until the
 * next sb_frame_reader_* call. */
struct sb_frame {
    uint8_t type;
    const uint8_t *payload;
    uint32_t len;
};

/* Incremental frame parser over a byte stream. Buffer bounded by one maximal
 * frame. Owns buf; free with sb_frame_reader_free. */
struct sb_frame_reader {
    uint8_t *buf;
    size_t cap, len, consumed;
};

int sb_frame_reader_init(struct sb_frame_reader *r, struct sb_err *err);
void sb_frame_reader_free(struct sb_frame_reader *r);
/* Where to read() the next bytes into, and how many fit. Compacts first.
 * Never returns 0 room (a full buffer always holds a whole frame). */
uint8_t *sb_frame_reader_space(struct sb_frame_reader *r, size_t *room);
void sb_frame_reader_commit(struct sb_frame_reader *r, size_t n);
/* 1: *out holds the next frame; 0: need more bytes; -1: protocol error
 * (oversized or unknown type; the connection must be dropped). */
int sb_frame_reader_next(struct sb_frame_reader *r, struct sb_frame *out, struct sb_err *err);

/* Writes the 5-byte header for a payload of len bytes into hdr. */
void sb_frame_header(uint8_t hdr[SB_PROTO_HEADER], uint8_t type, uint32_t len);

/* Encodes obj as a complete JSON frame. Returns malloc'd bytes (caller frees),
 * length in *len; NULL on failure (too large or out of memory). */
uint8_t *sb_frame_json(const json_t *obj, size_t *len);
/* Parses a JSON frame's payload. Returns a new reference (caller decrefs) to
 * an object, or NULL with err (400) when it is not one. */
json_t *sb_frame_parse_json(const struct sb_frame *f, struct sb_err *err);

/* Output frame helpers. sb_frame_output_header writes header + output header
 * (SB_PROTO_HEADER + SB_PROTO_OUTPUT_HEADER bytes) for n data bytes. */
void sb_frame_output_header(uint8_t *hdr, uint32_t proc, uint8_t stream, uint64_t offset, uint32_t n);
struct sb_output_chunk {
    uint32_t proc;
    uint8_t stream;
    uint64_t offset;
    const uint8_t *data;
    uint32_t len;
};
int sb_frame_parse_output(const struct sb_frame *f, struct sb_output_chunk *out, struct sb_err *err);

/* Stdin frame helpers, same shape. */
void sb_frame_stdin_header(uint8_t *hdr, uint32_t seq, uint32_t proc, uint32_t n);
struct sb_stdin_chunk {
    uint32_t seq;
    uint32_t proc;
    const uint8_t *data;
    uint32_t len;
};
int sb_frame_parse_stdin(const struct sb_frame *f, struct sb_stdin_chunk *out, struct sb_err *err);

#endif
