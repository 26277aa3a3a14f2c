/*
 * fs_xattr.c - the user.modelfs.* extended attributes of an installed file.
 *
 * The list is built per request from the store (a handful of indexed
 * queries): attributes are for people and scripts inspecting a mount, not
 * for the read path. docs/mount.md documents every name and value format.
 *
 * The list is bounded. The kernel refuses a listxattr answer above
 * XATTR_LIST_MAX (64 KiB) with E2BIG, a name above XATTR_NAME_MAX (255 bytes)
 * and a value above XATTR_SIZE_MAX (64 KiB); and the metadata of a file
 * (safetensors' __metadata__ holds up to 1 MiB of keys the file's author
 * chose) is not ours to bound. So the documented attributes are always
 * listed, and the metadata attributes only while they fit the limits below;
 * those left out are counted in user.modelfs.meta_omitted. Metadata keys are
 * also restricted to printable ASCII without spaces, so an attribute name
 * never carries a control character to whoever lists it.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "url.h"
#include "fs.h"
#include "inventory.h"
#include "pin.h"

static int add(struct mfs_fs_xattrs *x, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Limits on the metadata attributes (docs/mount.md "Attributes"). */
#define META_ATTRS_MAX 256          /* metadata attributes listed */
#define META_NAMES_MAX (32u << 10)  /* bytes of their names, NULs included */
#define META_VALUE_MAX 4096u        /* bytes of one value */
#define XATTR_NAME_LIMIT 255u       /* the kernel's XATTR_NAME_MAX */

/* What the metadata attributes have used of the limits above. */
struct meta_budget {
	size_t attrs, name_bytes;
	size_t omitted;                 /* left out: over a limit, or a bad key */
};

/* True when a metadata key may become part of an attribute name. */
static bool key_is_printable(const char *k)
{
	for (; *k; k++)
		if ((unsigned char)*k <= 0x20 || (unsigned char)*k >= 0x7f)
			return false;
	return true;
}

