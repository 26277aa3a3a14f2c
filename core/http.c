/*
 * http.c - libcurl engine for the hub: bounded GETs and parallel verified
 * byte ranges.
 *
 * Workload: a FUSE daemon asks for one chunk at a time from many threads
 * (max_inflight 1, latency matters), and admission pulls whole files as many
 * parallel ranges (max_inflight 8-64, throughput matters). Each fetch call
 * borrows a "transfer set" (a curl multi handle with its easy handles) from a
 * pool in struct mfs_http, so connections survive between calls, and runs
 * its own multi loop on the calling thread.
 *
 * A range answer is used only when it is a 206 whose Content-Range is exactly
 * the range asked and whose body is exactly len bytes; anything else is a
 * failed attempt whose bytes are dropped. A 200 to a range request is cut at
 * its first body byte rather than downloaded.
 *
 * Memory: a request holds one buffer of len bytes from the moment its
 * transfer starts until done()/failed() returns; at most max_inflight
 * transfers run and at most nworkers finished buffers wait for hashing, so a
 * call never holds more than max_inflight + nworkers buffers.
 *
 * Hashing and done() run on nworkers threads (0 when max_inflight is 1: then
 * there is nothing else to overlap with and they run inline). A worker that
 * finds a mismatch hands the request back to the loop to be fetched once
 * more with "Cache-Control: no-cache"; a second mismatch is MFS_ERR_HASH.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http_parse.h"
#include "log.h"
#include "url.h"

#define IDLE_SETS_MAX 8                 /* idle transfer sets kept per engine */
#define IDLE_EASY_MAX 8                 /* idle easy handles kept for GETs */
#define ERR_BODY_MAX (64 * 1024)        /* bytes of an error/redirect body kept */
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 10000
#define GET_TIMEOUT_MS 120000L
#define LOW_SPEED_BYTES 1024L
#define POLL_MAX_MS 1000
#define WHAT_MAX 1024                   /* "'path' bytes a-b" in messages */

#define REDIR_CACHE_N 64                /* remembered CDN locations */
#define REDIR_TTL_MS 300000L            /* how long one is reused */

/*
 * A remembered redirect: hub URL of a file -> where it led (the CDN). Reusing
 * it saves one hub round trip per range; any failure through it forgets it
 * and starts again at the hub, so an expired signature costs one attempt
 * that is not counted as a retry.
 */
struct redir {
	char *from;                    /* owned; NULL when the slot is empty */
	char *to;                      /* owned; never the hub's origin */
	uint64_t expires;              /* now_ms() deadline */
};

/* A multi handle and the easy handles it drives; owned by one call at a time. */
struct xset {
	CURLM *multi;
	CURL *easy[MFS_HTTP_MAX_INFLIGHT];
	struct xset *next;
};

struct mfs_http {
	char *scheme;                  /* "http" or "https", lowercase */
	char *host;                    /* lowercase */
	long port;
	char *token;                   /* NULL when anonymous */
	char *auth_header;             /* "Authorization: Bearer ..." or NULL */
	char *user, *password;         /* the endpoint's own credentials, or NULL */
	bool withheld;                 /* a secret was given but may not go over plain HTTP */
	bool secret_ok;                /* secrets may go to this origin (https or loopback) */
	CURLSH *share;
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;     /* protects idle_sets, idle_easy, n_* */
	struct xset *idle_sets;
	unsigned n_idle_sets;
	CURL *idle_easy[IDLE_EASY_MAX];
	unsigned n_idle_easy;
	pthread_mutex_t redir_lock;    /* protects redir */
	struct redir redir[REDIR_CACHE_N];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void str_lower(char *s)
{
	for (; s && *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Splits url into lowercase scheme, host and numeric port. 0 or -EINVAL/-ENOMEM. */
static int url_origin(const char *url, char **scheme, char **host, long *port)
{
	CURLU *u = curl_url();
	char *s = NULL, *ho = NULL, *p = NULL;
	int rc = -EINVAL;
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &s, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &ho, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto out;
	char *end;
	errno = 0;
	long n = strtol(p, &end, 10);
	if (errno || *end || n <= 0 || n > 65535)
		goto out;
	*scheme = strdup(s);
	*host = strdup(ho);
	if (!*scheme || !*host) {
		free(*scheme);
		free(*host);
		rc = -ENOMEM;
		goto out;
	}
	str_lower(*scheme);
	str_lower(*host);
	*port = n;
	rc = 0;
out:
	curl_free(s);
	curl_free(ho);
	curl_free(p);
	curl_url_cleanup(u);
	return rc;
}

bool mfs_http_secret_withheld(struct mfs_http *h)
{
	return h->withheld;
}

bool mfs_http_same_origin(struct mfs_http *h, const char *url)
{
	char *s, *ho;
	long port;
	if (url_origin(url, &s, &ho, &port))
		return false;
	bool same = !strcmp(s, h->scheme) && !strcmp(ho, h->host) && port == h->port;
	free(s);
	free(ho);
	return same;
}

/*
 * Decides whether a redirect to url may be followed. Fills *token_ok with
 * whether the token may go there. 0, or -EPROTO with the reason in err
 * (never the URL itself: it may be signed).
 */
static int redirect_check(struct mfs_http *h, const char *from_url, const char *url,
			  const char *what, bool *token_ok, struct mfs_err *err)
{
	char *s = NULL, *ho = NULL;
	long port;
	int rc = url_origin(url, &s, &ho, &port);
	if (rc == -ENOMEM)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	if (rc) {
		/* Not a URL curl parses as http(s): say which scheme it was. */
		char sch[16] = "";
		size_t i = 0;
		while (url[i] && url[i] != ':' && i < sizeof(sch) - 1) {
			sch[i] = url[i];
			i++;
		}
		sch[i] = 0;
		return MFS_ERR(err, -EPROTO, MFS_ERR_HTTP,
			       "refusing redirect for %s to a '%s:' URL: only http and https are followed",
			       what, sch);
	}
	if (strcmp(s, "http") && strcmp(s, "https")) {
		rc = MFS_ERR(err, -EPROTO, MFS_ERR_HTTP,
			     "refusing redirect for %s to a '%s:' URL: only http and https are followed",
			     what, s);
		goto out;
	}
	bool from_https = !strncasecmp(from_url, "https:", 6);
	if (from_https && !strcmp(s, "http")) {
		rc = MFS_ERR(err, -EPROTO, MFS_ERR_HTTP,
			     "refusing redirect for %s from https down to http (host '%s')", what,
			     ho);
		goto out;
	}
	/* The hub's own site by the Public Suffix List: a hub under
	 * example.co.uk may send us to cdn.example.co.uk, never to other.co.uk. */
	if (!mfs_url_same_site(h->host, ho)) {
		rc = MFS_ERR(err, -EPROTO, MFS_ERR_HTTP,
			     "refusing redirect for %s to host '%s': it is neither the hub '%s' nor a host of its site",
			     what, ho, h->host);
		goto out;
	}
	*token_ok = !strcmp(s, h->scheme) && !strcmp(ho, h->host) && port == h->port;
	rc = 0;
out:
	free(s);
	free(ho);
	return rc;
}

char *mfs_http_escape(const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	char *out = malloc(3 * n + 1), *o = out;
	if (!out)
		return NULL;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~' ||
		    (keep_slash && *c == '/')) {
			*o++ = (char)*c;
		} else {
			*o++ = '%';
			*o++ = hex[*c >> 4];
			*o++ = hex[*c & 15];
		}
	}
	*o = 0;
	return out;
}

static void share_lock_cb(CURL *e, curl_lock_data d, curl_lock_access a, void *u)
{
	struct mfs_http *h = u;
	if ((unsigned)d < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&h->share_lock[d]);
}

static void share_unlock_cb(CURL *e, curl_lock_data d, void *u)
{
	struct mfs_http *h = u;
	if ((unsigned)d < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&h->share_lock[d]);
}

int mfs_http_open(const char *origin, const char *token, const char *user,
		  const char *password, struct mfs_http **out, struct mfs_err *err)
{
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return MFS_ERR(err, -EIO, MFS_ERR_NET, "cannot initialise libcurl: %s",
			       curl_easy_strerror(curl_init_rc));
	struct mfs_http *h = calloc(1, sizeof(*h));
	if (!h)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&h->pool_lock, NULL);
	pthread_mutex_init(&h->redir_lock, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_lock[i], NULL);
	char shown[512];
	mfs_url_redact(origin, shown, sizeof(shown));
	int rc = mfs_url_has_credentials(origin) ? -EINVAL
						  : url_origin(origin, &h->scheme, &h->host, &h->port);
	if (rc == -ENOMEM) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if (rc || (strcmp(h->scheme, "http") && strcmp(h->scheme, "https"))) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "bad hub endpoint '%s': expected http(s)://HOST[:PORT]", shown);
		goto fail;
	}
	bool have_token = token && *token, have_user = user && *user;
	if ((have_token && strpbrk(token, "\r\n")) ||
	    (have_user && (strpbrk(user, "\r\n") || (password && strpbrk(password, "\r\n"))))) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "bad %s: it contains a line break",
			     have_user ? "credentials in the endpoint" : "token in HF_TOKEN");
		goto fail;
	}
	/* Decided here, before any request: a secret never crosses plain HTTP
	 * to another machine, whatever the request turns out to be for. */
	h->secret_ok = mfs_url_secret_may_go(h->scheme, h->host);
	if ((have_token || have_user) && !h->secret_ok) {
		h->withheld = true;
		mfs_log_warning("http: not sending %s to '%s': plain HTTP to a host that is not "
				"this machine (use https)",
				have_user ? "the endpoint's credentials" : "HF_TOKEN", h->host);
	} else if (have_user) {
		/* Credentials named for this endpoint win over HF_TOKEN. */
		h->user = strdup(user);
		h->password = strdup(password ? password : "");
		if (!h->user || !h->password) {
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
			goto fail;
		}
	} else if (have_token) {
		h->token = strdup(token);
		if (!h->token || asprintf(&h->auth_header, "Authorization: Bearer %s", token) < 0) {
			h->auth_header = NULL;
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
			goto fail;
		}
	}
	h->share = curl_share_init();
	if (!h->share) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock_cb);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock_cb);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = h;
	return 0;
