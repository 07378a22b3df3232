/* SPDX-License-Identifier: MIT
 * md5.h — MD5 digests as the archives list them (32 lower-case hex digits: an S3 ETag,
 * a line of NBIA's md5hashes.csv), over OpenSSL's EVP, the one place its calls are made.
 */
#ifndef TCIAFS_MD5_H
#define TCIAFS_MD5_H

#include <stdbool.h>
#include <stddef.h>

#define MD5_HEX_LEN 32

struct md5;

/* A digest ready for md5_update; -ENOMEM. */
int md5_new(struct md5 **out);
void md5_free(struct md5 *m);

/* Starts it again from nothing; 0 or -ENOMEM. */
int md5_reset(struct md5 *m);
int md5_update(struct md5 *m, const void *p, size_t n);

/* The digest of everything given since the start, as hex into hex[MD5_HEX_LEN + 1];
 * 0 or -ENOMEM. The digest must be reset before it is used again. */
int md5_final_hex(struct md5 *m, char hex[MD5_HEX_LEN + 1]);

/* True for exactly 32 lower-case hex digits. */
bool md5_hex_ok(const char *s);

#endif
