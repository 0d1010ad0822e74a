/*
 * client.h - the CLI's side of the REST API: blocking HTTP/1.1 requests to
 * the server at $SANDBASE_URL (default http://127.0.0.1:3000) with the key
 * in $SANDBASE_API_KEY, and the WebSocket upgrade the attach route needs.
 * Plain http only (a TLS proxy in front is the deployment's business).
 *
 * One connection per call (Connection: close), so nothing is kept between
 * calls; a chunked answer is decoded. Errors are the server's own
 * {"code","message"} when it answered, else the connection's.
 */
#ifndef SB_CLI_CLIENT_H
#define SB_CLI_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:3000"

/* Sends method path with body (JSON, may be NULL) and reads the answer:
 * *status and *out (the parsed JSON body, NULL when empty; caller decrefs).
 * An answer of 400 or more becomes err with its status and message (and -1);
 * -1 with err also when the server cannot be reached or answers garbage. */
int cli_http(const char *method, const char *path, json_t *body, int *status, json_t **out, struct sb_err *err);

/* Opens a WebSocket to path (GET with the upgrade headers and the key) and
 * returns the socket, blocking, once the server answered 101; bytes it sent
 * after the headers are left in *extra (malloc'd, *extra_len; caller frees).
 * -1 with err (the server's error when it refused). */
int cli_ws_connect(const char *path, char **extra, size_t *extra_len, struct sb_err *err);

#endif
