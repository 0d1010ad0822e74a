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

/* The request message of a unary Connect call with the JSON codec: the
 * body as an object (empty = {}); 415 for a Content-Type other than
 * application/json (the route's renderer answers invalid_argument), 400
 * for a body that is not a JSON object. Unknown fields are the caller's to
 * ignore, as envd's protobuf decoding does. Caller decrefs. */
json_t *e2b_rpc_unary_request(const struct sb_request *req, struct sb_err *err);

/* Connect-Timeout-Ms: *ms = 0 when header is NULL (no deadline), else its
 * value; 400 unless it is 1 to 10 ASCII digits (Connect's rule). */
int e2b_rpc_timeout_ms(const char *header, uint64_t *ms, struct sb_err *err);

#endif
