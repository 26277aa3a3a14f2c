/*
 * cmd_cache.c - cache control: `modelfs pin`, `unpin`, `evict`, `rm`, `gc`
 * (which also sets the quota) and `why`.
 *
 * The rule these commands keep is the core's (core/evict.c): nothing of an
 * active artifact (open in any process, or pinned) is ever evicted; evict
 * and rm refuse one with the reason and what to do. Each acts on exactly one
 * installed artifact, named as `modelfs ls` shows it or by a model ref that
 * matches only one.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "cmd.h"
#include "cmd_find.h"
#include "evict.h"
#include "pin.h"
#include "store.h"
#include "text.h"

static void human(uint64_t b, char *out, size_t cap)
{
	const char *u = "BKMGT";
	double v = (double)b;
	while (v >= 1024 && u[1]) {
		v /= 1024;
		u++;
	}
	if (*u == 'B')
		snprintf(out, cap, "%llu B", (unsigned long long)b);
	else
		snprintf(out, cap, "%.1f %ciB", v, *u);
}

/* Parses the options of a command that takes one REF and only --help. */
static int one_ref(int argc, char **argv, const char *help, const char **ref)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return 0;
		}
		return mfs_cmd_usage(argv[0], "unknown option");
	}
	if (optind != argc - 1)
		return mfs_cmd_usage(argv[0], optind == argc ? "expected one REF"
							     : "expected one REF, got %d arguments",
				     argc - optind);
	*ref = argv[optind];
	return -1;
}

static char *canonical_ref(struct mfs_store *s, int64_t id)
{
	sqlite3_stmt *st;
	char *ref = NULL;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT canonical_ref FROM artifacts WHERE id = ?", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		/* For display only: escaped, since its path is the repository's (text.h). */
		if (sqlite3_step(st) == SQLITE_ROW)
			ref = mfs_text_escape((const char *)sqlite3_column_text(st, 0), 0);
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	return ref ? ref : strdup("?");
}

/* The one artifact text names; 0, or the exit status after printing why. */
static int find_one(struct mfs_cmd *cmd, const char *text, int64_t *id)
{
	int64_t *ids;
	size_t n;
	if (mfs_cmd_find(cmd, text, &ids, &n))
		return 1;
	if (n > 1) {
		fprintf(stderr, "modelfs: '%s' matches %zu installed artifacts:\n", text, n);
		for (size_t i = 0; i < n; i++) {
			char *ref = canonical_ref(cmd->store, ids[i]);
			fprintf(stderr, "  %s\n", ref);
			free(ref);
		}
		fprintf(stderr, "  name one of them by its canonical_ref\n");
		free(ids);
		return 1;
	}
	*id = ids[0];
	free(ids);
	return 0;
}

static int pin_or_unpin(struct mfs_cmd *cmd, int argc, char **argv, bool pin)
{
	const char *text = NULL;
	int rc = one_ref(argc, argv,
			 pin ? "usage: modelfs pin REF\n\n"
			       "Pins an installed artifact: none of its cached bytes is evicted, by the\n"
			       "quota or by 'modelfs evict/gc/rm', until 'modelfs unpin REF'. Bytes not\n"
			       "yet cached are still fetched on first read ('modelfs pull' fetches all).\n"
			       "REF is a canonical_ref as 'modelfs ls' shows it, or a model ref that\n"
			       "matches one installed artifact.\n"
			     : "usage: modelfs unpin REF\n\n"
			       "Removes the pin of an installed artifact: its cached bytes may be evicted\n"
			       "again when the cache passes its quota (not while a file of it is open).\n",
			 &text);
	if (rc >= 0)
		return rc;
	int64_t id;
	if ((rc = find_one(cmd, text, &id)))
		return rc;
	struct mfs_err err = { 0 };
	char *ref = canonical_ref(cmd->store, id);
	if (mfs_evict_pin(cmd->store, id, pin, &err)) {
		rc = mfs_cmd_fail(&err, pin ? "cannot pin" : "cannot unpin", NULL);
	} else {
		printf("%s %s\n", pin ? "pinned" : "unpinned", ref);
		rc = 0;
	}
	free(ref);
	return rc;
}

int mfs_cmd_pin(struct mfs_cmd *cmd, int argc, char **argv)
{
	return pin_or_unpin(cmd, argc, argv, true);
}

