/*
 * ring.h - a bounded byte ring with absolute offsets, one per output stream
 * of a process in the shim.
 *
 * Bytes are numbered from 0 for the life of the stream; the ring keeps the
 * last `cap` of them, [start, end). Appending past the capacity drops the
 * oldest bytes, so a reader that attaches late (or re-attaches after a server
 * restart) replays the recent output from any offset still held. Whoever must
 * not lose bytes (an attached reader) checks sb_ring_room() before the writer
 * appends. Single-threaded; owns its buffer.
 */
#ifndef SB_SHIM_RING_H
#define SB_SHIM_RING_H

#include <stddef.h>
#include <stdint.h>

#define SB_RING_DEFAULT_CAP (1024u * 1024u)

struct sb_ring {
    uint8_t *buf;       /* owned; cap bytes */
    size_t cap;
    uint64_t start;     /* offset of the oldest byte held */
    uint64_t end;       /* offset one past the newest byte */
};

/* 0, or -1 when out of memory. Free with sb_ring_free. */
int sb_ring_init(struct sb_ring *r, size_t cap);
void sb_ring_free(struct sb_ring *r);

/* Appends len bytes, dropping the oldest bytes beyond cap. */
void sb_ring_append(struct sb_ring *r, const void *data, size_t len);

/* Copies up to max bytes starting at offset (clamped up to start) into dst.
 * Returns the count and sets *from to the offset actually copied from. */
size_t sb_ring_copy(const struct sb_ring *r, uint64_t offset, void *dst, size_t max, uint64_t *from);

/* How many bytes can be appended without dropping any byte at or after
 * cursor (a reader's next offset). */
size_t sb_ring_room(const struct sb_ring *r, uint64_t cursor);

#endif