fail:
	mfs_http_close(h);
	return rc;
}

static void xset_free(struct xset *s)
{
	for (int i = 0; i < MFS_HTTP_MAX_INFLIGHT; i++)
		if (s->easy[i])
			curl_easy_cleanup(s->easy[i]);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	free(s);
}

void mfs_http_close(struct mfs_http *h)
{
	if (!h)
		return;
	while (h->idle_sets) {
		struct xset *s = h->idle_sets;
		h->idle_sets = s->next;
		xset_free(s);
	}
	for (unsigned i = 0; i < h->n_idle_easy; i++)
		curl_easy_cleanup(h->idle_easy[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_lock[i]);
	pthread_mutex_destroy(&h->pool_lock);
	for (int i = 0; i < REDIR_CACHE_N; i++) {
		free(h->redir[i].from);
		free(h->redir[i].to);
	}
	pthread_mutex_destroy(&h->redir_lock);
	free(h->scheme);
	free(h->host);
	mfs_secret_free(h->token);
	mfs_secret_free(h->auth_header);
	mfs_secret_free(h->user);
	mfs_secret_free(h->password);
	free(h);
}

void mfs_http_resp_release(struct mfs_http_resp *r)
{
	if (!r)
		return;
	free(r->body);
	free(r->next_url);
	r->body = NULL;
	r->next_url = NULL;
	r->len = 0;
}

/* ---- one attempt of one transfer ---- */

struct xfer {
	CURL *easy;
	struct curl_slist *hdrs;
	char *url;               /* current URL (owned) */
	bool token_ok;           /* the token may go to url */
	bool ranged;
	uint64_t off, len;
	bool no_cache;
	uint64_t deadline;       /* now_ms() by which the request ends, retries included */
	/* answer of the current attempt */
	struct mfs_http_answer ans;
	bool rejected;           /* 2xx other than 206 to a range: cut */
	bool overflow;           /* body larger than allowed */
	/* body */
	uint8_t *buf;
	size_t cap;              /* ranged: len; GET: the caller's cap */
	size_t alloc;            /* GET: bytes allocated */
	size_t got;
	size_t discarded;        /* non-2xx body bytes dropped */
};

static void xfer_reset_answer(struct xfer *x)
{
	mfs_http_answer_reset(&x->ans);
	x->rejected = false;
	x->overflow = false;
	x->got = 0;
	x->discarded = 0;
}

static size_t header_cb(char *data, size_t size, size_t n, void *u)
{
	struct xfer *x = u;
	size_t len = size * n;
	bool status_line = len >= 5 && !strncmp(data, "HTTP/", 5);
	mfs_http_answer_line(&x->ans, data, len);
	if (status_line) {
		/* A new response (after 1xx, too): its body starts from nothing. */
		x->rejected = false;
		x->overflow = false;
		x->got = 0;
		x->discarded = 0;
	}
	return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *u)
{
	struct xfer *x = u;
	size_t len = size * n;
	if (x->ans.status < 200 || x->ans.status > 299) {
		/* Redirect or error body: not used, but bounded. */
		x->discarded += len;
		return x->discarded > ERR_BODY_MAX ? 0 : len;
	}
	if (x->ranged) {
		if (x->ans.status != 206) {
			x->rejected = true;
			return 0;
		}
		if (len > x->cap - x->got) {
			x->overflow = true;
			return 0;
		}
		memcpy(x->buf + x->got, data, len);
		x->got += len;
		return len;
	}
	if (len > x->cap - x->got) {
		x->overflow = true;
		return 0;
	}
	if (x->got + len + 1 > x->alloc) {
		size_t na = x->alloc ? x->alloc : 16384;
		while (na < x->got + len + 1)
			na *= 2;
		uint8_t *nb = realloc(x->buf, na);
		if (!nb)
			return 0;
		x->buf = nb;
		x->alloc = na;
	}
	memcpy(x->buf + x->got, data, len);
	x->got += len;
	x->buf[x->got] = 0;
	return len;
}

struct timeouts {
	long connect_ms;
	long low_speed_s;              /* the stall timeout */
	long deadline_ms;              /* per request, retries and backoff included */
	unsigned max_retries;
	unsigned max_inflight;
};

static struct timeouts timeouts_of(const struct mfs_fetch_opts *o)
{
	struct timeouts t = { 10000, MFS_FETCH_STALL_DEFAULT_S, mfs_fetch_deadline_ms(o),
			      MFS_HTTP_DEFAULT_RETRIES, MFS_HTTP_DEFAULT_INFLIGHT };
	if (o && o->connect_timeout_ms > 0)
		t.connect_ms = o->connect_timeout_ms;
	if (o && o->low_speed_time_s > 0)
		t.low_speed_s = o->low_speed_time_s;
	/* No wait may outlast the request's deadline. */
	if (t.connect_ms > t.deadline_ms)
		t.connect_ms = t.deadline_ms;
	if (t.low_speed_s * 1000 > t.deadline_ms)
		t.low_speed_s = t.deadline_ms / 1000 > 0 ? t.deadline_ms / 1000 : 1;
	if (o && o->max_retries > 0)
		t.max_retries = o->max_retries;
	if (o && o->max_inflight > 0)
		t.max_inflight = o->max_inflight > MFS_HTTP_MAX_INFLIGHT ? MFS_HTTP_MAX_INFLIGHT
									  : o->max_inflight;
	return t;
}

/* Configures x->easy for the next attempt at x->url. 0 or -ENOMEM. */
static int xfer_setup(struct mfs_http *h, struct xfer *x, const struct timeouts *t)
{
	CURL *e = x->easy;
	curl_easy_reset(e);
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	xfer_reset_answer(x);
	struct curl_slist *l = NULL, *nl;
	char range[80];
	if (x->ranged) {
		snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, x->off,
			 x->off + x->len - 1);
		if (!(nl = curl_slist_append(l, range)))
			goto nomem;
		l = nl;
	}
	if (!(nl = curl_slist_append(l, "Accept-Encoding: identity")))
		goto nomem;
	l = nl;
	if (x->no_cache) {
		if (!(nl = curl_slist_append(l, "Cache-Control: no-cache")))
			goto nomem;
		l = nl;
	}
	if (x->token_ok && h->auth_header) {
		if (!(nl = curl_slist_append(l, h->auth_header)))
			goto nomem;
		l = nl;
	}
	if (x->token_ok && h->user) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, h->user);
		curl_easy_setopt(e, CURLOPT_PASSWORD, h->password);
	} else if (x->token_ok && !h->auth_header && h->secret_ok) {
		/* Credentials are never stored with the endpoint; a process that
		 * was not given them (the mount) finds them in ~/.netrc, for the
		 * hub's own host only. */
		curl_easy_setopt(e, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
	}
	x->hdrs = l;
	long total_ms = GET_TIMEOUT_MS;
	if (x->ranged)
		total_ms = 60000L + (long)(x->len / (256 * 1024)) * 1000L;
	uint64_t now = now_ms();
	long left = x->deadline > now ? (long)(x->deadline - now) : 1;
	if (total_ms > left)
		total_ms = left;
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SHARE, h->share);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "modelfs/0.1");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t->connect_ms);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, t->low_speed_s);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	return 0;
nomem:
	curl_slist_free_all(l);
	return -ENOMEM;
}

