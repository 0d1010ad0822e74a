/*
 * test_http_stream.c - streaming responses (http/stream.c) against the real
 * server on a loopback port: chunks arrive as written, an idle stream
 * sleeps, a slow reader builds a queue and the drain callback fires once it
 * reads, a client that leaves (closed, reset, or vanished without a word,
 * found by the heartbeat) closes the stream, and shutdown ends streams
 * cleanly without waiting its grace period.
 *
 * The stream is driven from the test thread through http_fixture_on_loop,
 * since the stream API is for the loop thread only; probe is only touched
 * there.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/stream.h"
#include "http_harness.h"

/* ---- the application under test (loop thread only) ---- */

static struct {
    struct sb_stream *s;        /* NULL once closed */
    struct sb_request *req;     /* GET /later, deferred */
    int closed;
    enum sb_stream_end why;
    int drained;
    size_t queued_at_drain;
    int gone;
} probe;

static void on_close(void *arg, enum sb_stream_end why)
{
    assert_ptr_equal(arg, &probe);
    probe.closed++;
    probe.why = why;
    probe.s = NULL;
}

static void on_drain(struct sb_stream *s, void *arg)
{
    assert_ptr_equal(s, probe.s);
    probe.drained++;
    probe.queued_at_drain = sb_stream_queued(s);
}

static int test_auth(void *app_ctx, const char *key, char org_id[SB_ORG_ID_MAX],
                     struct sb_err *err)
{
    if (strcmp(key, "good-key") != 0)
        return sb_err_set(err, 401, "invalid API key");
    snprintf(org_id, SB_ORG_ID_MAX, "org_a");
    return 0;
}

static void h_health(struct sb_request *req) { sb_respond_json(req, 200, json_pack("{}")); }

/* GET /stream: a stream opened while the handler runs. */
static void h_stream(struct sb_request *req)
{
    struct sb_err err;
    struct sb_stream *s = sb_stream_open(req, 200, "text/plain", &err);
    if (!s) {
        sb_respond_error(req, &err);
        return;
    }
    assert_int_equal(sb_stream_header(s, "X-Stream", "yes"), 0);
    sb_stream_on_close(s, on_close, &probe);
    probe.s = s;
}

static void on_gone(struct sb_request *req, void *arg) { probe.gone++; }

/* GET /many: streams kept in many[], each closing into many_closed. */
#define MANY 100
static struct sb_stream *many[MANY];
static int many_open, many_closed;

static void on_many_close(void *arg, enum sb_stream_end why)
{
    many[(intptr_t)arg] = NULL;
    many_closed++;
}

static void h_many(struct sb_request *req)
{
    struct sb_err err;
    assert_true(many_open < MANY);
    struct sb_stream *s = sb_stream_open(req, 200, "text/plain", &err);
    assert_non_null(s);
    sb_stream_on_close(s, on_many_close, (void *)(intptr_t)many_open);
    many[many_open++] = s;
}

/* GET /sized: a stream of exactly 100 bytes. */
static void h_sized(struct sb_request *req)
{
    struct sb_err err;
    struct sb_stream *s = sb_stream_open_sized(req, 200, "application/octet-stream", 100, &err);
    assert_non_null(s);
    assert_int_equal(sb_stream_heartbeat(s, 100, "x", 1), -1);     /* would break the length */
    sb_stream_on_close(s, on_close, &probe);
    probe.s = s;
}

/* GET /later: deferred; the test opens the stream later. */
static void h_later(struct sb_request *req)
{
    sb_request_defer(req);
    sb_request_on_gone(req, on_gone, NULL);
    probe.req = req;
}

/* MHD's idle timeout for the next start() (0: 10 s). */
static unsigned idle_timeout_s;

static struct http_fixture *start(unsigned grace_ms)
{
    memset(&probe, 0, sizeof probe);
    struct sb_router *router = sb_router_new();
    assert_non_null(router);
    assert_int_equal(sb_router_add(router, "GET", "/health", h_health, SB_ROUTE_NO_AUTH), 0);
    assert_int_equal(sb_router_add(router, "GET", "/stream", h_stream, 0), 0);
    assert_int_equal(sb_router_add(router, "GET", "/later", h_later, 0), 0);
    assert_int_equal(sb_router_add(router, "GET", "/sized", h_sized, SB_ROUTE_NO_AUTH), 0);
    assert_int_equal(sb_router_add(router, "GET", "/many", h_many, SB_ROUTE_NO_AUTH), 0);
    struct sb_server_config config = {
        .idle_timeout_s = idle_timeout_s ? idle_timeout_s : 10,
        .auth = test_auth,
        .shutdown_grace_ms = grace_ms,
    };
    return http_fixture_start(router, &config);
}

