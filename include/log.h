/* SPDX-License-Identifier: MIT
 * log.h — levelled logging for tciafs: stderr in the foreground, syslog when daemonised.
 * The level and sink are set once by main() before any thread starts and never change.
 */
#ifndef TCIAFS_LOG_H
#define TCIAFS_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Sets the most verbose level printed and whether lines go to syslog (daemon facility,
 * ident "tciafs") instead of stderr. Call once, before starting threads. */
void log_init(enum log_level max, bool use_syslog);

/* Writes one line (a newline is added). Safe from any thread. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

bool log_enabled(enum log_level level);

/* Why this thread's operation failed, in the words of its first error line since
 * log_clear_reason, else its last warning (escaped as logged, without the
 * "tciafs: error: " prefix); "" when none. Valid until this thread logs again. */
const char *log_reason(void);

/* A thread that answers with another thread's failure (it waited for that thread's
 * download or load) takes its reason as its own. NULL clears it. */
void log_adopt_reason(const char *why);

/* Forgets this thread's reason (at the start of an operation). */
void log_clear_reason(void);

/* Drops this thread's lines from now on (on), or not: for a helper thread whose failures
 * the thread it helps does again, and reports as its own. */
void log_quiet(bool on);

/* Copies in to out (at most cap bytes with the NUL) with control characters as \xNN,
 * backslashes doubled and bidi controls as \uNNNN, cutting before an escape that would
 * not fit. Returns the length written. */
size_t log_escape(const char *in, char *out, size_t cap);

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
