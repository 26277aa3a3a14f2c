/*
 * repo_hub.c - an HF-compatible hub as a repository (see repo.h).
 *
 * resolve  GET {endpoint}/api/models/{repo}/revision/{rev, percent-encoded}
 *          -> "sha", which must be 40 hex (and equal rev when rev is one);
 * list     GET {endpoint}/api/models/{repo}/tree/{commit}?recursive=true,
 *          following Link rel="next" on the hub's own origin, within the
 *          limits of repo_hub.h (pages, bytes and values per page, files,
 *          path length, memory of the whole listing);
 * fetch    ranges of GET {endpoint}/{repo}/resolve/{commit}/{path}, through
 *          the engine of http.c (LFS files redirect to the CDN, without the
 *          token).
 *
 * The token comes from HF_TOKEN at open. Every JSON value is type-checked
 * before use: the hub is not trusted, and what it claims (sizes, LFS SHA-256)
 * is only a claim for admission to weigh. Repository names are checked to be
 * "name" or "org/name" of [A-Za-z0-9._-] so they can go into URLs verbatim.
 */
#include "repo_hub.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "http.h"
#include "log.h"
#include "url.h"

#define REVISION_CAP (16u << 20)   /* bytes of a revision answer (siblings) */

struct mfs_repo_hub {
	struct mfs_repo base;      /* first: struct mfs_repo * casts to this */
	struct mfs_http *http;
};

static struct mfs_repo_hub *hub_of(struct mfs_repo *r)
{
	return (struct mfs_repo_hub *)r;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* "name" or "org/name"; each part 1..96 of [A-Za-z0-9._-], not "." or "..". */
static int check_repo(const char *repo, struct mfs_err *err)
{
	const char *p = repo;
	int parts = 0;
	if (!repo)
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "missing repository name");
	for (;;) {
		const char *s = p;
		while (*p && *p != '/') {
			if (!name_char(*p))
				goto bad;
			p++;
		}
		size_t n = (size_t)(p - s);
		if (n == 0 || n > 96 || (n == 1 && s[0] == '.') || (n == 2 && !strncmp(s, "..", 2)))
			goto bad;
		parts++;
		if (!*p)
			break;
		p++;
	}
	if (parts > 2)
		goto bad;
	return 0;
bad:
	return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
		       "bad repository name '%s': expected ORG/NAME of letters, digits, '.', '_' and '-'",
		       repo);
}

static bool is_commit(const char *s)
{
	if (!s || strlen(s) != 40)
		return false;
	for (const char *c = s; *c; c++)
		if (!isxdigit((unsigned char)*c))
			return false;
	return true;
}

static void lower_copy(char *dst, const char *src, size_t n)
{
	size_t i = 0;
	for (; i + 1 < n && src[i]; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = 0;
}

/* Turns a non-2xx answer into the error a person can act on. */
static int hub_status_error(struct mfs_repo_hub *h, const struct mfs_http_resp *resp,
			    const char *repo, const char *rev, const char *what,
			    struct mfs_err *err)
{
	const char *ep = h->base.endpoint;
	const char *code = resp->error_code;
	if ((resp->status == 401 || resp->status == 403 || !strcmp(code, "GatedRepo")) &&
	    mfs_http_secret_withheld(h->http))
		return MFS_ERR(err, -EACCES, MFS_ERR_AUTH,
			       "access to repository '%s' on %s denied (HTTP %ld): the token or "
			       "credentials were not sent, since %s is plain HTTP to another machine; "
			       "use an https:// endpoint", repo, ep, resp->status, ep);
	if (!strcmp(code, "RepoNotFound") && !mfs_http_secret_withheld(h->http))
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
			       "repository '%s' not found on %s (check the name, or set HF_TOKEN if it is private)",
			       repo, ep);
	if (!strcmp(code, "GatedRepo"))
		return MFS_ERR(err, -EACCES, MFS_ERR_AUTH,
			       "repository '%s' on %s is gated: accept its terms and set HF_TOKEN",
			       repo, ep);
	if (!strcmp(code, "RevisionNotFound"))
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
			       "revision '%s' not found in repository '%s' on %s", rev, repo, ep);
	if (!strcmp(code, "EntryNotFound"))
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
			       "entry not found in repository '%s' at '%s' on %s", repo, rev, ep);
	if (resp->status == 401 || resp->status == 403)
		return MFS_ERR(err, -EACCES, MFS_ERR_AUTH,
			       "access to repository '%s' on %s denied (HTTP %ld): set HF_TOKEN to a token that may read it",
			       repo, ep, resp->status);
	if (resp->status == 404)
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
			       "%s of repository '%s' at '%s' not found on %s (HTTP 404)", what, repo,
			       rev, ep);
	return MFS_ERR(err, -EIO, MFS_ERR_HTTP, "%s of repository '%s' at '%s' on %s failed: HTTP %ld",
		       what, repo, rev, ep, resp->status);
}