static bool status_transient(long st)
{
	return st == 408 || st == 429 || st == 500 || st == 502 || st == 503 || st == 504;
}

static bool status_redirect(long st)
{
	return st == 301 || st == 302 || st == 303 || st == 307 || st == 308;
}

static bool curl_permanent(CURLcode c)
{
	switch (c) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_OUT_OF_MEMORY:
		return true;
	default:
		return false;
	}
}

/* Backoff before attempt number `attempt` (1-based), jittered. */
static uint64_t backoff_ms(unsigned attempt, long retry_after, unsigned *seed)
{
	if (retry_after >= 0) {
		long s = retry_after > MFS_HTTP_RETRY_AFTER_CAP_S ? MFS_HTTP_RETRY_AFTER_CAP_S
								  : retry_after;
		return (uint64_t)s * 1000 + (uint64_t)(rand_r(seed) % 250);
	}
	uint64_t b = BACKOFF_BASE_MS;
	for (unsigned i = 1; i < attempt && b < BACKOFF_CAP_MS; i++)
		b *= 2;
	if (b > BACKOFF_CAP_MS)
		b = BACKOFF_CAP_MS;
	/* Jitter in [b/2, 3b/2). */
	return b / 2 + (uint64_t)rand_r(seed) % (b ? b : 1);
}

/* Maps an HTTP error status (and X-Error-Code) to an errno and a kind. */
static int status_errno(long st, const char *code, enum mfs_err_kind *kind)
{
	if (!strcmp(code, "GatedRepo") || st == 401 || st == 403) {
		*kind = MFS_ERR_AUTH;
		if (!strcmp(code, "RepoNotFound")) {
			*kind = MFS_ERR_NOT_FOUND;
			return -ENOENT;
		}
		return -EACCES;
	}
	if (st == 404 || !strcmp(code, "RepoNotFound") || !strcmp(code, "RevisionNotFound") ||
	    !strcmp(code, "EntryNotFound")) {
		*kind = MFS_ERR_NOT_FOUND;
		return -ENOENT;
	}
	*kind = MFS_ERR_HTTP;
	return st == 416 ? -EINVAL : -EIO;
}