static int setup(void **state)
{
    *state = start(0);
    return 0;
}

static int teardown(void **state)
{
    struct http_fixture *f = *state;
    http_fixture_shutdown(f);
    http_fixture_join(f);
    http_fixture_free(f, NULL);
    return 0;
}

/* ---- driving the stream from the test thread ---- */

struct write_call {
    const char *data;
    size_t len;
    int rc;
};

static void do_write(void *p)
{
    struct write_call *w = p;
    w->rc = probe.s ? sb_stream_write(probe.s, w->data, w->len) : -2;
}

static int stream_write(struct http_fixture *f, const void *data, size_t len)
{
    struct write_call w = {data, len, 0};
    http_fixture_on_loop(f, do_write, &w);
    return w.rc;
}

static void do_end(void *p) { sb_stream_end(probe.s); }
static int has_stream(void *p) { return probe.s != NULL; }
static int is_closed(void *p) { return probe.closed > 0; }
static int is_drained(void *p) { return probe.drained > 0; }

static void open_stream(struct http_fixture *f, struct client *c)
{
    client_sendf(c, "GET /stream HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    assert_true(http_fixture_wait(f, has_stream, NULL, 2000));
}

static void expect_chunk(struct client *c, const char *text)
{
    char buf[1024];
    ssize_t n = client_read_chunk(c, buf, sizeof buf);
    assert_int_equal(n, (ssize_t)strlen(text));
    assert_memory_equal(buf, text, (size_t)n);
}

/* ---- tests ---- */

/* Each write reaches the client on its own, before the stream ends; the end
 * is a proper last chunk and the connection is good for the next request. */
static void test_chunks_arrive_as_written(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    open_stream(f, c);
    struct response resp;
    assert_int_equal(client_read_head(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(header(&resp, "Transfer-Encoding"), "chunked");
    assert_string_equal(header(&resp, "Content-Type"), "text/plain");
    assert_string_equal(header(&resp, "X-Stream"), "yes");
    assert_null(header(&resp, "Content-Length"));
    assert_int_equal(stream_write(f, "hello", 5), 0);
    expect_chunk(c, "hello");
    assert_int_equal(stream_write(f, "", 0), 0);        /* nothing to send: no empty chunk */
    assert_int_equal(stream_write(f, "world\n", 6), 0);
    expect_chunk(c, "world\n");
    http_fixture_on_loop(f, do_end, NULL);
    char buf[16];
    assert_int_equal(client_read_chunk(c, buf, sizeof buf), 0);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.closed, 1);
    assert_int_equal(probe.why, SB_STREAM_ENDED);
    client_sendf(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 200);
    client_close(c);
}

/* A sized stream goes out with Content-Length, not chunked; it is over once
 * its length is sent, refuses bytes past it, and one ended short is cut
 * (the connection closes, the client sees fewer bytes than announced). */
static int sized_open(void *p) { return probe.s != NULL; }

static void test_sized_stream(void **state)
{
    struct http_fixture *f = *state;
    char body[100];
    for (int i = 0; i < 100; i++)
        body[i] = (char)('a' + i % 26);
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /sized HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(http_fixture_wait(f, sized_open, NULL, 2000));
    assert_int_equal(stream_write(f, body, 60), 0);
    assert_int_equal(stream_write(f, body + 60, 41), -1);      /* one past the length */
    assert_int_equal(stream_write(f, body + 60, 40), 0);
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);                /* Content-Length framed */
    assert_int_equal(resp.status, 200);
    assert_null(header(&resp, "Transfer-Encoding"));
    assert_int_equal(resp.body_len, 100);
    assert_memory_equal(resp.body, body, 100);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.why, SB_STREAM_ENDED);              /* without sb_stream_end */
    memset(&probe, 0, sizeof probe);    /* before the loop can touch it again */
    client_sendf(c, "GET /sized HTTP/1.1\r\nHost: t\r\n\r\n");   /* keep-alive */
    assert_true(http_fixture_wait(f, sized_open, NULL, 2000));
    assert_int_equal(stream_write(f, body, 10), 0);
    http_fixture_on_loop(f, do_end, NULL);
    assert_int_equal(client_read(c, &resp), -1);               /* cut short */
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.why, SB_STREAM_CUT);
    client_close(c);
}

