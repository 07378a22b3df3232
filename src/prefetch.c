/* SPDX-License-Identifier: MIT
 * tciafs-prefetch — fetches every series below folders of a mounted tciafs tree (or the
 * series named in a file of SeriesInstanceUIDs) into the cache, in parallel, with
 * progress. It works only through the mount: opening a series folder is what makes
 * tciafs fetch it (and, where files come one by one, opening each file), so the store
 * keeps a single owner. Plain system calls, no FUSE.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef TCIAFS_VERSION
#define TCIAFS_VERSION "0"
#endif

struct pf_series {
	char *path;
	char *uid;
	uint64_t bytes; /* FileSize from the metadata; 0 unknown */
	int rc;         /* 0, or the errno the fetch ended with */
	char *why;      /* "<error>: <reason>" as tciafs gave it, or NULL */
};

struct pf {
	struct pf_series *v;
	size_t count, cap;
	int jobs;
	bool dry_run;
	bool lazy; /* --uids: each UID is resolved by the worker that fetches it */
	bool tty;
	atomic_size_t next;
	atomic_size_t done, failed;
	atomic_int running;
	atomic_uint_fast64_t bytes_done; /* as each file is opened or read through */
	atomic_size_t files_done, files_total;
	atomic_uint_fast64_t bytes_total; /* grows as lazy UIDs are resolved */
	struct timespec start;
	pthread_mutex_t print_lock;
};

/* Set by SIGINT/SIGTERM, read by the workers. An atomic, not a volatile sig_atomic_t:
 * the handler may run on any thread, and sig_atomic_t is only safe within one. */
static atomic_int pf_stop;

static void pf_on_signal(int sig)
{
	(void)sig;
	atomic_store(&pf_stop, 1);
}

static double pf_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *pf_xattr(const char *path, const char *name)
{
	char buf[256];
	ssize_t n = getxattr(path, name, buf, sizeof(buf) - 1);

	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static int pf_add(struct pf *p, const char *path, const char *uid)
{
	struct pf_series *nv;
	char *size;

	if (p->count == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;

		nv = realloc(p->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		p->v = nv;
		p->cap = cap;
	}
	memset(&p->v[p->count], 0, sizeof(p->v[p->count]));
	p->v[p->count].path = strdup(path);
	p->v[p->count].uid = strdup(uid);
	if (!p->v[p->count].path || !p->v[p->count].uid)
		return -ENOMEM;
	/* Lazily, the size is learnt when the worker resolves the UID: asking now would
	 * cost a round trip per UID before the first download starts. */
	size = p->lazy ? NULL : pf_xattr(path, "user.tcia.file_size");
	if (size) {
		p->v[p->count].bytes = strtoull(size, NULL, 10);
		atomic_fetch_add(&p->bytes_total, p->v[p->count].bytes);
		free(size);
	}
	p->count++;
	return 0;
}

/* Collects the series folders at or below path: a folder with user.tcia.series_uid is a
 * series; other folders are walked (collection → patient → study), which costs only
 * metadata. Symbolic links (a manifest's or a facet's entries) count when they lead to
 * a series, and are never walked through. Returns 0 or -errno. */
static int pf_collect(struct pf *p, const char *path, int depth)
{
	char *uid = pf_xattr(path, "user.tcia.series_uid");
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (uid) {
		rc = pf_add(p, path, uid);
		free(uid);
		return rc;
	}
	if (depth > 4)
		return 0;
	d = opendir(path);
	if (!d)
		return -errno;
	while (!pf_stop && (de = readdir(d))) {
		char sub[PATH_MAX];

		if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_LNK))
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) >= (int)sizeof(sub))
			continue;
		if (de->d_type == DT_LNK) {
			uid = pf_xattr(sub, "user.tcia.series_uid");
			rc = uid ? pf_add(p, sub, uid) : 0;
			free(uid);
			uid = NULL;
		} else {
			rc = pf_collect(p, sub, depth + 1);
		}
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

