/* SPDX-License-Identifier: MIT
 * tree.c — the namespace: which paths exist, what they list and what generated files
 * hold. Collection names come from the API through tcia.c, are sanitised here, and are
 * kept for meta_ttl seconds; no request is made until someone looks.
 */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tcia.h"

#define TREE_NAME_MAX 255

/* One immutable snapshot of the collection list; shared by reference count so that
 * readers never hold the tree lock while they use it. */
struct tree_colls {
	int refs;		/* protected by tree->lock */
	time_t fetched;
	size_t count;
	char **names;		/* sanitised, sorted, unique */
};

struct tree {
	struct tcia *tcia;	/* borrowed */
	char *cache_dir;
	long meta_ttl;
	time_t mounted;
	uid_t uid;
	gid_t gid;
	char *readme;
	size_t readme_len;
	pthread_mutex_t lock;
	struct tree_colls *colls;	/* protected by lock; NULL until first asked */
};

static const char *const tree_probe_names[] = {
	"desktop.ini", "autorun.inf", "Thumbs.db", "folder.jpg", "folder.gif",
	"AlbumArtSmall.jpg", "Desktop.ini", "AUTORUN.INF",
};

bool tree_is_probe_name(const char *name)
{
	size_t i;

	/* Nothing TCIA names starts with a dot once sanitised; dot names are hidden-file,
	 * VCS and desktop probes (.hidden, .directory, .DS_Store, .git, .Trash-0). */
	if (name[0] == '.')
		return true;
	for (i = 0; i < sizeof(tree_probe_names) / sizeof(tree_probe_names[0]); i++)
		if (strcmp(name, tree_probe_names[i]) == 0)
			return true;
	return false;
}

char *tree_sanitize_name(const char *name)
{
	size_t n = strlen(name), i;
	char *out;

	if (n == 0)
		return strdup("_empty_");
	if (strcmp(name, ".") == 0)
		return strdup("_dot_");
	if (strcmp(name, "..") == 0)
		return strdup("_dotdot_");
	if (n > TREE_NAME_MAX) {
		n = TREE_NAME_MAX;
		/* Back off continuation bytes so no UTF-8 sequence is split. */
		while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
			n--;
	}
	out = strndup(name, n);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c == '/' || c < 0x20 || c == 0x7F)
			out[i] = '_';
	}
	/* A leading dot would hide the entry and look like a probe name. */
	if (out[0] == '.')
		out[0] = '_';
	return out;
}

static int tree_make_readme(struct tree *t)
{
	static const char fmt[] =
		"tciafs: The Cancer Imaging Archive (TCIA) as a read-only filesystem.\n"
		"\n"
		"API:    %s\n"
		"Cache:  %s\n"
		"\n"
		"Layout\n"
		"  /README.txt       this file\n"
		"  /<Collection>/    one folder per TCIA collection (getCollectionValues)\n"
		"\n"
		"Names from the archive are made safe for a filesystem: '/' and control\n"
		"characters become '_'. Everything here is read-only.\n"
		"\n"
		"Unmount with:  fusermount3 -u <mountpoint>\n";
	const char *api = tcia_base_url(t->tcia);
	int n = snprintf(NULL, 0, fmt, api, t->cache_dir);

	if (n < 0)
		return -EINVAL;
	t->readme = malloc((size_t)n + 1);
	if (!t->readme)
		return -ENOMEM;
	snprintf(t->readme, (size_t)n + 1, fmt, api, t->cache_dir);
	t->readme_len = (size_t)n;
	return 0;
}