static uint64_t cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000 + (uint64_t)ru.ru_utime.tv_usec / 1000 +
           (uint64_t)ru.ru_stime.tv_sec * 1000 + (uint64_t)ru.ru_stime.tv_usec / 1000;
}

/* An open stream with nothing to send costs no CPU: the connection sleeps
 * (suspended) instead of MHD asking the reader again and again. */
static void test_idle_stream_sleeps(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    open_stream(f, c);
    struct response resp;
    assert_int_equal(client_read_head(c, &resp), 0);
    uint64_t before = cpu_ms();
    usleep(500 * 1000);
    uint64_t used = cpu_ms() - before;
    if (used > 50)
        fail_msg("an idle stream used %llu ms of CPU in 500 ms", (unsigned long long)used);
    assert_int_equal(stream_write(f, "awake", 5), 0);
    expect_chunk(c, "awake");
    client_close(c);
}

/* A stream opened later, on the loop thread, for a deferred request; the
 * request's gone callback is the stream's business from then on. */
static void do_open_later(void *p)
{
    struct sb_err err;
    struct sb_stream *s = sb_stream_open(probe.req, 201, "application/x-ndjson", &err);
    assert_non_null(s);
    sb_stream_on_close(s, on_close, &probe);
    assert_int_equal(sb_stream_write(s, "{\"n\":1}\n", 8), 0);
    probe.s = s;
    /* a second answer is refused and changes nothing */
    assert_null(sb_stream_open(probe.req, 200, NULL, &err));
    assert_int_equal(err.status, 500);
}

static int has_later(void *p) { return probe.req != NULL; }

static void test_stream_for_deferred_request(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /later HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    assert_true(http_fixture_wait(f, has_later, NULL, 2000));
    usleep(50 * 1000);
    http_fixture_on_loop(f, do_open_later, NULL);
    struct response resp;
    assert_int_equal(client_read_head(c, &resp), 0);
    assert_int_equal(resp.status, 201);
    assert_string_equal(header(&resp, "Content-Type"), "application/x-ndjson");
    expect_chunk(c, "{\"n\":1}\n");
    client_close(c);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.why, SB_STREAM_CLIENT_GONE);
    assert_int_equal(probe.gone, 0);
}

/* A client that reads nothing: the queue grows past what the sockets hold,
 * the drain callback waits, and fires (once, outside the write) when the
 * client has read enough; every byte arrives, in order. */
#define BP_TOTAL (24u * 1024 * 1024)
#define BP_PIECE (64u * 1024)
#define BP_LOW (1024u * 1024)

struct bp_fill {
    size_t queued_after;
    int drained_during;
};

static void do_fill(void *p)
{
    struct bp_fill *fill = p;
    static unsigned char piece[BP_PIECE];
    for (size_t off = 0; off < BP_TOTAL; off += BP_PIECE) {
        for (size_t i = 0; i < BP_PIECE; i++)
            piece[i] = (unsigned char)((off + i) % 251);
        assert_int_equal(sb_stream_write(probe.s, piece, BP_PIECE), 0);
    }
    sb_stream_on_drain(probe.s, BP_LOW, on_drain, NULL);
    fill->queued_after = sb_stream_queued(probe.s);
    fill->drained_during = probe.drained;
}

static void do_queued(void *p) { *(size_t *)p = sb_stream_queued(probe.s); }