static void pf_human(uint64_t n, char *buf, size_t size)
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB" };
	double v = (double)n;
	int i = 0;

	while (v >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(buf, size, i ? "%.1f %s" : "%.0f %s", v, unit[i]);
}

static void pf_progress(struct pf *p, bool final)
{
	char done[32], total[32], rate[32];
	double dt = pf_now() - ((double)p->start.tv_sec + (double)p->start.tv_nsec / 1e9);
	uint64_t bytes = atomic_load(&p->bytes_done);
	double bps = dt > 0 ? (double)bytes / dt : 0;
	uint64_t all = atomic_load(&p->bytes_total);
	double eta = bps > 0 && all > bytes ? (double)(all - bytes) / bps : 0;

	pf_human(bytes, done, sizeof(done));
	pf_human(all, total, sizeof(total));
	pf_human((uint64_t)bps, rate, sizeof(rate));
	pthread_mutex_lock(&p->print_lock);
	if (p->tty) {
		int width = 30,
		    filled = p->count ? (int)(width * atomic_load(&p->done) / p->count) : 0;

		fprintf(stderr,
			"\r[%.*s%*s] %zu/%zu series, %zu/%zu files, %s / %s, %s/s, "
			"ETA %.0fs   ",
			filled, "##############################", width - filled, "",
			atomic_load(&p->done), p->count, atomic_load(&p->files_done),
			atomic_load(&p->files_total), done, total, rate, eta);
		if (final)
			fputc('\n', stderr);
	} else {
		fprintf(stderr, "tciafs-prefetch: %zu/%zu series, %zu/%zu files, %s / %s, %s/s%s\n",
			atomic_load(&p->done), p->count, atomic_load(&p->files_done),
			atomic_load(&p->files_total), done, total, rate,
			atomic_load(&p->failed) ? " (some failed)" : "");
	}
	fflush(stderr);
	pthread_mutex_unlock(&p->print_lock);
}

/* Why tciafs says the folder failed: user.tciafs.error without its time stamp, as
 * "<error>: <reason>" (a new string), or NULL when it says nothing. */
static char *pf_why(const char *path)
{
	char buf[1024];
	ssize_t n = getxattr(path, "user.tciafs.error", buf, sizeof(buf) - 1);
	const char *sp;

	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	sp = strchr(buf, ' ');
	return strdup(sp ? sp + 1 : buf);
}

/* The kind of a failure, for the summary: its reason without what varies from series to
 * series (the series' UID, a URL, a quoted name, a parenthesised remark). */
static void pf_kind(const char *why, char *out, size_t size)
{
	size_t j = 0;
	const char *p = why;

	while (*p && j + 1 < size) {
		if (strncmp(p, "series ", 7) == 0 && p[7] >= '0' && p[7] <= '9') {
			p += 7 + strspn(p + 7, "0123456789.");
			p += strspn(p, ": ");
			continue;
		}
		if (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0) {
			p += strcspn(p, " ");
			j += (size_t)snprintf(out + j, size - j, "<url>");
			continue;
		}
		if (*p == '"' || *p == '(')
			break;
		out[j++] = *p++;
	}
	while (j > 0 && (out[j - 1] == ' ' || out[j - 1] == ':'))
		j--;
	out[j < size ? j : size - 1] = '\0';
}

static int pf_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct pf_run {
	size_t count;
	const char *kind;
};

/* Most frequent first; equal counts in the kinds' order. */
static int pf_cmp_run(const void *a, const void *b)
{
	const struct pf_run *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->kind, y->kind);
}

