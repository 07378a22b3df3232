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
#include <inttypes.h>
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
#include "md5.h"

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
		return -EIO; /* not a zip, inconsistent, CRC, inflate error, … */
	}
}

struct unzip_job {
	const char *zip_path;
	int dir_fd;
	const char *what;
	const struct unzip_limits *lim;
	struct unzip_result *res;
	zip_uint64_t *index; /* zip index of res->v[i] */
	uint64_t cap;
	atomic_uint_fast64_t written;
	atomic_int stop;
	pthread_mutex_t lock;
	int rc;                 /* first failure; protected by lock */
	char why[512];          /* its log line, for the thread that called us */
	bool *created;          /* res->v[i] exists in dir_fd; each slot written by one thread */
	atomic_size_t next;     /* the next entry a worker takes */
	atomic_size_t verified; /* entries that matched their listed MD5 */
};

/* Records the first failure (with its log line, which blames the zip or the disk as
 * `prefix` says) and tells the other threads to stop. */
static void unzip_fail_as(struct unzip_job *j, const char *prefix, int rc, const char *fmt,
			  const char *name, const char *detail)
{
	pthread_mutex_lock(&j->lock);
	if (j->rc == 0) {
		j->rc = rc;
		snprintf(j->why, sizeof(j->why), "%s: %s%s%s%s%s", j->what, prefix, fmt,
			 name ? name : "", detail ? ": " : "", detail ? detail : "");
		log_err("%s", j->why);
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

/* The end of entry e, read whole: its bytes against the MD5 its list gave. */
static void unzip_check_md5(struct unzip_job *j, struct unzip_entry *e, struct md5 *md)
{
	char hex[MD5_HEX_LEN + 1], detail[160];

	if (md5_final_hex(md, hex) < 0) {
		unzip_fail_as(j, "", -ENOMEM, "cannot compute the MD5 of ", e->name, NULL);
		return;
	}
	if (strcmp(hex, e->md5) != 0) {
		snprintf(detail, sizeof(detail), "its bytes give MD5 %s, %s says %s", hex,
			 j->lim->md5_list, e->md5);
		unzip_fail_as(j, "refused: ", -EIO, "a file disagrees with its MD5: ", e->name,
			      detail);
		return;
	}
	atomic_fetch_add(&j->verified, 1);
}

/* Extracts entry i of the result list through handle za into the job's folder; md is
 * the worker's digest, for an entry with a listed MD5. */
static void unzip_one(struct unzip_job *j, zip_t *za, size_t i, char *buf, struct md5 *md)
{
	struct unzip_entry *e = &j->res->v[i];
	zip_file_t *zf;
	uint64_t got = 0;
	int fd, rc = 0;
	bool check = e->md5[0] != '\0';

	if (check && md5_reset(md) < 0) {
		unzip_fail_as(j, "", -ENOMEM, "cannot compute the MD5 of ", e->name, NULL);
		return;
	}

	zf = zip_fopen_index(za, j->index[i], 0);
	if (!zf) {
		zip_error_t *ze = zip_get_error(za);

		unzip_fail(j, unzip_errno(zip_error_code_zip(ze), zip_error_code_system(ze)),
			   "cannot read ", e->name, zip_error_strerror(ze));
		return;
	}
	fd = openat(j->dir_fd, e->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
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

			unzip_fail(j,
				   unzip_errno(zip_error_code_zip(ze), zip_error_code_system(ze)),
				   "damaged entry ", e->name, zip_error_strerror(ze));
			break;
		}
		if (n == 0) {
			if (got != e->size)
				unzip_fail(j, -EIO, "entry shorter than declared: ", e->name, NULL);
			else if (check)
				unzip_check_md5(j, e, md);
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
		if (check && md5_update(md, buf, (size_t)n) < 0) {
			unzip_fail_as(j, "", -ENOMEM, "cannot compute the MD5 of ", e->name, NULL);
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
	struct md5 *md = NULL;
	zip_t *za;
	char *buf;
	int err = 0;
	size_t i;

	if (j->lim->md5_list && md5_new(&md) < 0) {
		unzip_fail_as(j, "", -ENOMEM, "cannot compute MD5s", NULL, NULL);
		return NULL;
	}
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
		md5_free(md);
		return NULL;
	}
	while (!atomic_load(&j->stop) && (i = atomic_fetch_add(&j->next, 1)) < j->res->count)
		unzip_one(j, za, i, buf, md);
	zip_discard(za);
	free(buf);
	md5_free(md);
	return NULL;
}

static int unzip_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One field of a CSV line at *p, unquoted into out (at most cap - 1 bytes); *p is left
 * after it. False for a field too long or badly quoted. */
static bool unzip_csv_field(const char **p, char *out, size_t cap)
{
	const char *q = *p;
	size_t n = 0;

	if (*q != '"') {
		while (*q && *q != ',') {
			if (n + 1 >= cap)
				return false;
			out[n++] = *q++;
		}
	} else {
		for (q++;; q++) {
			if (*q == '\0')
				return false;
			if (*q == '"' && q[1] != '"')
				break;
			if (*q == '"')
				q++;
			if (n + 1 >= cap)
				return false;
			out[n++] = *q;
		}
		q++;
	}
	out[n] = '\0';
	*p = q;
	return true;
}

static int unzip_cmp_entries(const void *a, const void *b)
{
	return strcmp((*(struct unzip_entry *const *)a)->name,
		      (*(struct unzip_entry *const *)b)->name);
}

/* The longest list the entries can need: a header, then per entry a quoted 255-byte name
 * (its quotes doubled), a comma, 32 hex digits in quotes and CRLF. */
#define UNZIP_MD5_LINE_MAX (2 + 2 * 255 + 1 + 2 + MD5_HEX_LEN + 2)
#define UNZIP_MD5_HEADER_MAX 1024

/* Reads the list of MD5s (entry `index` of za, `size` bytes) and gives each entry of
 * j->res the MD5 it lists. Every DICOM entry must be listed once, and nothing else.
 * Returns 0 or -errno, logged. */
static int unzip_md5_list(struct unzip_job *j, zip_t *za, zip_int64_t index, uint64_t size,
			  const char *list)
{
	struct unzip_result *r = j->res;
	struct unzip_entry **by_name = NULL, key, *kp = &key, **hit;
	char name[256], hex[MD5_HEX_LEN + 8], *text = NULL, *line, *next;
	uint64_t most = UNZIP_MD5_HEADER_MAX + (uint64_t)r->count * UNZIP_MD5_LINE_MAX;
	zip_file_t *zf = NULL;
	uint64_t got = 0;
	size_t i, lines = 0;
	int rc = -EIO;

	if (index < 0) {
		log_err("%s: refused: the zip has no %s to check its files against", j->what, list);
		return -EIO;
	}
	if (size > most) {
		log_err("%s: refused: its %s is %" PRIu64 " bytes, more than %zu files can need",
			j->what, list, size, r->count);
		return -EIO;
	}
	text = malloc(size + 1);
	by_name = calloc(r->count, sizeof(*by_name));
	zf = zip_fopen_index(za, (zip_uint64_t)index, 0);
	if (!text || !by_name) {
		rc = -ENOMEM;
		goto out;
	}
	while (zf && got < size) {
		zip_int64_t n = zip_fread(zf, text + got, size - got);

		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	if (!zf || got != size) {
		log_err("%s: bad zip: its %s cannot be read", j->what, list);
		goto out;
	}
	text[size] = '\0';
	if (strlen(text) != size) {
		log_err("%s: refused: its %s holds a NUL byte", j->what, list);
		goto out;
	}
	for (i = 0; i < r->count; i++)
		by_name[i] = &r->v[i];
	qsort(by_name, r->count, sizeof(*by_name), unzip_cmp_entries);
	/* A byte-order mark, then the header line ("Filename,MD5Hash"), which says nothing. */
	line = text + (strncmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0);
	next = strchr(line, '\n');
	for (line = next ? next + 1 : text + size; *line; line = next) {
		const char *p = line;
		size_t k;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		lines++;
		k = strlen(line);
		if (k && line[k - 1] == '\r')
			line[--k] = '\0';
		if (k == 0)
			continue;
		if (!unzip_csv_field(&p, name, sizeof(name)) || *p++ != ',' ||
		    !unzip_csv_field(&p, hex, sizeof(hex)) || *p != '\0') {
			log_err("%s: refused: line %zu of its %s is not \"<name>,<md5>\"", j->what,
				lines + 1, list);
			goto out;
		}
		for (k = 0; hex[k]; k++)
			if (hex[k] >= 'A' && hex[k] <= 'F')
				hex[k] = (char)(hex[k] - 'A' + 'a');
		if (!md5_hex_ok(hex)) {
			log_err("%s: refused: its %s gives \"%.40s\" as the MD5 of %.100s", j->what,
				list, hex, name);
			goto out;
		}
		key.name = name;
		hit = bsearch(&kp, by_name, r->count, sizeof(*by_name), unzip_cmp_entries);
		if (!hit) {
			log_err("%s: refused: its %s lists %.100s, which the zip does not hold",
				j->what, list, name);
			goto out;
		}
		if ((*hit)->md5[0]) {
			log_err("%s: refused: its %s lists %s twice", j->what, list, name);
			goto out;
		}
		memcpy((*hit)->md5, hex, sizeof((*hit)->md5));
	}
	for (i = 0; i < r->count; i++)
		if (!r->v[i].md5[0] && strcmp(r->v[i].name, "LICENSE") != 0) {
			log_err("%s: refused: its %s gives no MD5 for %s", j->what, list,
				r->v[i].name);
			goto out;
		}
	rc = 0;
out:
	if (zf)
		zip_fclose(zf);
	free(by_name);
	free(text);
	return rc;
}

/* Reads and checks the central directory into j->res. Returns 0 or -errno (logged). */
static int unzip_survey(struct unzip_job *j, zip_t *za, const struct unzip_limits *lim,
			uint64_t zip_bytes)
{
	struct unzip_result *r = j->res;
	zip_int64_t n = zip_get_num_entries(za, 0), list_index = -1;
	uint64_t declared = 0, list_size = 0;
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
				"names may be created)",
				j->what, st.name);
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
		if (lim->md5_list && strcmp(st.name, lim->md5_list) == 0) {
			list_index = (zip_int64_t)i;
			list_size = st.size;
			continue;
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
	if (lim->md5_list) {
		rc = unzip_md5_list(j, za, list_index, list_size, lim->md5_list);
		if (rc < 0)
			goto out;
		rc = -EIO;
	}
	if (lim->expect_count >= 0 && (int64_t)r->dicom_count != lim->expect_count) {
		log_err("%s: the zip holds %zu files, the metadata says %lld", j->what,
			r->dicom_count, (long long)lim->expect_count);
		goto out;
	}
	if (lim->expect_bytes >= 0 && (int64_t)r->dicom_bytes != lim->expect_bytes) {
		log_err("%s: the zip's files add up to %llu bytes, the metadata says %lld", j->what,
			(unsigned long long)r->dicom_bytes, (long long)lim->expect_bytes);
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
	struct unzip_job j = {
		.zip_path = zip_path, .dir_fd = dir_fd, .what = what, .lim = lim, .res = out
	};
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
	atomic_init(&j.verified, 0);
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
	out->verified = atomic_load(&j.verified);
	/* The line may have come from another worker: the caller's failure has its reason. */
	if (rc < 0)
		log_adopt_reason(j.why);
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
