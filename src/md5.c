/* SPDX-License-Identifier: MIT
 * md5.c — MD5 over OpenSSL's EVP interface. Its failures (allocation, a provider that
 * will not load) all become -ENOMEM here: no caller can do more about them than that.
 */
#include "md5.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

struct md5 {
	EVP_MD_CTX *ctx;
};

int md5_new(struct md5 **out)
{
	struct md5 *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->ctx = EVP_MD_CTX_new();
	if (!m->ctx || md5_reset(m) < 0) {
		md5_free(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

void md5_free(struct md5 *m)
{
	if (!m)
		return;
	EVP_MD_CTX_free(m->ctx);
	free(m);
}

int md5_reset(struct md5 *m)
{
	return EVP_DigestInit_ex(m->ctx, EVP_md5(), NULL) == 1 ? 0 : -ENOMEM;
}

int md5_update(struct md5 *m, const void *p, size_t n)
{
	return EVP_DigestUpdate(m->ctx, p, n) == 1 ? 0 : -ENOMEM;
}

int md5_final_hex(struct md5 *m, char hex[MD5_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	if (EVP_DigestFinal_ex(m->ctx, md, &len) != 1 || len != MD5_HEX_LEN / 2)
		return -ENOMEM;
	for (i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

bool md5_hex_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == MD5_HEX_LEN;
}
