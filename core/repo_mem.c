/*
 * repo_mem.c - an in-memory repository for tests (see repo_mem.h).
 *
 * Small and linear: tests hold a handful of files. One global mutex guards
 * every registered repository.
 */
#include "repo_mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mem_file {
	char *repo, *commit, *path;
	uint8_t *data;
	size_t len;
	enum mfs_repo_mem_fault fault;
	unsigned long fetches;
	struct mem_file *next;
};

struct mem_ref {
	char *repo, *name, *commit;
	struct mem_ref *next;
};

struct mfs_repo_mem {
	char *name;
	struct mem_file *files;
	struct mem_ref *refs;
	struct mfs_repo_mem *next;
};

struct repo_mem {
	struct mfs_repo base;
	struct mfs_repo_mem *m;
};

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mfs_repo_mem *mem_all; /* mem_lock */

struct mfs_repo_mem *mfs_repo_mem_get(const char *name)
{
	pthread_mutex_lock(&mem_lock);
	struct mfs_repo_mem *m = mem_all;
	while (m && strcmp(m->name, name))
		m = m->next;
	if (!m) {
		m = calloc(1, sizeof(*m));
		m->name = strdup(name);
		m->next = mem_all;
		mem_all = m;
	}
	pthread_mutex_unlock(&mem_lock);
	return m;
}

static struct mem_file *find_file(struct mfs_repo_mem *m, const char *repo, const char *commit,
				  const char *path)
{
	for (struct mem_file *f = m->files; f; f = f->next)
		if ((!repo || !strcmp(f->repo, repo)) && (!commit || !strcmp(f->commit, commit)) &&
		    !strcmp(f->path, path))
			return f;
	return NULL;
}

void mfs_repo_mem_put(struct mfs_repo_mem *m, const char *repo, const char *commit,
		      const char *path, const void *data, size_t len)
{
	pthread_mutex_lock(&mem_lock);
	struct mem_file *f = find_file(m, repo, commit, path);
	if (!f) {
		f = calloc(1, sizeof(*f));
		f->repo = strdup(repo);
		f->commit = strdup(commit);
		f->path = strdup(path);
		f->next = m->files;
		m->files = f;
	}
	free(f->data);
	f->data = malloc(len ? len : 1);
	memcpy(f->data, data, len);
	f->len = len;
	pthread_mutex_unlock(&mem_lock);
}

void mfs_repo_mem_ref(struct mfs_repo_mem *m, const char *repo, const char *name,
		      const char *commit)
{
	pthread_mutex_lock(&mem_lock);
	struct mem_ref *r = m->refs;
	while (r && (strcmp(r->repo, repo) || strcmp(r->name, name)))
		r = r->next;
	if (!r) {
		r = calloc(1, sizeof(*r));
		r->repo = strdup(repo);
		r->name = strdup(name);
		r->next = m->refs;
		m->refs = r;
	} else {
		free(r->commit);
	}
	r->commit = strdup(commit);
	pthread_mutex_unlock(&mem_lock);
}

void mfs_repo_mem_fault(struct mfs_repo_mem *m, const char *path, enum mfs_repo_mem_fault fault)
{
	pthread_mutex_lock(&mem_lock);
	for (struct mem_file *f = m->files; f; f = f->next)
		if (!strcmp(f->path, path))
			f->fault = fault;
	pthread_mutex_unlock(&mem_lock);
}

unsigned long mfs_repo_mem_fetches(struct mfs_repo_mem *m, const char *path)
{
	unsigned long n = 0;
	pthread_mutex_lock(&mem_lock);
	for (struct mem_file *f = m->files; f; f = f->next)
		if (!strcmp(f->path, path))
			n += f->fetches;
	pthread_mutex_unlock(&mem_lock);
	return n;
}

void mfs_repo_mem_reset(void)
{
	pthread_mutex_lock(&mem_lock);
	while (mem_all) {
		struct mfs_repo_mem *m = mem_all;
		mem_all = m->next;
		while (m->files) {
			struct mem_file *f = m->files;
			m->files = f->next;
			free(f->repo), free(f->commit), free(f->path), free(f->data), free(f);
		}
		while (m->refs) {
			struct mem_ref *r = m->refs;
			m->refs = r->next;
			free(r->repo), free(r->name), free(r->commit), free(r);
		}
		free(m->name);
		free(m);
	}
	pthread_mutex_unlock(&mem_lock);
}

static int mem_resolve(struct mfs_repo *r, const char *repo, const char *rev, char commit[41],
		       struct mfs_err *err)
{
	struct mfs_repo_mem *m = ((struct repo_mem *)r)->m;
	int rc = -ENOENT;
	bool repo_known = false;
	size_t n = rev ? strlen(rev) : 0;
	pthread_mutex_lock(&mem_lock);
	for (struct mem_ref *x = m->refs; x && rc; x = x->next)
		if (!strcmp(x->repo, repo) && !strcmp(x->name, rev ? rev : "main")) {
			snprintf(commit, 41, "%s", x->commit);
			rc = 0;
		}
	for (struct mem_file *f = m->files; f; f = f->next) {
		if (strcmp(f->repo, repo))
			continue;
		repo_known = true;
		if (rc && n >= 4 && n <= 40 && !strncmp(f->commit, rev, n)) {
			snprintf(commit, 41, "%s", f->commit);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&mem_lock);
	if (rc && !repo_known)
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "repository '%s' not found", repo);
	if (rc)
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "revision '%s' not found in '%s'",
			       rev ? rev : "main", repo);
	return 0;
}