static void test_slow_reader_back_pressure(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    int rcvbuf = 256 * 1024;    /* fixed (no autotuning), yet no tiny-window crawl */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    open_stream(f, c);
    struct response resp;
    assert_int_equal(client_read_head(c, &resp), 0);
    struct bp_fill fill = {0};
    http_fixture_on_loop(f, do_fill, &fill);
    assert_int_equal(fill.drained_during, 0);
    assert_int_equal(fill.queued_after, BP_TOTAL);  /* nothing sent inside the writes */
    usleep(300 * 1000);
    size_t queued;
    http_fixture_on_loop(f, do_queued, &queued);
    /* the sockets took at most a few MiB; the rest waits in the queue */
    if (queued < BP_TOTAL / 2)
        fail_msg("only %zu of %u bytes still queued for a client that reads nothing", queued,
                 BP_TOTAL);
    assert_false(http_fixture_wait(f, is_drained, NULL, 0));

    static unsigned char chunk[70000];
    size_t got = 0;
    while (got < BP_TOTAL) {
        ssize_t n = client_read_chunk(c, (char *)chunk, sizeof chunk);
        assert_true(n > 0);
        for (ssize_t i = 0; i < n; i++)
            if (chunk[i] != (unsigned char)((got + (size_t)i) % 251))
                fail_msg("byte %zu is %u", got + (size_t)i, chunk[i]);
        got += (size_t)n;
    }
    assert_true(http_fixture_wait(f, is_drained, NULL, 2000));
    assert_int_equal(probe.drained, 1);
    assert_true(probe.queued_at_drain <= BP_LOW);
    http_fixture_on_loop(f, do_end, NULL);
    assert_int_equal(client_read_chunk(c, (char *)chunk, sizeof chunk), 0);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
    assert_int_equal(probe.why, SB_STREAM_ENDED);
    assert_int_equal(probe.drained, 1);
    client_close(c);
}

/* A client that closes, or resets, an idle stream is noticed at once. */
static void test_client_disconnect_closes(void **state)
{
    struct http_fixture *f = *state;
    for (int reset = 0; reset < 2; reset++) {
        memset(&probe, 0, sizeof probe);
        struct client *c = client_open(f->port);
        open_stream(f, c);
        struct response resp;
        assert_int_equal(client_read_head(c, &resp), 0);
        assert_int_equal(stream_write(f, "x", 1), 0);
        expect_chunk(c, "x");
        usleep(50 * 1000);
        assert_false(http_fixture_wait(f, is_closed, NULL, 0));
        if (reset) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        uint64_t start = sb_now_ms();
        client_close(c);
        assert_true(http_fixture_wait(f, is_closed, NULL, 2000));
        assert_true(sb_now_ms() - start < 1000);
        assert_int_equal(probe.closed, 1);
        assert_int_equal(probe.why, SB_STREAM_CLIENT_GONE);
    }
    struct response resp;
    request(f->port, "GET", "/health", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
}

/* ---- a client that vanishes without a word ----
 *
 * A relay between the client and the server stands for a network path
 * whose far end forgot the connection (a rebooted host, a NAT that dropped
 * its mapping): once the client has vanished the server hears nothing, no
 * FIN, until it sends something, which is answered with a reset. Only a
 * write can find such a client out; on an idle stream, the heartbeat's. */
struct relay {
    int listen_fd;
    unsigned listen_port;       /* where the client connects */
    unsigned server_port;
    pthread_t thread;
    volatile int vanish;        /* set by the test */
    volatile int reset_sent;
};

static void *relay_run(void *arg)
{
    struct relay *r = arg;
    int client = accept(r->listen_fd, NULL, NULL);
    assert_true(client >= 0);
    int server = try_connect(r->server_port);
    assert_true(server >= 0);
    char buf[4096];
    while (!r->reset_sent) {
        if (r->vanish && client >= 0) {
            close(client);      /* the client is gone; the server is not told */
            client = -1;
        }
        struct pollfd p[2] = {{.fd = server, .events = POLLIN}, {.fd = client, .events = POLLIN}};
        if (poll(p, client >= 0 ? 2 : 1, 20) < 0)
            break;
        if (client >= 0 && (p[1].revents & (POLLIN | POLLHUP))) {
            ssize_t got = recv(client, buf, sizeof buf, 0);
            if (got <= 0)
                break;
            send(server, buf, (size_t)got, MSG_NOSIGNAL);
        }
        if (p[0].revents & (POLLIN | POLLHUP)) {
            ssize_t got = recv(server, buf, sizeof buf, 0);
            if (got <= 0)
                break;
            if (client >= 0) {
                send(client, buf, (size_t)got, MSG_NOSIGNAL);
            } else {
                struct linger lg = {1, 0};     /* "no such connection": RST */
                setsockopt(server, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                close(server);
                server = -1;
                r->reset_sent = 1;
            }
        }
    }
    if (client >= 0)
        close(client);
    if (server >= 0)
        close(server);
    return NULL;
}

static void relay_start(struct relay *r, unsigned server_port)
{
    memset(r, 0, sizeof *r);
    r->server_port = server_port;
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(r->listen_fd, 1), 0);
    socklen_t len = sizeof addr;
    assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&addr, &len), 0);
    r->listen_port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, relay_run, r), 0);
}

