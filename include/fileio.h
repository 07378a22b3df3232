/* SPDX-License-Identifier: MIT
 * fileio.h — small file helpers several modules need and none should own: writing a
 * whole buffer through short writes and EINTR, at the file's offset or at one given.
 */
#ifndef TCIAFS_FILEIO_H
#define TCIAFS_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Writes all n bytes of buf to fd, retrying short writes and EINTR. Returns 0, or the
 * write's -errno (-EIO if it wrote nothing without saying why). */
int fileio_write_all(int fd, const void *buf, size_t n);

/* The same at offset off (pwrite: the file offset does not move). */
int fileio_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

#endif