int mfs_cmd_unpin(struct mfs_cmd *cmd, int argc, char **argv)
{
	return pin_or_unpin(cmd, argc, argv, false);
}

int mfs_cmd_evict(struct mfs_cmd *cmd, int argc, char **argv)
{
	const char *text = NULL;
	int rc = one_ref(argc, argv,
			 "usage: modelfs evict REF\n\n"
			 "Drops the cached bytes of an installed artifact; it stays installed and\n"
			 "is fetched (and verified) again on the next read. Chunks that an open or\n"
			 "pinned artifact shares are kept. Refused while a file of the artifact is\n"
			 "open in any process or while it is pinned. Each evicted chunk is recorded\n"
			 "with reason 'manual' ('modelfs why PATH' shows it).\n",
			 &text);
	if (rc >= 0)
		return rc;
	int64_t id;
	if ((rc = find_one(cmd, text, &id)))
		return rc;
	struct mfs_err err = { 0 };
	uint64_t bytes = 0;
	char *ref = canonical_ref(cmd->store, id);
	if (mfs_evict_artifact(cmd->store, id, "manual", &bytes, &err)) {
		rc = mfs_cmd_fail(&err, "cannot evict", NULL);
	} else {
		char h[32];
		human(bytes, h, sizeof(h));
		printf("evicted %s of %s\n", h, ref);
		rc = 0;
	}
	free(ref);
	return rc;
}

int mfs_cmd_rm(struct mfs_cmd *cmd, int argc, char **argv)
{
	const char *text = NULL;
	int rc = one_ref(argc, argv,
			 "usage: modelfs rm REF\n\n"
			 "Uninstalls an artifact: its files leave the mount, its cached bytes that\n"
			 "no other artifact uses are deleted (recorded with reason 'manual'), and\n"
			 "its admission record is removed. Refused while a file of it is open in\n"
			 "any process or while it is pinned. 'modelfs add' installs it again.\n",
			 &text);
	if (rc >= 0)
		return rc;
	int64_t id;
	if ((rc = find_one(cmd, text, &id)))
		return rc;
	struct mfs_err err = { 0 };
	char *ref = canonical_ref(cmd->store, id);
	if (mfs_evict_remove(cmd->store, id, &err)) {
		rc = mfs_cmd_fail(&err, "cannot remove", NULL);
	} else {
		printf("removed %s\n", ref);
		rc = 0;
	}
	free(ref);
	return rc;
}

