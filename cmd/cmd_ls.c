/*
 * cmd_ls.c - `modelfs ls`, `modelfs status`, and finding installed
 * artifacts by what a person types (cmd_find.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "url.h"
#include "cmd.h"
#include "cmd_find.h"
#include "ref.h"
#include "store.h"
#include "text.h"

int mfs_cmd_find(struct mfs_cmd *cmd, const char *text, int64_t **ids, size_t *n)
{
	struct mfs_store *s = mfs_cmd_store(cmd);
	if (!s)
		return -1;
	struct mfs_ref ref = { 0 };
	bool is_ref = mfs_ref_parse(text, &ref, NULL) == 0;
	size_t cap = 8, count = 0;
	int64_t *out = malloc(cap * sizeof(*out));
	sqlite3_stmt *st;
	sqlite3 *db = mfs_store_lock(s);
	/* Exact canonical_ref, a path under the mount (org/repo@commit/file), or
	 * a model ref matched on org/repo, revision and selector. */
	if (sqlite3_prepare_v2(db,
			       "SELECT DISTINCT a.id FROM artifacts a LEFT JOIN refs r ON r.org = a.org"
			       " AND r.name = a.name AND r.commit_id = a.commit_id"
			       " WHERE a.canonical_ref = ?1 OR ?1 LIKE '%/' || a.canonical_ref"
			       " OR (?2 IS NOT NULL AND a.org = ?2 AND a.name = ?3"
			       "  AND (?4 IS NULL OR r.ref = ?4 OR substr(a.commit_id, 1, length(?4)) = lower(?4))"
			       "  AND (?5 IS NULL OR instr(lower(a.primary_path), lower(?5)) > 0))"
			       " ORDER BY a.added_at, a.id", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
		if (is_ref) {
			sqlite3_bind_text(st, 2, ref.org, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, ref.repo, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, ref.revision, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 5, ref.selector, -1, SQLITE_STATIC);
		}
		while (out && sqlite3_step(st) == SQLITE_ROW) {
			if (count == cap) {
				int64_t *p = realloc(out, (cap *= 2) * sizeof(*out));
				if (!p)
					break;
				out = p;
			}
			out[count++] = sqlite3_column_int64(st, 0);
		}
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	mfs_ref_release(&ref);
	if (!count) {
		free(out);
		fprintf(stderr, "modelfs: no installed artifact matches '%s'\n"
				"  'modelfs ls' lists what is installed\n", text);
		return -1;
	}
	*ids = out;
	*n = count;
	return 0;
}

/* One row of the inventory, as JSON. */
static json_t *artifact_json(struct mfs_store *s, sqlite3_stmt *st)
{
	int64_t id = sqlite3_column_int64(st, 0);
	char shown[1024]; /* stores from before redaction may still hold credentials */
	mfs_url_redact((const char *)sqlite3_column_text(st, 6), shown, sizeof(shown));
	json_t *a = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "id", (json_int_t)id,
			      "canonical_ref", sqlite3_column_text(st, 1), "distribution_id",
			      sqlite3_column_text(st, 2), "identity", sqlite3_column_text(st, 3),
			      "format", sqlite3_column_text(st, 4), "trust",
			      sqlite3_column_text(st, 5), "endpoint", shown,
			      "revision", sqlite3_column_text(st, 7) ? (const char *)sqlite3_column_text(st, 7) : "",
			      "commit", sqlite3_column_text(st, 8), "pinned",
			      sqlite3_column_int(st, 9) != 0);
	json_t *meta = json_loads((const char *)sqlite3_column_text(st, 10), 0, NULL);
	json_object_set_new(a, "metadata", meta ? meta : json_object());
	return a;
}

/* Sizes and residency per file of an artifact (queried after the row loop,
 * since the store lock is not re-entrant). */
