/* SPDX-License-Identifier: MIT
 * libFuzzer target: unzip_extract on arbitrary bytes as a zip. It must fail cleanly or
 * extract plain files into its folder only, and leave the folder empty on failure. */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];

static void empty_dir(int fd, bool must_be_empty)
{
	DIR *d = fdopendir(dup(fd));
	struct dirent *de;

	if (!d)
		abort();
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (must_be_empty)
			abort();
		unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Every other length with a list of MD5s to check (-o verify=md5), the seeds'
	 * md5-*.zip among them. */
	struct unzip_limits lim = { -1, -1, 64 << 20, 2, size % 2 ? "md5hashes.csv" : NULL };
	struct unzip_result r;
	char zip[96], out[96];
	int fd, dfd, rc;

	if (!root[0]) {
		snprintf(root, sizeof(root), "/tmp/tciafs-fuzz-XXXXXX");
		if (!mkdtemp(root))
			abort();
	}
	snprintf(zip, sizeof(zip), "%s/in.zip", root);
	snprintf(out, sizeof(out), "%s/out", root);
	fd = open(zip, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	mkdir(out, 0700);
	dfd = open(out, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		abort();
	rc = unzip_extract(zip, dfd, &lim, "fuzz", &r);
	if (rc == 0)
		unzip_result_clear(&r);
	/* On failure nothing may be left; on success clear the folder for the next run. */
	empty_dir(dfd, rc != 0);
	close(dfd);
	return 0;
}
