/*
 * url.h - the facts about a URL that the network side decides on.
 *
 *   - credentials: "http://user:pass@host/" carries a secret. It is split off
 *     where a repository is opened; everything else (struct fields, records,
 *     the index, attributes, JSON, logs, error messages) only ever sees the
 *     redacted endpoint, without userinfo, query or fragment.
 *   - secrets on the wire: a token or URL credentials go only over https, or
 *     plain http to a loopback host (this machine), decided before any
 *     request is sent.
 *   - sites: a redirect may stay on the hub's site, the registrable domain
 *     given by the Public Suffix List (libpsl), so "example.co.uk" is a site
 *     and "co.uk" or "github.io" is not.
 *
 * All functions are pure (no I/O except libpsl loading its list once) and
 * thread-safe.
 */
#ifndef MFS_URL_H
#define MFS_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/*
 * Writes into out (cap bytes) url without its userinfo ("user:pass@"),
 * query ("?...") and fragment ("#..."): the form that may be shown and
 * stored. Strings that are not "scheme://..." are copied as they are, minus
 * query and fragment. Always NUL-terminates when cap > 0; a result longer
 * than cap is cut and ends in "..." (never a partial secret: the secret was
 * removed before cutting). Returns out, so it can sit inside a printf.
 */
char *mfs_url_redact(const char *url, char *out, size_t cap);

/* Wipes a secret string (a token, a user name, a password) and frees it;
 * NULL is a no-op. explicit_bzero, so the wipe is not optimised away. */
void mfs_secret_free(char *s);

/* The same, malloc'd; NULL on ENOMEM. */
char *mfs_url_redacted(const char *url);

/* True when url has a userinfo part (credentials) in its authority. */
bool mfs_url_has_credentials(const char *url);

/*
 * Splits url into its redacted form (*redacted, malloc'd; see
 * mfs_url_redact) and its percent-decoded credentials (*user, *password,
 * malloc'd, NULL when absent; the password may be "" when only a user is
 * given). Returns 0, -EINVAL (kind USAGE, the message never shows the
 * secret) for a URL libcurl cannot parse while it has credentials, -ENOMEM.
 * The caller wipes and frees *user and *password.
 */
int mfs_url_split_credentials(const char *url, char **redacted, char **user, char **password,
			      struct mfs_err *err);

/*
 * True when host (lowercase, as libcurl gives it: "[::1]" for IPv6) is this
 * machine: "localhost", a name under ".localhost", 127.0.0.0/8 or ::1.
 * Anything else, including names that a resolver might map to 127.0.0.1, is
 * not loopback: the decision is made on the name, before any lookup.
 */
bool mfs_url_host_is_loopback(const char *host);

/*
 * True when a secret (token, URL credentials) may be sent to
 * scheme://host: https anywhere, http only to a loopback host.
 */
bool mfs_url_secret_may_go(const char *scheme, const char *host);

/* True when host is an IPv4 or IPv6 address literal (with or without []). */
bool mfs_url_host_is_ip(const char *host);

/*
 * True when host lies on the same site as hub_host: the same host, or both
 * under the same registrable domain by the Public Suffix List (both names,
 * not IP addresses; a host that is itself a public suffix has no site).
 * huggingface.co also owns hf.co (its CDN). Hosts are lowercase.
 */
bool mfs_url_same_site(const char *hub_host, const char *host);

#endif
