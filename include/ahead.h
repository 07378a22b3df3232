/* SPDX-License-Identifier: MIT
 * ahead.h — elements of a long answer worked on by a helper thread ahead of the caller,
 * handed back to it in their order: a bulk load parses (jansson) on one core while it
 * stores what came before on the other.
 */
#ifndef TCIAFS_AHEAD_H
#define TCIAFS_AHEAD_H

#include <stdbool.h>
#include <stddef.h>

struct ahead;

/* On the helper: makes item (item_size bytes, zeroed) from an element's text. Returns 0
 * when made, anything else when the caller is to do it itself (a failure, or an element
 * left out: what it logs and returns is then the caller's, on the caller's thread). */
typedef int (*ahead_work_fn)(void *ctx, const char *text, size_t len, void *item);
/* On the caller, in order: one element, with made telling whether item was made (then
 * done owns it, and clears it) or not (item is zeroed). Returns 0 or -errno: the first
 * failure stops the answer. */
typedef int (*ahead_done_fn)(void *ctx, const char *text, size_t len, void *item, bool made);
/* Clears an item made and never handed to done (after a failure or a reset). */
typedef void (*ahead_clear_fn)(void *item);

/* Elements are gathered in batches; the helper starts once a first batch is full, so a
 * short answer (less than a batch) is all done on the caller's thread, as before. */
int ahead_new(size_t item_size, ahead_work_fn work, ahead_done_fn done, ahead_clear_fn clear,
	      void *ctx, struct ahead **out);
/* Takes an element's text (copied). done runs here for elements whose turn came. Returns
 * 0 or the first failure of done (or -ENOMEM). */
int ahead_put(struct ahead *a, const char *text, size_t len);
/* The end of the answer: every element left is done, in order. Returns 0 or the first
 * failure. */
int ahead_end(struct ahead *a);
/* Starts over (a retried request): elements not yet done are dropped. */
void ahead_reset(struct ahead *a);
void ahead_free(struct ahead *a);

#endif