static void add_files(struct mfs_store *s, json_t *a)
{
	sqlite3_stmt *st;
	json_int_t id = json_integer_value(json_object_get(a, "id"));
	json_t *files = json_array();
	uint64_t size = 0, resident = 0;
	struct { int64_t id; char path[1024]; char sha256[65]; uint64_t size; int verified; } rows[256];
	size_t n = 0;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT f.id, f.path, f.size, f.verified, f.sha256 FROM files f JOIN"
				   " artifact_files af ON af.file_id = f.id WHERE af.artifact_id = ?"
				   " ORDER BY f.path", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		while (n < 256 && sqlite3_step(st) == SQLITE_ROW) {
			rows[n].id = sqlite3_column_int64(st, 0);
			snprintf(rows[n].path, sizeof(rows[n].path), "%s", sqlite3_column_text(st, 1));
			rows[n].size = (uint64_t)sqlite3_column_int64(st, 2);
			rows[n].verified = sqlite3_column_int(st, 3);
			snprintf(rows[n].sha256, sizeof(rows[n].sha256), "%s", sqlite3_column_text(st, 4));
			n++;
		}
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	for (size_t i = 0; i < n; i++) {
		uint64_t rb = 0;
		uint32_t rc = 0;
		mfs_store_file_resident(s, rows[i].id, &rb, &rc);
		size += rows[i].size;
		resident += rb;
		json_array_append_new(files, json_pack("{s:s,s:s,s:I,s:I,s:b}", "path", rows[i].path,
						       "sha256", rows[i].sha256, "size",
						       (json_int_t)rows[i].size, "resident_bytes",
						       (json_int_t)rb, "verified", rows[i].verified));
	}
	json_object_set_new(a, "files", files);
	json_object_set_new(a, "size", json_integer((json_int_t)size));
	json_object_set_new(a, "resident_bytes", json_integer((json_int_t)resident));
	json_object_set_new(a, "state", json_string(json_is_true(json_object_get(a, "pinned"))
							    ? "active"
						    : resident == size ? "resident" : "installed"));
}

static void human(uint64_t b, char *out, size_t cap)
{
	const char *u = "BKMGT";
	double v = (double)b;
	while (v >= 1024 && u[1]) {
		v /= 1024;
		u++;
	}
	snprintf(out, cap, *u == 'B' ? "%.0f%c" : "%.1f%c", v, *u);
}

json_t *mfs_cmd_inventory(struct mfs_store *s)
{
	json_t *list = json_array();
	sqlite3_stmt *st;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT id, canonical_ref, distribution_id, identity, format, trust,"
				   " endpoint, revision, commit_id, pinned, meta_json FROM artifacts"
				   " ORDER BY canonical_ref", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(list, artifact_json(s, st));
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a)
		add_files(s, a);
	return list;
}

int mfs_cmd_ls(struct mfs_cmd *cmd, int argc, char **argv)
{
	bool json = false;
	int r = mfs_cmd_simple_opts(argc, argv, &json,
				    "usage: modelfs ls [--json]\n\nLists installed artifacts: canonical_ref, "
				    "size, resident bytes, state\n(installed, resident, active) and trust "
				    "(publisher key id or 'hub').\n");
	if (r >= 0)
		return r;
	if (optind != argc)
		return mfs_cmd_usage("ls", "unexpected argument '%s'", argv[optind]);
	struct mfs_store *s = mfs_cmd_store(cmd);
	if (!s)
		return 1;
	json_t *list = mfs_cmd_inventory(s);
	if (json) {
		/* ASCII only: names from repositories reach the terminal as \u
		 * escapes, never as control characters (text.h). */
		char *text = json_dumps(list, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		puts(text);
		free(text);
	} else {
		size_t i;
		json_t *a;
		if (json_array_size(list))
			printf("%-9s %-9s %-9s %-16s %s\n", "SIZE", "RESIDENT", "STATE", "TRUST",
			       "CANONICAL_REF");
		json_array_foreach(list, i, a) {
			char sz[32], rs[32];
			human((uint64_t)json_integer_value(json_object_get(a, "size")), sz, sizeof(sz));
			human((uint64_t)json_integer_value(json_object_get(a, "resident_bytes")), rs,
			      sizeof(rs));
			/* The canonical ref holds a path the repository chose. */
			char *ref = mfs_text_escape(json_string_value(json_object_get(a, "canonical_ref")), 0);
			printf("%-9s %-9s %-9s %-16s %s\n", sz, rs,
			       json_string_value(json_object_get(a, "state")),
			       json_string_value(json_object_get(a, "trust")), ref ? ref : "?");
			free(ref);
		}
	}
	json_decref(list);
	return 0;
}