static int hub_resolve(struct mfs_repo *r, const char *repo, const char *rev, char commit[41],
		       struct mfs_err *err)
{
	struct mfs_repo_hub *h = hub_of(r);
	int rc = check_repo(repo, err);
	if (rc)
		return rc;
	if (!rev || !*rev || strlen(rev) > 256)
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad revision '%s' for '%s': expected a branch, tag or commit",
			       rev ? rev : "", repo);
	char *esc = mfs_http_escape(rev, false), *url = NULL;
	if (!esc || asprintf(&url, "%s/api/models/%s/revision/%s", r->endpoint, repo, esc) < 0) {
		free(esc);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	free(esc);
	struct mfs_http_resp resp = { 0 };
	rc = mfs_http_get(h->http, url, REVISION_CAP, NULL, &resp, err);
	free(url);
	if (rc) {
		mfs_err_prefix(err, "resolving '%s' of '%s'", rev, repo);
		return rc;
	}
	if (resp.status != 200) {
		rc = hub_status_error(h, &resp, repo, rev, "revision", err);
		goto out;
	}
	json_error_t je;
	json_t *root = resp.body ? json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, &je)
				 : NULL;
	if (!root) {
		rc = MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			     "bad answer resolving '%s' of '%s' on %s: not JSON", rev, repo,
			     r->endpoint);
		goto out;
	}
	json_t *sha = json_is_object(root) ? json_object_get(root, "sha") : NULL;
	const char *s = json_is_string(sha) ? json_string_value(sha) : NULL;
	if (!is_commit(s)) {
		rc = MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			     "bad answer resolving '%s' of '%s' on %s: no 40-hex 'sha'", rev, repo,
			     r->endpoint);
	} else if (is_commit(rev) && strcasecmp(rev, s)) {
		rc = MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			     "bad answer resolving commit '%s' of '%s' on %s: the hub named another commit",
			     rev, repo, r->endpoint);
	} else {
		lower_copy(commit, s, 41);
		rc = 0;
	}
	json_decref(root);
out:
	mfs_http_resp_release(&resp);
	return rc;
}

/* Appends one tree entry (if it is a file) to acc. */
static int add_entry(json_t *e, const char *repo, struct mfs_hub_listing *acc,
		     struct mfs_err *err)
{
	struct mfs_repo_listing *out = &acc->l;
	json_t *type = json_object_get(e, "type"), *path = json_object_get(e, "path");
	if (!json_is_string(type) || !json_is_string(path) || !json_string_length(path))
		return MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			       "bad tree entry for '%s': 'type' and 'path' must be strings", repo);
	if (strcmp(json_string_value(type), "file"))
		return 0;
	const char *p = json_string_value(path);
	size_t plen = json_string_length(path);
	if (strlen(p) != plen)
		return MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			       "bad tree entry for '%s': a path contains a NUL byte", repo);
	if (plen > MFS_HUB_PATH_MAX)
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
			       "bad tree entry for '%s': a path of %zu bytes (at most %d)", repo, plen,
			       MFS_HUB_PATH_MAX);
	json_t *size = json_object_get(e, "size"), *oid = json_object_get(e, "oid");
	json_t *lfs = json_object_get(e, "lfs");
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			       "bad tree entry '%s' of '%s': 'size' must be a non-negative integer", p,
			       repo);
	if (oid && !json_is_string(oid))
		return MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			       "bad tree entry '%s' of '%s': 'oid' must be a string", p, repo);
	if (lfs && !json_is_null(lfs) && !json_is_object(lfs))
		return MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			       "bad tree entry '%s' of '%s': 'lfs' must be an object", p, repo);
	if (out->n >= MFS_HUB_FILES_MAX)
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
			       "listing of '%s' has more than %d files", repo, MFS_HUB_FILES_MAX);
	if (out->n == acc->alloc) {
		size_t na = acc->alloc ? acc->alloc * 2 : 64;
		if (na > MFS_HUB_FILES_MAX)
			na = MFS_HUB_FILES_MAX;
		size_t grow = (na - acc->alloc) * sizeof(*out->files);
		if (acc->bytes + grow > MFS_HUB_LISTING_BYTES_MAX)
			goto too_big;
		struct mfs_repo_file *nf = realloc(out->files, na * sizeof(*nf));
		if (!nf)
			return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		out->files = nf;
		acc->alloc = na;
		acc->bytes += grow;
	}
	if (acc->bytes + plen + 1 > MFS_HUB_LISTING_BYTES_MAX)
		goto too_big;
	struct mfs_repo_file f = { .size = (uint64_t)json_integer_value(size) };
	if (json_is_object(lfs)) {
		json_t *lo = json_object_get(lfs, "oid"), *ls = json_object_get(lfs, "size");
		const char *o = json_is_string(lo) ? json_string_value(lo) : NULL;
		if (o && !strncmp(o, "sha256:", 7))
			o += 7;
		if (!o || strlen(o) != 64 || !mfs_is_hex(o, 64))
			return MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
				       "bad tree entry '%s' of '%s': 'lfs.oid' must be 64 hex digits", p,
				       repo);
		if (ls && (!json_is_integer(ls) || json_integer_value(ls) != json_integer_value(size)))
			return MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
				       "bad tree entry '%s' of '%s': 'lfs.size' disagrees with 'size'", p,
				       repo);
		lower_copy(f.sha256, o, sizeof(f.sha256));
		f.has_sha256 = true;
	} else if (oid && is_commit(json_string_value(oid))) {
		lower_copy(f.git_oid, json_string_value(oid), sizeof(f.git_oid));
	}
	if (!(f.path = strdup(p)))
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	acc->bytes += plen + 1;
	out->files[out->n++] = f;
	return 0;
