/* SPDX-License-Identifier: MIT
 * main.c — the tciafs command: options (fuse_opt), defaults, building the model and the
 * mount, and tearing both down. Nothing here touches the network before the first
 * filesystem call: mounting is instant and works offline.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "failures.h"
#include "fs.h"

#include <fuse_lowlevel.h>
#include "http.h"
#include "log.h"
#include "catalog.h"
#include "metacache.h"
#include "store.h"
#include "idc.h"
#include "source.h"
#include "tcia.h"
#include "tree.h"
#include "view.h"

#ifndef TCIAFS_VERSION
#define TCIAFS_VERSION "0"
#endif

#define TCIAFS_DEFAULT_API "https://nbia.cancerimagingarchive.net/nbia-api/services/v4"

struct tciafs_conf {
	char *api;
	char *source; /* nbia (default) or idc */
	char *idc_api;
	char *idc_files;
	char *cache_dir;
	char *token_file;
	char *naming;
	char *passthrough;
	char *verify;
	char *cache_size;
	char *max_series;
	uint64_t max_series_bytes;
	char *readahead_max;
	uint64_t readahead_bytes;
	char *range_min, *range_block;
	uint64_t range_min_bytes, range_block_bytes;
	int idc_streams;
	int max_fetches;
	int walk_budget;
	int offline;
	int shared; /* allow_other or allow_root: users other than ours look */
	uint64_t cache_bytes;
	char *positional[2]; /* [SOURCE] MOUNTPOINT, as mount.fuse3 passes them */
	int npositional;
	int timeout;
	int connect_timeout;
	int retries;
	int meta_ttl;
	int show_help;
	int show_version;
	char **manifest_files; /* -o manifest=FILE, repeatable */
	size_t nmanifests;
	struct view_manifest *manifests; /* read by tciafs_conf_check */
};

enum { TCIAFS_KEY_MANIFEST = 1, TCIAFS_KEY_SHARED };

/* clang-format off */
#define TCIAFS_OPT(t, p) { t, offsetof(struct tciafs_conf, p), 1 }
/* clang-format on */

static const struct fuse_opt tciafs_opt_spec[] = {
	TCIAFS_OPT("api=%s", api),
	TCIAFS_OPT("source=%s", source),
	TCIAFS_OPT("idc_api=%s", idc_api),
	TCIAFS_OPT("idc_files=%s", idc_files),
	TCIAFS_OPT("cache_dir=%s", cache_dir),
	TCIAFS_OPT("token_file=%s", token_file),
	TCIAFS_OPT("naming=%s", naming),
	TCIAFS_OPT("passthrough=%s", passthrough),
	TCIAFS_OPT("verify=%s", verify),
	TCIAFS_OPT("cache_size=%s", cache_size),
	TCIAFS_OPT("max_series=%s", max_series),
	TCIAFS_OPT("readahead_max=%s", readahead_max),
	TCIAFS_OPT("idc_streams=%d", idc_streams),
	TCIAFS_OPT("range_min=%s", range_min),
	TCIAFS_OPT("range_block=%s", range_block),
	TCIAFS_OPT("max_fetches=%d", max_fetches),
	TCIAFS_OPT("walk_budget=%d", walk_budget),
	TCIAFS_OPT("offline", offline),
	TCIAFS_OPT("timeout=%d", timeout),
	TCIAFS_OPT("connect_timeout=%d", connect_timeout),
	TCIAFS_OPT("retries=%d", retries),
	TCIAFS_OPT("meta_ttl=%d", meta_ttl),
	FUSE_OPT_KEY("manifest=", TCIAFS_KEY_MANIFEST),
	FUSE_OPT_KEY("allow_other", TCIAFS_KEY_SHARED),
	FUSE_OPT_KEY("allow_root", TCIAFS_KEY_SHARED),
	TCIAFS_OPT("-h", show_help),
	TCIAFS_OPT("--help", show_help),
	TCIAFS_OPT("-V", show_version),
	TCIAFS_OPT("--version", show_version),
	FUSE_OPT_END,
};

/* Takes the positional arguments aside: `tciafs MOUNTPOINT` and the mount-helper form
 * `tciafs SOURCE MOUNTPOINT -o opts` (mount -t fuse.tciafs, fstab) are both accepted. */
static int tciafs_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct tciafs_conf *conf = data;

	(void)outargs;
	if (key == TCIAFS_KEY_SHARED) {
		conf->shared = 1;
		return 1; /* kept: fusermount3 takes it */
	}
	if (key == TCIAFS_KEY_MANIFEST) {
		char **p = realloc(conf->manifest_files, (conf->nmanifests + 1) * sizeof(*p));

		if (!p)
			return -1;
		conf->manifest_files = p;
		p[conf->nmanifests] = strdup(arg + strlen("manifest="));
		if (!p[conf->nmanifests])
			return -1;
		conf->nmanifests++;
		return 0;
	}
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (conf->npositional == 2) {
		fprintf(stderr, "tciafs: too many arguments: %s (try --help)\n", arg);
		return -1;
	}
	conf->positional[conf->npositional] = strdup(arg);
	if (!conf->positional[conf->npositional])
		return -1;
	conf->npositional++;
	return 0;
}

