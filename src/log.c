/* SPDX-License-Identifier: MIT
 * log.c — levelled logging to stderr or syslog. Each call emits one whole line with a
 * single write so that lines from concurrent FUSE threads never interleave. Messages
 * carry names and UIDs from the network: control and bidi characters are escaped here,
 * once for every caller, so that no answer can forge or disguise a log line.
 */
#include "log.h"

#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Written once by log_init() before threads exist; read-only afterwards. */
static enum log_level log_max = LOG_LEVEL_INFO;
static bool log_syslog;

/* Why this thread's operation failed: its first error line since log_clear_reason (the
 * cause; later ones are its consequences, "download failed: Input/output error"), else
 * its last warning, or a reason adopted from the thread whose shared download or load it
 * waited for. Thread-local like errno, and for the same reason: it travels with the
 * failure without every layer in between passing it along. */
static __thread char log_why[512];
static __thread bool log_why_is_error;
/* This thread's lines are dropped (log_quiet). */
static __thread bool log_hushed;

void log_quiet(bool on)
{
	log_hushed = on;
}

const char *log_reason(void)
{
	return log_why;
}

void log_adopt_reason(const char *why)
{
	snprintf(log_why, sizeof(log_why), "%s", why ? why : "");
	log_why_is_error = why && why[0];
}

void log_clear_reason(void)
{
	log_why[0] = '\0';
	log_why_is_error = false;
}

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

size_t log_escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)in;
	size_t j = 0, k;

	if (cap == 0)
		return 0;
	while (*s) {
		char esc[12];
		size_t n = 0;

		if (*s < 0x20 || *s == 0x7f || *s == '\\') {
			esc[n++] = '\\';
			if (*s == '\\') {
				esc[n++] = '\\';
			} else {
				esc[n++] = 'x';
				esc[n++] = hex[*s >> 4];
				esc[n++] = hex[*s & 15];
			}
			s++;
		} else if ((k = utf8_bidi_len((const char *)s, 3)) != 0) {
			unsigned cp =
				k == 2 ? 0x061c : ((s[1] & 0x3fu) << 6 | (s[2] & 0x3fu)) | 0x2000;

			n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", cp);
			s += k;
		} else {
			esc[n++] = (char)*s++;
		}
		if (j + n >= cap)
			break; /* cut, never split an escape */
		memcpy(out + j, esc, n);
		j += n;
	}
	out[j] = '\0';
	return j;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char raw[2048], line[2048];
	va_list ap;
	int n;

	if ((!log_enabled(level) && level > LOG_LEVEL_WARN) || log_hushed)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(raw, sizeof(raw), fmt, ap); /* an over-long line is cut, never dropped */
	va_end(ap);
	if (level <= LOG_LEVEL_WARN && !log_why_is_error) {
		log_escape(raw, log_why, sizeof(log_why));
		log_why_is_error = level == LOG_LEVEL_ERR;
	}
	if (!log_enabled(level))
		return;
	if (log_syslog) {
		log_escape(raw, line, sizeof(line));
		syslog(prio[level], "%s", line);
		return;
	}
	n = snprintf(line, sizeof(line), "tciafs: %s: ", names[level]);
	if (n < 0)
		n = 0;
	n += (int)log_escape(raw, line + n, sizeof(line) - 1 - (size_t)n);
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}
