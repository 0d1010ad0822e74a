/*
 * envd.h - what the envd routes share (private to src/e2b/): which sandbox
 * a request is for, and the Connect call's pieces that are envd's to
 * decide (the request message, the deadline).
 */
#ifndef SB_E2B_ENVD_H
#define SB_E2B_ENVD_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"
#include "http/request.h"
#include "http/stream.h"
#include "runtime/registry_procs.h"
#include "store/store.h"

/* The sandbox req names in E2b-Sandbox-Id, when envd may be reached in it:
 * 502 "sandbox X not found" for a malformed, unknown, stopped or still
 * creating id, and for a paused sandbox (E2B's proxy answers 502 for a
 * sandbox it cannot reach: the SDK's "sandbox timeout" and isRunning() ->
 * false); 401 when the sandbox is secured and X-Access-Token is not its
 * token (compared in constant time), unless check_token is 0. Any org's
 * sandbox: envd knows no API key, the token is the credential. rec is the
 * caller's to clear on success. Loop thread (one store read). */
int e2b_envd_sandbox(const struct sb_request *req, int check_token, struct sb_sandbox_rec *rec,
                     struct sb_err *err);

/* 1 when given is rec's envd token (constant time), or rec has none. */
int e2b_envd_token_ok(const struct sb_sandbox_rec *rec, const char *given);

/* The user an envd call runs as: envd takes it from `Authorization: Basic
 * base64("<user>:")` (the SDK sends it when the caller names a user, and
 * always below envdVersion 0.4.0), the sandbox's default user without one.
 * *user points to a static name: "user" or "root", the users a sandbox
 * has; anything else, or a header that is not Basic with an empty
 * password, is 401 (Connect's unauthenticated, as envd answers). */
int e2b_envd_user(const struct sb_request *req, const char **user, struct sb_err *err);
/* The same check of a bare user name (envd's ?username= on /files). */
int e2b_envd_user_name(const char *name, const char **user, struct sb_err *err);
/* The same rule for one header value (NULL = none), for tests. */
int e2b_basic_user(const char *authorization, const char **user, struct sb_err *err);

/* The request message of a unary Connect call with the JSON codec: the
 * body as an object (empty = {}); 415 for a Content-Type other than
 * application/json (the route's renderer answers invalid_argument), 400
 * for a body that is not a JSON object. Unknown fields are the caller's to
 * ignore, as envd's protobuf decoding does. Caller decrefs. */
json_t *e2b_rpc_unary_request(const struct sb_request *req, struct sb_err *err);

/* 415 unless Content-Type is want (a ";..." suffix allowed, case as
 * written): application/json for unary calls, application/connect+json
 * for streaming ones. */
int e2b_rpc_content_type(const struct sb_request *req, const char *want, struct sb_err *err);

/* Connect-Timeout-Ms: *ms = 0 when header is NULL (no deadline), else its
 * value; 400 unless it is 1 to 10 ASCII digits (Connect's rule). */
int e2b_rpc_timeout_ms(const char *header, uint64_t *ms, struct sb_err *err);

/* ---- protobuf JSON fields of a request message (envd_filesystem.c) ----
 * A string field (camelCase, else snake when not NULL): "" when absent,
 * NULL with 400 when not a string or holding a NUL. A uint32 (a number or
 * a numeric string; 0 when absent). A bool (false when absent). */
const char *e2b_msg_string(json_t *msg, const char *camel, const char *snake, struct sb_err *err);
int e2b_msg_uint32(json_t *msg, const char *name, uint32_t *out, struct sb_err *err);
int e2b_msg_bool(json_t *msg, const char *camel, const char *snake, int *out, struct sb_err *err);

/* envd's EntryInfo of e (spec §5.5): type names, size as a string, mode
 * the permission bits (a symlink's: of its target), permissions the Go
 * FileMode string, owner and group names, RFC 3339 modifiedTime,
 * symlinkTarget. New reference, NULL when out of memory. Worker (it may
 * stat a symlink's target). */
struct sb_fs;
struct sb_fs_entry;
json_t *e2b_entry_info(struct sb_fs *fs, const struct sb_fs_entry *e);

/* ---- /files signatures (envd_files.c) ----
 * e2b_files_signature: "v1_" + unpadded base64 of SHA-256 of
 * "<path>:<op>:<user>:<token>" (+ ":<expiration>" when not NULL), as the
 * SDK's uploadUrl()/downloadUrl() make it; -1 if out_len is too small.
 * e2b_files_check_signature: 0 when signature is that, and expiration
 * (NULL: none) is a Unix time not before now; 401 with what was wrong. */
