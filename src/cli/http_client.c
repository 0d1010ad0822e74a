/*
 * http_client.c - see http_client.h. Connection: close on every request, so
 * a body without Content-Length and not chunked simply ends with the
 * connection.
 */
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/http_client.h"

int cli_http_init(struct cli_http *c, const char *base, const char *key, struct sb_err *err)
{
    memset(c, 0, sizeof *c);
    c->key = key;
    if (strncmp(base, "http://", 7) != 0)
        return sb_err_set(err, 400, "server URL must start with http:// (got %s)", base);
    const char *host = base + 7;
    const char *end = host + strcspn(host, "/");
    const char *colon = memchr(host, ':', (size_t)(end - host));
    size_t hlen = (size_t)((colon ? colon : end) - host);
    if (hlen == 0 || hlen >= sizeof c->host)
        return sb_err_set(err, 400, "no host in server URL %s", base);
    memcpy(c->host, host, hlen);
    if (colon) {
        size_t plen = (size_t)(end - colon - 1);
        if (plen == 0 || plen >= sizeof c->port)
            return sb_err_set(err, 400, "bad port in server URL %s", base);
        memcpy(c->port, colon + 1, plen);
    } else {
        strcpy(c->port, "80");
    }
    return 0;
}

static int dial(const struct cli_http *c, struct sb_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(c->host, c->port, &hints, &res);
    if (rc != 0)
        return sb_err_set(err, 502, "cannot resolve %s: %s", c->host, gai_strerror(rc));
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return sb_err_sys(err, 502, "cannot connect to %s:%s (is `sandbase serve` running? set SANDBASE_URL)",
                          c->host, c->port);
    return fd;
}

static int send_all(int fd, const char *p, size_t len, struct sb_err *err)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sb_err_sys(err, 502, "sending the request");
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The next byte of the raw response stream, or -1 at its end. */
static int raw_byte(struct cli_http_response *r)
{
    if (r->buf_off == r->buf_len) {
        ssize_t n;
        do
            n = recv(r->fd, r->buf, sizeof r->buf, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            return -1;
        r->buf_len = (size_t)n;
        r->buf_off = 0;
    }
    return (unsigned char)r->buf[r->buf_off++];
}

static int read_line(struct cli_http_response *r, char *line, size_t len)
{
    size_t n = 0;
    int ch;
    while ((ch = raw_byte(r)) >= 0 && ch != '\n')
        if (n < len - 1)
            line[n++] = (char)ch;
    if (ch < 0 && n == 0)
        return -1;
    if (n && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    return 0;
}

int cli_http_request(struct cli_http *c, const char *method, const char *path, const struct cli_http_body *body,
                     struct cli_http_response *r, struct sb_err *err)
{
    memset(r, 0, sizeof *r);
    r->fd = dial(c, err);
    if (r->fd < 0)
        return -1;
    char head[8192];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nX-API-Key: %s\r\nConnection: close\r\n",
                     method, path, c->host, c->port, c->key ? c->key : "");
    if (body)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %s\r\nContent-Length: %llu\r\n",
                      body->content_type, (unsigned long long)body->len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    if (n >= (int)sizeof head || send_all(r->fd, head, (size_t)n, err) < 0)
        goto fail;
    if (body && body->fd < 0 && body->mem && send_all(r->fd, body->mem, (size_t)body->len, err) < 0)
        goto fail;
    uint64_t sent = 0;
    char buf[256 * 1024];
    while (body && body->fd >= 0 && sent < body->len) {
        ssize_t got = read(body->fd, buf, sizeof buf);
        if (got <= 0) {
            sb_err_sys(err, 500, "reading the local file");
            goto fail;
        }
        if (send_all(r->fd, buf, (size_t)got, err) < 0)
            goto fail;
        sent += (uint64_t)got;
        if (c->progress)
            c->progress(c->progress_arg, sent, body->len);
    }
    char line[4096];
    if (read_line(r, line, sizeof line) < 0 || sscanf(line, "HTTP/%*s %d", &r->status) != 1) {
        sb_err_set(err, 502, "no HTTP answer from %s:%s", c->host, c->port);
        goto fail;
    }
    r->length = UINT64_MAX;
    while (read_line(r, line, sizeof line) == 0 && line[0]) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            r->length = strtoull(line + 15, NULL, 10);
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked"))
            r->chunked = 1;
    }
    r->left = r->chunked ? 0 : r->length;
    return 0;
fail:
    close(r->fd);
    r->fd = -1;
    return -1;
}

long cli_http_read(struct cli_http_response *r, void *out, size_t len, struct sb_err *err)
{
    if (r->done || len == 0)
        return 0;
    if (r->chunked && r->left == 0) {
        char line[128];
        if (read_line(r, line, sizeof line) == 0 && line[0] == '\0')   /* the CRLF after a chunk */
            if (read_line(r, line, sizeof line) < 0)
                line[0] = '\0';
        char *end;
        r->left = strtoull(line, &end, 16);
        if (end == line)
            return sb_err_set(err, 502, "malformed chunked response");
        if (r->left == 0) {
            r->done = 1;
            return 0;
        }
    }
    size_t want = r->left != UINT64_MAX && r->left < len ? (size_t)r->left : len;
    size_t got = 0;
    char *p = out;
    if (r->buf_off < r->buf_len) {
        got = r->buf_len - r->buf_off < want ? r->buf_len - r->buf_off : want;
        memcpy(p, r->buf + r->buf_off, got);
        r->buf_off += got;
    } else {
        ssize_t n;
        do
            n = recv(r->fd, p, want, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return sb_err_sys(err, 502, "reading the response");
        if (n == 0) {
            if (r->left != UINT64_MAX || r->chunked)
                return sb_err_set(err, 502, "the server closed the connection mid-response");
            r->done = 1;
            return 0;
        }
        got = (size_t)n;
    }
    if (r->left != UINT64_MAX) {
        r->left -= got;
        if (!r->chunked && r->left == 0)
            r->done = 1;
    }
    return (long)got;
}

void cli_http_close(struct cli_http_response *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

int cli_http_error(struct cli_http_response *r, struct sb_err *err)
{
    char body[4096];
    size_t n = 0;
    long got;
    struct sb_err ignored;
    while (n < sizeof body - 1 && (got = cli_http_read(r, body + n, sizeof body - 1 - n, &ignored)) > 0)
        n += (size_t)got;
    body[n] = '\0';
    json_t *j = json_loads(body, 0, NULL);
    const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
    sb_err_set(err, r->status, "%d %s", r->status, msg ? msg : body);
    json_decref(j);
    return -1;
}

void cli_http_escape(const char *s, char *out, size_t len)
{
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < len; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p))
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, len - n, "%%%02X", *p);
    }
    out[n] = '\0';
}
