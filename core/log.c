/*
 * log.c - see log.h.
 *
 * Rate limit: a failure that repeats (a reader, or the kernel on its behalf,
 * asking again and again for bytes that cannot be fetched) must not turn
 * into megabytes of log. Each message is keyed by its call site (the format
 * string) and its text with the digits left out, so "read of X at 1048576
 * failed" and "read of X at 2097152 failed" are the same key while failures
 * of two different repositories are not. A key may log MFS_LOG_BURST lines
 * per MFS_LOG_WINDOW_MS; the rest are counted, and the next line of that key
 * after the window (or mfs_log_flush) says how many were left out, with the
 * last one as an example. The table of keys is fixed (MFS_LOG_SLOTS); a key
 * that finds no slot shares one overflow key, so memory and output stay
 * bounded however many different messages come. Debug lines (request
 * tracing) are never limited: they are asked for.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MFS_LOG_SLOTS 128
#define MFS_LOG_PROBES 8

struct log_key {
	uint64_t hash;            /* 0: free */
	uint64_t window_start_ms;
	unsigned shown;           /* lines shown in this window */
	unsigned long suppressed; /* lines left out in this window */
	enum mfs_log_level level; /* of the last one left out */
	char sample[256];         /* the last one left out */
};

static mfs_log_sink_fn log_sink;
static enum mfs_log_level log_max = MFS_LOG_WARNING;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_key log_keys[MFS_LOG_SLOTS + 1]; /* log_lock; last: overflow */

static const char *const level_names[] = { [MFS_LOG_ERROR] = "error",
	[MFS_LOG_WARNING] = "warning", [MFS_LOG_NOTICE] = "notice",
	[MFS_LOG_INFO] = "info", [MFS_LOG_DEBUG] = "debug" };

void mfs_log_setup(mfs_log_sink_fn sink, enum mfs_log_level max_level)
{
	log_sink = sink;
	log_max = max_level;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void emit(enum mfs_log_level level, const char *msg)
{
	if (log_sink)
		log_sink(level, msg);
	else
		fprintf(stderr, "modelfs: %s: %s\n", level_names[level], msg);
}

/* FNV-1a over the call site and the text without its digits. */
static uint64_t key_of(const char *fmt, const char *msg)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	uintptr_t site = (uintptr_t)fmt;
	for (size_t i = 0; i < sizeof(site); i++) {
		h ^= (site >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	for (const char *p = msg; *p; p++) {
		if (*p >= '0' && *p <= '9')
			continue;
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ULL;
	}
	return h ? h : 1;
}

/* The key's slot: its own, a free one, one whose key has been quiet for a
 * whole window (nothing left to report), or the shared overflow slot. */
static struct log_key *slot_of(uint64_t hash, uint64_t now)
{
	struct log_key *idle = NULL;
	for (unsigned i = 0; i < MFS_LOG_PROBES; i++) {
		struct log_key *k = &log_keys[(hash + i) % MFS_LOG_SLOTS];
		if (k->hash == hash)
			return k;
		if (!k->hash || (!idle && !k->suppressed &&
				 now - k->window_start_ms >= MFS_LOG_WINDOW_MS))
			idle = idle ? idle : k;
	}
	if (!idle)
		return &log_keys[MFS_LOG_SLOTS];
	*idle = (struct log_key){ .hash = hash };
	return idle;
}

/* Says how many lines of k were left out, and opens a new window. Called
 * with log_lock held. */
static void close_window(struct log_key *k, uint64_t now)
{
	if (k->suppressed) {
		char line[512];
		snprintf(line, sizeof(line), "%lu similar messages left out in the last %llu s;"
			 " the last: %s", k->suppressed,
			 (unsigned long long)((now - k->window_start_ms + 999) / 1000), k->sample);
		emit(k->level, line);
	}
	k->window_start_ms = now;
	k->shown = 0;
	k->suppressed = 0;
}

void mfs_log(enum mfs_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level >= MFS_LOG_DEBUG) {
		emit(level, msg);
		return;
	}
	uint64_t now = now_ms();
	pthread_mutex_lock(&log_lock);
	struct log_key *k = slot_of(key_of(fmt, msg), now);
	if (!k->window_start_ms || now - k->window_start_ms >= MFS_LOG_WINDOW_MS)
		close_window(k, now);
	if (k->shown < MFS_LOG_BURST) {
		k->shown++;
		emit(level, msg);
	} else {
		k->suppressed++;
		k->level = level;
		snprintf(k->sample, sizeof(k->sample), "%s", msg);
	}
	pthread_mutex_unlock(&log_lock);
}

void mfs_log_flush(bool all)
{
	uint64_t now = now_ms();
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i <= MFS_LOG_SLOTS; i++) {
		struct log_key *k = &log_keys[i];
		if (k->suppressed && (all || now - k->window_start_ms >= MFS_LOG_WINDOW_MS))
			close_window(k, now);
	}
	pthread_mutex_unlock(&log_lock);
}
