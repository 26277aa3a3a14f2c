/*
 * repo.h - the repository interface: where listings and bytes come from.
 *
 * A repository answers three questions for a model repo "org/name":
 *   resolve  - which immutable commit (40 lowercase hex) a revision names;
 *   list     - which files that commit holds, with sizes and what checksums
 *              the repository itself claims (LFS SHA-256, git blob id);
 *   fetch    - the bytes of byte ranges of those files, streamed to a job.
 *
 * Implementations: repo_mem.c (in-memory, for tests and fault injection),
 * repo_dir.c (file:///DIR laid out DIR/<org>/<name>/<files>) and repo_hub.c
 * (an HF-compatible hub over HTTP(S) through libcurl). A repository object is
 * thread-safe: several threads may call fetch at once (the FUSE daemon does).
 *
 * Nothing a repository returns is trusted. Verification is done by the
 * fetch layer (expected digests in the request) and by admission.
 */
#ifndef MFS_REPO_H
#define MFS_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

struct mfs_repo_file {
	char *path;                    /* path inside the repo, '/'-separated */
	uint64_t size;                 /* real content size in bytes */
	bool has_sha256;               /* the repo claims a content SHA-256 */
	char sha256[MFS_SHA256_HEX];   /* hub: LFS oid; dir: "" */
	char git_oid[41];              /* hub: git blob sha1 (non-LFS files); "" otherwise */
};

struct mfs_repo_listing {
	struct mfs_repo_file *files;
	size_t n;
};

void mfs_repo_listing_release(struct mfs_repo_listing *l);

/* One range request. The caller owns path. */
struct mfs_fetch_req {
	const char *path;
	uint64_t off;
	uint64_t len;                  /* > 0; the range must lie inside the file */
	bool has_expect;               /* verify the range's bytes against expect */
	uint8_t expect[MFS_SHA256_LEN];
	uint64_t tag;                  /* the caller's own id for this request */
};

/*
 * A streaming fetch job. The repository pulls requests from next() while it
 * has free slots (at most opts.max_inflight in flight) and hands each finished
 * range to done() or failed(). done() receives all len bytes of the range in
 * one buffer owned by the repository and valid only during the call; when the
 * request had has_expect, the bytes have already been verified (a mismatch is
 * retried once with "Cache-Control: no-cache", then reported through
 * failed() with kind MFS_ERR_HASH). Callbacks may be called from several
 * threads at once; they must be thread-safe. A non-zero return from done()
 * stops the job (fetch returns it).
 */
struct mfs_fetch_job {
	/* Returns true and fills *req with the next request, false when none is left. */
	bool (*next)(void *ctx, struct mfs_fetch_req *req);
	int (*done)(void *ctx, const struct mfs_fetch_req *req, const void *buf, size_t len);
	void (*failed)(void *ctx, const struct mfs_fetch_req *req, const struct mfs_err *err);
	void *ctx;
};

/*
 * Bounds on what a server controls (docs/network.md, "Timeouts"): every request
 * ends within deadline_ms of its start, retries and backoff included, and a
 * transfer that moves less than 1 KiB/s for the stall time is cut (and
 * retried while the deadline allows).
 */
#define MFS_FETCH_DEADLINE_DEFAULT_S 30
#define MFS_FETCH_DEADLINE_MAX_S 86400
#define MFS_FETCH_STALL_DEFAULT_S 10

struct mfs_fetch_opts {
	unsigned max_inflight;         /* 0: the repository's default (8) */
	unsigned max_retries;          /* per request, for transient faults; 0: default (5) */
	long connect_timeout_ms;       /* 0: default 10 s */
	long low_speed_time_s;         /* the stall timeout: abort when below 1 KiB/s this
					* long; 0: default MFS_FETCH_STALL_DEFAULT_S */
	long deadline_ms;              /* per request, retries included; 0: the default of
					* mfs_fetch_deadline_ms */
};

/*
 * The deadline per request in milliseconds: o->deadline_ms when set, else
 * MODELFS_TIMEOUT (whole seconds, 1 to MFS_FETCH_DEADLINE_MAX_S) from the
 * environment when it is valid, else MFS_FETCH_DEADLINE_DEFAULT_S. o may be
 * NULL. Thread-safe as long as nobody changes the environment meanwhile.
 */