too_big:
	return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
		       "listing of '%s' is larger than %d MiB (%zu files so far)", repo,
		       MFS_HUB_LISTING_BYTES_MAX >> 20, out->n);
}

/*
 * Counts the JSON values of body (an upper bound: containers, commas and
 * colons outside strings) without building anything, so that a page of a
 * million empty objects is refused before jansson spends memory on it.
 */
static size_t count_values(const char *body, size_t len)
{
	size_t n = 1;
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		char ch = body[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '[' || ch == '{' || ch == ',' || ch == ':') {
			n++;
		}
	}
	return n;
}

void mfs_hub_listing_release(struct mfs_hub_listing *acc)
{
	if (!acc)
		return;
	mfs_repo_listing_release(&acc->l);
	acc->alloc = 0;
	acc->bytes = 0;
	acc->pages = 0;
}

int mfs_hub_listing_add_page(struct mfs_hub_listing *acc, const char *repo, const char *where,
			     const char *body, size_t len, struct mfs_err *err)
{
	if (++acc->pages > MFS_HUB_PAGES_MAX)
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
			       "listing of '%s' on %s has more than %d pages", repo, where,
			       MFS_HUB_PAGES_MAX);
	if (len > MFS_HUB_PAGE_MAX)
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
			       "listing of '%s' on %s: page %u is larger than %d MiB", repo, where,
			       acc->pages, MFS_HUB_PAGE_MAX >> 20);
	if (count_values(body, len) > MFS_HUB_PAGE_VALUES_MAX)
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
			       "listing of '%s' on %s: page %u has more than %d JSON values", repo,
			       where, acc->pages, MFS_HUB_PAGE_VALUES_MAX);
	json_error_t je;
	json_t *arr = len ? json_loadb(body, len, 0, &je) : NULL;
	int rc = 0;
	if (!json_is_array(arr)) {
		rc = MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
			     "bad file listing of '%s' on %s: page %u is not a JSON array", repo, where,
			     acc->pages);
		json_decref(arr);
		return rc;
	}
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		if (!json_is_object(e)) {
			rc = MFS_ERR(err, -EPROTO, MFS_ERR_PARSE,
				     "bad file listing of '%s' on %s: an entry is not an object", repo,
				     where);
			break;
		}
		if ((rc = add_entry(e, repo, acc, err)))
			break;
	}
	json_decref(arr);
	return rc;
}

