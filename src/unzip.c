/* SPDX-License-Identifier: MIT
 * unzip.c — verifies and extracts a series zip with libzip. The central directory is
 * checked whole before a byte is written (names, types, duplicates, counts and sizes
 * against the metadata); then entries are extracted, on several threads each with its own
 * libzip handle, never writing more than an entry declared nor more than the cap. libzip
 * errors become errno here only.
 */
#include "unzip.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "fileio.h"
#include "log.h"

#define UNZIP_BUF (256 * 1024)
#define UNZIP_MAX_THREADS 8
/* Without metadata to compare against, an entry may expand at most this much: DICOM
 * pixel data is not that compressible, a zip bomb is. */
#define UNZIP_MAX_RATIO 200
/* Room beyond the DICOM bytes for LICENSE and the like. */
#define UNZIP_SLACK (16u << 20)

bool unzip_name_ok(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n > 255 || name[0] == '.')
		return false;
	if (strcmp(name, "series.json") == 0)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '/' || c == '\\' || c < 0x20 || c == 0x7F)
			return false;
	}
	return true;
}

void unzip_result_clear(struct unzip_result *r)
{
	size_t i;

	for (i = 0; i < r->count; i++)
		free(r->v[i].name);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* The one place libzip's codes become errno values. */
static int unzip_errno(int zip_code, int sys_code)
{
	switch (zip_code) {
	case ZIP_ER_MEMORY:
		return -ENOMEM;
	case ZIP_ER_READ:
	case ZIP_ER_OPEN:
	case ZIP_ER_WRITE:
		return sys_code > 0 ? -sys_code : -EIO;
	default:
		return -EIO;	/* not a zip, inconsistent, CRC, inflate error, … */
	}
}

struct unzip_job {
	const char *zip_path;
	int dir_fd;
	const char *what;
	struct unzip_result *res;
	zip_uint64_t *index;	/* zip index of res->v[i] */
	uint64_t cap;
	atomic_uint_fast64_t written;
	atomic_int stop;
	pthread_mutex_t lock;
	int rc;			/* first failure; protected by lock */
	bool *created;		/* res->v[i] exists in dir_fd; each slot written by one thread */
	atomic_size_t next;	/* the next entry a worker takes */
};

/* Records the first failure (with its log line, which blames the zip or the disk as
 * `prefix` says) and tells the other threads to stop. */
static void unzip_fail_as(struct unzip_job *j, const char *prefix, int rc, const char *fmt,
			  const char *name, const char *detail)
{
	pthread_mutex_lock(&j->lock);
	if (j->rc == 0) {
		j->rc = rc;
		log_err("%s: %s%s%s%s%s", j->what, prefix, fmt, name ? name : "",
			detail ? ": " : "", detail ? detail : "");
	}
	pthread_mutex_unlock(&j->lock);
	atomic_store(&j->stop, 1);
}

static void unzip_fail(struct unzip_job *j, int rc, const char *fmt, const char *name,
		       const char *detail)
{
	unzip_fail_as(j, "bad zip: ", rc, fmt, name, detail);
}

/* A failure of our own disk (full, read-only, quota): not the zip's fault. */
static void unzip_fail_disk(struct unzip_job *j, int rc, const char *fmt, const char *name)
{
	unzip_fail_as(j, "cannot store the series: ", rc, fmt, name, strerror(-rc));
}

/* Extracts entry i of the result list through handle za into the job's folder. */
static void unzip_one(struct unzip_job *j, zip_t *za, size_t i, char *buf)
{
	struct unzip_entry *e = &j->res->v[i];
	zip_file_t *zf;
	uint64_t got = 0;
	int fd, rc = 0;

	zf = zip_fopen_index(za, j->index[i], 0);
	if (!zf) {
		zip_error_t *ze = zip_get_error(za);

		unzip_fail(j, unzip_errno(zip_error_code_zip(ze), zip_error_code_system(ze)),
			   "cannot read ", e->name, zip_error_strerror(ze));
		return;
	}
	fd = openat(j->dir_fd, e->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0644);
	if (fd < 0) {
		rc = -errno;
		unzip_fail_disk(j, rc, "cannot create ", e->name);
		zip_fclose(zf);
		return;
	}
	j->created[i] = true;
	while (!atomic_load(&j->stop)) {
		zip_int64_t n = zip_fread(zf, buf, UNZIP_BUF);

		if (n < 0) {
			zip_error_t *ze = zip_file_get_error(zf);

			unzip_fail(j, unzip_errno(zip_error_code_zip(ze),
						  zip_error_code_system(ze)),
				   "damaged entry ", e->name, zip_error_strerror(ze));
			break;
		}
		if (n == 0) {
			if (got != e->size)
				unzip_fail(j, -EIO, "entry shorter than declared: ", e->name, NULL);
			break;
		}
		got += (uint64_t)n;
		/* Never trust the header: stop at the declared size and at the cap. */
		if (got > e->size) {
			unzip_fail(j, -EIO, "entry longer than declared: ", e->name, NULL);
			break;
		}
		if (atomic_fetch_add(&j->written, (uint64_t)n) + (uint64_t)n > j->cap) {
			unzip_fail(j, -EIO, "more data than the series can hold, at ", e->name,
				   NULL);
			break;
		}
		rc = fileio_write_all(fd, buf, (size_t)n);
		if (rc < 0) {
			unzip_fail_disk(j, rc, "cannot write ", e->name);
			break;
		}
	}
	/* Its writeback starts now, while later entries unpack: the sync that commits the
	 * series then finds little left to write. */
	if (!atomic_load(&j->stop))
		sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	if (close(fd) < 0 && !atomic_load(&j->stop)) {
		rc = -errno;
		unzip_fail_disk(j, rc, "cannot write ", e->name);
	}
	zip_fclose(zf);
}

static void *unzip_worker(void *arg)
{
	struct unzip_job *j = arg;
	zip_t *za;
	char *buf;
	int err = 0;
	size_t i;

	buf = malloc(UNZIP_BUF);
	za = zip_open(j->zip_path, ZIP_RDONLY, &err);
	if (!buf || !za) {
		zip_error_t ze;

		zip_error_init_with_code(&ze, buf ? err : ZIP_ER_MEMORY);
		unzip_fail(j, unzip_errno(buf ? err : ZIP_ER_MEMORY, errno), "cannot open", NULL,
			   zip_error_strerror(&ze));
		zip_error_fini(&ze);
		free(buf);
		if (za)
			zip_discard(za);
		return NULL;
	}
	while (!atomic_load(&j->stop) && (i = atomic_fetch_add(&j->next, 1)) < j->res->count)
		unzip_one(j, za, i, buf);
	zip_discard(za);
	free(buf);
	return NULL;
}

static int unzip_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads and checks the central directory into j->res. Returns 0 or -errno (logged). */
static int unzip_survey(struct unzip_job *j, zip_t *za, const struct unzip_limits *lim,
			uint64_t zip_bytes)
{
	struct unzip_result *r = j->res;
	zip_int64_t n = zip_get_num_entries(za, 0);
	uint64_t declared = 0;
	char **sorted = NULL;
	zip_uint64_t i;
	int rc = -ENOMEM;

	if (n <= 0) {
		log_err("%s: the service sent an empty zip (no images for this series)", j->what);
		return -EIO;
	}
	r->v = calloc((size_t)n, sizeof(*r->v));
	j->index = calloc((size_t)n, sizeof(*j->index));
	sorted = calloc((size_t)n, sizeof(*sorted));
	if (!r->v || !j->index || !sorted)
		goto out;
	for (i = 0; i < (zip_uint64_t)n; i++) {
		zip_stat_t st;
		zip_uint8_t opsys;
		zip_uint32_t attr;
		struct unzip_entry *e;
		const char *raw;

		rc = -EIO;
		if (zip_stat_index(za, i, 0, &st) < 0 || !(st.valid & ZIP_STAT_NAME) ||
		    !(st.valid & ZIP_STAT_SIZE)) {
			log_err("%s: bad zip: entry %llu cannot be read", j->what,
				(unsigned long long)i);
			goto out;
		}
		/* libzip turns names without the UTF-8 flag from CP437 into UTF-8, where
		 * a control byte becomes a printable glyph: judge the bytes as stored too. */
		raw = zip_get_name(za, i, ZIP_FL_ENC_RAW);
		if (!raw || !unzip_name_ok(raw) || !unzip_name_ok(st.name)) {
			log_err("%s: bad zip: refusing entry name \"%.100s\" (only plain file "
				"names may be created)", j->what, st.name);
			goto out;
		}
		/* Many writers store permission bits only; a type, when given, must be a
		 * regular file (not a link, folder, device or FIFO). */
		if (zip_file_get_external_attributes(za, i, 0, &opsys, &attr) == 0 &&
		    opsys == ZIP_OPSYS_UNIX && ((attr >> 16) & S_IFMT) != 0 &&
		    !S_ISREG(attr >> 16)) {
			log_err("%s: bad zip: entry %s is not a regular file (mode %o)", j->what,
				st.name, (unsigned)(attr >> 16));
			goto out;
		}
		e = &r->v[r->count];
		e->name = strdup(st.name);
		if (!e->name) {
			rc = -ENOMEM;
			goto out;
		}
		e->size = st.size;
		j->index[r->count] = i;
		sorted[r->count] = e->name;
		r->count++;
		declared += st.size;
		if (strcmp(st.name, "LICENSE") != 0) {
			r->dicom_count++;
			r->dicom_bytes += st.size;
		}
	}
	qsort(sorted, r->count, sizeof(*sorted), unzip_cmp_names);
	for (i = 1; i < r->count; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0) {
			log_err("%s: bad zip: the name %s appears twice", j->what, sorted[i]);
			goto out;
		}
	if (r->dicom_count == 0) {
		log_err("%s: the zip holds no DICOM files", j->what);
		goto out;
	}
	if (lim->expect_count >= 0 && (int64_t)r->dicom_count != lim->expect_count) {
		log_err("%s: the zip holds %zu files, the metadata says %lld", j->what,
			r->dicom_count, (long long)lim->expect_count);
		goto out;
	}
	if (lim->expect_bytes >= 0 && (int64_t)r->dicom_bytes != lim->expect_bytes) {
		log_err("%s: the zip's files add up to %llu bytes, the metadata says %lld",
			j->what, (unsigned long long)r->dicom_bytes, (long long)lim->expect_bytes);
		goto out;
	}
	if (lim->max_bytes)
		j->cap = lim->max_bytes;
	else if (lim->expect_bytes >= 0)
		j->cap = (uint64_t)lim->expect_bytes + UNZIP_SLACK;
	else
		j->cap = zip_bytes * UNZIP_MAX_RATIO + UNZIP_SLACK;
	if (declared > j->cap) {
		log_err("%s: bad zip: it claims %llu bytes, more than the %llu allowed", j->what,
			(unsigned long long)declared, (unsigned long long)j->cap);
		rc = -EIO;
		goto out;
	}
	rc = 0;
out:
	free(sorted);
	return rc;
}

int unzip_extract(const char *zip_path, int dir_fd, const struct unzip_limits *lim,
		  const char *what, struct unzip_result *out)
{
	struct unzip_job j = { .zip_path = zip_path, .dir_fd = dir_fd, .what = what, .res = out };
	pthread_t threads[UNZIP_MAX_THREADS];
	struct stat st;
	zip_t *za;
	int err = 0, rc, t, nthreads, started = 0;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (stat(zip_path, &st) < 0)
		return -errno;
	za = zip_open(zip_path, ZIP_RDONLY | ZIP_CHECKCONS, &err);
	if (!za) {
		zip_error_t ze;

		zip_error_init_with_code(&ze, err);
		log_err("%s: bad zip: %s", what, zip_error_strerror(&ze));
		zip_error_fini(&ze);
		return unzip_errno(err, errno);
	}
	pthread_mutex_init(&j.lock, NULL);
	atomic_init(&j.written, 0);
	atomic_init(&j.stop, 0);
	atomic_init(&j.next, 0);
	rc = unzip_survey(&j, za, lim, (uint64_t)st.st_size);
	zip_discard(za);
	if (rc < 0)
		goto out_free;
	rc = -ENOMEM;
	j.created = calloc(out->count, sizeof(bool));
	if (!j.created)
		goto out_free;
	nthreads = lim->threads > 1 ? lim->threads : 1;
	if (nthreads > UNZIP_MAX_THREADS)
		nthreads = UNZIP_MAX_THREADS;
	if ((size_t)nthreads > out->count)
		nthreads = (int)out->count;
	/* Workers take entries from a shared counter; this thread is one of them, so a
	 * thread that cannot start only costs speed. */
	for (t = 0; t < nthreads - 1; t++) {
		if (pthread_create(&threads[t], NULL, unzip_worker, &j) != 0)
			break;
		started++;
	}
	unzip_worker(&j);
	for (t = 0; t < started; t++)
		pthread_join(threads[t], NULL);
	rc = j.rc;
	if (rc < 0) {
		for (i = 0; i < out->count; i++)
			if (j.created[i])
				unlinkat(dir_fd, out->v[i].name, 0);
	}
out_free:
	free(j.created);
	free(j.index);
	pthread_mutex_destroy(&j.lock);
	if (rc < 0)
		unzip_result_clear(out);
	return rc;
}
