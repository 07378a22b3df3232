/* SPDX-License-Identifier: MIT
 * fileio.h — small file helpers several modules need and none should own: writing a
 * whole buffer through short writes and EINTR.
 */
#ifndef TCIAFS_FILEIO_H
#define TCIAFS_FILEIO_H

#include <stddef.h>

/* Writes all n bytes of buf to fd, retrying short writes and EINTR. Returns 0, or the
 * write's -errno (-EIO if it wrote nothing without saying why). */
int fileio_write_all(int fd, const void *buf, size_t n);

#endif
