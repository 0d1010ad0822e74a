/*
 * container_disk.h - a sandbox's size-capped writable layer: a sparse ext4
 * image attached to a loop device with LO_FLAGS_AUTOCLEAR.
 *
 * The image is copied (sparsely) from a formatted blank of the same size,
 * made once per size with mkfs.ext4 under <data-dir>/cache/, because
 * copying a few hundred KiB of metadata is much faster than formatting.
 * The loop device detaches by itself once the sandbox's mount namespace,
 * the only place the image is mounted, is gone.
 *
 * Owns: the files it creates; the loop fd it returns (caller closes).
 * Never: mounts anything, or runs mkfs with the caller's environment.
 */
#ifndef SB_SHIM_CONTAINER_DISK_H
#define SB_SHIM_CONTAINER_DISK_H

#include <stddef.h>

#include "core/err.h"

/* Creates image_path (mode 0600) holding an empty ext4 filesystem of disk_mb MiB. */
int disk_image_create(const char *data_dir, const char *image_path, int disk_mb, struct sb_err *err);
/* Attaches image_path to a free loop device (autoclear). On success *loop_fd
 * is an O_CLOEXEC fd the caller must keep open until the filesystem is
 * mounted, and dev holds "/dev/loopN". */
int disk_loop_attach(const char *image_path, int *loop_fd, char *dev, size_t dev_len, struct sb_err *err);

#endif