/* ---- mfs_http_get ---- */

static CURL *easy_get(struct mfs_http *h)
{
	CURL *e = NULL;
	pthread_mutex_lock(&h->pool_lock);
	if (h->n_idle_easy)
		e = h->idle_easy[--h->n_idle_easy];
	pthread_mutex_unlock(&h->pool_lock);
	return e ? e : curl_easy_init();
}

static void easy_put(struct mfs_http *h, CURL *e)
{
	pthread_mutex_lock(&h->pool_lock);
	if (h->n_idle_easy < IDLE_EASY_MAX) {
		h->idle_easy[h->n_idle_easy++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&h->pool_lock);
	if (e)
		curl_easy_cleanup(e);
}

static int sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	return 0;
}

int mfs_http_get(struct mfs_http *h, const char *url, size_t cap,
		 const struct mfs_fetch_opts *opts, struct mfs_http_resp *resp,
		 struct mfs_err *err)
{
	struct timeouts t = timeouts_of(opts);
	struct xfer x = { .cap = cap, .ans.retry_after = -1 };
	unsigned seed = (unsigned)now_ms() ^ (unsigned)(uintptr_t)&x;
	int rc;
	if (!mfs_http_same_origin(h, url))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "refusing to send a hub request to another host than '%s'", h->host);
	x.easy = easy_get(h);
	if (!x.easy)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	x.deadline = now_ms() + (uint64_t)t.deadline_ms;
	unsigned attempt = 0;
	for (;;) {
		/* Each attempt starts again at the hub: redirects may be signed and short-lived. */
		free(x.url);
		x.url = strdup(url);
		x.token_ok = true;
		if (!x.url) {
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
			goto out;
		}
		int redirects = 0;
		CURLcode cc;
		char reason[256];
		for (;;) {
			if (now_ms() >= x.deadline) {
				rc = MFS_ERR(err, -ETIMEDOUT, MFS_ERR_NET,
					     "no answer from '%s' within the timeout of %ld s", h->host,
					     (t.deadline_ms + 999) / 1000);
				goto out;
			}
			if (xfer_setup(h, &x, &t)) {
				rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
				goto out;
			}
			cc = curl_easy_perform(x.easy);
			if (cc != CURLE_OK || !status_redirect(x.ans.status))
				break;
			char *loc = NULL;
			curl_easy_getinfo(x.easy, CURLINFO_REDIRECT_URL, &loc);
			if (!loc) {
				rc = MFS_ERR(err, -EPROTO, MFS_ERR_HTTP,
					     "refusing redirect for a request to '%s': no usable http(s) location",
					     h->host);
				goto out;
			}
			if (++redirects > MFS_HTTP_MAX_REDIRECTS) {
				rc = MFS_ERR(err, -ELOOP, MFS_ERR_HTTP,
					     "too many redirects for a request to '%s' (more than %d)",
					     h->host, MFS_HTTP_MAX_REDIRECTS);
				goto out;
			}
			bool tok;
			rc = redirect_check(h, x.url, loc, "a hub API request", &tok, err);
			if (rc)
				goto out;
			char *nu = strdup(loc);
			if (!nu) {
				rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
				goto out;
			}
			free(x.url);
			x.url = nu;
			x.token_ok = x.token_ok && tok;
		}
		if (cc == CURLE_OK && x.ans.link_overlong) {
			rc = MFS_ERR(err, -EPROTO, MFS_ERR_HTTP,
				     "answer from '%s' has a Link header longer than %d bytes", h->host,
				     MFS_HTTP_LINK_MAX);
			goto out;
		}
		if (cc == CURLE_OK && !status_transient(x.ans.status)) {
			resp->status = x.ans.status;
			resp->body = (char *)x.buf;
			resp->len = x.got;
			snprintf(resp->error_code, sizeof(resp->error_code), "%s", x.ans.error_code);
			resp->next_url = x.ans.link_next;
			x.buf = NULL;
			x.ans.link_next = NULL;
			rc = 0;
			goto out;
		}
		if (x.overflow) {
			rc = MFS_ERR(err, -EFBIG, MFS_ERR_HTTP,
				     "answer from '%s' is larger than %zu bytes", h->host, cap);
			goto out;
		}
		if (cc != CURLE_OK)
			snprintf(reason, sizeof(reason), "%s", curl_easy_strerror(cc));
		else
			snprintf(reason, sizeof(reason), "HTTP %ld", x.ans.status);
		if (cc != CURLE_OK && curl_permanent(cc)) {
			rc = MFS_ERR(err, -EIO, MFS_ERR_NET, "request to '%s' failed: %s", h->host,
				     reason);
			goto out;
		}
		uint64_t pause = backoff_ms(attempt + 1,
					    x.ans.status == 429 ? x.ans.retry_after : -1, &seed);
		if (++attempt > t.max_retries || now_ms() + pause >= x.deadline) {
			bool late = attempt <= t.max_retries || cc == CURLE_OPERATION_TIMEDOUT;
			if (late)
				rc = MFS_ERR(err, -ETIMEDOUT, MFS_ERR_NET,
					     "request to '%s' gave up after %u attempts: %s (timeout %ld s)",
					     h->host, attempt, reason, (t.deadline_ms + 999) / 1000);
			else if (cc == CURLE_OK)
				rc = MFS_ERR(err, -EIO, MFS_ERR_HTTP,
					     "request to '%s' failed after %u attempts: %s", h->host,
					     attempt, reason);
			else
				rc = MFS_ERR(err, cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO,
					     MFS_ERR_NET,
					     "request to '%s' failed after %u attempts: %s", h->host,
					     attempt, reason);
			goto out;
		}
		mfs_log_info("http: retrying a request to '%s' (%s), attempt %u", h->host, reason,
			     attempt + 1);
		sleep_ms(pause);
		free(x.buf);
		x.buf = NULL;
		x.alloc = 0;
	}
out:
	free(x.buf);
	free(x.url);
	free(x.ans.link_next);
	curl_slist_free_all(x.hdrs);
	curl_easy_reset(x.easy);
	easy_put(h, x.easy);
	return rc;
}

/* ---- mfs_http_fetch: the range engine ---- */

enum rq_state {
	RQ_FREE = 0,
	RQ_XFER,     /* transfer running in the multi handle (loop only) */
	RQ_WAIT,     /* waiting for its retry time (loop only) */
	RQ_QUEUED,   /* bytes checked, waiting for a worker */
	RQ_HASHING,  /* a worker verifies it and calls done() */
	RQ_BOUNCED,  /* hash mismatch: to be fetched again with no-cache */
};

