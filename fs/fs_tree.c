/*
 * fs_tree.c - the mount's namespace (see fs_tree.h).
 *
 * The invariant this file owns: an inode number, once handed to the kernel,
 * names the same path for the life of the mount, and resolves to a node
 * until the mount ends. The kernel may keep numbers long after the entry it
 * looked up disappeared (a lookup count not yet forgotten, a file still
 * open), and a number that silently named another file after a rebuild would
 * serve one model's bytes under another's name. So nodes are kept in an array
 * indexed by number and never freed, a hash from path to node gives a path
 * its old number back when it reappears, and a rebuild only toggles
 * "present" and rewrites the directory child lists. A path whose type changes
 * (a file that became a directory) gets a fresh number; the old node stays,
 * absent, for whoever still holds it.
 *
 * Lookup counts are kept per node (atomically, under the read lock) and
 * balanced by forget; since nodes are never freed they serve as a check
 * (mfs_tree_lookups), not as a lifetime.
 */
#include "fs_tree.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"

struct node {
	uint64_t ino;
	uint64_t parent;            /* root: itself */
	enum mfs_node_type type;
	enum mfs_node_level level;
	char *name;                 /* last component; "" for the root */
	char *path;                 /* from the root, no leading '/' */
	struct node *hnext;         /* path hash chain */
	_Atomic uint64_t nlookup;   /* the kernel's lookup count */

	/* Below: written only under the tree's write lock. */
	bool present;
	uint64_t seen_gen;          /* build that last placed this node */
	struct node **kids;         /* directories: present children by name */
	size_t n_kids, cap_kids;
	uint32_t n_subdirs;
	int64_t file_id, artifact_id;
	uint64_t size;
	char *target;               /* links */
};

struct mfs_tree {
	pthread_rwlock_t lock;      /* guards the fields below and node shapes */
	struct node **nodes;        /* index ino - 1 */
	size_t n_nodes, cap_nodes;
	struct node **buckets;      /* path hash; power-of-two count */
	size_t n_buckets;
	uint64_t gen;               /* builds so far */

	pthread_mutex_t refresh_lock; /* serialises refresh; guards below */
	bool built;
	int64_t store_gen;          /* store generation of the last build */
};

static uint64_t hash_path(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct node *find_path(struct mfs_tree *t, const char *path)
{
	struct node *n = t->buckets[hash_path(path) & (t->n_buckets - 1)];
	for (; n; n = n->hnext)
		if (!strcmp(n->path, path))
			break;
	return n;
}

static int grow_buckets(struct mfs_tree *t)
{
	size_t nb = t->n_buckets * 2;
	struct node **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct node *n = t->buckets[i], *next;
		for (; n; n = next) {
			next = n->hnext;
			size_t k = hash_path(n->path) & (nb - 1);
			n->hnext = b[k];
			b[k] = n;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = nb;
	return 0;
}

/* Removes n from the path hash (a replaced node keeps its number only). */
static void unhash(struct mfs_tree *t, struct node *n)
{
	struct node **pp = &t->buckets[hash_path(n->path) & (t->n_buckets - 1)];
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			n->hnext = NULL;
			return;
		}
	}
}

static struct node *new_node(struct mfs_tree *t, struct node *parent, const char *name,
			     const char *path, enum mfs_node_type type)
{
	if (t->n_nodes == t->cap_nodes) {
		size_t nc = t->cap_nodes ? t->cap_nodes * 2 : 256;
		struct node **nv = realloc(t->nodes, nc * sizeof(*nv));
		if (!nv)
			return NULL;
		t->nodes = nv;
		t->cap_nodes = nc;
	}
	if (t->n_nodes >= t->n_buckets && grow_buckets(t))
		return NULL;
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strdup(name);
	n->path = strdup(path);
	if (!n->name || !n->path) {
		free(n->name);
		free(n->path);
		free(n);
		return NULL;
	}
	n->ino = t->n_nodes + 1;
	n->parent = parent ? parent->ino : n->ino;
	n->type = type;
	n->level = !parent ? MFS_LEVEL_ROOT
		 : parent->level >= MFS_LEVEL_REPO ? MFS_LEVEL_INNER
		 : (enum mfs_node_level)(parent->level + 1);
	t->nodes[t->n_nodes++] = n;
	size_t k = hash_path(path) & (t->n_buckets - 1);
	n->hnext = t->buckets[k];
	t->buckets[k] = n;
	return n;
}

