/* SPDX-License-Identifier: MIT
 * tree.h — the namespace tciafs shows: path → node, names, listings, generated files.
 * Plain C types only (no FUSE): fs.c translates, and the unit tests call it directly.
 */
#ifndef TCIAFS_TREE_H
#define TCIAFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct tcia;
struct tree;

struct tree_opts {
	const char *cache_dir;	/* shown in README.txt; copied */
	long meta_ttl;		/* seconds an API answer is trusted */
};

/* Creates the tree over a TCIA client (borrowed; must outlive the tree). Makes no
 * request. Returns 0 or -ENOMEM. */
int tree_new(struct tcia *tcia, const struct tree_opts *opts, struct tree **out);
void tree_free(struct tree *tree);

/* Forgets what the tree knows of the archive (SIGHUP): the next look asks again, but
 * the old answers still cover a failed refresh. */
void tree_expire(struct tree *tree);

/* Fills *st for path ("/" or "/a/b"). Returns 0, -ENOENT, or -errno from the API. */
int tree_stat(struct tree *tree, const char *path, struct stat *st);

/* Called once per entry of a listing, "." and ".." excluded; returns nonzero to stop. */
typedef int (*tree_fill_fn)(void *ctx, const char *name, const struct stat *st);

/* Lists a directory in sorted order. Returns 0, -ENOTDIR, -ENOENT, or -errno. */
int tree_list(struct tree *tree, const char *path, tree_fill_fn fill, void *ctx);

/* Checks that path is a readable file (read-only access). Returns 0 or -errno. */
int tree_open(struct tree *tree, const char *path, int flags);

/* Copies up to size bytes at off of a generated file. Returns the count or -errno. */
ssize_t tree_read(struct tree *tree, const char *path, char *buf, size_t size, off_t off);

/* Makes a name from the API safe as one path component: '/' and control characters
 * become '_', "." / ".." / "" become visible placeholders, and the result is cut to 255
 * bytes on a UTF-8 boundary. Returns a new string (caller frees), NULL if out of memory. */
char *tree_sanitize_name(const char *name);

/* True for names that file managers and indexers probe for and that can never exist
 * here (".hidden", "desktop.ini", …): they are answered without any request. */
bool tree_is_probe_name(const char *name);

#endif