/* Failures counted by kind, most frequent first, on stderr. */
static void pf_summary(const struct pf *p)
{
	char **kinds = calloc(p->count ? p->count : 1, sizeof(*kinds));
	size_t n = 0, nruns = 0, i, j;
	struct pf_run *runs;

	if (!kinds)
		return;
	for (i = 0; i < p->count; i++) {
		char buf[512];

		if (!p->v[i].rc)
			continue;
		pf_kind(p->v[i].why ? p->v[i].why : strerror(p->v[i].rc), buf, sizeof(buf));
		kinds[n] = strdup(buf);
		if (kinds[n])
			n++;
	}
	if (n == 0)
		goto out_free;
	qsort(kinds, n, sizeof(*kinds), pf_cmp_str);
	/* Equal kinds are neighbours now: count each run, then print the runs largest first. */
	runs = calloc(n, sizeof(*runs));
	if (!runs)
		goto out_free;
	for (i = 0; i < n; i = j) {
		for (j = i; j < n && strcmp(kinds[j], kinds[i]) == 0; j++)
			;
		runs[nruns++] = (struct pf_run){ j - i, kinds[i] };
	}
	qsort(runs, nruns, sizeof(*runs), pf_cmp_run);
	fprintf(stderr, "tciafs-prefetch: %zu series failed:\n", n);
	for (i = 0; i < nruns; i++)
		fprintf(stderr, "  %5zu  %s\n", runs[i].count, runs[i].kind);
	free(runs);
out_free:
	for (i = 0; i < n; i++)
		free(kinds[i]);
	free(kinds);
}

/* The files of one series folder, opened by a few threads at once. */
#define PF_FILE_THREADS 4
/* A file bigger than this may be one tciafs reads by range (IDC's slide microscopy,
 * above its range_min, 64M by default), which an open does not fetch: it is read
 * through (from the cache at disk speed when it is stored already). */
#define PF_READ_THROUGH ((off_t)64 << 20)
#define PF_READ_BUF (1 << 20)

struct pf_files {
	struct pf *p;
	int dir_fd;
	char **names;
	size_t count;
	atomic_size_t next;
	atomic_int rc;                /* the first errno */
	atomic_uint_fast64_t counted; /* bytes of it added to p->bytes_done */
};

static void pf_count(struct pf_files *f, uint64_t n)
{
	atomic_fetch_add(&f->p->bytes_done, n);
	atomic_fetch_add(&f->counted, n);
}

/* Reads fd to its end. 0 or an errno. */
static int pf_read_through(struct pf_files *f, int fd)
{
	char *buf = malloc(PF_READ_BUF);
	ssize_t got;
	int rc = 0;

	if (!buf)
		return ENOMEM;
	while (!pf_stop && (got = read(fd, buf, PF_READ_BUF)) != 0) {
		if (got < 0) {
			rc = errno;
			break;
		}
		pf_count(f, (uint64_t)got);
	}
	free(buf);
	return pf_stop ? EINTR : rc;
}

static void *pf_opener(void *arg)
{
	struct pf_files *f = arg;
	size_t i;

	while (!pf_stop && (i = atomic_fetch_add(&f->next, 1)) < f->count) {
		int fd = openat(f->dir_fd, f->names[i], O_RDONLY | O_CLOEXEC);
		int zero = 0, rc = 0;
		struct stat st;

		if (fd < 0) {
			rc = errno;
		} else if (fstat(fd, &st) < 0) {
			rc = errno;
		} else if (st.st_size > PF_READ_THROUGH) {
			rc = pf_read_through(f, fd);
		} else {
			pf_count(f, (uint64_t)st.st_size);
		}
		if (fd >= 0)
			close(fd);
		if (rc)
			atomic_compare_exchange_strong(&f->rc, &zero, rc);
		else
			atomic_fetch_add(&f->p->files_done, 1);
	}
	return NULL;
}

static bool pf_is_dicom(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".dcm") == 0;
}

/* Lists the series folder (which makes tciafs fetch the series, or list its files where
 * a source serves them one by one) and opens each DICOM file (which fetches it then; a
 * stored file opens at once). Returns 0 or an errno. */
