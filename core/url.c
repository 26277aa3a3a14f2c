/*
 * url.c - redaction, credentials, loopback and sites (see url.h).
 *
 * Redaction is done on the string, not through a URL parser's normalised
 * output, so an endpoint without secrets stays byte for byte what the user
 * typed (stores key records by it). It is deliberately greedy: everything
 * between "://" and the LAST '@' before any '?' or '#' is dropped, so that a
 * password with an unencoded '/' can never survive into output. An endpoint
 * whose '@' is not in its authority is refused at open
 * (mfs_url_split_credentials), so for every accepted endpoint the redacted
 * form and the URL actually requested name the same origin.
 *
 * Sites come from the Public Suffix List through libpsl: the distribution's
 * list (Debian package publicsuffix) when present, else the copy built into
 * libpsl. Loaded once per process.
 */
#include "url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <libpsl.h>

#define HOST_MAX 256

/* [start, end) of the authority's userinfo+'@' to drop; false when none. */
static bool userinfo_span(const char *url, const char **start, const char **end)
{
	const char *sep = strstr(url, "://");
	if (!sep)
		return false;
	const char *a = sep + 3;
	size_t stop = strcspn(a, "?#");
	const char *at = NULL;
	for (const char *p = a; p < a + stop; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return false;
	*start = a;
	*end = at + 1;
	return true;
}

bool mfs_url_has_credentials(const char *url)
{
	const char *s, *e;
	return url && userinfo_span(url, &s, &e);
}

char *mfs_url_redact(const char *url, char *out, size_t cap)
{
	if (!cap)
		return out;
	if (!url) {
		out[0] = '\0';
		return out;
	}
	const char *s = NULL, *e = NULL;
	bool cred = userinfo_span(url, &s, &e);
	size_t o = 0;
	bool cut = false;
	for (const char *p = url; *p && *p != '?' && *p != '#'; p++) {
		if (cred && p >= s && p < e)
			continue;
		if (o + 1 >= cap) {
			cut = true;
			break;
		}
		out[o++] = *p;
	}
	out[o] = '\0';
	if (cut && cap > 4)
		memcpy(out + cap - 4, "...", 4);
	return out;
}

char *mfs_url_redacted(const char *url)
{
	size_t n = url ? strlen(url) + 1 : 1;
	char *out = malloc(n);
	return out ? mfs_url_redact(url, out, n) : NULL;
}

int mfs_url_split_credentials(const char *url, char **redacted, char **user, char **password,
			      struct mfs_err *err)
{
	char *r = mfs_url_redacted(url);
	char *u = NULL, *pw = NULL;
	if (!r)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	if (!mfs_url_has_credentials(url)) {
		*redacted = r;
		*user = *password = NULL;
		return 0;
	}
	/* The '@' must close the authority: "http://u:p@host/..." only. */
	const char *a = strstr(url, "://") + 3;
	const char *at = strchr(a, '@');
	size_t auth_len = strcspn(a, "/?#");
	int rc;
	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "bad endpoint '%s': credentials are only understood in http(s) endpoints",
			     r);
		goto fail;
	}
	if (!at || (size_t)(at - a) >= auth_len || strchr(at + 1, '@')) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "bad endpoint '%s': the credentials part must be percent-encoded "
			     "(user:password@host, with '/', '@' and ':' in them written %%2F, %%40, %%3A)",
			     r);
		goto fail;
	}
	CURLU *cu = curl_url();
	if (!cu) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	char *cuser = NULL, *cpass = NULL;
	CURLUcode uc = curl_url_set(cu, CURLUPART_URL, url, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(cu, CURLUPART_USER, &cuser, CURLU_URLDECODE);
	if (uc == CURLUE_OK) {
		CURLUcode pc = curl_url_get(cu, CURLUPART_PASSWORD, &cpass, CURLU_URLDECODE);
		if (pc != CURLUE_OK && pc != CURLUE_NO_PASSWORD)
			uc = pc;
	}
	curl_url_cleanup(cu);
	if (uc == CURLUE_OK) {
		u = strdup(cuser);
		pw = strdup(cpass ? cpass : "");
	}
	if (cuser)
		explicit_bzero(cuser, strlen(cuser));
	if (cpass)
		explicit_bzero(cpass, strlen(cpass));
	curl_free(cuser);
	curl_free(cpass);
	if (uc != CURLUE_OK) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "bad endpoint '%s': its credentials part cannot be parsed", r);
		goto fail;
	}
	if (!u || !pw) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if (strpbrk(u, "\r\n") || strpbrk(pw, "\r\n")) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "bad endpoint '%s': its credentials contain a line break", r);
		goto fail;
	}
	*redacted = r;
	*user = u;
	*password = pw;
	return 0;
fail:
	mfs_secret_free(u);
	mfs_secret_free(pw);
	free(r);
	return rc;
}

/* Copies host without IPv6 brackets and one trailing dot; false if too long. */
static bool host_plain(const char *host, char out[HOST_MAX])
{
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n && host[n - 1] == '.')
		n--;
	if (n >= HOST_MAX)
		return false;
	memcpy(out, host, n);
	out[n] = '\0';
	return true;
}

bool mfs_url_host_is_ip(const char *host)
{
	char h[HOST_MAX];
	unsigned char a[16];
	if (!host || !host_plain(host, h))
		return false;
	return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

bool mfs_url_host_is_loopback(const char *host)
{
	char h[HOST_MAX];
	struct in_addr v4;
	struct in6_addr v6;
	if (!host || !host_plain(host, h))
		return false;
	/* libcurl answers "localhost" itself, without asking a resolver. */
	if (!strcmp(h, "localhost"))
		return true;
	if (inet_pton(AF_INET, h, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, h, &v6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&v6) ||
		       (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
	return false;
}

bool mfs_url_secret_may_go(const char *scheme, const char *host)
{
	if (!scheme || !host)
		return false;
	if (!strcmp(scheme, "https"))
		return true;
	return !strcmp(scheme, "http") && mfs_url_host_is_loopback(host);
}

static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl_ctx;

static void psl_load(void)
{
	/* Never freed: one list per process, like libpsl's own builtin one. */
	psl_ctx_t *latest = psl_latest(NULL);
	psl_ctx = latest ? latest : psl_builtin();
}

bool mfs_url_same_site(const char *hub_host, const char *host)
{
	char a[HOST_MAX], b[HOST_MAX];
	if (!hub_host || !host || !host_plain(hub_host, a) || !host_plain(host, b))
		return false;
	if (!strcmp(a, b))
		return true;
	if (mfs_url_host_is_ip(a) || mfs_url_host_is_ip(b))
		return false;
	pthread_once(&psl_once, psl_load);
	if (!psl_ctx)
		return false; /* no list: only the hub itself */
	const char *da = psl_registrable_domain(psl_ctx, a);
	const char *db = psl_registrable_domain(psl_ctx, b);
	if (!da || !db)
		return false;
	if (!strcmp(da, db))
		return true;
	/* Hugging Face serves its large files from hf.co. */
	return !strcmp(da, "huggingface.co") && !strcmp(db, "hf.co");
}

void mfs_secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}