/* Refuses a mount point that is not an empty folder: mounting over files would hide
 * them, which FUSE 3 no longer prevents by itself. */
static int tciafs_check_mountpoint(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int n = 0;

	if (!d) {
		fprintf(stderr, "tciafs: mount point %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	if (n) {
		fprintf(stderr, "tciafs: mount point %s is not empty\n", path);
		return -1;
	}
	return 0;
}

static void tciafs_usage(const char *prog)
{
	printf("usage: %s [options] MOUNTPOINT\n"
	       "       %s SOURCE MOUNTPOINT -o options   (the form mount(8) and fstab use)\n"
	       "\n"
	       "Mounts The Cancer Imaging Archive (TCIA) as a read-only filesystem.\n"
	       "\n"
	       "tciafs options:\n"
	       "    -o source=nbia|idc     where the archive comes from: TCIA's NBIA API\n"
	       "                           (series as zips) or NCI's Imaging Data Commons\n"
	       "                           (one object per file; default: nbia)\n"
	       "    -o api=URL             NBIA API base URL (default: %s)\n"
	       "    -o idc_api=URL         IDC API base URL (default: %s)\n"
	       "    -o idc_files=URL       IDC buckets, with {bucket} (default: %s)\n"
	       "    -o cache_dir=DIR       cache folder (default: $XDG_CACHE_HOME/tciafs)\n"
	       "    -o timeout=SECONDS     stall limit per request: a transfer making no progress\n"
	       "                           this long fails (default: 30)\n"
	       "    -o connect_timeout=SECONDS  limit on connecting (default: timeout)\n"
	       "    -o retries=N           retries on connection errors, 5xx, 429 (default: 4)\n"
	       "    -o meta_ttl=SECONDS    how long API answers are trusted (default: 86400)\n"
	       "    -o naming=readable|uid study and series folder names (default: readable)\n"
	       "    -o passthrough=on|off  let the kernel read stored files itself where it can\n"
	       "                           (FUSE passthrough; default: on)\n"
	       "    -o verify=md5|none     NBIA: fetch each series with every file's MD5\n"
	       "                           (getImageWithMD5Hash) and check each file before\n"
	       "                           the series is stored (default: none)\n"
	       "    -o cache_size=SIZE     cap on stored series, K/M/G/T (default: 20G)\n"
	       "    -o max_fetches=N       series downloads at once (default: 4)\n"
	       "    -o max_series=SIZE     longest series zip accepted when the metadata gives\n"
	       "                           no size (default: 64G; else 2 x its size + 16M)\n"
	       "    -o idc_streams=N       IDC: object GETs at once, for a series read ahead\n"
	       "                           (default: 16)\n"
	       "    -o readahead_max=SIZE  IDC: how far past the furthest file opened a series\n"
	       "                           is fetched ahead (default: 2G)\n"
	       "    -o range_min=SIZE      IDC: a file bigger than this is read by range, in\n"
	       "                           blocks, not fetched whole (default: 64M)\n"
	       "    -o range_block=SIZE    ... in blocks of this size, 64K..64M, a power of 2\n"
	       "                           (default: 4M)\n"
	       "    -o walk_budget=N       series downloads one process may start within a\n"
	       "                           minute before it is taken for a recursive walk\n"
	       "                           and held back (default: 16; 0 = no guard)\n"
	       "    -o offline             no requests at all: browse and read the cache\n"
	       "    -o token_file=FILE     credentials for deployments that want a bearer token\n"
	       "                           (username=, password=, token_url=; chmod 600);\n"
	       "                           else TCIA_USERNAME / TCIA_PASSWORD if set\n"
	       "    -o manifest=FILE       show a TCIA manifest (.tcia) or a list of series UIDs\n"
	       "                           as /manifests/<name>/ (repeatable; default: none)\n"
	       "    -V, --version          print the version and exit\n"
	       "\n",
	       prog, prog, TCIAFS_DEFAULT_API, IDC_API_DEFAULT, IDC_FILES_DEFAULT);
}

/* A cache inside the mountpoint would be reached through the mount itself: the daemon
 * would wait on its own requests for ever. Refused before mounting. */
static int tciafs_cache_outside(const struct tciafs_conf *conf)
{
	char *mp;
	size_t n;
	int rc = 0;

	if (conf->npositional == 0)
		return 0;
	mp = realpath(conf->positional[conf->npositional - 1], NULL);
	if (!mp)
		return 0; /* fuse_main says what is wrong with it */
	n = strlen(mp);
	if (strncmp(conf->cache_dir, mp, n) == 0 &&
	    (conf->cache_dir[n] == '\0' || conf->cache_dir[n] == '/' || n == 1)) {
		fprintf(stderr,
			"tciafs: cache_dir=%s is inside the mountpoint %s: it would be "
			"read through the mount itself; put it elsewhere\n",
			conf->cache_dir, mp);
		rc = -EINVAL;
	}
	free(mp);
	return rc;
}

/* Returns a new string: the cache folder to use when none was given. */
static char *tciafs_default_cache_dir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char buf[PATH_MAX];
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, sizeof(buf), "%s/tciafs", xdg);
	else if (home && home[0] == '/')
		n = snprintf(buf, sizeof(buf), "%s/.cache/tciafs", home);
	else
		return NULL;
	if (n < 0 || (size_t)n >= sizeof(buf))
		return NULL;
	return strdup(buf);
}