static int pf_fetch_series(struct pf *p, struct pf_series *s)
{
	struct pf_files f = { .p = p, .dir_fd = -1 };
	const char *path = s->path;
	pthread_t threads[PF_FILE_THREADS];
	struct dirent *de;
	size_t cap = 0, i, started = 0;
	DIR *d = opendir(path);
	int rc = 0;

	if (!d)
		return errno;
	errno = 0;
	while ((de = readdir(d))) {
		if (!pf_is_dicom(de->d_name))
			continue;
		if (f.count == cap) {
			char **grown =
				realloc(f.names, (cap = cap ? cap * 2 : 64) * sizeof(*grown));

			if (!grown) {
				rc = ENOMEM;
				break;
			}
			f.names = grown;
		}
		if (!(f.names[f.count] = strdup(de->d_name))) {
			rc = ENOMEM;
			break;
		}
		f.count++;
		errno = 0;
	}
	if (!rc)
		rc = errno;
	if (!rc && f.count) {
		atomic_fetch_add(&p->files_total, f.count);
		f.dir_fd = dirfd(d);
		for (i = 0; i < PF_FILE_THREADS && i < f.count; i++)
			if (pthread_create(&threads[started], NULL, pf_opener, &f) == 0)
				started++;
		if (!started)
			pf_opener(&f);
		for (i = 0; i < started; i++)
			pthread_join(threads[i], NULL);
		rc = atomic_load(&f.rc);
	}
	closedir(d);
	for (i = 0; i < f.count; i++)
		free(f.names[i]);
	free(f.names);
	/* A series stored whole (NBIA's zip) counts its size from the metadata when done;
	 * one of single files counted each as it came. */
	if (s->bytes > atomic_load(&f.counted))
		atomic_fetch_add(&p->bytes_done, s->bytes - atomic_load(&f.counted));
	return rc;
}

static void *pf_worker(void *arg)
{
	struct pf *p = arg;
	size_t i;

	while (!pf_stop && (i = atomic_fetch_add(&p->next, 1)) < p->count) {
		struct pf_series *s = &p->v[i];

		s->rc = pf_fetch_series(p, s);
		if (s->rc == EINTR && pf_stop)
			break;
		if (!s->rc && p->lazy) {
			char *size = pf_xattr(s->path, "user.tcia.file_size");

			if (size) {
				s->bytes = strtoull(size, NULL, 10);
				atomic_fetch_add(&p->bytes_total, s->bytes);
				free(size);
			}
		}
		if (s->rc) {
			atomic_fetch_add(&p->failed, 1);
			s->why = pf_why(s->path);
			pthread_mutex_lock(&p->print_lock);
			fprintf(stderr, "%stciafs-prefetch: %s: %s\n", p->tty ? "\n" : "", s->path,
				s->why ? s->why : strerror(s->rc));
			pthread_mutex_unlock(&p->print_lock);
		}
		atomic_fetch_add(&p->done, 1);
		if (!p->tty)
			pf_progress(p, false);
	}
	atomic_fetch_sub(&p->running, 1);
	return NULL;
}

static int pf_read_uid_file(struct pf *p, const char *file, const char *mount)
{
	char line[256], path[PATH_MAX];
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	int rc = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, " \t\r\n#")] = '\0';
		if (!line[0])
			continue;
		/* tciafs resolves a bare UID under /.tciafs/series/. */
		snprintf(path, sizeof(path), "%s/.tciafs/series/%s", mount, line);
		if (strspn(line, "0123456789.") != strlen(line) || strlen(line) > 64)
			rc = -EINVAL;
		else if (p->lazy)
			rc = pf_add(p, path, line); /* resolved and fetched by a worker */
		else
			rc = pf_collect(p, path, 4);
		if (rc < 0) {
			fprintf(stderr, "tciafs-prefetch: %s: %s\n", line, strerror(-rc));
			rc = 0;
			atomic_fetch_add(&p->failed, 1);
		}
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

static void pf_free(struct pf *p)
{
	for (size_t k = 0; k < p->count; k++) {
		free(p->v[k].path);
		free(p->v[k].why);
		free(p->v[k].uid);
	}
	free(p->v);
	pthread_mutex_destroy(&p->print_lock);
}