static int mem_list(struct mfs_repo *r, const char *repo, const char *commit,
		    struct mfs_repo_listing *out, struct mfs_err *err)
{
	struct mfs_repo_mem *m = ((struct repo_mem *)r)->m;
	struct mfs_repo_listing l = { 0 };
	pthread_mutex_lock(&mem_lock);
	for (struct mem_file *f = m->files; f; f = f->next)
		if (!strcmp(f->repo, repo) && !strcmp(f->commit, commit))
			l.n++;
	l.files = calloc(l.n ? l.n : 1, sizeof(*l.files));
	size_t i = 0;
	for (struct mem_file *f = m->files; f && l.files; f = f->next) {
		if (strcmp(f->repo, repo) || strcmp(f->commit, commit))
			continue;
		l.files[i].path = strdup(f->path);
		l.files[i].size = f->len;
		uint8_t d[MFS_SHA256_LEN];
		mfs_sha256(f->data, f->len, d);
		mfs_hex_encode(d, sizeof(d), l.files[i].sha256);
		l.files[i].has_sha256 = true;
		l.files[i].git_oid[0] = '\0';
		i++;
	}
	pthread_mutex_unlock(&mem_lock);
	if (!l.files)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	if (!l.n) {
		free(l.files);
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "no files in '%s' at %s", repo, commit);
	}
	*out = l;
	return 0;
}

static int mem_fetch(struct mfs_repo *r, const char *repo, const char *commit,
		     const struct mfs_fetch_job *job, const struct mfs_fetch_opts *opts,
		     struct mfs_err *err)
{
	struct mfs_repo_mem *m = ((struct repo_mem *)r)->m;
	struct mfs_fetch_req q;
	int rc = 0;
	(void)opts;
	(void)err;
	while (!rc && job->next(job->ctx, &q)) {
		struct mfs_err e = { 0 };
		uint8_t *buf = NULL;
		pthread_mutex_lock(&mem_lock);
		struct mem_file *f = find_file(m, repo, commit, q.path);
		enum mfs_repo_mem_fault fault = f ? f->fault : MFS_MEM_FAULT_NONE;
		if (f && q.off <= f->len && q.len <= f->len - q.off && fault != MFS_MEM_FAULT_FAIL) {
			buf = malloc(q.len ? q.len : 1);
			memcpy(buf, f->data + q.off, q.len);
			f->fetches++;
			if (fault == MFS_MEM_FAULT_CORRUPT_ONCE)
				f->fault = MFS_MEM_FAULT_NONE;
		}
		pthread_mutex_unlock(&mem_lock);
		if (!buf) {
			MFS_ERR(&e, f ? -EIO : -ENOENT, f ? MFS_ERR_IO : MFS_ERR_NOT_FOUND,
				"cannot fetch '%s' [%llu+%llu]", q.path, (unsigned long long)q.off,
				(unsigned long long)q.len);
			job->failed(job->ctx, &q, &e);
			continue;
		}
		if (fault == MFS_MEM_FAULT_CORRUPT_ONCE || fault == MFS_MEM_FAULT_CORRUPT_ALWAYS)
			buf[q.len / 2] ^= 0x5a;
		if (!mfs_fetch_req_verify(&q, buf, q.len) && fault == MFS_MEM_FAULT_CORRUPT_ONCE) {
			/* The retry a real repository makes: fetch again, good this time. */
			pthread_mutex_lock(&mem_lock);
			memcpy(buf, f->data + q.off, q.len);
			f->fetches++;
			pthread_mutex_unlock(&mem_lock);
		}
		if (!mfs_fetch_req_verify(&q, buf, q.len)) {
			MFS_ERR(&e, -EIO, MFS_ERR_HASH, "bytes of '%s' do not match their SHA-256", q.path);
			job->failed(job->ctx, &q, &e);
		} else {
			rc = job->done(job->ctx, &q, buf, q.len);
		}
		free(buf);
	}
	return rc;
}

static void mem_close(struct mfs_repo *r)
{
	free(r->endpoint);
	free(r);
}

static const struct mfs_repo_ops mem_ops = {
	.kind = "mem",
	.resolve = mem_resolve,
	.list = mem_list,
	.fetch = mem_fetch,
	.close = mem_close,
};

int mfs_repo_mem_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err)
{
	struct repo_mem *r = calloc(1, sizeof(*r));
	if (!r || !(r->base.endpoint = strdup(endpoint))) {
		free(r);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	r->base.ops = &mem_ops;
	r->m = mfs_repo_mem_get(endpoint + 4);
	*out = &r->base;
	return 0;
}