/* mkdir -p with mode 0700 for what it creates. Returns 0 or -errno. */
static int tciafs_mkdirs(const char *path)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

/* Checks the options and fills defaults. Returns 0, or -EINVAL after one message. */
static int tciafs_conf_check(struct tciafs_conf *conf)
{
	char *abs;
	int rc;

	if (!conf->api) {
		conf->api = strdup(TCIAFS_DEFAULT_API);
		if (!conf->api)
			return -ENOMEM;
	}
	if (strncmp(conf->api, "http://", 7) != 0 && strncmp(conf->api, "https://", 8) != 0) {
		fprintf(stderr, "tciafs: api=: not an http:// or https:// URL\n");
		return -EINVAL;
	}
	/* Endpoints and their parameters are appended to api=; a query string of its own
	 * (often a token) would end up in the middle of every request and in every log. */
	if (strpbrk(conf->api, "?#")) {
		fprintf(stderr, "tciafs: api=: a query string or fragment is not supported "
				"(credentials go in token_file=)\n");
		return -EINVAL;
	}
	if (conf->verify && strcmp(conf->verify, "md5") != 0 && strcmp(conf->verify, "none") != 0) {
		fprintf(stderr, "tciafs: verify=%s: use md5 or none\n", conf->verify);
		return -EINVAL;
	}
	if (conf->source && strcmp(conf->source, "nbia") != 0 && strcmp(conf->source, "idc") != 0) {
		fprintf(stderr, "tciafs: source=%s: use nbia or idc\n", conf->source);
		return -EINVAL;
	}
	if (!conf->idc_api)
		conf->idc_api = strdup(IDC_API_DEFAULT);
	if (!conf->idc_files)
		conf->idc_files = strdup(IDC_FILES_DEFAULT);
	if (!conf->idc_api || !conf->idc_files)
		return -ENOMEM;
	if ((strncmp(conf->idc_api, "http://", 7) != 0 &&
	     strncmp(conf->idc_api, "https://", 8) != 0) ||
	    strpbrk(conf->idc_api, "?#") ||
	    (strncmp(conf->idc_files, "http://", 7) != 0 &&
	     strncmp(conf->idc_files, "https://", 8) != 0) ||
	    strpbrk(conf->idc_files, "?#") || !strstr(conf->idc_files, "{bucket}")) {
		fprintf(stderr, "tciafs: idc_api= and idc_files= are http:// or https:// URLs "
				"without a query; idc_files= has a {bucket} placeholder\n");
		return -EINVAL;
	}
	if (conf->timeout <= 0 || conf->connect_timeout < 0 || conf->retries < 0 ||
	    conf->retries > 20 || conf->meta_ttl < 0) {
		fprintf(stderr, "tciafs: timeout must be > 0, connect_timeout >= 0, retries 0..20, "
				"meta_ttl >= 0\n");
		return -EINVAL;
	}
	if (conf->cache_size && store_parse_size(conf->cache_size, &conf->cache_bytes) < 0) {
		fprintf(stderr, "tciafs: cache_size=%s: use a number with K, M, G or T\n",
			conf->cache_size);
		return -EINVAL;
	}
	if (conf->max_series && (store_parse_size(conf->max_series, &conf->max_series_bytes) < 0 ||
				 conf->max_series_bytes == 0)) {
		fprintf(stderr, "tciafs: max_series=%s: use a number with K, M, G or T\n",
			conf->max_series);
		return -EINVAL;
	}
	if (conf->readahead_max &&
	    (store_parse_size(conf->readahead_max, &conf->readahead_bytes) < 0 ||
	     conf->readahead_bytes == 0)) {
		fprintf(stderr, "tciafs: readahead_max=%s: use a number with K, M, G or T\n",
			conf->readahead_max);
		return -EINVAL;
	}
	if (conf->range_min && store_parse_size(conf->range_min, &conf->range_min_bytes) < 0) {
		fprintf(stderr, "tciafs: range_min=%s: use a number with K, M, G or T\n",
			conf->range_min);
		return -EINVAL;
	}
	if (conf->range_block &&
	    (store_parse_size(conf->range_block, &conf->range_block_bytes) < 0 ||
	     conf->range_block_bytes < (64 << 10) || conf->range_block_bytes > (64 << 20) ||
	     (conf->range_block_bytes & (conf->range_block_bytes - 1)))) {
		fprintf(stderr, "tciafs: range_block=%s: a power of 2 from 64K to 64M\n",
			conf->range_block);
		return -EINVAL;
	}
	if (conf->idc_streams < 1 || conf->idc_streams > 256) {
		fprintf(stderr, "tciafs: idc_streams must be 1..256\n");
		return -EINVAL;
	}
	if (conf->max_fetches < 1 || conf->max_fetches > 32 || conf->walk_budget < 0) {
		fprintf(stderr, "tciafs: max_fetches must be 1..32, walk_budget >= 0\n");
		return -EINVAL;
	}
	if (conf->naming && strcmp(conf->naming, "readable") != 0 &&
	    strcmp(conf->naming, "uid") != 0) {
		fprintf(stderr, "tciafs: naming=%s: use readable or uid\n", conf->naming);
		return -EINVAL;
	}
	if (conf->passthrough && strcmp(conf->passthrough, "on") != 0 &&
	    strcmp(conf->passthrough, "off") != 0) {
		fprintf(stderr, "tciafs: passthrough=%s: use on or off\n", conf->passthrough);
		return -EINVAL;
	}
	if (!conf->cache_dir) {
		conf->cache_dir = tciafs_default_cache_dir();
		if (!conf->cache_dir) {
			fprintf(stderr, "tciafs: no cache folder: set -o cache_dir= or HOME\n");
			return -EINVAL;
		}
	}
	/* IDC's files are other files (named by instance UUIDs) than NBIA's zips hold, and
	 * its metadata another catalog: the two sources never share a store. */
	if (conf->source && strcmp(conf->source, "idc") == 0) {
		char *sub = NULL;

		if (asprintf(&sub, "%s/idc", conf->cache_dir) < 0)
			return -ENOMEM;
		free(conf->cache_dir);
		conf->cache_dir = sub;
	}
	rc = tciafs_mkdirs(conf->cache_dir);
	if (rc < 0) {
		fprintf(stderr, "tciafs: cache_dir=%s: %s\n", conf->cache_dir, strerror(-rc));
		return -EINVAL;
	}
	/* Manifests are read now, so that a bad one fails the mount with its line. */
	if (conf->nmanifests) {
		conf->manifests = calloc(conf->nmanifests, sizeof(*conf->manifests));
		if (!conf->manifests)
			return -ENOMEM;
	}
	for (size_t i = 0; i < conf->nmanifests; i++) {
		char err[PATH_MAX + 128];

		if (view_manifest_load(conf->manifest_files[i], &conf->manifests[i], err,
				       sizeof(err)) < 0) {
			fprintf(stderr, "tciafs: %s\n", err);
			return -EINVAL;
		}
	}
	/* The daemon changes to / when it detaches: keep an absolute path. */
	abs = realpath(conf->cache_dir, NULL);
	if (!abs)
		return -ENOMEM;
	free(conf->cache_dir);
	conf->cache_dir = abs;
	return tciafs_cache_outside(conf);
}

