/*
 * http_harness.c - the server fixture and raw HTTP/1.1 client shared by the
 * test_http_*.c binaries (see http_harness.h).
 */
#include "http_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the server ---- */

static void *loop_thread(void *arg)
{
    struct http_fixture *f = arg;
    f->loop_rc = sb_loop_run(f->loop);
    return NULL;
}

struct http_fixture *http_fixture_start(struct sb_router *router,
                                        const struct sb_server_config *config)
{
    struct http_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->loop = sb_loop_new();
    assert_non_null(f->loop);
    f->router = router;
    struct sb_server_config c = *config;
    if (!c.listen)
        c.listen = "127.0.0.1:0";
    struct sb_err err = {0};
    f->server = sb_server_new(f->loop, f->router, &c, &err);
    if (!f->server)
        fail_msg("sb_server_new: %s", err.msg);
    f->port = sb_server_port(f->server);
    assert_true(f->port > 0);
    assert_int_equal(pthread_create(&f->thread, NULL, loop_thread, f), 0);
    return f;
}

static void post_shutdown(struct sb_loop *loop, void *arg) { sb_server_shutdown(arg); }

void http_fixture_shutdown(struct http_fixture *f)
{
    assert_int_equal(sb_loop_post(f->loop, post_shutdown, f->server), 0);
}

void http_fixture_join(struct http_fixture *f)
{
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    assert_int_equal(f->loop_rc, 0);
}

void http_fixture_free(struct http_fixture *f, void (*before_loop_free)(void))
{
    sb_server_free(f->server);
    if (before_loop_free)
        before_loop_free();
    sb_loop_free(f->loop);
    sb_router_free(f->router);
    free(f);
}

struct on_loop_call {
    void (*fn)(void *arg);
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t done_cond;
    int done;
};

static void on_loop_run(struct sb_loop *loop, void *p)
{
    struct on_loop_call *call = p;
    call->fn(call->arg);
    pthread_mutex_lock(&call->lock);
    call->done = 1;
    pthread_cond_signal(&call->done_cond);
    pthread_mutex_unlock(&call->lock);
}

void http_fixture_on_loop(struct http_fixture *f, void (*fn)(void *arg), void *arg)
{
    struct on_loop_call call = {.fn = fn, .arg = arg};
    pthread_mutex_init(&call.lock, NULL);
    pthread_cond_init(&call.done_cond, NULL);
    assert_int_equal(sb_loop_post(f->loop, on_loop_run, &call), 0);
    pthread_mutex_lock(&call.lock);
    while (!call.done)
        pthread_cond_wait(&call.done_cond, &call.lock);
    pthread_mutex_unlock(&call.lock);
    pthread_mutex_destroy(&call.lock);
    pthread_cond_destroy(&call.done_cond);
}

struct wait_call {
    int (*cond)(void *arg);
    void *arg;
    int result;
};

static void wait_check(void *p)
{
    struct wait_call *w = p;
    w->result = w->cond(w->arg);
}

int http_fixture_wait(struct http_fixture *f, int (*cond)(void *arg), void *arg, int wait_ms)
{
    struct wait_call w = {.cond = cond, .arg = arg};
    uint64_t deadline = sb_now_ms() + (uint64_t)wait_ms;
    for (;;) {
        http_fixture_on_loop(f, wait_check, &w);
        if (w.result || sb_now_ms() >= deadline)
            return w.result;
        usleep(5 * 1000);
    }
}

/* ---- the client ---- */

int try_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct client *client_open(unsigned port)
{
    struct client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = try_connect(port);
    assert_true(c->fd >= 0);
    return c;
}

void client_close(struct client *c)
{
    close(c->fd);
    free(c);
}

void client_send(struct client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

void client_sendf(struct client *c, const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof text);
    client_send(c, text, (size_t)n);
}

int client_fill(struct client *c)
{
    assert_true(c->len < sizeof c->buf);
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

const char *header(const struct response *resp, const char *name)
{
    static char value[512];
    size_t name_len = strlen(name);
    for (const char *line = resp->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end)
            break;
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ')
                v++;
            snprintf(value, sizeof value, "%.*s", (int)(end - v), v);
            return value;
        }
        line = end + 2;
    }
    return NULL;
}