static void pf_usage(FILE *out)
{
	fprintf(out, "usage: tciafs-prefetch [-j N] [--dry-run] PATH...\n"
		     "       tciafs-prefetch [-j N] [--dry-run] --uids FILE MOUNTPOINT\n"
		     "\n"
		     "Fetches into the tciafs cache every series below the given folders of a\n"
		     "mounted tciafs (a collection, patient, study or series), or the series\n"
		     "listed by SeriesInstanceUID in FILE (one a line; - for standard input).\n"
		     "\n"
		     "  -j, --jobs N    series fetched at once (default 4)\n"
		     "  -n, --dry-run   print how many series and how many bytes, fetch nothing\n"
		     "  -u, --uids FILE read SeriesInstanceUIDs from FILE\n"
		     "  -V, --version   print the version\n"
		     "\n"
		     "Exit status: 0 when every series arrived, 1 when some did not, 2 for bad\n"
		     "usage, 130 when stopped with Ctrl-C.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "jobs", required_argument, NULL, 'j' }, { "dry-run", no_argument, NULL, 'n' },
		{ "uids", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },    { NULL, 0, NULL, 0 },
	};
	struct pf p = { .jobs = 4 };
	const char *uids = NULL;
	struct sigaction sa;
	pthread_t *threads;
	char total[32];
	int opt, i, rc = 0, started = 0;

	while ((opt = getopt_long(argc, argv, "j:nu:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			p.jobs = atoi(optarg);
			break;
		case 'n':
			p.dry_run = true;
			break;
		case 'u':
			uids = optarg;
			break;
		case 'h':
			pf_usage(stdout);
			return 0;
		case 'V':
			printf("tciafs-prefetch %s\n", TCIAFS_VERSION);
			return 0;
		default:
			pf_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc || p.jobs < 1 || p.jobs > 64 || (uids && argc - optind != 1)) {
		pf_usage(stderr);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pf_on_signal; /* no SA_RESTART: a waiting readdir returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pthread_mutex_init(&p.print_lock, NULL);
	p.tty = isatty(STDERR_FILENO);
	if (uids) {
		p.lazy = !p.dry_run;
		rc = pf_read_uid_file(&p, uids, argv[optind]);
	} else {
		for (i = optind; i < argc && rc == 0; i++) {
			rc = pf_collect(&p, argv[i], 0);
			if (rc < 0)
				fprintf(stderr, "tciafs-prefetch: %s: %s\n", argv[i],
					strerror(-rc));
		}
	}
	if (rc < 0) {
		rc = 1;
		goto out_free;
	}
	pf_human(atomic_load(&p.bytes_total), total, sizeof(total));
	if (p.lazy)
		printf("%zu series (sizes as each is resolved)\n", p.count);
	else
		printf("%zu series, %s\n", p.count, total);
	fflush(stdout);
	rc = atomic_load(&p.failed) ? 1 : 0;
	if (p.dry_run || p.count == 0)
		goto out_free;
	clock_gettime(CLOCK_MONOTONIC, &p.start);
	rc = 1;
	threads = calloc((size_t)p.jobs, sizeof(*threads));
	if (!threads)
		goto out_free;
	for (i = 0; i < p.jobs; i++) {
		atomic_fetch_add(&p.running, 1);
		if (pthread_create(&threads[i], NULL, pf_worker, &p) == 0)
			started++;
		else
			atomic_fetch_sub(&p.running, 1);
	}
	for (i = 0; atomic_load(&p.running) > 0 && !pf_stop; i++) {
		/* A line every 10 s when not on a terminal (a log): a long series shows
		 * its files coming, not only its end. */
		if ((p.tty && i % 5 == 0) || (!p.tty && i % 200 == 199))
			pf_progress(&p, false);
		usleep(50000);
	}
	/* The signal interrupted only one thread: the others may be waiting on a series in
	 * the kernel. A signal each makes their waits return EINTR (tciafs lets the
	 * downloads carry on). */
	for (i = 0; pf_stop && i < started; i++)
		pthread_kill(threads[i], SIGINT);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	pf_progress(&p, true);
	pf_summary(&p);
	rc = atomic_load(&p.failed) ? 1 : 0;
	if (pf_stop) {
		fprintf(stderr, "tciafs-prefetch: stopped; downloads already under way finish in "
				"the background\n");
		rc = 130;
	}
out_free:
	pf_free(&p);
	return rc;
}