/* Everything /.tciafs/status reports, gathered from the modules that keep it. */
struct tciafs_status {
	struct tciafs *fs;
	struct tree *tree;
	struct store *store;
	struct http *http;
	struct metacache *cache;
	struct failures *failures;
	struct catalog *catalog;
	struct source *src;
};

/* The failures shown in .tciafs/status, newest first. */
#define TCIAFS_STATUS_FAILURES 10

/* The store's part of the status: what it holds and does, in the names status has
 * always had. A new object, or NULL. */
static json_t *tciafs_store_json(struct store *store)
{
	json_t *fetches, *aheads, *bigs, *held, *root;
	struct store_stats st;
	size_t i;

	if (store_stats(store, &st) < 0)
		return NULL;
	fetches = json_array();
	for (i = 0; i < st.nfetches; i++)
		json_array_append_new(fetches,
				      json_pack("{s:s,s:I,s:I,s:i}", "series", st.fetches[i].uid,
						"bytes_done", (json_int_t)st.fetches[i].bytes_done,
						"bytes_expected",
						(json_int_t)st.fetches[i].bytes_expected, "waiting",
						st.fetches[i].waiting));
	aheads = json_array();
	for (i = 0; i < st.naheads; i++) {
		const struct store_ahead_stat *a = &st.aheads[i];

		json_array_append_new(
			aheads,
			json_pack("{s:s,s:I,s:I,s:I,s:I,s:i,s:I,s:b}", "series", a->uid, "files",
				  (json_int_t)a->files, "files_held", (json_int_t)a->files_held,
				  "bytes", (json_int_t)a->bytes, "bytes_held",
				  (json_int_t)a->bytes_held, "in_flight", (int)a->in_flight,
				  "bytes_per_second", (json_int_t)a->bytes_per_second,
				  "reading_ahead", a->reading_ahead));
	}
	bigs = json_array();
	for (i = 0; i < st.nbigs; i++) {
		const struct store_big_stat *b = &st.bigs[i];

		json_array_append_new(
			bigs,
			json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:b}", "series", b->uid,
				  "file", b->file, "size", (json_int_t)b->size, "block_size",
				  (json_int_t)b->block_size, "blocks", (json_int_t)b->blocks,
				  "blocks_held", (json_int_t)b->blocks_held, "blocks_recorded",
				  (json_int_t)b->blocks_recorded, "bytes_held",
				  (json_int_t)b->bytes_held, "in_flight", (int)b->in_flight, "open",
				  b->opens, "complete", b->complete));
	}
	held = json_array();
	for (i = 0; i < st.nheld_back; i++)
		json_array_append_new(held, json_pack("{s:i,s:s}", "pid", (int)st.held_back[i].pid,
						      "command", st.held_back[i].command));
	root = json_pack("{s:o,s:I,s:o,s:o,s:{s:s,s:I,s:I,s:I,s:s},"
			 "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},"
			 "s:{s:i,s:i,s:o}}",
			 "fetches", fetches, "queued", (json_int_t)st.queued, "read_ahead", aheads,
			 "big_files", bigs, "store", "dir", st.dir, "bytes", (json_int_t)st.bytes,
			 "cap", (json_int_t)st.cap, "series", (json_int_t)st.series, "verify",
			 st.verify_md5 ? "md5" : "none", "counters", "fetched",
			 (json_int_t)st.fetched, "fetch_errors", (json_int_t)st.fetch_errors,
			 "evictions", (json_int_t)st.evictions, "walk_refusals",
			 (json_int_t)st.walk_refusals, "cache_hits", (json_int_t)st.cache_hits,
			 "files_fetched", (json_int_t)st.files_fetched, "file_fetch_errors",
			 (json_int_t)st.file_fetch_errors, "files_verified",
			 (json_int_t)st.files_verified, "walk_guard", "budget", st.walk_budget,
			 "window_seconds", st.walk_window, "held_back_processes", held);
	store_stats_clear(&st);
	return root;
}