static int hub_list(struct mfs_repo *r, const char *repo, const char *commit,
		    struct mfs_repo_listing *out, struct mfs_err *err)
{
	struct mfs_repo_hub *h = hub_of(r);
	int rc = check_repo(repo, err);
	if (rc)
		return rc;
	if (!is_commit(commit))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad commit '%s' for listing '%s': expected 40 hex digits",
			       commit ? commit : "", repo);
	struct mfs_hub_listing acc = { 0 };
	char *url = NULL;
	if (asprintf(&url, "%s/api/models/%s/tree/%s?recursive=true", r->endpoint, repo,
		     commit) < 0)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	/* Each page is one request with its own deadline; the listing as a whole
	 * gets MFS_HUB_LISTING_DEADLINES of them, so a hub that answers every
	 * page just in time still cannot hold add for hours. */
	long each = mfs_fetch_deadline_ms(NULL);
	uint64_t end = now_ms() + (uint64_t)each * MFS_HUB_LISTING_DEADLINES;
	while (url) {
		uint64_t now = now_ms();
		if (now >= end) {
			rc = MFS_ERR(err, -ETIMEDOUT, MFS_ERR_NET,
				     "listing of '%s' on %s took longer than %ld s (%u pages)", repo,
				     r->endpoint, each / 1000 * MFS_HUB_LISTING_DEADLINES, acc.pages);
			break;
		}
		struct mfs_fetch_opts o = { .deadline_ms = (long)(end - now) < each ? (long)(end - now)
										 : each };
		struct mfs_http_resp resp = { 0 };
		rc = mfs_http_get(h->http, url, MFS_HUB_PAGE_MAX, &o, &resp, err);
		free(url);
		url = NULL;
		if (rc == -EFBIG) {
			/* The engine's own message says "larger than N bytes". */
			mfs_err_prefix(err, "listing '%s' at '%s' (pages are at most %d MiB)", repo,
				       commit, MFS_HUB_PAGE_MAX >> 20);
			break;
		}
		if (rc == -ETIMEDOUT && now_ms() >= end) {
			rc = MFS_ERR(err, -ETIMEDOUT, MFS_ERR_NET,
				     "listing of '%s' on %s took longer than %ld s (%u pages)", repo,
				     r->endpoint, each / 1000 * MFS_HUB_LISTING_DEADLINES, acc.pages);
			break;
		}
		if (rc) {
			mfs_err_prefix(err, "listing '%s' at '%s'", repo, commit);
			break;
		}
		if (resp.status != 200) {
			rc = hub_status_error(h, &resp, repo, commit, "file listing", err);
			mfs_http_resp_release(&resp);
			break;
		}
		rc = mfs_hub_listing_add_page(&acc, repo, r->endpoint, resp.body, resp.len, err);
		/* The page's memory goes before the next one is fetched. */
		free(resp.body);
		resp.body = NULL;
		if (!rc && resp.next_url) {
			if (!mfs_http_same_origin(h->http, resp.next_url)) {
				rc = MFS_ERR(err, -EPROTO, MFS_ERR_HTTP,
					     "bad file listing of '%s' on %s: the next page is on another host",
					     repo, r->endpoint);
			} else {
				url = resp.next_url;
				resp.next_url = NULL;
			}
		}
		mfs_http_resp_release(&resp);
		if (rc)
			break;
	}
	free(url);
	if (rc) {
		mfs_hub_listing_release(&acc);
		return rc;
	}
	*out = acc.l;
	return 0;
}

static int hub_fetch(struct mfs_repo *r, const char *repo, const char *commit,
		     const struct mfs_fetch_job *job, const struct mfs_fetch_opts *opts,
		     struct mfs_err *err)
{
	struct mfs_repo_hub *h = hub_of(r);
	int rc = check_repo(repo, err);
	if (rc)
		return rc;
	if (!is_commit(commit))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad commit '%s' for fetching from '%s': expected 40 hex digits",
			       commit ? commit : "", repo);
	char *base = NULL, lc[41];
	lower_copy(lc, commit, sizeof(lc));
	if (asprintf(&base, "%s/%s/resolve/%s/", r->endpoint, repo, lc) < 0)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	rc = mfs_http_fetch(h->http, base, repo, job, opts, err);
	free(base);
	return rc;
}

static void hub_close(struct mfs_repo *r)
{
	struct mfs_repo_hub *h = hub_of(r);
	mfs_http_close(h->http);
	free(r->endpoint);
	free(h);
}

static const struct mfs_repo_ops hub_ops = {
	.kind = "hub",
	.resolve = hub_resolve,
	.list = hub_list,
	.fetch = hub_fetch,
	.close = hub_close,
};

int mfs_repo_hub_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err)
{
	char *shown = NULL, *user = NULL, *password = NULL;
	int rc = mfs_url_split_credentials(endpoint, &shown, &user, &password, err);
	if (rc)
		return rc;
	/* Only the redacted form goes on from here; a query or fragment would
	 * have been cut by it, so it is refused rather than silently dropped. */
	if (strpbrk(endpoint, "?#\r\n \t")) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "bad hub endpoint '%s': expected http(s)://HOST[:PORT][/PATH], without a "
			     "query, fragment or blanks", shown);
		goto out;
	}
	size_t n = strlen(shown);
	while (n && shown[n - 1] == '/')
		shown[--n] = '\0';
	struct mfs_repo_hub *h = calloc(1, sizeof(*h));
	if (!h) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto out;
	}
	h->base.endpoint = shown;
	shown = NULL;
	h->base.ops = &hub_ops;
	rc = mfs_http_open(h->base.endpoint, getenv("HF_TOKEN"), user, password, &h->http, err);
	if (rc) {
		free(h->base.endpoint);
		free(h);
		goto out;
	}
	*out = &h->base;
out:
	mfs_secret_free(user);
	mfs_secret_free(password);
	free(shown);
	return rc;
}
