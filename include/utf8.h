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

#endif