int e2b_files_signature(const char *path, const char *op, const char *user, const char *token,
                        const char *expiration, char *out, size_t out_len);
int e2b_files_check_signature(const char *path, const char *op, const char *user, const char *token,
                              const char *signature, const char *expiration, int64_t now, struct sb_err *err);

/* ---- server-streaming calls (rpc_stream.c) ----
 *
 * The Connect stream of a server-streaming call (200 application/connect+
 * json), with envd's keepalive (the method's own keepalive message as the
 * stream's heartbeat every Keepalive-Ping-Interval seconds of silence, 90
 * when absent) and deadline (Connect-Timeout-Ms: when it passes,
 * deadline(arg) runs, then the stream ends with deadline_exceeded). closed
 * runs once when the stream is over (ended and sent, client gone,
 * shutdown); the stream is freed after it. Errors go in band: a call that
 * fails before its first message answers with e2b_rpc_stream_fail.
 */
struct e2b_rpc_stream;
struct e2b_rpc_stream_handlers {
    void (*deadline)(void *arg);                        /* may be NULL */
    void (*closed)(void *arg, enum sb_stream_end why);  /* may be NULL */
    void *arg;
};
/* NULL with err for a malformed Connect-Timeout-Ms or Keepalive-Ping-
 * Interval (400), a request that cannot stream (499 client gone, 503
 * shutting down) or no memory (500: the stream was opened and ended in
 * band): answer it with e2b_rpc_stream_fail, which does nothing to an
 * answered request. keepalive is copied. Loop thread; req must be on its
 * handler or deferred. */
struct e2b_rpc_stream *e2b_rpc_stream_open(struct sb_request *req, const json_t *keepalive,
                                           const struct e2b_rpc_stream_handlers *h, struct sb_err *err);
/* One data envelope; -1 once ended or the stream is gone. */
int e2b_rpc_stream_send(struct e2b_rpc_stream *rs, const json_t *msg);
/* Bytes written and not yet taken by the client, and a call of fn(arg)
 * once at most low_water are (the writer's back-pressure, as
 * sb_stream_queued / sb_stream_on_drain). */
size_t e2b_rpc_stream_queued(const struct e2b_rpc_stream *rs);
void e2b_rpc_stream_on_drain(struct e2b_rpc_stream *rs, size_t low_water, void (*fn)(void *arg), void *arg);
/* The end-stream envelope ({} for err NULL, else err's code) and the end of
 * the body; the deadline no longer runs. Once; later calls do nothing. */
void e2b_rpc_stream_end(struct e2b_rpc_stream *rs, const struct sb_err *err);
/* Answers a streaming call that failed before its stream: 200 and only the
 * end-stream envelope with err, as Connect wants (err as HTTP while
 * shutting down; nothing when the client left or req is answered). */
void e2b_rpc_stream_fail(struct sb_request *req, const struct sb_err *err);

/* ---- what the process RPCs share (envd_process.c) ---- */

/* The ProcessSelector in msg's field "process" ({"pid": N} or {"tag":
 * "t"}; a pid as a number or a decimal string, as protobuf JSON allows) as
 * the registry's selector text; 400 for none, both, or a bad value. */
#define E2B_SELECTOR_MAX (REGISTRY_TAG_MAX + 1)
int e2b_process_selector(json_t *msg, char sel[E2B_SELECTOR_MAX], struct sb_err *err);
/* A registry error on the process sel names, as envd says it: a process
 * that has finished is gone (envd drops it from its table), so its 409 and
 * an unknown process are both 404 not_found "process with pid N not
 * found"; the rest is in unchanged. */
void e2b_process_error(const char *sel, const struct sb_err *in, struct sb_err *out);
/* A protobuf bytes field (standard or URL-safe base64, padding optional)
 * of obj: *out (caller frees; NULL with *len 0 when absent) or 400. */
int e2b_proto_bytes(json_t *obj, const char *field, uint8_t **out, size_t *len, struct sb_err *err);
/* The ProcessInput in msg's field "input": its stdin or pty bytes (a
 * terminal's input is its stdin); 400 unless exactly one is set. */
int e2b_process_input(json_t *msg, uint8_t **out, size_t *len, struct sb_err *err);
/* A PTY message {size: {cols, rows}}, each 1 to 4096; 400 otherwise. */
int e2b_pty_size(json_t *pty, uint16_t *rows, uint16_t *cols, struct sb_err *err);

#endif
