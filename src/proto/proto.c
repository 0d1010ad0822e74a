/*
 * proto.c - encoding and decoding shim protocol frames (see proto.h).
 *
 * Owns nothing beyond a frame reader's buffer. Never reads or writes a
 * socket: both ends feed it bytes their own way (an epoll loop in the shim,
 * blocking calls in the server's worker threads).
 */
#include "proto/proto.h"

#include <stdlib.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint64_t get_u64(const uint8_t *p)
{
    return ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
}

int sb_frame_reader_init(struct sb_frame_reader *r, struct sb_err *err)
{
    memset(r, 0, sizeof *r);
    r->cap = SB_PROTO_HEADER + SB_PROTO_MAX_PAYLOAD;
    r->buf = malloc(r->cap);     /* large: the kernel backs it only as it is touched */
    if (!r->buf)
        return sb_err_set(err, 500, "frame reader: out of memory");
    return 0;
}

void sb_frame_reader_free(struct sb_frame_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

uint8_t *sb_frame_reader_space(struct sb_frame_reader *r, size_t *room)
{
    if (r->consumed > 0) {
        memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
        r->len -= r->consumed;
        r->consumed = 0;
    }
    *room = r->cap - r->len;
    return r->buf + r->len;
}

void sb_frame_reader_commit(struct sb_frame_reader *r, size_t n)
{
    r->len += n;
}

int sb_frame_reader_next(struct sb_frame_reader *r, struct sb_frame *out, struct sb_err *err)
{
    size_t avail = r->len - r->consumed;
    if (avail < SB_PROTO_HEADER)
        return 0;
    const uint8_t *p = r->buf + r->consumed;
    uint32_t len = get_u32(p);
    uint8_t type = p[4];
    if (len > SB_PROTO_MAX_PAYLOAD)
        return sb_err_set(err, 400, "shim protocol: frame of %u bytes exceeds the %u-byte limit",
                          len, SB_PROTO_MAX_PAYLOAD);
    if (type < SB_FRAME_JSON || type > SB_FRAME_STDIN)
        return sb_err_set(err, 400, "shim protocol: unknown frame type %u", type);
    if (avail < SB_PROTO_HEADER + (size_t)len)
        return 0;
    out->type = type;
    out->payload = p + SB_PROTO_HEADER;
    out->len = len;
    r->consumed += SB_PROTO_HEADER + (size_t)len;
    return 1;
}

void sb_frame_header(uint8_t hdr[SB_PROTO_HEADER], uint8_t type, uint32_t len)
{
    put_u32(hdr, len);
    hdr[4] = type;
}

uint8_t *sb_frame_json(const json_t *obj, size_t *len)
{
    size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    if (n == 0 || n > SB_PROTO_MAX_PAYLOAD)
        return NULL;
    uint8_t *buf = malloc(SB_PROTO_HEADER + n);
    if (!buf)
        return NULL;
    if (json_dumpb(obj, (char *)buf + SB_PROTO_HEADER, n, JSON_COMPACT) != n) {
        free(buf);
        return NULL;
    }
    sb_frame_header(buf, SB_FRAME_JSON, (uint32_t)n);
    *len = SB_PROTO_HEADER + n;
    return buf;
}

json_t *sb_frame_parse_json(const struct sb_frame *f, struct sb_err *err)
{
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)f->payload, f->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        sb_err_set(err, 400, "shim protocol: bad JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        sb_err_set(err, 400, "shim protocol: a control message must be a JSON object");
        return NULL;
    }
    return obj;
}

void sb_frame_output_header(uint8_t *hdr, uint32_t proc, uint8_t stream, uint64_t offset, uint32_t n)
{
    sb_frame_header(hdr, SB_FRAME_OUTPUT, SB_PROTO_OUTPUT_HEADER + n);
    put_u32(hdr + SB_PROTO_HEADER, proc);
    hdr[SB_PROTO_HEADER + 4] = stream;
    put_u64(hdr + SB_PROTO_HEADER + 5, offset);
}

int sb_frame_parse_output(const struct sb_frame *f, struct sb_output_chunk *out, struct sb_err *err)
{
    if (f->type != SB_FRAME_OUTPUT || f->len < SB_PROTO_OUTPUT_HEADER)
        return sb_err_set(err, 400, "shim protocol: malformed output frame");
    out->proc = get_u32(f->payload);
    out->stream = f->payload[4];
    if (out->stream != SB_STREAM_STDOUT && out->stream != SB_STREAM_STDERR)
        return sb_err_set(err, 400, "shim protocol: unknown output stream %u", out->stream);
    out->offset = get_u64(f->payload + 5);
    out->data = f->payload + SB_PROTO_OUTPUT_HEADER;
    out->len = f->len - SB_PROTO_OUTPUT_HEADER;
    return 0;
}

void sb_frame_stdin_header(uint8_t *hdr, uint32_t seq, uint32_t proc, uint32_t n)
{
    sb_frame_header(hdr, SB_FRAME_STDIN, SB_PROTO_STDIN_HEADER + n);
    put_u32(hdr + SB_PROTO_HEADER, seq);
    put_u32(hdr + SB_PROTO_HEADER + 4, proc);
}

int sb_frame_parse_stdin(const struct sb_frame *f, struct sb_stdin_chunk *out, struct sb_err *err)
{
    if (f->type != SB_FRAME_STDIN || f->len < SB_PROTO_STDIN_HEADER)
        return sb_err_set(err, 400, "shim protocol: malformed stdin frame");
    out->seq = get_u32(f->payload);
    out->proc = get_u32(f->payload + 4);
    out->data = f->payload + SB_PROTO_STDIN_HEADER;
    out->len = f->len - SB_PROTO_STDIN_HEADER;
    return 0;
}