static int parse_pct(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*end == '%')
		end++;
	if (errno || end == s || *end || v == 0 || v > 100 || *s == '-')
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int mfs_cmd_gc(struct mfs_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quota", required_argument, NULL, 'q' },
		{ "high", required_argument, NULL, 'H' },
		{ "low", required_argument, NULL, 'L' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long long quota = 0;
	unsigned high = 0, low = 0;
	bool set = false, json = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			if (!strcmp(optarg, "none"))
				quota = 0;
			else if (mfs_cmd_parse_size(optarg, &quota))
				return mfs_cmd_usage("gc", "bad size '%s' for --quota (examples: 500M, 20G,"
							   " none)", optarg);
			set = true;
			break;
		case 'H':
		case 'L':
			if (parse_pct(optarg, c == 'H' ? &high : &low))
				return mfs_cmd_usage("gc", "bad percentage '%s' for --%s (1 to 100)",
						     optarg, c == 'H' ? "high" : "low");
			set = true;
			break;
		case 'j': json = true; break;
		case 'h':
			printf("usage: modelfs gc [--quota SIZE|none] [--high PCT] [--low PCT] [--json]\n\n"
			       "Collects the cache: when it holds more than the high watermark, evicts\n"
			       "the least recently read chunks of artifacts that are neither open nor\n"
			       "pinned down to the low watermark (reason 'quota'); drops cached chunks\n"
			       "no installed file uses, stray chunk files, files left in tmp/ by a\n"
			       "crash (older than 10 minutes) and partial downloads older than a day.\n\n"
			       "With --quota, --high or --low it first sets the cache quota, for every\n"
			       "process that uses the store (a running mount applies it at its next\n"
			       "fetch), then collects.\n\n"
			       "options:\n"
			       "  --quota SIZE   the quota in bytes, with K/M/G/T suffixes; 'none' or 0\n"
			       "                 removes it\n"
			       "  --high PCT     eviction starts above this share of the quota (default 90)\n"
			       "  --low PCT      and stops at this one (default 70)\n"
			       "  --json         print the result as JSON\n");
			return 0;
		default: return mfs_cmd_usage("gc", "unknown option");
		}
	}
	if (optind != argc)
		return mfs_cmd_usage("gc", "unexpected argument '%s'", argv[optind]);
	struct mfs_store *s = mfs_cmd_store(cmd);
	if (!s)
		return 1;
	struct mfs_err err = { 0 };
	struct mfs_quota q;
	if (set) {
		bool have_quota = false;
		for (int i = 1; i < argc; i++)
			have_quota |= !strncmp(argv[i], "--quota", 7);
		if (!have_quota) {
			mfs_evict_get_quota(s, &q);
			quota = q.bytes;
		}
		if (mfs_evict_set_quota(s, quota, high, low, &err))
			return mfs_cmd_fail(&err, "cannot set the quota", NULL);
	}
	uint64_t freed = 0;
	if (mfs_evict_gc(s, &freed, &err))
		return mfs_cmd_fail(&err, "gc did not finish", NULL);
	mfs_evict_get_quota(s, &q);
	if (json) {
		json_t *o = json_pack("{s:I,s:I,s:i,s:i,s:I,s:I,s:I,s:I}", "freed_bytes",
				      (json_int_t)freed, "quota_bytes", (json_int_t)q.bytes, "high_pct",
				      (int)q.high_pct, "low_pct", (int)q.low_pct, "high_bytes",
				      (json_int_t)q.high, "low_bytes", (json_int_t)q.low, "usage_bytes",
				      (json_int_t)q.usage, "active_bytes", (json_int_t)q.active);
		char *text = json_dumps(o, JSON_INDENT(2));
		puts(text);
		free(text);
		json_decref(o);
		return 0;
	}
	char h1[32], h2[32], h3[32];
	human(freed, h1, sizeof(h1));
	human(q.usage, h2, sizeof(h2));
	human(q.active, h3, sizeof(h3));
	printf("freed %s; cache holds %s (%s of it open or pinned)\n", h1, h2, h3);
	if (q.bytes) {
		human(q.bytes, h1, sizeof(h1));
		printf("quota %s, eviction from %u%% down to %u%%\n", h1, q.high_pct, q.low_pct);
	} else {
		printf("no quota ('modelfs gc --quota SIZE' sets one)\n");
	}
	return 0;
}

/* --- why ----------------------------------------------------------------- */

struct where {
	char org[256], name[256], rev[256], path[4096];
};

/* Splits components [j-1, j, j+1...] of path into org, name@rev and the
 * path inside the repo. */
static bool split_at(char **comp, int n, int j, struct where *w)
{
	if (j < 1 || j >= n - 1)
		return false;
	const char *at = strchr(comp[j], '@');
	if (!at || at == comp[j] || !at[1] || !*comp[j - 1])
		return false;
	snprintf(w->org, sizeof(w->org), "%s", comp[j - 1]);
	snprintf(w->name, sizeof(w->name), "%.*s", (int)(at - comp[j]), comp[j]);
	snprintf(w->rev, sizeof(w->rev), "%s", at + 1);
	w->path[0] = '\0';
	for (int k = j + 1; k < n; k++) {
		size_t len = strlen(w->path);
		snprintf(w->path + len, sizeof(w->path) - len, "%s%s", k > j + 1 ? "/" : "", comp[k]);
	}
	return true;
}

