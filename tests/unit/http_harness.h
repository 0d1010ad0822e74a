/*
 * http_harness.h - what the tests/unit/test_http_*.c binaries share: a real
 * server on a loopback port with its loop on its own thread, and a raw-socket
 * HTTP/1.1 client (so keep-alive, pipelining, chunked bodies and hang-ups
 * happen exactly as sent). Linked into every test_http_* binary by CMake.
 * Failures are cmocka assertions.
 */
#ifndef SB_TEST_HTTP_HARNESS_H
#define SB_TEST_HTTP_HARNESS_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/loop.h"
#include "http/server.h"

/* ---- the server ---- */

struct http_fixture {
    struct sb_loop *loop;
    struct sb_router *router;
    struct sb_server *server;
    pthread_t thread;
    int loop_rc;
    unsigned port;
};

/* Starts a server for router (the fixture owns it from here) with config
 * (listen NULL means 127.0.0.1:0) and runs its loop on a new thread. */
struct http_fixture *http_fixture_start(struct sb_router *router,
                                        const struct sb_server_config *config);
/* Posts sb_server_shutdown to the loop (returns at once). */
void http_fixture_shutdown(struct http_fixture *f);
/* Waits for the loop thread to return (after a shutdown). */
void http_fixture_join(struct http_fixture *f);
/* Frees the server, then calls before_loop_free (may be NULL: e.g. join a
 * worker pool that still posts to the loop), then frees the loop, router
 * and f. The loop must have stopped. */
void http_fixture_free(struct http_fixture *f, void (*before_loop_free)(void));
/* Runs fn(arg) on the loop thread and waits until it has run. */
void http_fixture_on_loop(struct http_fixture *f, void (*fn)(void *arg), void *arg);
/* Polls cond(arg) every 5 ms, on the loop thread, until it returns non-zero
 * or wait_ms pass; returns its last value. */
int http_fixture_wait(struct http_fixture *f, int (*cond)(void *arg), void *arg, int wait_ms);

/* ---- the client ---- */

struct client {
    int fd;
    char buf[65536];
    size_t len;
};

struct response {
    int status;
    char headers[4096];
    char body[8192];
    size_t body_len;
};

/* A connected socket with a 5 s receive timeout, or -1 if refused. */
int try_connect(unsigned port);
struct client *client_open(unsigned port);
void client_close(struct client *c);
void client_send(struct client *c, const char *data, size_t len);
void client_sendf(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One recv into c->buf; -1 on EOF, error or timeout. */
int client_fill(struct client *c);
/* The value of header name in resp (a static copy) or NULL. */
const char *header(const struct response *resp, const char *name);
/* Reads one Content-Length framed response. -1 when the connection ends first. */
int client_read(struct client *c, struct response *resp);
/* Reads a response's status line and headers only (resp->body_len 0). */
int client_read_head(struct client *c, struct response *resp);
/* Reads one chunk of a chunked body into out (at most max bytes, asserted):
 * its length, 0 for the last chunk (trailer read too), -1 when the
 * connection ends first. */
ssize_t client_read_chunk(struct client *c, char *out, size_t max);
/* One request on a fresh connection; extra_headers end with "\r\n". */
void request(unsigned port, const char *method, const char *path, const char *extra_headers,
             const char *body, struct response *resp);
/* resp's body as JSON (fails the test if it is not). Caller decrefs. */
json_t *json_of(const struct response *resp);

#endif