int tree_new(struct tcia *tcia, const struct tree_opts *opts, struct tree **out)
{
	struct tree *t;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tcia = tcia;
	t->meta_ttl = opts->meta_ttl;
	t->mounted = time(NULL);
	t->uid = getuid();
	t->gid = getgid();
	t->cache_dir = strdup(opts->cache_dir ? opts->cache_dir : "");
	if (!t->cache_dir || tree_make_readme(t) < 0) {
		free(t->cache_dir);
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

static void tree_colls_free(struct tree_colls *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->count; i++)
		free(c->names[i]);
	free(c->names);
	free(c);
}

static void tree_colls_put(struct tree *t, struct tree_colls *c)
{
	bool last;

	if (!c)
		return;
	pthread_mutex_lock(&t->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&t->lock);
	if (last)
		tree_colls_free(c);
}

void tree_free(struct tree *tree)
{
	if (!tree)
		return;
	if (tree->colls)
		tree_colls_put(tree, tree->colls);
	pthread_mutex_destroy(&tree->lock);
	free(tree->readme);
	free(tree->cache_dir);
	free(tree);
}

static int tree_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Two API names can sanitise to the same text ("a/b" and "a_b"): later ones get a
 * numbered suffix so that every collection stays reachable. */
static int tree_uniquify(char **names, size_t count)
{
	size_t i;

	for (i = 1; i < count; i++) {
		char *fixed;
		size_t len;

		if (strcmp(names[i], names[i - 1]) != 0)
			continue;
		len = strlen(names[i]) + 16;
		fixed = malloc(len);
		if (!fixed)
			return -ENOMEM;
		snprintf(fixed, len, "%s~%zu", names[i], i);
		free(names[i]);
		names[i] = fixed;
	}
	return 0;
}

static int tree_colls_build(struct tcia_values *v, struct tree_colls **out)
{
	struct tree_colls *c = calloc(1, sizeof(*c));
	size_t i;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->names = calloc(v->count ? v->count : 1, sizeof(char *));
	if (!c->names)
		goto out_free;
	for (i = 0; i < v->count; i++) {
		c->names[i] = tree_sanitize_name(v->v[i].value);
		if (!c->names[i])
			goto out_free;
		c->count++;
	}
	qsort(c->names, c->count, sizeof(char *), tree_cmp_names);
	if (tree_uniquify(c->names, c->count) < 0)
		goto out_free;
	c->refs = 1;
	c->fetched = time(NULL);
	*out = c;
	return 0;

out_free:
	tree_colls_free(c);
	return -ENOMEM;
}

/* Returns a referenced snapshot of the collections (release with tree_colls_put), asking
 * the API when there is none or it is older than meta_ttl. On a failed refresh an older
 * snapshot is served (stale-if-error). The lock is never held across the request. */
static int tree_colls_get(struct tree *t, struct tree_colls **out)
{
	struct tree_colls *c, *fresh = NULL;
	struct tcia_values v;
	int rc;

	pthread_mutex_lock(&t->lock);
	c = t->colls;
	if (c && time(NULL) - c->fetched < t->meta_ttl) {
		c->refs++;
		pthread_mutex_unlock(&t->lock);
		*out = c;
		return 0;
	}
	pthread_mutex_unlock(&t->lock);

	rc = tcia_get_collections(t->tcia, &v);
	if (rc == 0) {
		rc = tree_colls_build(&v, &fresh);
		tcia_values_clear(&v);
	}
	pthread_mutex_lock(&t->lock);
	if (rc == 0) {
		c = t->colls;
		t->colls = fresh;
		fresh->refs++;
		*out = fresh;
	} else if (t->colls) {
		log_warn("collections: serving the list from %lds ago: %s",
			 (long)(time(NULL) - t->colls->fetched), strerror(-rc));
		t->colls->refs++;
		*out = t->colls;
		c = NULL;
		rc = 0;
	} else {
		c = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	if (rc == 0 && c && c != *out)
		tree_colls_put(t, c);
	return rc;
}

static bool tree_colls_has(const struct tree_colls *c, const char *name)
{
	return bsearch(&name, c->names, c->count, sizeof(char *), tree_cmp_names) != NULL;
}

static void tree_fill_dir(const struct tree *t, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_mtime = st->st_ctime = st->st_atime = t->mounted;
}

static void tree_fill_file(const struct tree *t, size_t size, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_mtime = st->st_ctime = st->st_atime = t->mounted;
}

/* Splits "/a/b" into its first component (copied into first, at most 255 bytes) and the
 * rest (pointing into path, "" at the end). Returns the depth, or -ENAMETOOLONG. */
static int tree_split(const char *path, char *first, size_t first_size, const char **rest)
{
	const char *p = path, *slash;
	size_t n;
	int depth = 0;

	while (*p == '/')
		p++;
	*rest = "";
	first[0] = '\0';
	if (*p == '\0')
		return 0;
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n >= first_size)
		return -ENAMETOOLONG;
	memcpy(first, p, n);
	first[n] = '\0';
	depth = 1;
	if (slash) {
		*rest = slash + 1;
		while (**rest == '/')
			(*rest)++;
		if (**rest)
			depth = 2;
	}
	return depth;
}

static bool tree_path_has_probe(const char *path)
{
	const char *p = path;

	while (*p) {
		const char *end;
		char comp[TREE_NAME_MAX + 1];
		size_t n;

		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		n = (size_t)(end - p);
		if (n > 0 && n <= TREE_NAME_MAX) {
			memcpy(comp, p, n);
			comp[n] = '\0';
			if (tree_is_probe_name(comp))
				return true;
		}
		p = end;
	}
	return false;
}

void tree_expire(struct tree *tree)
{
	struct tree_colls *c;

	pthread_mutex_lock(&tree->lock);
	c = tree->colls;
	/* Keep the snapshot for stale-if-error, but make it look old. */
	if (c)
		c->fetched = 0;
	pthread_mutex_unlock(&tree->lock);
}

int tree_stat(struct tree *tree, const char *path, struct stat *st)
{
	char first[TREE_NAME_MAX + 1];
	struct tree_colls *c;
	const char *rest;
	int depth, rc;

	depth = tree_split(path, first, sizeof(first), &rest);
	if (depth < 0)
		return depth;
	if (depth == 0) {
		tree_fill_dir(tree, st);
		return 0;
	}
	if (depth == 1 && strcmp(first, "README.txt") == 0) {
		tree_fill_file(tree, tree->readme_len, st);
		return 0;
	}
	if (tree_path_has_probe(path))
		return -ENOENT;
	rc = tree_colls_get(tree, &c);
	if (rc < 0)
		return rc;
	rc = tree_colls_has(c, first) ? 0 : -ENOENT;
	tree_colls_put(tree, c);
	if (rc < 0)
		return rc;
	if (depth > 1)
		return -ENOENT;	/* collection contents arrive with the browse work */
	tree_fill_dir(tree, st);
	return 0;
}

int tree_list(struct tree *tree, const char *path, tree_fill_fn fill, void *ctx)
{
	struct tree_colls *c;
	struct stat st;
	size_t i;
	int rc;

	rc = tree_stat(tree, path, &st);
	if (rc < 0)
		return rc;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (path[strspn(path, "/")] != '\0')
		return 0;	/* a collection: nothing below it yet */
	rc = tree_colls_get(tree, &c);
	if (rc < 0)
		return rc;
	tree_fill_file(tree, tree->readme_len, &st);
	if (fill(ctx, "README.txt", &st) == 0) {
		tree_fill_dir(tree, &st);
		for (i = 0; i < c->count; i++)
			if (fill(ctx, c->names[i], &st) != 0)
				break;
	}
	tree_colls_put(tree, c);
	return 0;
}

int tree_open(struct tree *tree, const char *path, int flags)
{
	struct stat st;
	int rc;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EROFS;
	rc = tree_stat(tree, path, &st);
	if (rc < 0)
		return rc;
	return S_ISDIR(st.st_mode) ? -EISDIR : 0;
}

ssize_t tree_read(struct tree *tree, const char *path, char *buf, size_t size, off_t off)
{
	size_t n;

	if (strcmp(path, "/README.txt") != 0)
		return -ENOENT;
	if (off < 0)
		return -EINVAL;
	if ((size_t)off >= tree->readme_len)
		return 0;
	n = tree->readme_len - (size_t)off;
	if (n > size)
		n = size;
	memcpy(buf, tree->readme + off, n);
	return (ssize_t)n;
}