int client_read(struct client *c, struct response *resp)
{
    char *end;
    c->buf[c->len] = '\0';
    while (c->len + 1 >= sizeof c->buf || !(end = strstr(c->buf, "\r\n\r\n"))) {
        if (client_fill(c) < 0)
            return -1;
        c->buf[c->len] = '\0';
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    memset(resp, 0, sizeof *resp);
    assert_true(head_len < sizeof resp->headers);
    memcpy(resp->headers, c->buf, head_len);
    assert_int_equal(sscanf(resp->headers, "HTTP/1.1 %d", &resp->status), 1);
    const char *length = header(resp, "Content-Length");
    assert_non_null(length);
    resp->body_len = strtoul(length, NULL, 10);
    assert_true(resp->body_len < sizeof resp->body);
    while (c->len < head_len + resp->body_len)
        if (client_fill(c) < 0)
            return -1;
    memcpy(resp->body, c->buf + head_len, resp->body_len);
    c->len -= head_len + resp->body_len;
    memmove(c->buf, c->buf + head_len + resp->body_len, c->len);
    return 0;
}

void request(unsigned port, const char *method, const char *path,
                    const char *extra_headers, const char *body, struct response *resp)
{
    struct client *c = client_open(port);
    client_sendf(c, "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n%s", method, path,
                 extra_headers ? extra_headers : "", body ? strlen(body) : 0, body ? body : "");
    assert_int_equal(client_read(c, resp), 0);
    client_close(c);
}

json_t *json_of(const struct response *resp)
{
    json_error_t jerr;
    json_t *j = json_loadb(resp->body, resp->body_len, 0, &jerr);
    if (!j)
        fail_msg("response body is not JSON (%s): %.*s", jerr.text, (int)resp->body_len,
                 resp->body);
    return j;
}

/* Asserts resp is the error {"code": status, "message": message}. */

int client_read_head(struct client *c, struct response *resp)
{
    char *end;
    c->buf[c->len] = '\0';
    while (c->len + 1 >= sizeof c->buf || !(end = strstr(c->buf, "\r\n\r\n"))) {
        if (client_fill(c) < 0)
            return -1;
        c->buf[c->len] = '\0';
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    memset(resp, 0, sizeof *resp);
    assert_true(head_len < sizeof resp->headers);
    memcpy(resp->headers, c->buf, head_len);
    assert_int_equal(sscanf(resp->headers, "HTTP/1.1 %d", &resp->status), 1);
    c->len -= head_len;
    memmove(c->buf, c->buf + head_len, c->len);
    return 0;
}

/* Waits until c->buf holds "\r\n" at or after from; its offset, or -1. */
static ssize_t client_find_crlf(struct client *c, size_t from)
{
    for (;;) {
        for (size_t i = from; i + 1 < c->len; i++)
            if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
                return (ssize_t)i;
        if (client_fill(c) < 0)
            return -1;
    }
}

ssize_t client_read_chunk(struct client *c, char *out, size_t max)
{
    ssize_t eol = client_find_crlf(c, 0);
    if (eol < 0)
        return -1;
    char *end;
    size_t size = strtoul(c->buf, &end, 16);
    assert_true(end > c->buf && end <= c->buf + eol);
    size_t need = (size_t)eol + 2 + size + 2;
    if (size == 0) {
        /* no trailers from this server: the last chunk is "0\r\n\r\n" */
        while (c->len < need)
            if (client_fill(c) < 0)
                return -1;
    } else {
        assert_true(size <= max);
        assert_true(need < sizeof c->buf);
        while (c->len < need)
            if (client_fill(c) < 0)
                return -1;
        memcpy(out, c->buf + eol + 2, size);
    }
    assert_memory_equal(c->buf + need - 2, "\r\n", 2);
    c->len -= need;
    memmove(c->buf, c->buf + need, c->len);
    return (ssize_t)size;
}
