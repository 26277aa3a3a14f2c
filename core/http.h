/*
 * http.h - the HTTP(S) engine under the hub repository: libcurl, bounded.
 *
 * One struct mfs_http serves one hub origin (scheme, host, port). It owns a
 * libcurl share (DNS cache, TLS sessions) and pools of idle transfer sets so
 * that connections are reused across calls. Two operations:
 *
 *   mfs_http_get    - one GET of a small document (API JSON), body capped;
 *   mfs_http_fetch  - a streaming job of byte ranges (struct mfs_fetch_job of
 *                     repo.h), up to max_inflight in flight on one curl multi
 *                     handle, each answer checked (206, the exact
 *                     Content-Range, the exact length) before use, verified
 *                     against the expected SHA-256 on worker threads so that
 *                     hashing never stalls the transfers.
 *
 * Redirects are followed here, not by libcurl: only http and https, at most
 * MFS_HTTP_MAX_REDIRECTS, never from https down to http, only to the hub's own
 * host or a host of its site by the Public Suffix List (url.h; huggingface.co
 * also owns hf.co: its CDN).
 * The token goes only to the hub's own origin and is dropped on any redirect
 * that leaves it. Where a file's range led (its CDN location) is remembered
 * for a few minutes and reused for the next ranges of that file; a failure
 * through it forgets it and asks the hub again (not counted as a retry). Tokens and redirect URLs (pre-signed) are never logged or
 * put into error messages.
 *
 * Every wait is bounded: connect timeout, a stall timeout (less than 1 KiB/s
 * for opts->low_speed_time_s), a bounded number of retries with exponential
 * backoff and jitter (Retry-After honoured on 429, capped at 30 s), and over
 * all of it a deadline per request (opts->deadline_ms, see
 * mfs_fetch_deadline_ms in repo.h): no request outlives it, retries and
 * backoff included, and the error then says which server did not answer.
 *
 * Secrets: the token (or the endpoint's own user and password, which win
 * over it) goes only to the hub's origin, and only over https or plain http
 * to a loopback host; for any other plain-http hub it is withheld from the
 * start (mfs_http_open decides, before any request), with one warning.
 *
 * Thread-safety: every function may be called from several threads at once
 * on the same struct mfs_http; each call runs its own transfers.
 */
#ifndef MFS_HTTP_H
#define MFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "repo.h"

#define MFS_HTTP_MAX_REDIRECTS 5
#define MFS_HTTP_MAX_INFLIGHT 64        /* cap on opts.max_inflight */
#define MFS_HTTP_DEFAULT_INFLIGHT 8
#define MFS_HTTP_DEFAULT_RETRIES 5
#define MFS_HTTP_RETRY_AFTER_CAP_S 30
#define MFS_HTTP_MAX_RANGE (1ULL << 30) /* one request's bytes are buffered */

struct mfs_http;

/*
 * Creates the engine for origin ("https://huggingface.co", "http://127.0.0.1:8080";
 * a path after the host is allowed and ignored for origin checks; no
 * credentials in it: split them off with mfs_url_split_credentials). token,
 * user and password may be NULL or "" (anonymous); they are copied, and user
 * (with password) is sent as HTTP basic authentication instead of the token.
 * Initialises libcurl once per process. Returns 0 and *out, -EINVAL (kind
 * USAGE) for a URL that is not http(s) or that carries credentials, -ENOMEM.
 */
int mfs_http_open(const char *origin, const char *token, const char *user,
		  const char *password, struct mfs_http **out, struct mfs_err *err);

/* True when a token or credentials were given to mfs_http_open but are not
 * sent (plain HTTP to another machine). */
bool mfs_http_secret_withheld(struct mfs_http *h);
/* Frees the engine; no call may be running. NULL is a no-op. */
void mfs_http_close(struct mfs_http *h);

/* The final answer to mfs_http_get. */
struct mfs_http_resp {
	long status;            /* final HTTP status after redirects */
	char *body;             /* NUL-terminated, owned; NULL when empty */
	size_t len;             /* body bytes (without the NUL) */
	char error_code[64];    /* X-Error-Code, "" when absent */
	char *next_url;         /* Link: <URL>; rel="next", owned, NULL when absent */
};
void mfs_http_resp_release(struct mfs_http_resp *r);

/*
 * GETs url (which must lie on the hub's origin), following redirects as
 * described above and retrying 408/429/5xx and network faults up to
 * opts->max_retries times (opts may be NULL). Blocking, bounded.
 * Returns 0 with the final status in *resp (any status: the caller decides
 * what a 404 means), -EFBIG (kind HTTP) when the body exceeds cap bytes,
 * -EPROTO (kind HTTP) for a refused redirect, -ETIMEDOUT / -EIO (kind NET)
 * when no answer came after the retries, -ENOMEM.
 */
int mfs_http_get(struct mfs_http *h, const char *url, size_t cap,
		 const struct mfs_fetch_opts *opts, struct mfs_http_resp *resp,
		 struct mfs_err *err);

/*
 * Runs a range job: each request fetches bytes [off, off+len) of
 * base_url + percent-encoded req->path ('/' kept). subject (e.g. "org/name")
 * names the repository in error messages. Semantics are those of the fetch
 * operation in repo.h: every request ends in job->done() (all len bytes,
 * verified when has_expect) or job->failed() (kinds NOT_FOUND, AUTH, HTTP,
 * NET, HASH); callbacks come from this thread or from hashing workers. When
 * done() returns non-zero the job stops: requests still in flight end in
 * failed() with -ECANCELED and fetch returns done()'s value. Returns 0, that
 * value, or -errno (-ENOMEM) when the job could not run at all.
 */
int mfs_http_fetch(struct mfs_http *h, const char *base_url, const char *subject,
		   const struct mfs_fetch_job *job, const struct mfs_fetch_opts *opts,
		   struct mfs_err *err);

/* True if url has exactly the hub's scheme, host and port. */
bool mfs_http_same_origin(struct mfs_http *h, const char *url);

/*
 * Percent-encodes s (RFC 3986 unreserved characters kept; '/' kept when
 * keep_slash). Returns a malloc'd string or NULL on ENOMEM.
 */
char *mfs_http_escape(const char *s, bool keep_slash);

#endif
