/*
 * request.c - what handlers call on an sb_request (see request.h): reading
 * params, query, headers and the JSON body, and building answers.
 *
 * Every answer becomes an MHD_Response here and goes to http_conn_answer()
 * or http_conn_complete() in server.c, which decide when it is queued.
 * Error bodies are built in exactly one place, http_error_response().
 * Must never queue a response on MHD itself or touch MHD off the loop thread:
 * header and query lookups are valid only while the handler runs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/utf8.h"
#include "http/conn.h"

const char *sb_request_param(const struct sb_request *req, const char *name)
{
    for (int i = 0; i < req->param_count; i++)
        if (strcmp(req->param_names[i], name) == 0)
            return req->param_values[i];
    return NULL;
}

const char *sb_request_query(const struct sb_request *req, const char *name)
{
    struct MHD_Connection *mhd = req->conn->mhd;
    return mhd ? MHD_lookup_connection_value(mhd, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

struct query_each {
    const char *name;
    int (*fn)(void *arg, const char *value);
    void *arg;
};

static enum MHD_Result query_each_arg(void *p, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct query_each *qe = p;
    if (strcmp(key, qe->name) != 0)
        return MHD_YES;
    return qe->fn(qe->arg, value ? value : "") == 0 ? MHD_YES : MHD_NO;
}

void sb_request_query_each(const struct sb_request *req, const char *name,
                           int (*fn)(void *arg, const char *value), void *arg)
{
    struct MHD_Connection *mhd = req->conn->mhd;
    struct query_each qe = {.name = name, .fn = fn, .arg = arg};
    if (mhd)
        MHD_get_connection_values(mhd, MHD_GET_ARGUMENT_KIND, query_each_arg, &qe);
}

const char *sb_request_header(const struct sb_request *req, const char *name)
{
    struct MHD_Connection *mhd = req->conn->mhd;
    return mhd ? MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, name) : NULL;
}

struct headers_each {
    int (*fn)(void *arg, const char *name, const char *value);
    void *arg;
};

static enum MHD_Result header_each(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct headers_each *he = cls;
    return he->fn(he->arg, key, value ? value : "") == 0 ? MHD_YES : MHD_NO;
}

void sb_request_headers_each(const struct sb_request *req,
                             int (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    struct headers_each he = {fn, arg};
    if (req->conn->mhd)
        MHD_get_connection_values(req->conn->mhd, MHD_HEADER_KIND, header_each, &he);
}

const char *sb_request_raw_target(const struct sb_request *req)
{
    return req->conn->mhd ? req->conn->raw_target : NULL;
}

void sb_request_client_address(const struct sb_request *req, char *out, size_t len)
{
    out[0] = '\0';
    const union MHD_ConnectionInfo *info =
        req->conn->mhd ? MHD_get_connection_info(req->conn->mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS)
                       : NULL;
    if (!info || !info->client_addr)
        return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

static int body_is_blank(const struct sb_request *req)
{
    for (size_t i = 0; i < req->body_len; i++)
        if (!strchr(" \t\r\n", req->body[i]))
            return 0;
    return 1;
}

/* Caller owns the result. */
json_t *sb_request_json(const struct sb_request *req, int allow_empty, struct sb_err *err)
{
    if (body_is_blank(req)) {
        if (allow_empty)
            return json_object();
        sb_err_set(err, 400, "request body is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        sb_err_set(err, 400, "invalid JSON body: %s at line %d column %d", jerr.text,
                   jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        sb_err_set(err, 400, "request body must be a JSON object");
        return NULL;
    }
    return body;
}

/* ---- building responses ---- */

static struct MHD_Response *raw_response(const char *content_type, const void *data, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (resp && content_type &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* Steals body. */
struct MHD_Response *http_json_response(json_t *body)
{
    if (!body)
        return NULL;
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text)
        return NULL;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return NULL;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") !=
        MHD_YES) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* Replaces bytes that are not valid UTF-8 with '?', so a message quoting a
 * client's path can always be encoded as a JSON string. */
static void utf8_sanitize(char *s)
{
    size_t left = strlen(s);
    while (left > 0) {
        size_t n = sb_utf8_sequence(s, left);
        if (n == 0) {
            *s = '?';
            n = 1;
        }
        s += n;
        left -= n;
    }
}

/* The one place error bodies are made: the route's renderer's, or
 * {"code": status, "message": msg}. A status that is not an error (0, or
 * below 400) is answered as 500; the renderer sees the error with that
 * status and a message that is valid UTF-8, and may pick another status. */
struct MHD_Response *http_error_response(sb_error_render_fn render, const struct sb_err *err,
                                         int *status_out)
{
    struct sb_err clean = *err;
    clean.status = err->status >= 400 && err->status <= 599 ? err->status : 500;
    if (!clean.msg[0])
        snprintf(clean.msg, sizeof clean.msg, "internal error");
    utf8_sanitize(clean.msg);
    int status = clean.status;
    json_t *body = render ? render(&clean, &status) : NULL;
    if (status < 100 || status > 599)
        status = clean.status;
    if (!body) {
        status = clean.status;
        body = json_pack("{s:i, s:s}", "code", status, "message", clean.msg);
    }
    *status_out = status;
    return http_json_response(body);
}

/* ---- answering ---- */

void sb_respond_json(struct sb_request *req, int status, json_t *body)
{
    http_conn_answer(req->conn, status, http_json_response(body));
}

void sb_respond_json_header(struct sb_request *req, int status, json_t *body, const char *name,
                            const char *value)
{
    struct MHD_Response *resp = http_json_response(body);
    if (resp && name && MHD_add_response_header(resp, name, value) != MHD_YES) {
        MHD_destroy_response(resp);
        resp = NULL;    /* answered 500 */
    }
    http_conn_answer(req->conn, status, resp);
}

void sb_respond_empty(struct sb_request *req, int status)
{
    http_conn_answer(req->conn, status, raw_response(NULL, "", 0));
}

void sb_respond_error(struct sb_request *req, const struct sb_err *err)
{
    int status;
    struct MHD_Response *resp = http_error_response(req->conn->match.render_error, err, &status);
    http_conn_answer(req->conn, status, resp);
}

void sb_respond_raw(struct sb_request *req, int status, const char *content_type,
                    const void *data, size_t len)
{
    http_conn_answer(req->conn, status, raw_response(content_type, data, len));
}

void sb_request_defer(struct sb_request *req) { http_conn_defer(req->conn); }

void sb_request_on_gone(struct sb_request *req, sb_request_gone_fn cb, void *arg)
{
    http_conn_on_gone(req->conn, cb, arg);
}

int sb_request_body_sink(struct sb_request *req, uint64_t max_bytes, sb_body_data_fn on_data,
                         sb_body_end_fn on_end, void *arg, struct sb_err *err)
{
    return http_conn_body_sink(req->conn, max_bytes, on_data, on_end, arg, err);
}

void sb_request_body_resume(struct sb_request *req) { http_conn_body_resume(req->conn); }

void sb_request_complete_json(struct sb_request *req, int status, json_t *body)
{
    http_conn_complete(req->conn, status, http_json_response(body));
}

void sb_request_complete_error(struct sb_request *req, const struct sb_err *err)
{
    int status;
    /* match is written before the handler runs and never after: safe to read here */
    struct MHD_Response *resp = http_error_response(req->conn->match.render_error, err, &status);
    http_conn_complete(req->conn, status, resp);
}

void sb_request_complete_empty(struct sb_request *req, int status)
{
    http_conn_complete(req->conn, status, raw_response(NULL, "", 0));
}

void sb_request_complete_file(struct sb_request *req, int status, const char *content_type, int fd,
                              uint64_t offset, uint64_t len, const struct sb_header *headers,
                              size_t count)
{
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, offset);
    if (!resp) {
        close(fd);
    } else {
        int ok = !content_type ||
                 MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES;
        for (size_t i = 0; ok && i < count; i++)
            ok = MHD_add_response_header(resp, headers[i].name, headers[i].value) == MHD_YES;
        if (!ok) {
            MHD_destroy_response(resp);     /* closes fd */
            resp = NULL;
        }
    }
    http_conn_answer(req->conn, status, resp);
}

void sb_request_complete_bytes(struct sb_request *req, int status, const void *data, size_t len,
                               const struct sb_header *headers, size_t count, size_t *refused)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    *refused = 0;
    for (size_t i = 0; resp && i < count; i++)
        if (MHD_add_response_header(resp, headers[i].name, headers[i].value) != MHD_YES)
            (*refused)++;
    http_conn_answer(req->conn, status, resp);
}