int mfs_tree_new(struct mfs_tree **out)
{
	struct mfs_tree *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->n_buckets = 256;
	t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
	pthread_rwlock_init(&t->lock, NULL);
	pthread_mutex_init(&t->refresh_lock, NULL);
	struct node *root = t->buckets ? new_node(t, NULL, "", "", MFS_NODE_DIR) : NULL;
	if (!root) {
		mfs_tree_free(t);
		return -ENOMEM;
	}
	root->present = true;
	*out = t;
	return 0;
}

void mfs_tree_free(struct mfs_tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_nodes; i++) {
		struct node *n = t->nodes[i];
		free(n->name);
		free(n->path);
		free(n->kids);
		free(n->target);
		free(n);
	}
	free(t->nodes);
	free(t->buckets);
	pthread_rwlock_destroy(&t->lock);
	pthread_mutex_destroy(&t->refresh_lock);
	free(t);
}

/* --- building ----------------------------------------------------------- */

struct pending_file {
	char *org, *name, *commit, *path;
	int64_t file_id, artifact_id;
	uint64_t size;
};

struct pending_alias {
	char *org, *name, *ref, *commit;
};

struct collect {
	struct pending_file *files;
	size_t n_files, cap_files;
	struct pending_alias *aliases;
	size_t n_aliases, cap_aliases;
};

