/*
 * repo.c - repository dispatch and the helpers every implementation shares.
 */
#include "repo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "repo_mem.h"
#include "url.h"

int mfs_fetch_parse_timeout(const char *s, long *ms)
{
	char *end;
	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-' || v < 1 || v > MFS_FETCH_DEADLINE_MAX_S)
		return -EINVAL;
	*ms = (long)v * 1000;
	return 0;
}

long mfs_fetch_deadline_ms(const struct mfs_fetch_opts *o)
{
	long ms;
	if (o && o->deadline_ms > 0)
		return o->deadline_ms;
	if (!mfs_fetch_parse_timeout(getenv("MODELFS_TIMEOUT"), &ms))
		return ms;
	return MFS_FETCH_DEADLINE_DEFAULT_S * 1000L;
}

void mfs_repo_listing_release(struct mfs_repo_listing *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->files[i].path);
	free(l->files);
	l->files = NULL;
	l->n = 0;
}

int mfs_repo_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err)
{
	if (!strncmp(endpoint, "file://", 7))
		return mfs_repo_dir_open(endpoint, out, err);
	if (!strncmp(endpoint, "http://", 7) || !strncmp(endpoint, "https://", 8))
		return mfs_repo_hub_open(endpoint, out, err);
	if (!strncmp(endpoint, "mem:", 4))
		return mfs_repo_mem_open(endpoint, out, err);
	char shown[512];
	return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
		       "unknown repository '%s': use file:///DIR, http(s)://HOST or an HF endpoint",
		       mfs_url_redact(endpoint, shown, sizeof(shown)));
}

void mfs_repo_close(struct mfs_repo *r)
{
	if (r)
		r->ops->close(r);
}

struct read_one {
	void *buf;
	int status;
	struct mfs_err *err;
	bool given;
	const char *path;
	uint64_t off, len;
	const uint8_t *expect;
};

static bool read_one_next(void *ctx, struct mfs_fetch_req *req)
{
	struct read_one *r = ctx;
	if (r->given)
		return false;
	r->given = true;
	*req = (struct mfs_fetch_req){ .path = r->path, .off = r->off, .len = r->len };
	if (r->expect) {
		req->has_expect = true;
		memcpy(req->expect, r->expect, MFS_SHA256_LEN);
	}
	return true;
}

static int read_one_done(void *ctx, const struct mfs_fetch_req *req, const void *buf, size_t len)
{
	struct read_one *r = ctx;
	if (len != req->len)
		return r->status = MFS_ERR(r->err, -EIO, MFS_ERR_HTTP,
					   "short range for '%s': %zu of %llu bytes", req->path,
					   len, (unsigned long long)req->len);
	memcpy(r->buf, buf, len);
	r->status = 0;
	return 0;
}

static void read_one_failed(void *ctx, const struct mfs_fetch_req *req, const struct mfs_err *e)
{
	struct read_one *r = ctx;
	r->status = e && e->code ? e->code : -EIO;
	if (r->err && e)
		*r->err = *e;
}

int mfs_repo_read(struct mfs_repo *r, const char *repo, const char *commit,
		  const char *path, uint64_t off, uint64_t len, const uint8_t *expect,
		  void *buf, struct mfs_err *err)
{
	struct read_one one = { .buf = buf, .status = -EIO, .err = err, .path = path,
				.off = off, .len = len, .expect = expect };
	struct mfs_fetch_job job = { .next = read_one_next, .done = read_one_done,
				     .failed = read_one_failed, .ctx = &one };
	struct mfs_fetch_opts opts = { .max_inflight = 1 };
	int rc = mfs_repo_fetch(r, repo, commit, &job, &opts, err);
	if (rc < 0)
		return rc;
	if (one.status == -EIO && err && !err->code)
		MFS_ERR(err, -EIO, MFS_ERR_IO, "no answer for '%s'", path);
	return one.status;
}

bool mfs_fetch_req_verify(const struct mfs_fetch_req *req, const void *buf, size_t len)
{
	if (!req->has_expect)
		return true;
	uint8_t d[MFS_SHA256_LEN];
	if (len != req->len)
		return false;
	mfs_sha256(buf, len, d);
	return memcmp(d, req->expect, MFS_SHA256_LEN) == 0;
}