static char *tciafs_status_json(void *arg)
{
	struct tciafs_status *st = arg;
	struct metacache_stats ms;
	struct http_stats hs;
	struct fs_stats fsst;
	json_t *root;
	char *text;

	root = tciafs_store_json(st->store);
	if (!root)
		return NULL;
	http_stats(st->http, &hs);
	metacache_stats(st->cache, &ms);
	json_object_set_new(
		root, "source",
		json_pack("{s:s,s:s}", "name", source_name(st->src), "url", source_url(st->src)));
	json_object_set_new(root, "requests",
			    json_pack("{s:I,s:I,s:I}", "sent", (json_int_t)hs.requests, "retries",
				      (json_int_t)hs.retries, "failed", (json_int_t)hs.failures));
	json_object_set_new(
		root, "metadata",
		json_pack("{s:I,s:I,s:I,s:I,s:I}", "hits", (json_int_t)ms.hits, "misses",
			  (json_int_t)ms.misses, "fetches", (json_int_t)ms.fetches, "stale_served",
			  (json_int_t)ms.stale_served, "memory_bytes", (json_int_t)ms.mem_bytes));
	if (st->catalog) {
		struct catalog_stats cs;

		catalog_stats(st->catalog, &cs);
		json_object_set_new(
			root, "catalog",
			json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "path",
				  catalog_path(st->catalog), "bytes", (json_int_t)cs.file_bytes,
				  "collections", (json_int_t)cs.colls, "patients",
				  (json_int_t)cs.patients, "studies", (json_int_t)cs.studies,
				  "series", (json_int_t)cs.series, "loads", (json_int_t)cs.loads,
				  "load_failures", (json_int_t)cs.load_failures));
	}
	fs_stats(st->fs, &fsst);
	json_object_set_new(root, "listings",
			    json_pack("{s:I,s:I}", "made", (json_int_t)fsst.listings_made,
				      "kept_by_kernel", (json_int_t)fsst.listings_held));
	json_object_set_new(root, "inodes_held_by_kernel",
			    json_integer((json_int_t)fsst.inodes_held));
	json_object_set_new(root, "failures", failures_json(st->failures, TCIAFS_STATUS_FAILURES));
	json_object_set_new(root, "reads",
			    json_pack("{s:s,s:s,s:I,s:I,s:I}", "path", fsst.read_path, "why",
				      fsst.read_why, "passthrough_opens",
				      (json_int_t)fsst.passthrough_opens, "served_by_daemon",
				      (json_int_t)fsst.stored_reads, "opens_in_kept_folders",
				      (json_int_t)tree_placed_opens(st->tree)));
	text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	return text;
}

struct tciafs_hup {
	pthread_t thread;
	struct metacache *cache;
	struct tree *tree;
	struct tciafs *fs;
	struct fuse_session *se;
	struct http *http;
	struct store *store;
	const char *mountpoint;
	long mount_id; /* ours in /proc/self/mountinfo, -1 if not found */
};

/* Undoes mountinfo's octal escapes (\040 for a space, …) in place. */
static void tciafs_unescape(char *s)
{
	char *o = s;

	for (; *s; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o = *s;
		}
	}
	*o = '\0';
}

/* With mountpoint: the mount ID of the newest fuse.tciafs mount there, or -1. With
 * mountpoint NULL: id itself if a mount with that ID is still there, or -1. */