struct rq {
	enum rq_state state;          /* under call->lock */
	struct mfs_fetch_req req;
	struct xfer x;
	int easy_ix;                  /* index into the set's easy handles while XFER */
	unsigned attempts;            /* failed attempts so far */
	int redirects;
	bool hash_retried;
	char *hub_url;                /* the file's URL on the hub (owned) */
	bool via_cache;               /* this attempt starts at a remembered redirect */
	bool skip_cache;              /* a remembered redirect failed: go to the hub */
	uint64_t ready_at;            /* RQ_WAIT: when to start again */
	struct mfs_err last;          /* reason of the last failed attempt */
};

struct call {
	struct mfs_http *h;
	const struct mfs_fetch_job *job;
	const char *base_url;
	const char *subject;
	struct timeouts t;
	struct xset *set;
	struct rq *rqs;
	unsigned nrq;                 /* max_inflight + nworkers */
	unsigned nworkers;
	pthread_t workers[4];
	unsigned started_workers;
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* workers wait for RQ_QUEUED or quit */
	bool quit;                    /* under lock */
	bool stop;                    /* under lock: done() asked to stop */
	int stop_rc;                  /* under lock */
	unsigned seed;                /* loop only */
};

static void range_what(const struct mfs_fetch_req *req, char *buf, size_t n)
{
	snprintf(buf, n, "'%s' bytes %" PRIu64 "-%" PRIu64, req->path, req->off,
		 req->off + req->len - 1);
}

/* Verifies and delivers a checked buffer; called by a worker or inline. */
static void deliver(struct call *c, struct rq *r)
{
	const struct mfs_fetch_job *job = c->job;
	pthread_mutex_lock(&c->lock);
	bool stop = c->stop;
	pthread_mutex_unlock(&c->lock);
	if (stop) {
		struct mfs_err e = { 0 };
		MFS_ERR(&e, -ECANCELED, MFS_ERR_STATE, "fetch of '%s' stopped", r->req.path);
		job->failed(job->ctx, &r->req, &e);
		goto free_it;
	}
	if (!mfs_fetch_req_verify(&r->req, r->x.buf, r->x.got)) {
		char what[WHAT_MAX];
		range_what(&r->req, what, sizeof(what));
		if (!r->hash_retried) {
			mfs_log_warning("http: %s of '%s' does not match its SHA-256; fetching it again without caches",
					what, c->subject);
			pthread_mutex_lock(&c->lock);
			r->hash_retried = true;
			r->x.no_cache = true;
			r->state = RQ_BOUNCED;
			pthread_mutex_unlock(&c->lock);
			curl_multi_wakeup(c->set->multi);
			return;
		}
		struct mfs_err e = { 0 };
		MFS_ERR(&e, -EIO, MFS_ERR_HASH,
			"%s of '%s' does not match its SHA-256, even when fetched again without caches",
			what, c->subject);
		job->failed(job->ctx, &r->req, &e);
		goto free_it;
	}
	int rc = job->done(job->ctx, &r->req, r->x.buf, r->x.got);
	if (rc) {
		pthread_mutex_lock(&c->lock);
		if (!c->stop) {
			c->stop = true;
			c->stop_rc = rc;
		}
		pthread_mutex_unlock(&c->lock);
	}
free_it:
	pthread_mutex_lock(&c->lock);
	r->state = RQ_FREE;
	pthread_mutex_unlock(&c->lock);
	curl_multi_wakeup(c->set->multi);
}

