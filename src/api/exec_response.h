/*
 * exec_response.h - answering a synchronous exec without holding its whole
 * JSON body in memory: the result's output is escaped piece by piece as the
 * client reads it (HTTP streaming, http/stream.h).
 */
#ifndef SB_API_EXEC_RESPONSE_H
#define SB_API_EXEC_RESPONSE_H

#include <jansson.h>

#include "core/err.h"
#include "http/request.h"
#include "runtime/registry.h"

/* Answers req (deferred, loop thread) with status and the JSON object head
 * (stolen) extended by "stdout" and "stderr" from res, whose buffers and
 * budget it takes (res is zeroed) and frees once sent or once the client
 * left. -1 with err (and res, req untouched) when it could not start
 * answering: answer req with err then. */
int api_exec_respond(struct sb_request *req, struct sb_registry *reg, int status, json_t *head,
                     struct sb_exec_result *res, struct sb_err *err);

#endif