static long tciafs_mount_id(const char *mountpoint, long id)
{
	char *line = NULL, mp[PATH_MAX];
	long found = -1, mid;
	size_t cap = 0;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return mountpoint ? -1 : id; /* cannot tell: assume it is there */
	while (getline(&line, &cap, f) > 0) {
		const char *dash = strstr(line, " - ");

		if (sscanf(line, "%ld %*d %*s %*s %4095s", &mid, mp) != 2)
			continue;
		if (!mountpoint) {
			if (mid == id)
				found = id;
			continue;
		}
		tciafs_unescape(mp);
		if (dash && strncmp(dash + 3, "fuse.tciafs ", 12) == 0 &&
		    strcmp(mp, mountpoint) == 0)
			found = mid;
	}
	free(line);
	fclose(f);
	return found;
}

/* Stops everything in flight: no FUSE thread stays blocked in a download or a slow
 * answer, so the daemon exits within about a second. */
static void tciafs_cancel_all(struct tciafs_hup *hup, const char *why)
{
	log_info("stopping (%s): cancelling downloads and requests in flight", why);
	http_abort(hup->http);
	store_stop(hup->store);
}

/* SIGHUP drops cached metadata. libfuse's handlers would end the session on SIGHUP, so
 * the signal is blocked everywhere and taken here (a signalfd), where locks are safe.
 * The same thread watches for the end of the session (SIGTERM, SIGINT, an unmount) and
 * for a lazy unmount that callers still waiting would otherwise hold open: either way
 * it cancels every transfer and wait in flight. */
static void *tciafs_hup_main(void *arg)
{
	struct tciafs_hup *hup = arg;
	struct signalfd_siginfo si;
	struct pollfd pfd[2];
	unsigned gen = tree_generation(hup->tree);
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	pfd[0].fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	pfd[0].events = POLLIN;
	/* mountinfo reports every change to the mount table as POLLPRI. */
	pfd[1].fd = hup->mount_id >= 0 ? open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC) : -1;
	pfd[1].events = POLLPRI;
	for (;;) {
		int n = poll(pfd, 2, 100);

		if (fuse_session_exited(hup->se)) {
			tciafs_cancel_all(hup, "the session ended");
			break;
		}
		if (n > 0 && (pfd[1].revents & (POLLPRI | POLLERR)) &&
		    tciafs_mount_id(NULL, hup->mount_id) < 0) {
			tciafs_cancel_all(hup, "unmounted");
			fuse_session_exit(hup->se);
			break;
		}
		if (n > 0 && (pfd[0].revents & POLLIN) &&
		    read(pfd[0].fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			metacache_expire_all(hup->cache);
			tree_expire(hup->tree);
			fs_forget_loaded(hup->fs);
			gen = tree_generation(hup->tree);
			log_info("SIGHUP: cached metadata dropped; the next look asks TCIA again");
		}
		/* The tree forgot by itself (a new release of the archive): the kernel's
		 * listings go too. Here, not in the request that found it: dropping them
		 * from inside a request could wait on that very request's folder. */
		if (gen != tree_generation(hup->tree)) {
			gen = tree_generation(hup->tree);
			fs_forget_loaded(hup->fs);
		}
	}
	if (pfd[0].fd >= 0)
		close(pfd[0].fd);
	if (pfd[1].fd >= 0)
		close(pfd[1].fd);
	return NULL;
}

/* SIGHUP must be blocked before any thread starts (the store's workers, FUSE's), so that
 * they all inherit the mask and only the sigwait thread ever takes it. */
static int tciafs_block_hup(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	return pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : -EINVAL;
}

static int tciafs_hup_start(struct tciafs_hup *hup)
{
	return -pthread_create(&hup->thread, NULL, tciafs_hup_main, hup);
}

static void tciafs_hup_stop(struct tciafs_hup *hup)
{
	fuse_session_exit(hup->se); /* the thread sees it within 100 ms and returns */
	pthread_join(hup->thread, NULL);
}

/* Serves with many threads: every caller waiting for a download or a slow answer holds
 * one, and libfuse's default of 10 would let ten such waits stall the whole mount. */
/* The exit status for what a FUSE loop returned: -errno is a failure; a signal number
 * (SIGTERM, SIGINT) is an orderly stop, which systemd and scripts expect to see as 0. */
static int tciafs_loop_status(int rc)
{
	if (rc < 0)
		return 1;
	if (rc > 0)
		log_info("stopped by signal %d (%s)", rc, strsignal(rc));
	return 0;
}

static int tciafs_loop_mt(struct fuse_session *se, const struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int rc;

	if (!loop)
		return 1;
	fuse_loop_cfg_set_clone_fd(loop, (unsigned int)cmd->clone_fd);
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 10);
	rc = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	return tciafs_loop_status(rc);
}