static void *worker_main(void *u)
{
	struct call *c = u;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct rq *r = NULL;
		for (unsigned i = 0; i < c->nrq; i++) {
			if (c->rqs[i].state == RQ_QUEUED) {
				r = &c->rqs[i];
				break;
			}
		}
		if (r) {
			r->state = RQ_HASHING;
			pthread_mutex_unlock(&c->lock);
			deliver(c, r);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		if (c->quit)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void fail_rq(struct call *c, struct rq *r, const struct mfs_err *e)
{
	c->job->failed(c->job->ctx, &r->req, e);
	pthread_mutex_lock(&c->lock);
	r->state = RQ_FREE;
	pthread_mutex_unlock(&c->lock);
}

/* Starts (or restarts) r's current attempt in the multi handle. */
static int start_rq(struct call *c, struct rq *r)
{
	int ix = -1;
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->nrq && ix < 0; i++) {
		bool used = false;
		for (unsigned j = 0; j < c->nrq; j++)
			if (c->rqs[j].state == RQ_XFER && c->rqs[j].easy_ix == (int)i)
				used = true;
		if (!used)
			ix = (int)i;
	}
	pthread_mutex_unlock(&c->lock);
	if (ix < 0)
		return -EAGAIN;
	if (!c->set->easy[ix] && !(c->set->easy[ix] = curl_easy_init()))
		return -ENOMEM;
	r->x.easy = c->set->easy[ix];
	if (xfer_setup(c->h, &r->x, &c->t))
		return -ENOMEM;
	if (curl_multi_add_handle(c->set->multi, r->x.easy) != CURLM_OK)
		return -EIO;
	r->easy_ix = ix;
	pthread_mutex_lock(&c->lock);
	r->state = RQ_XFER;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* The remembered target of from (malloc'd), or NULL. */
static char *redir_lookup(struct mfs_http *h, const char *from)
{
	char *to = NULL;
	uint64_t now = now_ms();
	pthread_mutex_lock(&h->redir_lock);
	for (int i = 0; i < REDIR_CACHE_N; i++) {
		struct redir *e = &h->redir[i];
		if (e->from && e->expires > now && !strcmp(e->from, from)) {
			to = strdup(e->to);
			break;
		}
	}
	pthread_mutex_unlock(&h->redir_lock);
	return to;
}

static void redir_forget(struct mfs_http *h, const char *from)
{
	pthread_mutex_lock(&h->redir_lock);
	for (int i = 0; i < REDIR_CACHE_N; i++) {
		struct redir *e = &h->redir[i];
		if (e->from && !strcmp(e->from, from)) {
			free(e->from);
			free(e->to);
			e->from = e->to = NULL;
		}
	}
	pthread_mutex_unlock(&h->redir_lock);
}

/* Remembers from -> to, replacing the same key or the soonest to expire. */
static void redir_store(struct mfs_http *h, const char *from, const char *to)
{
	char *f = strdup(from), *t = strdup(to);
	if (!f || !t) {
		free(f);
		free(t);
		return;
	}
	pthread_mutex_lock(&h->redir_lock);
	int slot = 0;
	for (int i = 0; i < REDIR_CACHE_N; i++) {
		struct redir *e = &h->redir[i];
		if (e->from && !strcmp(e->from, from)) {
			slot = i;
			break;
		}
		if (!e->from || e->expires < h->redir[slot].expires)
			slot = i;
		if (!e->from)
			break;
	}
	struct redir *e = &h->redir[slot];
	free(e->from);
	free(e->to);
	e->from = f;
	e->to = t;
	e->expires = now_ms() + REDIR_TTL_MS;
	pthread_mutex_unlock(&h->redir_lock);
}

/* Points r at the hub URL of its file again (a fresh attempt). 0 or -ENOMEM. */
static int rq_reset_url(struct call *c, struct rq *r)
{
	char *esc = mfs_http_escape(r->req.path, true);
	if (!esc)
		return -ENOMEM;
	free(r->hub_url);
	r->hub_url = NULL;
	int n = asprintf(&r->hub_url, "%s%s", c->base_url, esc);
	free(esc);
	if (n < 0) {
		r->hub_url = NULL;
		return -ENOMEM;
	}
	char *cached = r->skip_cache || r->x.no_cache ? NULL : redir_lookup(c->h, r->hub_url);
	free(r->x.url);
	r->x.url = cached ? cached : strdup(r->hub_url);
	if (!r->x.url)
		return -ENOMEM;
	r->via_cache = cached != NULL;
	r->x.token_ok = !cached && mfs_http_same_origin(c->h, r->x.url);
	r->redirects = 0;
	return 0;
}

/* Records a failed attempt; schedules a retry or fails the request for good. */
static void attempt_failed(struct call *c, struct rq *r, bool permanent, long retry_after)
{
	char what[WHAT_MAX];
	range_what(&r->req, what, sizeof(what));
	if (r->via_cache) {
		/* The remembered location failed (it may have expired): start again
		 * at the hub, at once, without counting it. */
		redir_forget(c->h, r->hub_url);
		r->skip_cache = true;
		if (rq_reset_url(c, r)) {
			MFS_ERR(&r->last, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
			fail_rq(c, r, &r->last);
			return;
		}
		r->ready_at = 0;
		pthread_mutex_lock(&c->lock);
		r->state = RQ_WAIT;
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (permanent) {
		fail_rq(c, r, &r->last);
		return;
	}
	uint64_t pause = backoff_ms(r->attempts + 1, retry_after, &c->seed);
	if (++r->attempts > c->t.max_retries) {
		mfs_err_prefix(&r->last, "fetching %s of '%s' from '%s' failed after %u attempts",
			       what, c->subject, c->h->host, r->attempts);
		fail_rq(c, r, &r->last);
		return;
	}
	if (now_ms() + pause >= r->x.deadline) {
		/* Out of time: what the caller sees is the timeout, with the cause. */
		r->last.code = -ETIMEDOUT;
		r->last.kind = MFS_ERR_NET;
		mfs_err_prefix(&r->last, "fetching %s of '%s' from '%s' gave up after %u attempts "
			       "(timeout %ld s)", what, c->subject, c->h->host, r->attempts,
			       (c->t.deadline_ms + 999) / 1000);
		fail_rq(c, r, &r->last);
		return;
	}
	mfs_log_info("http: retrying %s of '%s' (%s), attempt %u", what, c->subject,
		     r->last.msg, r->attempts + 1);
	if (rq_reset_url(c, r)) {
		MFS_ERR(&r->last, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		fail_rq(c, r, &r->last);
		return;
	}
	r->ready_at = now_ms() + pause;
	pthread_mutex_lock(&c->lock);
	r->state = RQ_WAIT;
	pthread_mutex_unlock(&c->lock);
}

/* Judges a finished transfer of r. Called by the loop. */
static void finish_rq(struct call *c, struct rq *r, CURLcode cc)
{
	struct xfer *x = &r->x;
	char what[WHAT_MAX];
	range_what(&r->req, what, sizeof(what));
	curl_multi_remove_handle(c->set->multi, x->easy);
	pthread_mutex_lock(&c->lock);
	r->state = RQ_WAIT; /* not XFER any more: its easy handle is free */
	bool stop = c->stop;
	pthread_mutex_unlock(&c->lock);
	r->ready_at = 0;
	if (stop) {
		MFS_ERR(&r->last, -ECANCELED, MFS_ERR_STATE, "fetch of '%s' stopped", r->req.path);
		fail_rq(c, r, &r->last);
		return;
	}
	if (cc == CURLE_OK && status_redirect(x->ans.status)) {
		char *loc = NULL;
		curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc);
		bool tok = false;
		if (!loc) {
			MFS_ERR(&r->last, -EPROTO, MFS_ERR_HTTP,
				"refusing redirect for %s of '%s': no usable http(s) location", what,
				c->subject);
			fail_rq(c, r, &r->last);
			return;
		}
		if (++r->redirects > MFS_HTTP_MAX_REDIRECTS) {
			MFS_ERR(&r->last, -ELOOP, MFS_ERR_HTTP,
				"too many redirects for %s of '%s' (more than %d)", what, c->subject,
				MFS_HTTP_MAX_REDIRECTS);
			fail_rq(c, r, &r->last);
			return;
		}
		char subj[WHAT_MAX + 64];
		snprintf(subj, sizeof(subj), "%s of '%s'", what, c->subject);
		if (redirect_check(c->h, x->url, loc, subj, &tok, &r->last)) {
			fail_rq(c, r, &r->last);
			return;
		}
		char *nu = strdup(loc);
		if (!nu) {
			MFS_ERR(&r->last, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
			fail_rq(c, r, &r->last);
			return;
		}
		free(x->url);
		x->url = nu;
		x->token_ok = x->token_ok && tok;
		/* Follow at once; not an attempt of its own. */
		return;
	}
	if (cc != CURLE_OK) {
		if (x->rejected)
			MFS_ERR(&r->last, -EIO, MFS_ERR_HTTP,
				"server answered the range request with HTTP %ld instead of 206",
				x->ans.status);
		else if (x->overflow)
			MFS_ERR(&r->last, -EIO, MFS_ERR_HTTP, "server sent more than the %" PRIu64
				" bytes asked", x->len);
		else
			MFS_ERR(&r->last, cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO,
				MFS_ERR_NET, "%s", curl_easy_strerror(cc));
		bool perm = !x->rejected && !x->overflow && curl_permanent(cc);
		if (perm)
			mfs_err_prefix(&r->last, "fetching %s of '%s'", what, c->subject);
		attempt_failed(c, r, perm, -1);
		return;
	}
	if (x->ans.status == 206) {
		if (x->ans.has_cr && !x->ans.cr_bad && x->ans.cr_a == x->off && x->ans.cr_total != UINT64_MAX &&
		    x->ans.cr_total - x->off < x->len) {
			MFS_ERR(&r->last, -EINVAL, MFS_ERR_HTTP,
				"fetching %s of '%s': the range ends past the end of the file (%" PRIu64
				" bytes)", what, c->subject, x->ans.cr_total);
			attempt_failed(c, r, true, -1);
			return;
		}
		if (!x->ans.has_cr || x->ans.cr_bad || x->ans.cr_a != x->off ||
		    x->ans.cr_b != x->off + x->len - 1) {
			MFS_ERR(&r->last, -EIO, MFS_ERR_HTTP,
				"server answered with a Content-Range other than the range asked");
			attempt_failed(c, r, false, -1);
			return;
		}
		if (x->got != x->len) {
			MFS_ERR(&r->last, -EIO, MFS_ERR_HTTP,
				"short answer: %zu of %" PRIu64 " bytes", x->got, x->len);
			attempt_failed(c, r, false, -1);
			return;
		}
		if (!r->via_cache && r->redirects && !mfs_http_same_origin(c->h, x->url))
			redir_store(c->h, r->hub_url, x->url);
		/* Checked: hand to a worker (or deliver inline). */
		if (c->nworkers) {
			pthread_mutex_lock(&c->lock);
			r->state = RQ_QUEUED;
			pthread_cond_signal(&c->cond);
			pthread_mutex_unlock(&c->lock);
		} else {
			pthread_mutex_lock(&c->lock);
			r->state = RQ_HASHING;
			pthread_mutex_unlock(&c->lock);
			deliver(c, r);
		}
		return;
	}
	if (status_transient(x->ans.status) || (x->ans.status >= 200 && x->ans.status < 300)) {
		MFS_ERR(&r->last, -EIO, MFS_ERR_HTTP, "HTTP %ld%s%s", x->ans.status,
			x->ans.status >= 200 && x->ans.status < 300 ? " instead of 206" : "",
			x->ans.status == 429 ? " (rate limited)" : "");
		attempt_failed(c, r, false, x->ans.status == 429 ? x->ans.retry_after : -1);
		return;
	}
	enum mfs_err_kind kind;
	int e = status_errno(x->ans.status, x->ans.error_code, &kind);
	if (x->ans.status == 416)
		MFS_ERR(&r->last, e, kind,
			"fetching %s of '%s': range not satisfiable (HTTP 416): the file is shorter", what,
			c->subject);
	else if (kind == MFS_ERR_NOT_FOUND)
		MFS_ERR(&r->last, e, kind, "fetching %s of '%s': not found (HTTP %ld%s%s)", what,
			c->subject, x->ans.status, x->ans.error_code[0] ? ", " : "", x->ans.error_code);
	else if (kind == MFS_ERR_AUTH)
		MFS_ERR(&r->last, e, kind,
			"fetching %s of '%s': access denied (HTTP %ld%s%s): accept its terms and set HF_TOKEN",
			what, c->subject, x->ans.status, x->ans.error_code[0] ? ", " : "", x->ans.error_code);
	else
		MFS_ERR(&r->last, e, kind, "fetching %s of '%s': unexpected HTTP %ld", what,
			c->subject, x->ans.status);
	attempt_failed(c, r, true, -1);
}

static unsigned count_state(struct call *c, enum rq_state s)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->nrq; i++)
		n += c->rqs[i].state == s;
	return n;
}

static struct xset *set_get(struct mfs_http *h)
{
	struct xset *s = NULL;
	pthread_mutex_lock(&h->pool_lock);
	if (h->idle_sets) {
		s = h->idle_sets;
		h->idle_sets = s->next;
		h->n_idle_sets--;
	}
	pthread_mutex_unlock(&h->pool_lock);
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (!(s->multi = curl_multi_init())) {
		free(s);
		return NULL;
	}
	curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)MFS_HTTP_MAX_INFLIGHT);
	return s;
}

static void set_put(struct mfs_http *h, struct xset *s)
{
	pthread_mutex_lock(&h->pool_lock);
	if (h->n_idle_sets < IDLE_SETS_MAX) {
		s->next = h->idle_sets;
		h->idle_sets = s;
		h->n_idle_sets++;
		s = NULL;
	}
	pthread_mutex_unlock(&h->pool_lock);
	if (s)
		xset_free(s);
}

static unsigned ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 4 ? 4 : (unsigned)n;
}

int mfs_http_fetch(struct mfs_http *h, const char *base_url, const char *subject,
		   const struct mfs_fetch_job *job, const struct mfs_fetch_opts *opts,
		   struct mfs_err *err)
{
	struct call c = { .h = h, .job = job, .base_url = base_url, .subject = subject,
			  .t = timeouts_of(opts) };
	int rc = 0;
	c.seed = (unsigned)now_ms() ^ (unsigned)(uintptr_t)&c;
	c.nworkers = c.t.max_inflight > 1 ? ncpu() : 0;
	if (c.nworkers > 4)
		c.nworkers = 4;
	c.nrq = c.t.max_inflight + c.nworkers;
	if (c.nrq > MFS_HTTP_MAX_INFLIGHT)
		c.nrq = MFS_HTTP_MAX_INFLIGHT;
	if (!mfs_http_same_origin(h, base_url))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "refusing to fetch from another host than the hub '%s'", h->host);
	c.rqs = calloc(c.nrq, sizeof(*c.rqs));
	c.set = set_get(h);
	if (!c.rqs || !c.set) {
		free(c.rqs);
		if (c.set)
			set_put(h, c.set);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	for (unsigned i = 0; i < c.nworkers; i++) {
		if (pthread_create(&c.workers[i], NULL, worker_main, &c))
			break;
		c.started_workers++;
	}
	if (c.nworkers && !c.started_workers)
		c.nworkers = 0; /* no threads: deliver inline */

	bool exhausted = false;
	/* Each pass does at most one poll of at most POLL_MAX_MS; the loop ends
	 * because every request ends (curl timeouts, bounded retries). */
	for (;;) {
		pthread_mutex_lock(&c.lock);
		bool stop = c.stop;
		pthread_mutex_unlock(&c.lock);
		if (stop) {
			for (unsigned i = 0; i < c.nrq; i++) {
				struct rq *r = &c.rqs[i];
				pthread_mutex_lock(&c.lock);
				bool xf = r->state == RQ_XFER;
				pthread_mutex_unlock(&c.lock);
				if (!xf)
					continue;
				curl_multi_remove_handle(c.set->multi, r->x.easy);
				pthread_mutex_lock(&c.lock);
				r->state = RQ_WAIT;
				pthread_mutex_unlock(&c.lock);
				MFS_ERR(&r->last, -ECANCELED, MFS_ERR_STATE, "fetch of '%s' stopped",
					r->req.path);
				fail_rq(&c, r, &r->last);
			}
		}
		uint64_t now = now_ms();
		uint64_t wake = now + POLL_MAX_MS;
		unsigned running = 0;
		/* Restart bounced and due requests first: they hold buffers already. */
		for (unsigned i = 0; i < c.nrq; i++) {
			struct rq *r = &c.rqs[i];
			pthread_mutex_lock(&c.lock);
			enum rq_state st = r->state;
			pthread_mutex_unlock(&c.lock);
			if (st == RQ_BOUNCED || (st == RQ_WAIT && r->ready_at <= now)) {
				if (stop) {
					MFS_ERR(&r->last, -ECANCELED, MFS_ERR_STATE,
						"fetch of '%s' stopped", r->req.path);
					fail_rq(&c, r, &r->last);
					continue;
				}
				if (st == RQ_BOUNCED && rq_reset_url(&c, r)) {
					MFS_ERR(&r->last, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
					fail_rq(&c, r, &r->last);
					continue;
				}
				int s = start_rq(&c, r);
				if (s == -EAGAIN)
					continue;
				if (s) {
					MFS_ERR(&r->last, s, MFS_ERR_NOMEM,
						"cannot start a transfer for '%s'", r->req.path);
					fail_rq(&c, r, &r->last);
				}
			} else if (st == RQ_WAIT && r->ready_at < wake) {
				wake = r->ready_at;
			}
		}
		pthread_mutex_lock(&c.lock);
		running = count_state(&c, RQ_XFER) + count_state(&c, RQ_WAIT) +
			  count_state(&c, RQ_BOUNCED);
		unsigned busy = c.nrq - count_state(&c, RQ_FREE);
		stop = c.stop;
		pthread_mutex_unlock(&c.lock);
		/* New requests while a transfer slot and a buffer are free. */
		while (!stop && !exhausted && running < c.t.max_inflight && busy < c.nrq) {
			struct rq *r = NULL;
			pthread_mutex_lock(&c.lock);
			for (unsigned i = 0; i < c.nrq && !r; i++)
				if (c.rqs[i].state == RQ_FREE)
					r = &c.rqs[i];
			if (r)
				r->state = RQ_WAIT; /* reserved; ready_at set below */
			pthread_mutex_unlock(&c.lock);
			if (!r)
				break;
			struct mfs_fetch_req req;
			r->ready_at = UINT64_MAX;
			if (!job->next(job->ctx, &req)) {
				pthread_mutex_lock(&c.lock);
				r->state = RQ_FREE;
				pthread_mutex_unlock(&c.lock);
				exhausted = true;
				break;
			}
			r->req = req;
			r->attempts = 0;
			r->hash_retried = false;
			r->skip_cache = false;
			r->x.no_cache = false;
			r->x.ranged = true;
			r->x.off = req.off;
			r->x.len = req.len;
			r->x.deadline = now_ms() + (uint64_t)c.t.deadline_ms;
			mfs_err_clear(&r->last);
			running++;
			busy++;
			if (req.len == 0 || req.len > MFS_HTTP_MAX_RANGE ||
			    req.off > UINT64_MAX - req.len) {
				MFS_ERR(&r->last, -EINVAL, MFS_ERR_USAGE,
					"bad range for '%s': %" PRIu64 " bytes at %" PRIu64
					" (1 byte to 1 GiB)", req.path, req.len, req.off);
				fail_rq(&c, r, &r->last);
				running--;
				busy--;
				continue;
			}
			if (r->x.cap < req.len) {
				free(r->x.buf);
				r->x.buf = malloc(req.len);
				r->x.cap = r->x.buf ? req.len : 0;
			}
			r->x.cap = req.len; /* never accept more than asked */
			int s = r->x.buf ? rq_reset_url(&c, r) : -ENOMEM;
			if (!s)
				s = start_rq(&c, r);
			if (s) {
				MFS_ERR(&r->last, -ENOMEM, MFS_ERR_NOMEM,
					"out of memory for a range of '%s'", req.path);
				fail_rq(&c, r, &r->last);
				running--;
				busy--;
			}
		}
		pthread_mutex_lock(&c.lock);
		busy = c.nrq - count_state(&c, RQ_FREE);
		pthread_mutex_unlock(&c.lock);
		if (busy == 0 && (exhausted || stop))
			break;

		int still = 0;
		curl_multi_perform(c.set->multi, &still);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(c.set->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct xfer *x = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			struct rq *r = NULL;
			for (unsigned i = 0; i < c.nrq && !r; i++)
				if (&c.rqs[i].x == x)
					r = &c.rqs[i];
			if (r) {
				CURLcode cc = m->data.result;
				finish_rq(&c, r, cc);
				/* A followed redirect restarts at once. */
				pthread_mutex_lock(&c.lock);
				bool again = r->state == RQ_WAIT && r->ready_at == 0;
				pthread_mutex_unlock(&c.lock);
				if (again && start_rq(&c, r)) {
					MFS_ERR(&r->last, -ENOMEM, MFS_ERR_NOMEM,
						"cannot start a transfer for '%s'", r->req.path);
					fail_rq(&c, r, &r->last);
				}
			}
		}
		now = now_ms();
		int timeout = wake > now ? (int)(wake - now) : 0;
		if (timeout > POLL_MAX_MS)
			timeout = POLL_MAX_MS;
		curl_multi_poll(c.set->multi, NULL, 0, timeout, NULL);
	}

	pthread_mutex_lock(&c.lock);
	c.quit = true;
	pthread_cond_broadcast(&c.cond);
	rc = c.stop ? c.stop_rc : 0;
	pthread_mutex_unlock(&c.lock);
	for (unsigned i = 0; i < c.started_workers; i++)
		pthread_join(c.workers[i], NULL);
	for (unsigned i = 0; i < c.nrq; i++)
		if (c.set->easy[i])
			curl_easy_reset(c.set->easy[i]);
	for (unsigned i = 0; i < c.nrq; i++) {
		free(c.rqs[i].x.buf);
		free(c.rqs[i].x.url);
		free(c.rqs[i].hub_url);
		free(c.rqs[i].x.ans.link_next);
		curl_slist_free_all(c.rqs[i].x.hdrs);
	}
	free(c.rqs);
	set_put(h, c.set);
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
	return rc;
}