static void do_heartbeat(void *p)
{
    assert_int_equal(sb_stream_heartbeat(probe.s, *(uint64_t *)p, ":hb\n", 4), 0);
}

/* The heartbeat is written only when the stream has been idle that long,
 * and it finds out a client that vanished. */
static void test_heartbeat_finds_vanished_client(void **state)
{
    struct http_fixture *f = *state;
    struct client *c = client_open(f->port);
    open_stream(f, c);
    struct response resp;
    assert_int_equal(client_read_head(c, &resp), 0);
    uint64_t interval = 200;
    http_fixture_on_loop(f, do_heartbeat, &interval);
    /* writes every 50 ms keep it quiet */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(stream_write(f, "d", 1), 0);
        expect_chunk(c, "d");
        usleep(50 * 1000);
    }
    uint64_t start = sb_now_ms();
    expect_chunk(c, ":hb\n");
    uint64_t waited = sb_now_ms() - start;
    if (waited < 100 || waited > 400)
        fail_msg("heartbeat after %llu ms idle (interval 200 ms)", (unsigned long long)waited);
    client_close(c);
    assert_true(http_fixture_wait(f, is_closed, NULL, 2000));

    /* through the relay: vanish, and only the heartbeat can tell */
    memset(&probe, 0, sizeof probe);
    struct relay r;
    relay_start(&r, f->port);
    c = client_open(r.listen_port);
    open_stream(f, c);
    assert_int_equal(client_read_head(c, &resp), 0);
    http_fixture_on_loop(f, do_heartbeat, &interval);
    r.vanish = 1;
    start = sb_now_ms();
    assert_true(http_fixture_wait(f, is_closed, NULL, 3000));
    uint64_t noticed = sb_now_ms() - start;
    assert_int_equal(probe.why, SB_STREAM_CLIENT_GONE);
    assert_true(r.reset_sent);
    if (noticed < 100)
        fail_msg("vanished client noticed after %llu ms, before any heartbeat",
                 (unsigned long long)noticed);
    pthread_join(r.thread, NULL);
    close(r.listen_fd);
    client_close(c);
}

/* Shutdown ends an open stream at once and cleanly (last chunk, on_close
 * SHUTDOWN), refuses new streams, and does not wait its grace period. */
static void do_shutdown_and_write(void *p)
{
    struct http_fixture *f = p;
    sb_server_shutdown(f->server);
    assert_int_equal(sb_stream_write(probe.s, "late", 4), -1);
}

static void test_shutdown_ends_streams(void **state)
{
    struct http_fixture *f = start(5000);
    struct client *c = client_open(f->port);
    open_stream(f, c);
    struct response resp;
    assert_int_equal(client_read_head(c, &resp), 0);
    assert_int_equal(stream_write(f, "before", 6), 0);
    expect_chunk(c, "before");
    uint64_t start_ms = sb_now_ms();
    http_fixture_on_loop(f, do_shutdown_and_write, f);
    char buf[16];
    assert_int_equal(client_read_chunk(c, buf, sizeof buf), 0);
    http_fixture_join(f);
    uint64_t took = sb_now_ms() - start_ms;
    if (took > 1500)
        fail_msg("shutdown with an open stream took %llu ms", (unsigned long long)took);
    assert_int_equal(probe.closed, 1);
    assert_int_equal(probe.why, SB_STREAM_SHUTDOWN);
    client_close(c);
    http_fixture_free(f, NULL);
}

/* A deferred request that would become a stream once shutdown has begun is
 * refused (503), and can still be answered with that error. */
static void do_open_refused(void *p)
{
    struct sb_err err;
    assert_null(sb_stream_open(probe.req, 200, NULL, &err));
    assert_int_equal(err.status, 503);
    sb_respond_error(probe.req, &err);
}

static void do_shutdown(void *p) { sb_server_shutdown(p); }