long mfs_fetch_deadline_ms(const struct mfs_fetch_opts *o);

/*
 * Parses a timeout in whole seconds ("30"), 1 to MFS_FETCH_DEADLINE_MAX_S,
 * into *ms. 0 or -EINVAL.
 */
int mfs_fetch_parse_timeout(const char *s, long *ms);

struct mfs_repo;

struct mfs_repo_ops {
	const char *kind; /* "mem", "dir", "hub" */
	/* Resolves rev (branch, tag, full or short commit, refs/pr/N) of repo to
	 * commit. -ENOENT (kind NOT_FOUND) for an unknown repo or revision,
	 * -EACCES (kind AUTH) for a gated or private repo. */
	int (*resolve)(struct mfs_repo *r, const char *repo, const char *rev,
		       char commit[41], struct mfs_err *err);
	/* Lists every file of repo at commit (recursively). */
	int (*list)(struct mfs_repo *r, const char *repo, const char *commit,
		    struct mfs_repo_listing *out, struct mfs_err *err);
	/* Runs job to the end. Returns 0 when every request was handed to done()
	 * or failed() (the job's own bookkeeping tells which), the non-zero
	 * return of done(), or a negative errno if the job could not run. Bounded:
	 * every request ends in done() or failed() in bounded time. */
	int (*fetch)(struct mfs_repo *r, const char *repo, const char *commit,
		     const struct mfs_fetch_job *job, const struct mfs_fetch_opts *opts,
		     struct mfs_err *err);
	void (*close)(struct mfs_repo *r);
};

/* Every implementation embeds this first. */
struct mfs_repo {
	const struct mfs_repo_ops *ops;
	/* "file:///DIR", "https://huggingface.co", "mem:NAME": always the
	 * redacted form (no credentials, query or fragment, see url.h), the
	 * only form of the endpoint that may be shown, logged or stored. */
	char *endpoint;
};

/*
 * Opens the repository for an endpoint: "file:///DIR" (a local directory),
 * "http://..." or "https://..." (an HF-compatible hub), "mem:NAME" (an
 * in-memory repository registered with mfs_repo_mem_register). The token, if
 * any, is taken from HF_TOKEN by the hub implementation. Credentials in the
 * URL ("https://user:pass@host/") are split off here: they stay inside the
 * hub's HTTP engine (sent to the endpoint's own origin only, never over
 * plain HTTP to another machine) and (*out)->endpoint is the redacted URL.
 * Error messages never show them. Returns 0 and *out (caller closes with
 * mfs_repo_close), -EINVAL for an unknown scheme or a bad URL.
 */
int mfs_repo_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err);
void mfs_repo_close(struct mfs_repo *r);

static inline int mfs_repo_resolve(struct mfs_repo *r, const char *repo, const char *rev,
				   char commit[41], struct mfs_err *err)
{
	return r->ops->resolve(r, repo, rev, commit, err);
}
static inline int mfs_repo_list(struct mfs_repo *r, const char *repo, const char *commit,
				struct mfs_repo_listing *out, struct mfs_err *err)
{
	return r->ops->list(r, repo, commit, out, err);
}
static inline int mfs_repo_fetch(struct mfs_repo *r, const char *repo, const char *commit,
				 const struct mfs_fetch_job *job,
				 const struct mfs_fetch_opts *opts, struct mfs_err *err)
{
	return r->ops->fetch(r, repo, commit, job, opts, err);
}

/*
 * Convenience: fetches one range [off, off+len) of path into buf (len bytes),
 * verified against expect when it is non-NULL. Blocking; 0 or -errno.
 */
int mfs_repo_read(struct mfs_repo *r, const char *repo, const char *commit,
		  const char *path, uint64_t off, uint64_t len, const uint8_t *expect,
		  void *buf, struct mfs_err *err);

/* True if req has no expectation or buf (len bytes) matches req->expect.
 * For implementations: a mismatch is retried once, then failed() with kind
 * MFS_ERR_HASH. */
bool mfs_fetch_req_verify(const struct mfs_fetch_req *req, const void *buf, size_t len);

/* Constructors, called by mfs_repo_open. */
int mfs_repo_dir_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err);
int mfs_repo_hub_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err);

#endif
