/* SPDX-License-Identifier: MIT
 * log.c — levelled logging to stderr or syslog. Each call emits one whole line with a
 * single write so that lines from concurrent FUSE threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Written once by log_init() before threads exist; read-only afterwards. */
static enum log_level log_max = LOG_LEVEL_INFO;
static bool log_syslog;

void log_init(enum log_level max, bool use_syslog)
{
	log_max = max;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("tciafs", LOG_PID, LOG_DAEMON);
}

bool log_enabled(enum log_level level)
{
	return level <= log_max;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048];
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	if (log_syslog) {
		vsyslog(prio[level], fmt, ap);
		va_end(ap);
		return;
	}
	n = snprintf(line, sizeof(line), "tciafs: %s: ", names[level]);
	if (n < 0)
		n = 0;
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;	/* an over-long line is cut, never dropped */
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}
