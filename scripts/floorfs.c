/* floorfs: the fastest FUSE daemon a walk of tciafs's tree can have, for make bench only.
 * It computes an NLST-shaped tree from inode numbers (nothing loaded, nothing kept, no
 * lock) and answers as tciafs does (readdirplus, no opendir, listings kept by the kernel,
 * a facet folder's links past its first 4,096 sent with their type only, as fs.c's
 * FS_DIR_PLUS_MAX does), so its walk times are what FUSE itself costs on this machine:
 * the floor under ours.
 *
 * floorfs MOUNTPOINT PATIENTS STUDIES_PER_PATIENT SERIES_PER_STUDY [FUSE options]
 * Tree: /C/P<p>/{patient.json,S<study>/{study.json,<study>.<k>/}}, and, as in the fake's
 * scale collection (every series CT, CHEST, SIEMENS), three facet folders of one value
 * each holding a link to every series: /C/.by-modality/CT/P<p>_<study>.<k> -> ../../…  */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { K_ROOT = 0, K_COLL, K_PAT, K_STUDY, K_SERIES, K_PJSON, K_SJSON, K_FACET, K_FVAL, K_LINK };

static const char *const facets[3][2] = {
	{ ".by-bodypart", "CHEST" },
	{ ".by-manufacturer", "SIEMENS" },
	{ ".by-modality", "CT" },
};

/* ino = kind << 40 | index; the root is FUSE_ROOT_ID. */
static fuse_ino_t ino_of(unsigned kind, unsigned long i)
{
	return kind == K_ROOT ? FUSE_ROOT_ID : ((fuse_ino_t)kind << 40 | i);
}

static unsigned kind_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? K_ROOT : (unsigned)(ino >> 40);
}

static unsigned long index_of(fuse_ino_t ino)
{
	return (unsigned long)(ino & ((1UL << 40) - 1));
}

static unsigned long patients, per_patient, per_study;

/* Where facet link ino points: its series' folder, from the facet value folder. */
static int link_target(fuse_ino_t ino, char *buf, size_t len)
{
	unsigned long all = patients * per_patient * per_study, i = index_of(ino) % all;
	unsigned long study = i / per_study;

	return snprintf(buf, len, "../../P%06lu/S%07lu/%lu.%lu", study / per_patient, study, study,
			i % per_study);
}

static void fill(fuse_ino_t ino, struct stat *st)
{
	unsigned k = kind_of(ino);

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = k == K_PJSON || k == K_SJSON ? S_IFREG | 0444
		      : k == K_LINK                ? S_IFLNK | 0777
						   : S_IFDIR | 0555;
	st->st_nlink = S_ISDIR(st->st_mode) ? 2 : 1;
	st->st_size = S_ISDIR(st->st_mode)   ? 0
		      : S_ISLNK(st->st_mode) ? link_target(ino, NULL, 0)
					     : 512;
	st->st_mtime = 1700000000;
}

/* The name of child number i of a folder, and its inode; 0 past the end. */
static fuse_ino_t child(fuse_ino_t dir, unsigned long i, char *name, size_t len)
{
	unsigned long d = index_of(dir);

	switch (kind_of(dir)) {
	case K_ROOT:
		if (i > 0)
			return 0;
		snprintf(name, len, "C");
		return ino_of(K_COLL, 0);
	case K_COLL:
		if (i < 3) {
			snprintf(name, len, "%s", facets[i][0]);
			return ino_of(K_FACET, i);
		}
		if (i - 3 >= patients)
			return 0;
		snprintf(name, len, "P%06lu", i - 3);
		return ino_of(K_PAT, i - 3);
	case K_FACET:
		if (i > 0)
			return 0;
		snprintf(name, len, "%s", facets[d][1]);
		return ino_of(K_FVAL, d);
	case K_FVAL: {
		unsigned long all = patients * per_patient * per_study, study = i / per_study;

		if (i >= all)
			return 0;
		snprintf(name, len, "P%06lu_%lu.%lu", study / per_patient, study, i % per_study);
		return ino_of(K_LINK, d * all + i);
	}
	case K_PAT:
		if (i > per_patient)
			return 0;
		if (i == 0) {
			snprintf(name, len, "patient.json");
			return ino_of(K_PJSON, d);
		}
		snprintf(name, len, "S%07lu", d * per_patient + i - 1);
		return ino_of(K_STUDY, d * per_patient + i - 1);
	case K_STUDY:
		if (i > per_study)
			return 0;
		if (i == 0) {
			snprintf(name, len, "study.json");
			return ino_of(K_SJSON, d);
		}
		snprintf(name, len, "%lu.%lu", d, i - 1);
		return ino_of(K_SERIES, d * per_study + i - 1);
	default:
		return 0;
	}
}