static int tciafs_run(struct fuse_args *args, struct fuse_cmdline_opts *cmd,
		      struct tciafs_conf *conf)
{
	struct http_opts hopts = {
		.connect_timeout = conf->connect_timeout ? conf->connect_timeout : conf->timeout,
		.stall_timeout = conf->timeout,
		.retries = conf->retries,
	};
	struct tree_opts topts = {
		.cache_dir = conf->cache_dir,
		.meta_ttl = conf->meta_ttl,
		.naming_uid = conf->naming && strcmp(conf->naming, "uid") == 0,
		.mountpoint = cmd->mountpoint,
		.manifests = conf->manifests,
		.nmanifests = conf->nmanifests,
	};
	struct fs_opts fopts = {
		.spool_dir = conf->cache_dir,
		.entry_timeout = 3600.0,
		.negative_timeout = 5.0,
		.listing_timeout = conf->meta_ttl > 0 && conf->meta_ttl < 3600
					   ? (double)conf->meta_ttl
					   : 3600.0,
		/* meta_ttl=0: every look asks again (offline: nothing changes) */
		.keep_listings = conf->meta_ttl != 0 || conf->offline,
		.passthrough = !conf->passthrough || strcmp(conf->passthrough, "off") != 0,
		.acl_cache = !conf->shared,
	};
	struct tciafs *fs = NULL;
	struct tree *tree = NULL;
	struct metacache_opts mopts = { .ttl = conf->meta_ttl, .offline = conf->offline };
	struct store_opts sopts = {
		.dir = conf->cache_dir,
		.cap = conf->cache_bytes,
		.max_fetches = conf->max_fetches,
		.walk_budget = conf->walk_budget,
		.walk_window = 60,
		.unzip_threads = 2,
		.offline = conf->offline,
		.max_series = conf->max_series_bytes,
		.readahead_max = conf->readahead_bytes,
		.streams = conf->idc_streams,
		.range_min = conf->range_min_bytes,
		.range_block = conf->range_block_bytes,
		/* IDC's files are checked against their listing's MD5s whatever this says. */
		.verify_md5 = conf->verify && strcmp(conf->verify, "md5") == 0,
	};
	struct tciafs_status status = { 0 };
	struct tciafs_hup hup = { 0 };
	struct store *store = NULL;
	struct failures *failures = NULL;
	struct metacache *cache = NULL;
	struct catalog *catalog = NULL;
	struct catalog_opts copts = { .dir = conf->cache_dir };
	struct auth *auth = NULL;
	struct http *http = NULL;
	struct tcia *tcia = NULL;
	struct idc *idc = NULL;
	struct source *src = NULL;
	struct fuse_session *se;
	char meta_dir[PATH_MAX];
	int rc = 1;

	if (tciafs_block_hup() < 0)
		return 1;
	if (snprintf(meta_dir, sizeof(meta_dir), "%s/meta", conf->cache_dir) >=
	    (int)sizeof(meta_dir)) {
		fprintf(stderr, "tciafs: cache_dir=%s: path too long\n", conf->cache_dir);
		return 1;
	}
	mopts.dir = meta_dir;
	if (metacache_new(&mopts, &cache) < 0) {
		fprintf(stderr, "tciafs: cannot use %s\n", meta_dir);
		return 1;
	}
	if (http_new(&hopts, &http) < 0 || tcia_new(http, cache, conf->api, &tcia) < 0) {
		fprintf(stderr, "tciafs: out of memory\n");
		goto out_free_model;
	}
	if (conf->source && strcmp(conf->source, "idc") == 0) {
		struct idc_opts iopts = { conf->idc_api, conf->idc_files, conf->idc_streams };

		rc = idc_new(http, &iopts, &idc);
		rc = rc < 0 ? rc : source_new_idc(idc, &src);
	} else {
		rc = source_new_nbia(tcia, &src);
	}
	if (rc < 0) {
		fprintf(stderr, "tciafs: %s\n", strerror(-rc));
		rc = 1;
		goto out_free_model;
	}
	rc = 1;
	if (store_new(&sopts, src, &store) < 0) {
		fprintf(stderr, "tciafs: cannot use the cache folder %s\n", conf->cache_dir);
		goto out_free_model;
	}
	if (failures_new(&failures) < 0) {
		fprintf(stderr, "tciafs: out of memory\n");
		goto out_free_model;
	}
	status = (struct tciafs_status){ NULL, NULL, store, http, cache, failures, NULL, src };
	/* Checked (and rebuilt if broken) here, where the user sees why it fails; opened
	 * again in the process that serves, below: SQLite connections must not cross
	 * fuse_daemonize's fork. */
	if (catalog_open(&copts, &catalog) < 0) {
		fprintf(stderr, "tciafs: cannot make the catalog in %s\n", conf->cache_dir);
		goto out_free_model;
	}
	catalog_free(catalog);
	catalog = NULL;
	topts.offline = conf->offline;
	topts.failures = failures;
	topts.store = store;
	topts.status = tciafs_status_json;
	topts.status_arg = &status;
	if (tree_new(src, &topts, &tree) < 0) {
		fprintf(stderr, "tciafs: out of memory\n");
		goto out_free_model;
	}
	/* Credentials: a file named by the user, else the environment, else none. */
	if ((conf->token_file ? auth_new_from_file(http, conf->token_file, &auth)
			      : auth_new_from_env(http, &auth)) < 0)
		goto out_free_model;
	if (auth)
		auth_attach(auth, http);
	fopts.tree = tree;
	if (fs_new(&fopts, &fs) < 0) {
		fprintf(stderr, "tciafs: out of memory\n");
		goto out_free_model;
	}
	status.fs = fs;
	status.tree = tree;
	se = fuse_session_new(args, fs_operations(), sizeof(struct fuse_lowlevel_ops), fs);
	if (!se)
		goto out_free_model;
	fs_set_session(fs, se);
	if (fuse_session_mount(se, cmd->mountpoint) != 0)
		goto out_destroy;
	if (fuse_daemonize(cmd->foreground) != 0)
		goto out_unmount;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_unmount;
	hup.cache = cache;
	hup.tree = tree;
	hup.fs = fs;
	hup.se = se;
	hup.mount_id = tciafs_mount_id(cmd->mountpoint, -1);
	hup.http = http;
	hup.store = store;
	/* Threads only now, in the process that serves (fuse_daemonize forked). */
	if (catalog_open(&copts, &catalog) < 0)
		goto out_remove_handlers;
	tree_set_catalog(tree, catalog);
	status.catalog = catalog;
	if (store_start(store) < 0 || tciafs_hup_start(&hup) < 0)
		goto out_remove_handlers;
	log_info("mounted %s (%s) on %s (cache %s)", source_url(src), source_name(src),
		 cmd->mountpoint, conf->cache_dir);
	if (cmd->singlethread)
		rc = tciafs_loop_status(fuse_session_loop(se));
	else
		rc = tciafs_loop_mt(se, cmd);
	tciafs_hup_stop(&hup);
out_remove_handlers:
	fuse_remove_signal_handlers(se);
out_unmount:
	fuse_session_unmount(se);
out_destroy:
	fuse_session_destroy(se);
out_free_model:
	fs_free(fs);
	tree_free(tree);
	store_free(store);
	source_free(src);
	idc_free(idc);
	tcia_free(tcia);
	http_free(http);
	auth_free(auth);
	metacache_free(cache);
	catalog_free(catalog);
	failures_free(failures);
	return rc;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct tciafs_conf conf = { .timeout = 30,
				    .retries = 4,
				    .meta_ttl = 86400,
				    .max_fetches = 4,
				    .walk_budget = 16,
				    .cache_bytes = (uint64_t)20 << 30,
				    .max_series_bytes = (uint64_t)64 << 30,
				    .readahead_bytes = (uint64_t)2 << 30,
				    .idc_streams = 16 };
	struct fuse_cmdline_opts cmd = { 0 };
	int rc = 1;