static void test_no_new_stream_during_shutdown(void **state)
{
    struct http_fixture *f = start(5000);
    struct client *c = client_open(f->port);
    client_sendf(c, "GET /later HTTP/1.1\r\nHost: t\r\nX-API-Key: good-key\r\n\r\n");
    assert_true(http_fixture_wait(f, has_later, NULL, 2000));
    http_fixture_on_loop(f, do_shutdown, f->server);
    http_fixture_on_loop(f, do_open_refused, NULL);
    struct response resp;
    assert_int_equal(client_read(c, &resp), 0);
    assert_int_equal(resp.status, 503);
    client_close(c);
    http_fixture_join(f);
    http_fixture_free(f, NULL);
}

static int threads_now(void)
{
    FILE *status = fopen("/proc/self/status", "r");
    assert_non_null(status);
    char line[256];
    int threads = -1;
    while (fgets(line, sizeof line, status))
        if (sscanf(line, "Threads: %d", &threads) == 1)
            break;
    fclose(status);
    return threads;
}

static int all_many_open(void *p) { return many_open == MANY; }
static int all_many_closed(void *p) { return many_closed == MANY; }

static void do_write_many(void *p)
{
    for (int i = 0; i < MANY; i++)
        assert_int_equal(sb_stream_write(many[i], "tick\n", 5), 0);
}

/* A hundred open streams hold no thread, cost no CPU while idle, keep no
 * request from being served, and each gets its own writes. */
static void test_many_idle_streams(void **state)
{
    struct http_fixture *f = *state;
    many_open = many_closed = 0;
    int threads_before = threads_now();
    struct client *clients[MANY];
    for (int i = 0; i < MANY; i++) {
        clients[i] = client_open(f->port);
        client_sendf(clients[i], "GET /many HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    assert_true(http_fixture_wait(f, all_many_open, NULL, 5000));
    struct response resp;
    for (int i = 0; i < MANY; i++)
        assert_int_equal(client_read_head(clients[i], &resp), 0);
    assert_int_equal(threads_now(), threads_before);
    uint64_t cpu_before = cpu_ms();
    usleep(300 * 1000);
    uint64_t used = cpu_ms() - cpu_before;
    if (used > 50)
        fail_msg("%d idle streams used %llu ms of CPU in 300 ms", MANY, (unsigned long long)used);
    uint64_t start = sb_now_ms();
    request(f->port, "GET", "/health", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    assert_true(sb_now_ms() - start < 200);
    http_fixture_on_loop(f, do_write_many, NULL);
    for (int i = 0; i < MANY; i++)
        expect_chunk(clients[i], "tick\n");
    for (int i = 0; i < MANY; i++)
        client_close(clients[i]);
    assert_true(http_fixture_wait(f, all_many_closed, NULL, 5000));
}

/* A client that stops reading altogether is dropped after the idle timeout
 * (1 s here), however much is queued; an idle stream (suspended) is not. */
static void test_stalled_client_times_out(void **state)
{
    idle_timeout_s = 1;
    struct http_fixture *f = start(0);
    idle_timeout_s = 0;
    struct client *c = client_open(f->port);
    int rcvbuf = 64 * 1024;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    open_stream(f, c);
    struct response resp;
    assert_int_equal(client_read_head(c, &resp), 0);
    usleep(1500 * 1000);        /* idle past the timeout: still open */
    assert_false(http_fixture_wait(f, is_closed, NULL, 0));
    struct bp_fill fill = {0};
    uint64_t start_ms = sb_now_ms();
    http_fixture_on_loop(f, do_fill, &fill);
    assert_true(http_fixture_wait(f, is_closed, NULL, 4000));
    uint64_t took = sb_now_ms() - start_ms;
    assert_int_equal(probe.why, SB_STREAM_CLIENT_GONE);
    if (took < 800)
        fail_msg("stalled client dropped after %llu ms (timeout 1 s)", (unsigned long long)took);
    client_close(c);
    http_fixture_shutdown(f);
    http_fixture_join(f);
    http_fixture_free(f, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunks_arrive_as_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_stream_sleeps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_for_deferred_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_back_pressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_disconnect_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_finds_vanished_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_idle_streams, setup, teardown),
        cmocka_unit_test(test_stalled_client_times_out),
        cmocka_unit_test(test_shutdown_ends_streams),
        cmocka_unit_test(test_no_new_stream_during_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