static void ff_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	char buf[64];
	unsigned long i;
	fuse_ino_t ino;

	/* Lookups are rare in a walk (readdirplus brings the entries); a scan will do. */
	for (i = 0; (ino = child(parent, i, buf, sizeof(buf))) != 0; i++)
		if (strcmp(buf, name) == 0)
			break;
	if (!ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = e.entry_timeout = 86400;
	fill(ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void ff_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	fill(ino, &st);
	fuse_reply_attr(req, &st, 86400);
}

static void ff_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[96];

	link_target(ino, target, sizeof(target));
	fuse_reply_readlink(req, target);
}

static void ff_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS); /* the kernel keeps every listing from now on */
}

static void ff_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	char *buf = malloc(size), name[64];
	size_t used = 0;
	unsigned long i;
	fuse_ino_t c;

	(void)fi;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = (unsigned long)off; (c = child(ino, i, name, sizeof(name))) != 0; i++) {
		struct fuse_entry_param e;
		size_t n;

		memset(&e, 0, sizeof(e));
		if (kind_of(c) == K_LINK && i >= 4096) {
			e.attr.st_mode = S_IFLNK; /* no inode for the kernel to make */
			e.attr.st_ino = 0xffffffff;
		} else {
			e.ino = c;
			e.attr_timeout = e.entry_timeout = 86400;
			fill(c, &e.attr);
		}
		n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)i + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ff_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
}

static const struct fuse_lowlevel_ops ff_ops = {
	.init = ff_init,
	.lookup = ff_lookup,
	.getattr = ff_getattr,
	.readlink = ff_readlink,
	.opendir = ff_opendir,
	.readdirplus = ff_readdirplus,
};

int main(int argc, char **argv)
{
	struct fuse_args args;
	struct fuse_session *se;
	struct fuse_loop_config *loop;
	int rc = 1;

	if (argc < 5) {
		fprintf(stderr, "usage: floorfs MOUNTPOINT PATIENTS STUDIES_PER_PATIENT "
				"SERIES_PER_STUDY [-o ...]\n");
		return 2;
	}
	patients = strtoul(argv[2], NULL, 10);
	per_patient = strtoul(argv[3], NULL, 10);
	per_study = strtoul(argv[4], NULL, 10);
	argv[4] = argv[0]; /* libfuse sees: floorfs [options] */
	args = (struct fuse_args)FUSE_ARGS_INIT(argc - 4, argv + 4);
	se = fuse_session_new(&args, &ff_ops, sizeof(ff_ops), NULL);
	if (!se)
		return 1;
	if (fuse_session_mount(se, argv[1]) != 0)
		goto out_destroy;
	/* The loop tciafs runs: worker threads as requests come. */
	loop = fuse_loop_cfg_create();
	if (loop) {
		fuse_loop_cfg_set_max_threads(loop, 64);
		fuse_loop_cfg_set_idle_threads(loop, 10);
		rc = fuse_session_loop_mt(se, loop) < 0;
		fuse_loop_cfg_destroy(loop);
	}
	fuse_session_unmount(se);
out_destroy:
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	return rc;
}
