/* SPDX-License-Identifier: MIT
 * caller.h — who is asking, as every model call that may wait is told: the process (the
 * store's walk guard counts per process) and whether its wait was interrupted. fs.c
 * fills one per request from FUSE's context; the tree and the store only read it.
 */
#ifndef TCIAFS_CALLER_H
#define TCIAFS_CALLER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct caller {
	pid_t pid;
	uid_t uid;
	/* Polled while the caller waits; NULL = never interrupted. */
	bool (*interrupted)(void *arg);
	void *arg;
};

/* Whether who (NULL = nobody in particular) gave up waiting. */
static inline bool caller_interrupted(const struct caller *who)
{
	return who && who->interrupted && who->interrupted(who->arg);
}

/* who's process, 0 for nobody in particular. */
static inline pid_t caller_pid(const struct caller *who)
{
	return who ? who->pid : 0;
}

#endif
