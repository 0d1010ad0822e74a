/*
 * connect.c - Connect protocol wire pieces (see connect.h): the code table,
 * the unary error body, envelopes written to a stream, and an incremental
 * envelope reader.
 *
 * Owns: the reader's partial envelope. Writes each envelope in one stream
 * write, so envelopes never interleave; knows nothing of what the messages
 * mean.
 */
#include "http/connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

/* ---- codes ---- */

static const struct {
    const char *code;
    int status;             /* Connect's conventional HTTP status for it */
} connect_codes[] = {
    {"canceled", 499},          {"unknown", 500},           {"invalid_argument", 400},
    {"deadline_exceeded", 504}, {"not_found", 404},         {"already_exists", 409},
    {"permission_denied", 403}, {"resource_exhausted", 429}, {"failed_precondition", 400},
    {"aborted", 409},           {"out_of_range", 400},      {"unimplemented", 501},
    {"internal", 500},          {"unavailable", 503},       {"data_loss", 500},
    {"unauthenticated", 401},
};

const char *sb_connect_code(int status)
{
    switch (status) {
    case 400: return "invalid_argument";
    case 401: return "unauthenticated";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 405: return "unimplemented";
    case 408: case 504: return "deadline_exceeded";
    case 409: return "failed_precondition";
    case 413: case 429: case 507: return "resource_exhausted";
    case 499: return "canceled";
    case 501: return "unimplemented";
    case 502: case 503: return "unavailable";
    default: return status >= 400 && status < 500 ? "invalid_argument" : "internal";
    }
}

int sb_connect_status(const char *code)
{
    for (size_t i = 0; i < sizeof connect_codes / sizeof connect_codes[0]; i++)
        if (strcmp(connect_codes[i].code, code) == 0)
            return connect_codes[i].status;
    return 500;
}

/* {"code": <code of err>, "message": <err's message>}. New reference. */
static json_t *error_object(const struct sb_err *err)
{
    const char *msg = err->msg[0] ? err->msg : "internal error";
    return json_pack("{s:s, s:o}", "code", sb_connect_code(err->status), "message",
                     sb_json_string_lossy(msg, strlen(msg)));
}

json_t *sb_connect_render_error(const struct sb_err *err, int *status)
{
    *status = sb_connect_status(sb_connect_code(err->status));
    return error_object(err);
}

/* ---- writing envelopes ---- */

/* flags, the 4-byte big-endian length and msg's compact JSON, in one
 * buffer the caller frees; NULL when msg cannot be encoded. */
static char *envelope_encode(unsigned flags, const json_t *msg, size_t *len_out)
{
    char *text = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    char *env = len <= UINT32_MAX ? malloc(SB_CONNECT_ENVELOPE_HEADER + len) : NULL;
    if (env) {
        env[0] = (char)flags;
        env[1] = (char)(len >> 24);
        env[2] = (char)(len >> 16);
        env[3] = (char)(len >> 8);
        env[4] = (char)len;
        memcpy(env + SB_CONNECT_ENVELOPE_HEADER, text, len);
        *len_out = SB_CONNECT_ENVELOPE_HEADER + len;
    }
    free(text);
    return env;
}

static int envelope_write(struct sb_stream *s, unsigned flags, const json_t *msg)
{
    size_t len;
    char *env = envelope_encode(flags, msg, &len);
    if (!env)
        return -1;
    int rc = sb_stream_write(s, env, len);
    free(env);
    return rc;
}

struct sb_stream *sb_connect_stream_open(struct sb_request *req, struct sb_err *err)
{
    return sb_stream_open(req, 200, "application/connect+json", err);
}

int sb_connect_send(struct sb_stream *s, const json_t *msg) { return envelope_write(s, 0, msg); }

int sb_connect_end(struct sb_stream *s, const struct sb_err *err)
{
    json_t *end = err ? json_pack("{s:o}", "error", error_object(err)) : json_object();
    int rc = end ? envelope_write(s, SB_CONNECT_FLAG_END_STREAM, end) : -1;
    json_decref(end);
    sb_stream_end(s);
    return rc;
}

int sb_connect_keepalive(struct sb_stream *s, uint64_t interval_ms, const json_t *msg)
{
    size_t len;
    char *env = envelope_encode(0, msg, &len);
    if (!env)
        return -1;
    int rc = sb_stream_heartbeat(s, interval_ms, env, len);
    free(env);
    return rc;
}

/* ---- reading envelopes ---- */

struct sb_connect_reader {
    size_t max_message;
    unsigned char head[SB_CONNECT_ENVELOPE_HEADER];
    size_t head_have;
    char *payload;
    size_t payload_len, payload_have, payload_cap;
    int failed;
};

struct sb_connect_reader *sb_connect_reader_new(size_t max_message)
{
    struct sb_connect_reader *r = calloc(1, sizeof *r);
    if (r)
        r->max_message = max_message;
    return r;
}

void sb_connect_reader_free(struct sb_connect_reader *r)
{
    if (!r)
        return;
    free(r->payload);
    free(r);
}

