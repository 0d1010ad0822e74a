/*
 * client.c - blocking HTTP/1.1 to the sandbase server for the CLI (see
 * client.h): one connection per call, the whole answer read (Content-Length,
 * chunked or until close), and the WebSocket handshake.
 */
#include "cli/client.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base64.h"

#define MAX_ANSWER (64u * 1024u * 1024u)

struct buf {
    char *data;
    size_t len, cap;
};

static int buf_add(struct buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

/* host and port of $SANDBASE_URL. */
static int server_address(char host[256], char port[8], struct sb_err *err)
{
    const char *url = getenv("SANDBASE_URL");
    if (!url || !*url)
        url = CLI_DEFAULT_URL;
    if (strncmp(url, "http://", 7) != 0)
        return sb_err_set(err, 400, "SANDBASE_URL must be http://HOST[:PORT] (got %s)", url);
    const char *h = url + 7, *end = h + strcspn(h, "/");
    const char *colon = memchr(h, ':', (size_t)(end - h));
    size_t hlen = (size_t)((colon ? colon : end) - h);
    if (hlen == 0 || hlen >= 256)
        return sb_err_set(err, 400, "SANDBASE_URL has no host: %s", url);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    size_t plen = colon ? (size_t)(end - colon - 1) : 2;
    if (plen == 0 || plen >= 8)
        return sb_err_set(err, 400, "SANDBASE_URL has a bad port: %s", url);
    snprintf(port, 8, "%.*s", (int)plen, colon ? colon + 1 : "80");
    return 0;
}

static int connect_server(struct sb_err *err)
{
    char host[256], port[8];
    if (server_address(host, port, err) < 0)
        return -1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return sb_err_set(err, 502, "cannot resolve %s: %s", host, gai_strerror(rc));
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return sb_err_sys(err, 502, "cannot reach the sandbase server at %s:%s (set SANDBASE_URL)", host, port);
    return fd;
}

static int send_all(int fd, const char *data, size_t len, struct sb_err *err)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sb_err_sys(err, 502, "sending to the server");
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_head(int fd, const char *method, const char *path, const char *extra, size_t body_len,
                     struct sb_err *err)
{
    const char *key = getenv("SANDBASE_API_KEY");
    char head[4096];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: sandbase\r\n%s%s%s%s"
                     "Content-Length: %zu\r\n\r\n", method, path, key && *key ? "Authorization: Bearer " : "",
                     key && *key ? key : "", key && *key ? "\r\n" : "", extra, body_len);
    if (n < 0 || (size_t)n >= sizeof head)
        return sb_err_set(err, 400, "request too long");
    return send_all(fd, head, (size_t)n, err);
}

/* Reads until the end of the headers; the rest read so far stays after them in b. */
static char *read_head(int fd, struct buf *b, struct sb_err *err)
{
    char chunk[4096];
    char *end;
    while (!b->data || !(end = strstr(b->data, "\r\n\r\n"))) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || b->len > 65536 || buf_add(b, chunk, (size_t)n) < 0) {
            sb_err_set(err, 502, "the server closed the connection without an answer");
            return NULL;
        }
    }
    return end + 4;
}

static const char *header_value(const char *head, const char *body, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line < body; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, name, n) == 0 && line[2 + n] == ':')
            return line + 3 + n + strspn(line + 3 + n, " ");
    return NULL;
}

/* Decodes a chunked body in place; -1 when malformed. */
static long dechunk(char *data, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        unsigned long size = strtoul(data + in, &end, 16);
        char *crlf = strstr(data + in, "\r\n");
        if (!crlf || end == data + in)
            return -1;
        in = (size_t)(crlf - data) + 2;
        if (size == 0)
            return (long)out;
        if (in + size + 2 > len)
            return -1;
        memmove(data + out, data + in, size);
        out += size;
        in += size + 2;
    }
}

int cli_http(const char *method, const char *path, json_t *body, int *status, json_t **out, struct sb_err *err)
{
    *out = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int fd = connect_server(err);
    struct buf b = {0};
    int rc = -1;
    if (fd < 0)
        goto done;
    size_t text_len = text ? strlen(text) : 0;
    if (send_head(fd, method, path, text ? "Content-Type: application/json\r\nConnection: close\r\n"
                                         : "Connection: close\r\n", text_len, err) < 0 ||
        (text && send_all(fd, text, text_len, err) < 0))
        goto done;
    char *start = read_head(fd, &b, err);
    if (!start)
        goto done;
    size_t head_len = (size_t)(start - b.data);
    char chunk[65536];
    for (;;) {                      /* Connection: close: the body ends with the connection */
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (b.len > MAX_ANSWER || buf_add(&b, chunk, (size_t)n) < 0) {
            sb_err_set(err, 502, "the server's answer is too large");
            goto done;
        }
    }
    start = b.data + head_len;
    if (sscanf(b.data, "HTTP/1.%*d %d", status) != 1) {
        sb_err_set(err, 502, "the server answered something that is not HTTP");
        goto done;
    }
    const char *te = header_value(b.data, start, "Transfer-Encoding");
    long body_len = (long)(b.len - head_len);
    if (te && strncasecmp(te, "chunked", 7) == 0 && (body_len = dechunk(start, (size_t)body_len)) < 0) {
        sb_err_set(err, 502, "the server's chunked answer is malformed");
        goto done;
    }
    json_error_t jerr;
    json_t *parsed = body_len > 0 ? json_loadb(start, (size_t)body_len, 0, &jerr) : NULL;
    if (*status >= 400) {
        const char *msg = json_string_value(json_object_get(parsed, "message"));
        sb_err_set(err, *status, "%s", msg ? msg : "the server refused the request");
        json_decref(parsed);
        goto done;
    }
    *out = parsed;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    free(b.data);
    free(text);
    return rc;
}

int cli_ws_connect(const char *path, char **extra, size_t *extra_len, struct sb_err *err)
{
    uint8_t nonce[16];
    char key[32], headers[160];
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        return sb_err_sys(err, 500, "getrandom");
    sb_base64_encode(nonce, sizeof nonce, key);
    snprintf(headers, sizeof headers, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n", key);
    int fd = connect_server(err);
    if (fd < 0)
        return -1;
    struct buf b = {0};
    char *start = NULL;
    if (send_head(fd, "GET", path, headers, 0, err) < 0 || !(start = read_head(fd, &b, err)))
        goto fail;
    int status = 0;
    sscanf(b.data, "HTTP/1.%*d %d", &status);
    if (status != 101) {
        const char *msg = strstr(start, "\"message\":\"");
        sb_err_set(err, status ? status : 502, "%.*s", msg ? (int)strcspn(msg + 11, "\"") : 40,
                   msg ? msg + 11 : "the server refused the WebSocket");
        goto fail;
    }
    *extra_len = b.len - (size_t)(start - b.data);
    *extra = malloc(*extra_len + 1);
    if (!*extra) {
        sb_err_set(err, 500, "out of memory");
        goto fail;
    }
    memcpy(*extra, start, *extra_len);
    free(b.data);
    return fd;
fail:
    free(b.data);
    close(fd);
    return -1;
}
