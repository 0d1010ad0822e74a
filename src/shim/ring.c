/*
 * ring.c - the bounded byte ring with absolute offsets (see ring.h).
 *
 * Byte at absolute offset o lives at buf[o % cap]. Never grows past cap.
 */
#include "shim/ring.h"

#include <stdlib.h>
#include <string.h>

int sb_ring_init(struct sb_ring *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    if (cap == 0)
        return -1;
    r->buf = malloc(cap);   /* large rings are backed by the kernel page by page as written */
    if (!r->buf)
        return -1;
    r->cap = cap;
    return 0;
}

void sb_ring_free(struct sb_ring *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

void sb_ring_append(struct sb_ring *r, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (len > r->cap) {             /* only the last cap bytes can survive */
        p += len - r->cap;
        r->end += len - r->cap;
        len = r->cap;
    }
    size_t pos = (size_t)(r->end % r->cap);
    size_t first = r->cap - pos < len ? r->cap - pos : len;
    memcpy(r->buf + pos, p, first);
    memcpy(r->buf, p + first, len - first);
    r->end += len;
    if (r->end - r->start > r->cap)
        r->start = r->end - r->cap;
}

size_t sb_ring_copy(const struct sb_ring *r, uint64_t offset, void *dst, size_t max, uint64_t *from)
{
    if (offset < r->start)
        offset = r->start;
    if (from)
        *from = offset;
    if (offset >= r->end)
        return 0;
    size_t n = (size_t)(r->end - offset);
    if (n > max)
        n = max;
    size_t pos = (size_t)(offset % r->cap);
    size_t first = r->cap - pos < n ? r->cap - pos : n;
    memcpy(dst, r->buf + pos, first);
    memcpy((uint8_t *)dst + first, r->buf, n - first);
    return n;
}

size_t sb_ring_room(const struct sb_ring *r, uint64_t cursor)
{
    if (cursor < r->start)          /* the reader already lost bytes: it blocks nothing */
        cursor = r->start;
    if (cursor > r->end)
        cursor = r->end;
    return r->cap - (size_t)(r->end - cursor);
}