/* The commit a revision names (itself when it is one; an alias otherwise). */
static void resolve_rev(sqlite3 *db, struct where *w)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT commit_id FROM refs WHERE org = ? AND name = ? AND ref = ?"
				   " ORDER BY coalesce(sequence, 0) DESC LIMIT 1", -1, &st, NULL) !=
	    SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, w->org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, w->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, w->rev, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(w->rev, sizeof(w->rev), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

/* Finds org/repo@rev/file in text: the last place that names an installed
 * file, else the last place of that form. 0, or -1 if none has the form. */
static int parse_where(struct mfs_store *s, const char *text, struct where *w, int64_t *file_id)
{
	char *copy = strdup(text);
	char *comp[512];
	int n = 0;
	for (char *save = NULL, *t = strtok_r(copy, "/", &save); t && n < 512;
	     t = strtok_r(NULL, "/", &save))
		if (strcmp(t, "."))
			comp[n++] = t;
	int found = -1;
	*file_id = 0;
	for (int j = n - 2; j >= 1 && !*file_id; j--) {
		struct where c;
		if (!split_at(comp, n, j, &c))
			continue;
		sqlite3 *db = mfs_store_lock(s);
		resolve_rev(db, &c);
		mfs_store_unlock(s);
		int64_t id = mfs_store_file_id(s, c.org, c.name, c.rev, c.path);
		if (found < 0 || id) {
			*w = c;
			found = j;
			*file_id = id;
		}
	}
	free(copy);
	return found < 0 ? -1 : 0;
}

static int why_usage(void)
{
	printf("usage: modelfs why [--json] PATH\n\n"
	       "Explains why a file is or is not resident: whether it is installed, its\n"
	       "size, how many of its bytes and chunks are cached, whether an artifact that\n"
	       "holds it is open or pinned (then nothing of it is evicted), and every\n"
	       "eviction of its bytes, newest first, with time, bytes and reason (quota,\n"
	       "manual, corrupt, missing). Evidence outlives the bytes, and the artifact:\n"
	       "it explains why a later read fetched again.\n\n"
	       "PATH is a file under a mount (MNT/org/repo@commit/file) or org/repo@rev/file.\n\n"
	       "options:\n"
	       "  --json   print the answer as JSON\n");
	return 0;
}

int mfs_cmd_why(struct mfs_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' }, { 0 } };
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'h')
			return why_usage();
		else
			return mfs_cmd_usage("why", "unknown option");
	}
	if (optind != argc - 1)
		return mfs_cmd_usage("why", "expected one PATH");
	const char *text = argv[optind];
	struct mfs_store *s = mfs_cmd_store(cmd);
	if (!s)
		return 1;
	struct where w;
	int64_t fid = 0;
	if (parse_where(s, text, &w, &fid)) {
		fprintf(stderr, "modelfs: '%s' does not name a file as org/repo@revision/file\n"
				"  give a path under the mount or one as 'modelfs ls' shows it\n", text);
		return 1;
	}
	mfs_pin_init(s, NULL);
	mfs_pin_clear_dead(s, NULL, NULL);

	json_t *o = json_object();
	char full[4700];
	snprintf(full, sizeof(full), "%s/%s@%s/%s", w.org, w.name, w.rev, w.path);
	json_object_set_new(o, "path", json_string(full));
	json_object_set_new(o, "installed", json_boolean(fid != 0));
	sqlite3_stmt *st;
	bool active = false;
	if (fid) {
		uint64_t rb = 0;
		uint32_t rc = 0;
		mfs_store_file_resident(s, fid, &rb, &rc);
		sqlite3 *db = mfs_store_lock(s);
		if (sqlite3_prepare_v2(db, "SELECT size, n_chunks, verified FROM files WHERE id = ?", -1,
				       &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, fid);
			if (sqlite3_step(st) == SQLITE_ROW) {
				json_object_set_new(o, "size", json_integer(sqlite3_column_int64(st, 0)));
				json_object_set_new(o, "chunks", json_integer(sqlite3_column_int64(st, 1)));
				json_object_set_new(o, "verified", json_boolean(sqlite3_column_int(st, 2)));
			}
			sqlite3_finalize(st);
		}
		json_object_set_new(o, "resident_bytes", json_integer((json_int_t)rb));
		json_object_set_new(o, "resident_chunks", json_integer(rc));
		json_t *arts = json_array();
		if (sqlite3_prepare_v2(db, "SELECT a.canonical_ref, a.pinned, (SELECT group_concat(p.pid)"
					   " FROM pins p WHERE p.artifact_id = a.id AND p.count > 0)"
					   " FROM artifacts a JOIN artifact_files af ON af.artifact_id = a.id"
					   " WHERE af.file_id = ? ORDER BY a.added_at, a.id", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, fid);
			while (sqlite3_step(st) == SQLITE_ROW) {
				const char *pids = (const char *)sqlite3_column_text(st, 2);
				bool pinned = sqlite3_column_int(st, 1) != 0;
				active |= pinned || pids;
				json_array_append_new(arts, json_pack("{s:s,s:b,s:s?}", "canonical_ref",
								      sqlite3_column_text(st, 0),
								      "pinned", pinned, "open_pids", pids));
			}
			sqlite3_finalize(st);
		}
		mfs_store_unlock(s);
		json_object_set_new(o, "artifacts", arts);
		json_object_set_new(o, "active", json_boolean(active));
	}
	json_t *evs = json_array();
	char prefix[1100];
	snprintf(prefix, sizeof(prefix), "%s/%s@%s/", w.org, w.name, w.rev);
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT at, reason, sum(bytes), count(*) FROM (SELECT DISTINCT"
				   " e.at, e.reason, e.digest, e.bytes FROM evictions e WHERE"
				   " (e.path = ?1 AND substr(e.artifact, 1, length(?2)) = ?2)"
				   " OR e.digest IN (SELECT digest FROM chunks WHERE file_id = ?3))"
				   " GROUP BY at, reason ORDER BY at DESC LIMIT 50", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, w.path, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, fid);
		while (sqlite3_step(st) == SQLITE_ROW) {
			time_t at = (time_t)sqlite3_column_int64(st, 0);
			char when[64];
			struct tm tm;
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&at, &tm));
			json_array_append_new(evs, json_pack("{s:I,s:s,s:I,s:I,s:s}", "at",
							     (json_int_t)at, "time", when, "bytes",
							     (json_int_t)sqlite3_column_int64(st, 2),
							     "chunks",
							     (json_int_t)sqlite3_column_int64(st, 3),
							     "reason", sqlite3_column_text(st, 1)));
		}
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	json_object_set_new(o, "evictions", evs);

	if (!fid && !json_array_size(evs)) {
		json_decref(o);
		fprintf(stderr, "modelfs: '%s' is not an installed file and nothing of it was ever"
				" evicted\n  'modelfs ls' lists what is installed\n", full);
		return 1;
	}
	if (json) {
		char *t = json_dumps(o, JSON_INDENT(2));
		puts(t);
		free(t);
		json_decref(o);
		return 0;
	}
	char h1[32], h2[32];
	printf("%s\n", full);
	if (!fid) {
		printf("  installed: no (removed; the evidence of its evictions is kept)\n");
	} else {
		human((uint64_t)json_integer_value(json_object_get(o, "size")), h1, sizeof(h1));
		human((uint64_t)json_integer_value(json_object_get(o, "resident_bytes")), h2,
		      sizeof(h2));
		printf("  installed: yes\n  size:      %s\n  resident:  %s in %lld of %lld chunks%s\n",
		       h1, h2, (long long)json_integer_value(json_object_get(o, "resident_chunks")),
		       (long long)json_integer_value(json_object_get(o, "chunks")),
		       json_is_true(json_object_get(o, "verified")) &&
				       json_integer_value(json_object_get(o, "resident_bytes")) ==
					       json_integer_value(json_object_get(o, "size"))
			       ? " (whole file verified)"
			       : "");
		size_t i;
		json_t *a;
		json_array_foreach(json_object_get(o, "artifacts"), i, a) {
			const char *pids = json_string_value(json_object_get(a, "open_pids"));
			bool pinned = json_is_true(json_object_get(a, "pinned"));
			printf("  artifact:  %s: %s%s%s%s\n",
			       json_string_value(json_object_get(a, "canonical_ref")),
			       pinned ? "pinned" : "", pinned && pids ? ", " : "",
			       pids ? "open by pid " : "", pids ? pids : pinned ? "" : "not active");
		}
		printf("  %s\n", active ? "active: its cached bytes are not evicted"
				       : "not active: its cached bytes may be evicted under the quota");
	}
	if (!json_array_size(evs)) {
		printf("  evictions: none\n");
	} else {
		printf("  evictions, newest first:\n");
		size_t i;
		json_t *e;
		json_array_foreach(evs, i, e) {
			human((uint64_t)json_integer_value(json_object_get(e, "bytes")), h1, sizeof(h1));
			json_int_t n = json_integer_value(json_object_get(e, "chunks"));
			printf("    %s  %-8s %s in %lld chunk%s\n",
			       json_string_value(json_object_get(e, "time")),
			       json_string_value(json_object_get(e, "reason")), h1, (long long)n,
			       n == 1 ? "" : "s");
		}
	}
	json_decref(o);
	return 0;
}
