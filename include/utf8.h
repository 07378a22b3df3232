/* SPDX-License-Identifier: MIT
 * utf8.h — small facts about UTF-8 text from the network that more than one module needs
 * (names shown to users, log lines).
 */
#ifndef TCIAFS_UTF8_H
#define TCIAFS_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length in bytes of a bidi control at s (U+202A–U+202E, U+2066–U+2069, U+200E,
 * U+200F, U+061C), looking at no more than n bytes; 0 when there is none. They reorder
 * what a terminal or file manager shows: "evil\u202Egpj.exe" shows as "evilexe.jpg". */
size_t utf8_bidi_len(const char *s, size_t n);

/* Whether s[0..n) is UTF-8 as jansson takes it: no overlong form, no surrogate, nothing
 * past U+10FFFF (NUL bytes are the caller's to judge). */
bool utf8_valid(const char *s, size_t n);

/* The length of s cut to at most max bytes without splitting a UTF-8 sequence (a run of
 * continuation bytes that is not UTF-8 is cut where it stands). */
size_t utf8_cut(const char *s, size_t max);

/* Names that would be the same in one folder ("a/b" and "a_b" both sanitise to "a_b"):
 * the n-th of them (n ≥ 2) is "name~n", name cut on a UTF-8 boundary to
 * UTF8_TWIN_KEEP bytes so that the whole fits a 255-byte name whatever n is. The one
 * rule for the catalog's folders, the tree's collections and a facet's links. Returns a
 * new string, or NULL when out of memory. */
#define UTF8_TWIN_KEEP 230
char *utf8_twin(const char *name, size_t n);

#endif