static int add(struct mfs_fs_xattrs *x, const char *name, const char *fmt, ...)
{
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 32;
		char **nn = realloc(x->names, nc * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		x->names = nn;
		char **nv = realloc(x->values, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		x->values = nv;
		x->cap = nc;
	}
	char *n = NULL, *v = NULL;
	va_list ap;
	va_start(ap, fmt);
	int rv = vasprintf(&v, fmt, ap);
	va_end(ap);
	if (rv < 0 || asprintf(&n, MFS_XATTR_PREFIX "%s", name) < 0) {
		free(rv < 0 ? NULL : v);
		return -ENOMEM;
	}
	x->names[x->n] = n;
	x->values[x->n] = v;
	x->n++;
	return 0;
}

/* Adds the scalars of a JSON object as prefix.key (nested objects give
 * prefix.key.sub). Arrays are left out: they are not compact. */
static int add_json(struct mfs_fs_xattrs *x, const char *prefix, json_t *o, int depth,
		    struct meta_budget *b)
{
	const char *k;
	json_t *v;
	int rc = 0;
	json_object_foreach(o, k, v) {
		char name[XATTR_NAME_LIMIT + 1];
		int len = snprintf(name, sizeof(name), "%s.%s", prefix, k);
		/* The full name is MFS_XATTR_PREFIX + name, NUL included in the list. */
		size_t full = sizeof(MFS_XATTR_PREFIX) + (size_t)(len > 0 ? len : 0);
		bool scalar = !json_is_object(v) && !json_is_array(v) && !json_is_null(v);
		if (len < 0 || full - 1 > XATTR_NAME_LIMIT || !key_is_printable(k) ||
		    (json_is_string(v) && json_string_length(v) > META_VALUE_MAX) ||
		    (scalar && (b->attrs >= META_ATTRS_MAX ||
				b->name_bytes + full > META_NAMES_MAX))) {
			if (!json_is_array(v))
				b->omitted++;
			continue;
		}
		if (scalar) {
			b->attrs++;
			b->name_bytes += full;
		}
		switch (json_typeof(v)) {
		case JSON_STRING: rc = add(x, name, "%s", json_string_value(v)); break;
		case JSON_INTEGER: rc = add(x, name, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
		case JSON_REAL: rc = add(x, name, "%.17g", json_real_value(v)); break;
		case JSON_TRUE: rc = add(x, name, "true"); break;
		case JSON_FALSE: rc = add(x, name, "false"); break;
		case JSON_OBJECT:
			if (depth < 3)
				rc = add_json(x, name, v, depth + 1, b);
			break;
		default: break;
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* The compact metadata: {"gguf":{...}} / {"safetensors":{...}} keep their
 * own names; a flat object is named after the artifact's format. */
static int add_meta(struct mfs_fs_xattrs *x, const char *meta_json, const char *format)
{
	if (!meta_json || !*meta_json)
		return 0;
	json_t *o = json_loads(meta_json, 0, NULL);
	if (!o)
		return 0;
	int rc = 0;
	struct meta_budget b = { 0 };
	if (json_is_object(o)) {
		json_t *g = json_object_get(o, "gguf"), *s = json_object_get(o, "safetensors");
		if (json_is_object(g) || json_is_object(s)) {
			if (json_is_object(g))
				rc = add_json(x, "gguf", g, 1, &b);
			if (!rc && json_is_object(s))
				rc = add_json(x, "safetensors", s, 1, &b);
		} else {
			rc = add_json(x, format && *format ? format : "meta", o, 1, &b);
		}
	}
	json_decref(o);
	if (!rc && b.omitted)
		rc = add(x, "meta_omitted", "%zu", b.omitted);
	return rc;
}

int mfs_fs_xattrs_build(struct mfs_fs *fs, const struct mfs_tree_stat *st,
			struct mfs_fs_xattrs *out, struct mfs_err *err)
{
	struct mfs_fs_xattrs x = { 0 };
	if (st->type != MFS_NODE_FILE) {
		*out = x;
		return 0;
	}
	struct mfs_fs_file *ff = mfs_fs_file_get(fs, st->file_id, st->artifact_id);
	if (!ff)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	int rc = mfs_fs_file_load(fs, ff, err);
	if (rc)
		return rc;
	const struct mfs_file *f = &ff->f;
	struct mfs_inv_artifact a;
	rc = mfs_inv_artifact_load(fs->store, st->artifact_id, &a, err);
	if (rc)
		return rc;
	uint64_t rbytes;
	uint32_t rchunks;
	mfs_fs_file_resident(fs, ff, 0, &rbytes, &rchunks);
	struct mfs_inv_eviction ev = { 0 };
	rc = mfs_inv_last_eviction(fs->store, st->file_id, &ev, err);
	if (rc)
		goto out;
	bool open_here = mfs_fs_art_open(fs, st->artifact_id);
	bool active = open_here || a.pinned || mfs_pin_active(fs->store, st->artifact_id);
	bool verified = mfs_inv_file_verified(fs->store, st->file_id);

	char state[96];
	snprintf(state, sizeof(state), "installed %s%s%s",
		 rchunks == f->n_chunks ? "resident" : rchunks ? "partial" : "absent",
		 active ? " active" : "", a.pinned ? " pinned" : "");
	char when[64] = "";
	if (ev.any) {
		time_t t = (time_t)ev.at;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}

	rc = add(&x, "canonical_ref", "%s", a.canonical_ref ? a.canonical_ref : "");
	if (!rc) rc = add(&x, "distribution_id", "%s", a.distribution_id ? a.distribution_id : "");
	if (!rc) rc = add(&x, "identity", "%s", a.identity ? a.identity : "");
	if (!rc) rc = add(&x, "sha256", "%s", f->sha256);
	char shown[1024]; /* stores from before redaction may still hold credentials */
	if (!rc) rc = add(&x, "source", "%s %s/%s %s %s",
			  mfs_url_redact(f->endpoint, shown, sizeof(shown)), f->org, f->name,
			  a.revision && *a.revision ? a.revision : f->commit, f->path);
	if (!rc) rc = add(&x, "commit", "%s", f->commit);
	if (!rc) rc = add(&x, "trust", "%s", f->trust ? f->trust : (a.trust ? a.trust : ""));
	if (!rc) rc = add(&x, "state", "%s", state);
	if (!rc) rc = add(&x, "size", "%" PRIu64, f->size);
	if (!rc) rc = add(&x, "resident_bytes", "%" PRIu64, rbytes);
	if (!rc) rc = add(&x, "chunks", "%" PRIu32 "/%" PRIu32, rchunks, f->n_chunks);
	if (!rc) rc = add(&x, "chunk_size", "%" PRIu32, f->chunk_size);
	if (!rc) rc = add(&x, "verified", "%s", verified ? "whole-file" : "chunks");
	if (!rc) rc = add(&x, "format", "%s", a.format ? a.format : "");
	if (!rc && ev.any)
		rc = add(&x, "last_eviction", "%s %s %" PRId64 " bytes", when, ev.reason, ev.bytes);
	else if (!rc)
		rc = add(&x, "last_eviction", "none");
	if (!rc)
		rc = add_meta(&x, a.meta_json, a.format);
	if (rc)
		MFS_ERR(err, rc, MFS_ERR_NOMEM, "out of memory building attributes");
out:
	mfs_inv_artifact_release(&a);
	if (rc)
		mfs_fs_xattrs_release(&x);
	else
		*out = x;
	return rc;
}

void mfs_fs_xattrs_release(struct mfs_fs_xattrs *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->names[i]);
		free(x->values[i]);
	}
	free(x->names);
	free(x->values);
	memset(x, 0, sizeof(*x));
}
