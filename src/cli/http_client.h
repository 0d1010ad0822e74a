/*
 * http_client.h - the CLI's small blocking HTTP/1.1 client for talking to a
 * running `sandbase serve` (plain http:// on loopback or behind a proxy):
 * one request per connection, bodies streamed from and to file
 * descriptors, chunked responses decoded. Owns nothing beyond one call.
 */
#ifndef SB_CLI_HTTP_CLIENT_H
#define SB_CLI_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct cli_http {
    char host[256];
    char port[8];
    const char *key;                /* sent as X-API-Key */
    void (*progress)(void *arg, uint64_t done, uint64_t total);   /* may be NULL */
    void *progress_arg;
};

/* Parses base ("http://host:port", port default 80) into c. 400 otherwise. */
int cli_http_init(struct cli_http *c, const char *base, const char *key, struct sb_err *err);

/* A response being read: status, then the body through cli_http_read. */
struct cli_http_response {
    int fd;
    int status;
    int chunked;
    uint64_t length;                /* Content-Length, or UINT64_MAX unknown */
    uint64_t left;                  /* of the body (or of the current chunk) */
    int done;
    char buf[16384];
    size_t buf_len, buf_off;
};

/* A request body: body_len bytes from fd, or from mem (fd -1); neither: none. */
struct cli_http_body {
    const char *content_type;
    int fd;
    const void *mem;
    uint64_t len;
};
/* Sends method path (already escaped) with body (NULL: none), and reads the
 * response head. The caller reads the body with cli_http_read and closes
 * with cli_http_close. */
int cli_http_request(struct cli_http *c, const char *method, const char *path, const struct cli_http_body *body,
                     struct cli_http_response *r, struct sb_err *err);
/* Up to len body bytes; 0 at the end; -1 with err. */
long cli_http_read(struct cli_http_response *r, void *buf, size_t len, struct sb_err *err);
void cli_http_close(struct cli_http_response *r);
/* Reads an error body and turns it into err: "<status> <message>". */
int cli_http_error(struct cli_http_response *r, struct sb_err *err);

/* Appends s to out percent-encoded for a query value. */
void cli_http_escape(const char *s, char *out, size_t len);

#endif