	/* Big buffers that come and go (listings, FUSE's request buffers) are mapped and
	 * unmapped, never left in the heap between the inode table's small nodes: glibc's
	 * moving threshold would put them there after the first free, and the heap of a
	 * long walk then holds a fifth more than it uses (measured on NLST, make bench). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	if (fuse_opt_parse(&args, &conf, tciafs_opt_spec, tciafs_opt_proc) != 0)
		goto out_free_args;
	/* The mount point is the last positional argument; a SOURCE before it is ignored. */
	if (conf.npositional > 0 &&
	    fuse_opt_add_arg(&args, conf.positional[conf.npositional - 1]) != 0)
		goto out_free_args;
	if (conf.show_version) {
		printf("tciafs %s (libfuse %s)\n", TCIAFS_VERSION, fuse_pkgversion());
		rc = 0;
		goto out_free_args;
	}
	if (conf.show_help) {
		tciafs_usage(argv[0]);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		rc = 0;
		goto out_free_args;
	}
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto out_free_args;
	if (!cmd.mountpoint) {
		fprintf(stderr, "tciafs: no mount point given (try --help)\n");
		goto out_free_cmd;
	}
	if (tciafs_check_mountpoint(cmd.mountpoint) < 0)
		goto out_free_cmd;
	if (tciafs_conf_check(&conf) < 0)
		goto out_free_cmd;
	/* Read-only at the VFS too, and name ourselves in /proc/mounts. */
	if (fuse_opt_add_arg(&args, "-oro,default_permissions,fsname=tciafs,subtype=tciafs"))
		goto out_free_cmd;
	log_init(cmd.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, !cmd.foreground);
	if (http_global_init() < 0) {
		fprintf(stderr, "tciafs: cannot initialise libcurl\n");
		goto out_free_cmd;
	}
	rc = tciafs_run(&args, &cmd, &conf);
	http_global_cleanup();
out_free_cmd:
	free(cmd.mountpoint);
out_free_args:
	fuse_opt_free_args(&args);
	free(conf.api);
	free(conf.source);
	free(conf.idc_api);
	free(conf.idc_files);
	free(conf.cache_dir);
	free(conf.token_file);
	free(conf.naming);
	free(conf.passthrough);
	free(conf.cache_size);
	free(conf.max_series);
	free(conf.readahead_max);
	free(conf.range_min);
	free(conf.range_block);
	free(conf.verify);
	free(conf.positional[0]);
	free(conf.positional[1]);
	for (size_t i = 0; i < conf.nmanifests; i++) {
		free(conf.manifest_files[i]);
		if (conf.manifests)
			view_manifest_clear(&conf.manifests[i]);
	}
	free(conf.manifest_files);
	free(conf.manifests);
	return rc;
}