static int reader_fail(struct sb_connect_reader *r, struct sb_err *err, int status,
                       const char *why)
{
    r->failed = 1;
    return sb_err_set(err, status, "bad Connect envelope: %s", why);
}

/* The header is complete: check it and make room for the payload. */
static int reader_start_payload(struct sb_connect_reader *r, struct sb_err *err)
{
    if (r->head[0] & SB_CONNECT_FLAG_COMPRESSED)
        return reader_fail(r, err, 400, "compressed messages are not supported");
    r->payload_len = (size_t)r->head[1] << 24 | (size_t)r->head[2] << 16 |
                     (size_t)r->head[3] << 8 | r->head[4];
    r->payload_have = 0;
    if (r->payload_len > r->max_message) {
        r->failed = 1;
        return sb_err_set(err, 413, "Connect message too large (%zu bytes, limit %zu)",
                          r->payload_len, r->max_message);
    }
    if (r->payload_len > r->payload_cap) {
        char *grown = realloc(r->payload, r->payload_len);
        if (!grown) {
            r->failed = 1;
            return sb_err_set(err, 500, "out of memory reading a Connect message");
        }
        r->payload = grown;
        r->payload_cap = r->payload_len;
    }
    return 0;
}

/* The payload is complete: parse it and hand it over. */
static int reader_deliver(struct sb_connect_reader *r, sb_connect_message_fn fn, void *arg,
                          struct sb_err *err)
{
    json_error_t jerr;
    json_t *msg = r->payload_len ? json_loadb(r->payload, r->payload_len,
                                              JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr)
                                 : NULL;
    if (!r->payload_len)
        snprintf(jerr.text, sizeof jerr.text, "it is empty");
    r->head_have = 0;
    if (!msg) {
        r->failed = 1;
        return sb_err_set(err, 400, "bad Connect envelope: the message is not JSON (%s)",
                          jerr.text);
    }
    sb_err_clear(err);
    int rc = fn(arg, r->head[0], msg, err);
    json_decref(msg);
    if (rc < 0) {
        r->failed = 1;
        if (!err->status)
            sb_err_set(err, 500, "the Connect message was refused");
        return -1;
    }
    return 0;
}

int sb_connect_reader_feed(struct sb_connect_reader *r, const void *data, size_t len,
                           sb_connect_message_fn fn, void *arg, struct sb_err *err)
{
    if (r->failed)
        return sb_err_set(err, 400, "bad Connect envelope: the stream already failed");
    const unsigned char *p = data;
    while (len > 0) {
        if (r->head_have < SB_CONNECT_ENVELOPE_HEADER) {
            size_t n = SB_CONNECT_ENVELOPE_HEADER - r->head_have;
            n = n < len ? n : len;
            memcpy(r->head + r->head_have, p, n);
            r->head_have += n;
            p += n;
            len -= n;
            if (r->head_have < SB_CONNECT_ENVELOPE_HEADER)
                break;
            if (reader_start_payload(r, err) < 0)
                return -1;
        } else {
            size_t n = r->payload_len - r->payload_have;
            n = n < len ? n : len;
            memcpy(r->payload + r->payload_have, p, n);
            r->payload_have += n;
            p += n;
            len -= n;
        }
        if (r->head_have == SB_CONNECT_ENVELOPE_HEADER && r->payload_have == r->payload_len &&
            reader_deliver(r, fn, arg, err) < 0)
            return -1;
    }
    return 0;
}

int sb_connect_reader_finish(const struct sb_connect_reader *r, struct sb_err *err)
{
    if (r->failed)
        return sb_err_set(err, 400, "bad Connect envelope: the stream failed");
    if (r->head_have > 0)
        return sb_err_set(err, 400, "bad Connect envelope: the body ends inside an envelope");
    return 0;
}

struct single {
    json_t *msg;
    int count;
};

static int take_single(void *arg, unsigned flags, json_t *msg, struct sb_err *err)
{
    struct single *one = arg;
    if (++one->count > 1)
        return sb_err_set(err, 400, "bad Connect request: exactly one message expected");
    one->msg = json_incref(msg);
    return 0;
}

json_t *sb_connect_single_message(const struct sb_request *req, struct sb_err *err)
{
    struct sb_connect_reader *r = sb_connect_reader_new(req->body_len);
    struct single one = {0};
    if (!r) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    int rc = sb_connect_reader_feed(r, req->body, req->body_len, take_single, &one, err);
    if (rc < 0 && err->status == 413)   /* it claims more than the whole body: cut short */
        sb_err_set(err, 400, "bad Connect envelope: the body (%zu bytes) ends inside an envelope",
                   req->body_len);
    if (rc == 0)
        rc = sb_connect_reader_finish(r, err);
    sb_connect_reader_free(r);
    if (rc == 0 && !one.msg)
        rc = sb_err_set(err, 400, "bad Connect request: the body holds no message");
    if (rc < 0) {
        json_decref(one.msg);
        return NULL;
    }
    return one.msg;
}