static int collect_file(void *ctx, const struct mfs_store_entry *e)
{
	struct collect *c = ctx;
	if (c->n_files == c->cap_files) {
		size_t nc = c->cap_files ? c->cap_files * 2 : 64;
		struct pending_file *nv = realloc(c->files, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->files = nv;
		c->cap_files = nc;
	}
	struct pending_file *p = &c->files[c->n_files];
	*p = (struct pending_file){
		.org = strdup(e->org ? e->org : ""), .name = strdup(e->name ? e->name : ""),
		.commit = strdup(e->commit ? e->commit : ""), .path = strdup(e->path ? e->path : ""),
		.file_id = e->file_id, .artifact_id = e->artifact_id, .size = e->size,
	};
	c->n_files++; /* counted even when a strdup failed, so it is freed */
	if (!p->org || !p->name || !p->commit || !p->path)
		return -ENOMEM;
	return 0;
}

static int collect_alias(void *ctx, const struct mfs_store_alias *a)
{
	struct collect *c = ctx;
	if (c->n_aliases == c->cap_aliases) {
		size_t nc = c->cap_aliases ? c->cap_aliases * 2 : 16;
		struct pending_alias *nv = realloc(c->aliases, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->aliases = nv;
		c->cap_aliases = nc;
	}
	struct pending_alias *p = &c->aliases[c->n_aliases];
	*p = (struct pending_alias){
		.org = strdup(a->org ? a->org : ""), .name = strdup(a->name ? a->name : ""),
		.ref = strdup(a->ref ? a->ref : ""), .commit = strdup(a->commit ? a->commit : ""),
	};
	c->n_aliases++;
	if (!p->org || !p->name || !p->ref || !p->commit)
		return -ENOMEM;
	return 0;
}

static void collect_release(struct collect *c)
{
	for (size_t i = 0; i < c->n_files; i++) {
		free(c->files[i].org);
		free(c->files[i].name);
		free(c->files[i].commit);
		free(c->files[i].path);
	}
	for (size_t i = 0; i < c->n_aliases; i++) {
		free(c->aliases[i].org);
		free(c->aliases[i].name);
		free(c->aliases[i].ref);
		free(c->aliases[i].commit);
	}
	free(c->files);
	free(c->aliases);
}

/* A directory entry name the kernel accepts and that cannot escape. */
static bool good_name(const char *s, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	return memchr(s, '/', len) == NULL;
}

/*
 * Places the child name of parent in the current build: finds or creates
 * the node for its path, marks it present and lists it in parent. Returns
 * NULL when the name is taken in this build by a node of another type, or
 * on allocation failure (*nomem set).
 */
static struct node *place(struct mfs_tree *t, struct node *parent, const char *name,
			  enum mfs_node_type type, bool *nomem)
{
	char *path;
	if (asprintf(&path, "%s%s%s", parent->path, parent->path[0] ? "/" : "", name) < 0) {
		*nomem = true;
		return NULL;
	}
	struct node *n = find_path(t, path);
	if (n && n->type != type) {
		if (n->seen_gen == t->gen) { /* taken in this build */
			free(path);
			return NULL;
		}
		unhash(t, n); /* the old node keeps its number, absent */
		n = NULL;
	}
	if (!n)
		n = new_node(t, parent, name, path, type);
	free(path);
	if (!n) {
		*nomem = true;
		return NULL;
	}
	if (n->seen_gen == t->gen)
		return n;
	if (parent->n_kids == parent->cap_kids) {
		size_t nc = parent->cap_kids ? parent->cap_kids * 2 : 4;
		struct node **nv = realloc(parent->kids, nc * sizeof(*nv));
		if (!nv) {
			*nomem = true;
			return NULL;
		}
		parent->kids = nv;
		parent->cap_kids = nc;
	}
	parent->kids[parent->n_kids++] = n;
	if (type == MFS_NODE_DIR)
		parent->n_subdirs++;
	n->seen_gen = t->gen;
	n->present = true;
	return n;
}

static int kid_cmp(const void *a, const void *b)
{
	return strcmp((*(struct node *const *)a)->name, (*(struct node *const *)b)->name);
}

/* Places one file and its directories. Write lock held. */
static int place_file(struct mfs_tree *t, const struct pending_file *p)
{
	bool nomem = false;
	char repo[600];
	if (snprintf(repo, sizeof(repo), "%s@%s", p->name, p->commit) >= (int)sizeof(repo) ||
	    !good_name(p->org, strlen(p->org)) || !good_name(repo, strlen(repo))) {
		mfs_log_warning("mount: skipping '%s/%s@%s/%s': not a valid name",
				p->org, p->name, p->commit, p->path);
		return 0;
	}
	struct node *dir = place(t, t->nodes[0], p->org, MFS_NODE_DIR, &nomem);
	if (dir)
		dir = place(t, dir, repo, MFS_NODE_DIR, &nomem);
	const char *s = p->path;
	while (dir) {
		const char *slash = strchr(s, '/');
		size_t len = slash ? (size_t)(slash - s) : strlen(s);
		if (!good_name(s, len)) {
			mfs_log_warning("mount: skipping '%s/%s': path component not valid",
					repo, p->path);
			return 0;
		}
		char comp[256];
		memcpy(comp, s, len);
		comp[len] = '\0';
		if (!slash) {
			struct node *f = place(t, dir, comp, MFS_NODE_FILE, &nomem);
			if (f) {
				f->file_id = p->file_id;
				f->artifact_id = p->artifact_id;
				f->size = p->size;
			}
			break;
		}
		dir = place(t, dir, comp, MFS_NODE_DIR, &nomem);
		s = slash + 1;
	}
	return nomem ? -ENOMEM : 0;
}

/* Places one alias link if its commit directory is present. */
static int place_alias(struct mfs_tree *t, const struct pending_alias *a)
{
	char enc[512], link[600], target[600];
	size_t k = 0;
	for (const char *s = a->ref; *s && k + 4 < sizeof(enc); s++) {
		if (*s == '/') {
			memcpy(enc + k, "%2F", 3);
			k += 3;
		} else {
			enc[k++] = *s;
		}
	}
	enc[k] = '\0';
	if (snprintf(link, sizeof(link), "%s@%s", a->name, enc) >= (int)sizeof(link) ||
	    snprintf(target, sizeof(target), "%s@%s", a->name, a->commit) >= (int)sizeof(target) ||
	    !good_name(link, strlen(link)))
		return 0;
	char tpath[1200];
	snprintf(tpath, sizeof(tpath), "%s/%s", a->org, target);
	struct node *tn = find_path(t, tpath);
	if (!tn || tn->seen_gen != t->gen || tn->type != MFS_NODE_DIR)
		return 0; /* nothing installed at that commit */
	bool nomem = false;
	struct node *org = find_path(t, a->org);
	struct node *l = org ? place(t, org, link, MFS_NODE_LINK, &nomem) : NULL;
	if (l && (!l->target || strcmp(l->target, target))) {
		char *nt = strdup(target);
		if (!nt)
			return -ENOMEM;
		free(l->target);
		l->target = nt;
		l->size = strlen(nt);
	}
	return nomem ? -ENOMEM : 0;
}

static int apply(struct mfs_tree *t, const struct collect *c)
{
	int rc = 0;
	pthread_rwlock_wrlock(&t->lock);
	t->gen++;
	for (size_t i = 0; i < t->n_nodes; i++) {
		struct node *n = t->nodes[i];
		n->present = false;
		n->n_kids = 0;
		n->n_subdirs = 0;
	}
	struct node *root = t->nodes[0];
	root->present = true;
	root->seen_gen = t->gen;
	for (size_t i = 0; !rc && i < c->n_files; i++)
		rc = place_file(t, &c->files[i]);
	for (size_t i = 0; !rc && i < c->n_aliases; i++)
		rc = place_alias(t, &c->aliases[i]);
	for (size_t i = 0; i < t->n_nodes; i++) {
		struct node *n = t->nodes[i];
		if (n->n_kids > 1)
			qsort(n->kids, n->n_kids, sizeof(*n->kids), kid_cmp);
	}
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

int mfs_tree_refresh(struct mfs_tree *t, struct mfs_store *s, bool force,
		     bool *changed, struct mfs_err *err)
{
	int rc = 0;
	bool did = false;
	pthread_mutex_lock(&t->refresh_lock);
	int64_t g = mfs_store_generation(s);
	if (force || !t->built || g != t->store_gen) {
		struct collect c = { 0 };
		rc = mfs_store_walk(s, collect_file, collect_alias, &c, err);
		if (rc == -ENOMEM)
			MFS_ERR(err, rc, MFS_ERR_NOMEM, "out of memory reading the inventory");
		if (!rc) {
			rc = apply(t, &c);
			if (rc)
				MFS_ERR(err, rc, MFS_ERR_NOMEM, "out of memory building the tree");
		}
		if (!rc) {
			t->built = true;
			t->store_gen = g;
			did = true;
		}
		collect_release(&c);
	}
	pthread_mutex_unlock(&t->refresh_lock);
	if (changed)
		*changed = did;
	return rc;
}

/* --- reading ------------------------------------------------------------ */

static struct node *get(struct mfs_tree *t, uint64_t ino)
{
	return ino >= 1 && ino <= t->n_nodes ? t->nodes[ino - 1] : NULL;
}

static void fill(const struct node *n, struct mfs_tree_stat *st)
{
	*st = (struct mfs_tree_stat){
		.ino = n->ino,
		.type = n->type,
		.level = n->level,
		.present = n->present,
		.size = n->type == MFS_NODE_DIR ? 0 : n->size,
		.nlink = n->type == MFS_NODE_DIR ? 2 + n->n_subdirs : 1,
		.file_id = n->type == MFS_NODE_FILE ? n->file_id : 0,
		.artifact_id = n->type == MFS_NODE_FILE ? n->artifact_id : 0,
	};
}

static struct node *find_kid(const struct node *dir, const char *name)
{
	size_t lo = 0, hi = dir->n_kids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, dir->kids[mid]->name);
		if (!c)
			return dir->kids[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int mfs_tree_lookup(struct mfs_tree *t, uint64_t parent, const char *name,
		    struct mfs_tree_stat *out)
{
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	int rc = 0;
	pthread_rwlock_rdlock(&t->lock);
	struct node *dir = get(t, parent), *n = NULL;
	if (!dir)
		rc = -ENOENT;
	else if (dir->type != MFS_NODE_DIR)
		rc = -ENOTDIR;
	else if (!strcmp(name, "."))
		n = dir;
	else if (!strcmp(name, ".."))
		n = get(t, dir->parent);
	else if (dir->present)
		n = find_kid(dir, name);
	if (!rc && !n)
		rc = -ENOENT;
	if (!rc) {
		atomic_fetch_add(&n->nlookup, 1);
		fill(n, out);
	}
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

int mfs_tree_stat(struct mfs_tree *t, uint64_t ino, struct mfs_tree_stat *out)
{
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = get(t, ino);
	if (n)
		fill(n, out);
	pthread_rwlock_unlock(&t->lock);
	return n ? 0 : -ENOENT;
}

void mfs_tree_forget(struct mfs_tree *t, uint64_t ino, uint64_t n)
{
	pthread_rwlock_rdlock(&t->lock);
	struct node *nd = get(t, ino);
	if (nd) {
		uint64_t old = atomic_load(&nd->nlookup);
		/* Never below zero, even if the kernel forgets more than we saw
		 * (the root's implicit reference). */
		while (!atomic_compare_exchange_weak(&nd->nlookup, &old, old > n ? old - n : 0))
			;
	}
	pthread_rwlock_unlock(&t->lock);
}

uint64_t mfs_tree_lookups(struct mfs_tree *t)
{
	uint64_t sum = 0;
	pthread_rwlock_rdlock(&t->lock);
	for (size_t i = 0; i < t->n_nodes; i++)
		sum += atomic_load(&t->nodes[i]->nlookup);
	pthread_rwlock_unlock(&t->lock);
	return sum;
}

int mfs_tree_readlink(struct mfs_tree *t, uint64_t ino, char *buf, size_t cap)
{
	int rc = 0;
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = get(t, ino);
	if (!n)
		rc = -ENOENT;
	else if (n->type != MFS_NODE_LINK || !n->target)
		rc = -EINVAL;
	else if (strlen(n->target) >= cap)
		rc = -ERANGE;
	else
		strcpy(buf, n->target);
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

int mfs_tree_path(struct mfs_tree *t, uint64_t ino, char *buf, size_t cap)
{
	int rc = 0;
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = get(t, ino);
	if (!n)
		rc = -ENOENT;
	else if (strlen(n->path) >= cap)
		rc = -ERANGE;
	else
		strcpy(buf, n->path);
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

int mfs_tree_readdir(struct mfs_tree *t, uint64_t ino, off_t off,
		     int (*cb)(void *ctx, const char *name, const struct mfs_tree_stat *st,
			       off_t next),
		     void *ctx)
{
	int rc = 0;
	pthread_rwlock_rdlock(&t->lock);
	struct node *dir = get(t, ino);
	if (!dir) {
		rc = -ENOENT;
		goto out;
	}
	if (dir->type != MFS_NODE_DIR) {
		rc = -ENOTDIR;
		goto out;
	}
	for (off_t k = off < 0 ? 0 : off; ; k++) {
		struct mfs_tree_stat st;
		const char *name;
		if (k == 0) {
			name = ".";
			fill(dir, &st);
		} else if (k == 1) {
			name = "..";
			fill(get(t, dir->parent), &st);
		} else if ((size_t)(k - 2) < dir->n_kids) {
			struct node *n = dir->kids[k - 2];
			name = n->name;
			fill(n, &st);
		} else {
			break;
		}
		if (cb(ctx, name, &st, k + 1))
			break;
	}
out:
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

void mfs_tree_counts(struct mfs_tree *t, uint64_t *files, uint64_t *dirs)
{
	uint64_t f = 0, d = 0;
	pthread_rwlock_rdlock(&t->lock);
	for (size_t i = 0; i < t->n_nodes; i++) {
		const struct node *n = t->nodes[i];
		if (!n->present)
			continue;
		if (n->type == MFS_NODE_FILE)
			f++;
		else if (n->type == MFS_NODE_DIR)
			d++;
	}
	pthread_rwlock_unlock(&t->lock);
	*files = f;
	*dirs = d;
}
