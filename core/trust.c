/*
 * trust.c - the trust policy file and the checks that use it; see trust.h.
 *
 * The policy file is small, local and written by modelfs, but a person may
 * edit it, so loading checks it as carefully as anything else: every key's
 * PEM must parse as Ed25519 and its stored id must match the key, or the whole
 * file is refused (a policy that is half understood is worse than none).
 *
 * Verification order in mfs_policy_verify_manifest: the signature text is
 * checked first (missing, malformed), then the manifest is parsed by the
 * bounded parser, then its repo is compared with the one asked for, then the
 * key it names is looked up in the policy, and only a key trusted for the
 * repo is used to verify. Every refusal before the signature check is a
 * refusal anyway, so doing the cheap checks first only changes which message
 * the user sees, and lets that message name the key and prefix involved.
 */
#include "trust.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "statefile.h"
#include "sign.h"

struct policy_key {
	char key_id[MFS_KEY_ID_LEN + 1];
	char *prefix;
	char *pem;
	char *added;
	EVP_PKEY *pkey;
};

struct policy_hub {
	char *prefix;
	char *added;
};

struct mfs_policy {
	struct policy_key *keys;
	size_t n_keys;
	struct policy_hub *hubs;
	size_t n_hubs;
};

/* ---- prefixes and endpoints -------------------------------------------- */

bool mfs_policy_prefix_is_valid(const char *prefix)
{
	if (!prefix)
		return false;
	size_t n = strnlen(prefix, MFS_MANIFEST_REPO_MAX + 1);
	if (n == 0)
		return true;
	if (n > MFS_MANIFEST_REPO_MAX)
		return false;
	const char *slash = memchr(prefix, '/', n);
	if (!slash)
		return mfs_manifest_name_part_is_valid(prefix, n);
	if ((size_t)(slash - prefix) == n - 1)
		return mfs_manifest_name_part_is_valid(prefix, n - 1);
	return mfs_manifest_repo_is_valid(prefix);
}

bool mfs_policy_prefix_matches(const char *prefix, const char *repo)
{
	if (!prefix || !repo)
		return false;
	size_t n = strlen(prefix);
	if (n == 0 || !strcmp(prefix, repo))
		return true;
	if (strncmp(repo, prefix, n))
		return false;
	return prefix[n - 1] == '/' || repo[n] == '/';
}

static bool host_is_loopback(const char *host, size_t n)
{
	char buf[64];
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, host, n);
	buf[n] = '\0';
	if (!strcasecmp(buf, "localhost"))
		return true;
	struct in_addr a4;
	if (inet_pton(AF_INET, buf, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	struct in6_addr a6;
	if (inet_pton(AF_INET6, buf, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

bool mfs_policy_endpoint_is_secure(const char *endpoint)
{
	if (!endpoint)
		return false;
	if (!strncasecmp(endpoint, "https://", 8))
		return endpoint[8] != '\0';
	if (!strncasecmp(endpoint, "file://", 7))
		return true;
	if (strncasecmp(endpoint, "http://", 7))
		return false;
	const char *auth = endpoint + 7;
	size_t n = strcspn(auth, "/?#");
	/* Skip any userinfo: the host is what follows the last '@'. */
	const char *at = NULL;
	for (size_t i = 0; i < n; i++)
		if (auth[i] == '@')
			at = auth + i;
	if (at) {
		n -= (size_t)(at + 1 - auth);
		auth = at + 1;
	}
	if (n && auth[0] == '[') {
		const char *close = memchr(auth, ']', n);
		if (!close)
			return false;
		size_t rest = n - (size_t)(close + 1 - auth);
		if (rest && close[1] != ':')
			return false;
		return host_is_loopback(auth + 1, (size_t)(close - auth - 1));
	}
	const char *colon = memchr(auth, ':', n);
	return host_is_loopback(auth, colon ? (size_t)(colon - auth) : n);
}

/* ---- load, free, iterate ----------------------------------------------- */

void mfs_policy_free(struct mfs_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_keys; i++) {
		free(p->keys[i].prefix);
		free(p->keys[i].pem);
		free(p->keys[i].added);
		EVP_PKEY_free(p->keys[i].pkey);
	}
	for (size_t i = 0; i < p->n_hubs; i++) {
		free(p->hubs[i].prefix);
		free(p->hubs[i].added);
	}
	free(p->keys);
	free(p->hubs);
	free(p);
}

size_t mfs_policy_key_count(const struct mfs_policy *p)
{
	return p ? p->n_keys : 0;
}

void mfs_policy_key_at(const struct mfs_policy *p, size_t i, struct mfs_policy_key_info *out)
{
	const struct policy_key *k = &p->keys[i];
	*out = (struct mfs_policy_key_info){ .key_id = k->key_id, .prefix = k->prefix,
					     .public_key = k->pem, .added = k->added };
}

size_t mfs_policy_hub_count(const struct mfs_policy *p)
{
	return p ? p->n_hubs : 0;
}

void mfs_policy_hub_at(const struct mfs_policy *p, size_t i, struct mfs_policy_hub_info *out)
{
	*out = (struct mfs_policy_hub_info){ .prefix = p->hubs[i].prefix,
					     .added = p->hubs[i].added };
}

static int policy_path(const char *store_dir, const char *name, char *buf, size_t size,
		       struct mfs_err *err)
{
	int n = snprintf(buf, size, "%s/%s", store_dir, name);
	if (n < 0 || (size_t)n >= size)
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "store path '%s' is too long",
			       store_dir);
	return 0;
}

static const char *obj_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int parse_policy(const char *path, const char *text, size_t len,
			struct mfs_policy *p, struct mfs_err *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	int rc = 0;
	if (!root)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "trust policy '%s' is not valid JSON: %s (line %d); fix or remove it",
			       path, jerr.text, jerr.line);
	json_t *ver = json_object_get(root, "version");
	json_t *keys = json_object_get(root, "keys"), *hubs = json_object_get(root, "hub");
	if (!json_is_object(root) || !json_is_integer(ver) ||
	    (keys && !json_is_array(keys)) || (hubs && !json_is_array(hubs))) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			     "trust policy '%s' is damaged (expected {\"version\":1,\"keys\":[...],"
			     "\"hub\":[...]}); fix or remove it", path);
		goto out;
	}
	if (json_integer_value(ver) != MFS_POLICY_VERSION) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			     "trust policy '%s' has version %lld; this modelfs reads version %d",
			     path, (long long)json_integer_value(ver), MFS_POLICY_VERSION);
		goto out;
	}
	size_t nk = json_array_size(keys), nh = json_array_size(hubs);
	if ((nk && !(p->keys = calloc(nk, sizeof(*p->keys)))) ||
	    (nh && !(p->hubs = calloc(nh, sizeof(*p->hubs))))) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory loading '%s'", path);
		goto out;
	}
	for (size_t i = 0; i < nk; i++) {
		json_t *e = json_array_get(keys, i);
		const char *id = obj_str(e, "key_id"), *pem = obj_str(e, "public_key");
		const char *prefix = obj_str(e, "prefix"), *added = obj_str(e, "added");
		struct policy_key *k = &p->keys[i];
		p->n_keys = i + 1;
		if (!id || !pem || !prefix || !mfs_policy_prefix_is_valid(prefix)) {
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
				     "trust policy '%s': key entry #%zu is damaged; fix or remove it",
				     path, i);
			goto out;
		}
		struct mfs_err kerr = { 0 };
		if (mfs_sign_public_from_pem(pem, strlen(pem), &k->pkey, &kerr) ||
		    mfs_sign_key_id(k->pkey, k->key_id) || strcmp(k->key_id, id)) {
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
				     "trust policy '%s': key entry #%zu ('%.16s') does not hold the "
				     "Ed25519 public key it names; fix or remove it", path, i, id);
			goto out;
		}
		if (!(k->prefix = strdup(prefix)) || !(k->pem = strdup(pem)) ||
		    !(k->added = strdup(added ? added : ""))) {
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory loading '%s'", path);
			goto out;
		}
	}
	for (size_t i = 0; i < nh; i++) {
		json_t *e = json_array_get(hubs, i);
		const char *prefix = obj_str(e, "prefix"), *added = obj_str(e, "added");
		p->n_hubs = i + 1;
		if (!prefix || !mfs_policy_prefix_is_valid(prefix)) {
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
				     "trust policy '%s': hub entry #%zu is damaged; fix or remove it",
				     path, i);
			goto out;
		}
		if (!(p->hubs[i].prefix = strdup(prefix)) ||
		    !(p->hubs[i].added = strdup(added ? added : ""))) {
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory loading '%s'", path);
			goto out;
		}
	}
out:
	json_decref(root);
	return rc;
}

int mfs_policy_load(const char *store_dir, struct mfs_policy **out, struct mfs_err *err)
{
	char path[PATH_MAX];
	int rc = policy_path(store_dir, MFS_POLICY_FILE, path, sizeof(path), err);
	if (rc)
		return rc;
	struct mfs_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory loading the policy");
	char *text = NULL;
	size_t len = 0;
	struct mfs_err rerr = {0};
	rc = mfs_read_file_capped(path, MFS_POLICY_MAX, "trust policy", &text, &len, &rerr);
	if (rc && rc != -ENOENT && err)
		*err = rerr;
	if (rc == -ENOENT) { /* no policy yet: an empty one */
		*out = p;
		return 0;
	}
	if (!rc)
		rc = parse_policy(path, text, len, p, err);
	free(text);
	if (rc) {
		mfs_policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* ---- save -------------------------------------------------------------- */

static int mkdir_p(const char *dir, struct mfs_err *err)
{
	char buf[PATH_MAX];
	int n = snprintf(buf, sizeof(buf), "%s", dir);
	if (n < 0 || (size_t)n >= sizeof(buf) || n == 0)
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "bad store path '%s'", dir);
	for (char *s = buf + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot create directory '%s': %s",
				       buf, strerror(errno));
		*s = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return MFS_ERR(err, -ENOTDIR, MFS_ERR_IO, "store path '%s' is not a directory", dir);
	return 0;
}

static void now_iso(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static int policy_save(const char *store_dir, const struct mfs_policy *p, struct mfs_err *err)
{
	char path[PATH_MAX];
	int rc = policy_path(store_dir, MFS_POLICY_FILE, path, sizeof(path), err);
	if (rc)
		return rc;

	json_t *root = json_object(), *keys = json_array(), *hubs = json_array();
	char *text = NULL;
	bool bad = !root || !keys || !hubs;
	for (size_t i = 0; !bad && i < p->n_keys; i++) {
		const struct policy_key *k = &p->keys[i];
		json_t *e = json_pack("{s:s,s:s,s:s,s:s}", "key_id", k->key_id, "public_key",
				      k->pem, "prefix", k->prefix, "added", k->added);
		bad = !e || json_array_append_new(keys, e);
	}
	for (size_t i = 0; !bad && i < p->n_hubs; i++) {
		json_t *e = json_pack("{s:s,s:s}", "prefix", p->hubs[i].prefix, "added",
				      p->hubs[i].added);
		bad = !e || json_array_append_new(hubs, e);
	}
	bad = bad || json_object_set_new(root, "version", json_integer(MFS_POLICY_VERSION)) ||
	      json_object_set(root, "keys", keys) || json_object_set(root, "hub", hubs) ||
	      !(text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS));
	json_decref(keys);
	json_decref(hubs);
	json_decref(root);
	if (bad) {
		free(text);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory writing the policy");
	}

	rc = mfs_write_text_atomic(store_dir, path, text, 0644, "trust policy", err);
	free(text);
	return rc;
}

/* Creates the store directory, takes the policy lock and loads the policy. */
static int policy_begin(const char *store_dir, int *lock_fd, struct mfs_policy **p,
			struct mfs_err *err)
{
	char lpath[PATH_MAX];
	int rc = mkdir_p(store_dir, err);
	if (rc)
		return rc;
	if ((rc = policy_path(store_dir, "policy.lock", lpath, sizeof(lpath), err)))
		return rc;
	int fd;
	if ((rc = mfs_lock_file(lpath, &fd, err)))
		return rc;
	if ((rc = mfs_policy_load(store_dir, p, err))) {
		close(fd);
		return rc;
	}
	*lock_fd = fd;
	return 0;
}

static int policy_end(int lock_fd, struct mfs_policy *p, int rc)
{
	mfs_policy_free(p);
	close(lock_fd); /* releases the flock */
	return rc;
}

int mfs_policy_add_key(const char *store_dir, const char *pub_path, const char *prefix,
		       char key_id[17], struct mfs_err *err)
{
	if (!mfs_policy_prefix_is_valid(prefix))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad prefix '%s': expected '', 'ORG', 'ORG/' or 'ORG/NAME' "
			       "(letters, digits, '-', '_', '.'; no spaces or '..')",
			       prefix ? prefix : "");
	EVP_PKEY *key = NULL;
	char id[MFS_KEY_ID_LEN + 1];
	int rc = mfs_sign_load_public(pub_path, &key, err);
	if (rc)
		return rc;
	char *pem = NULL;
	if ((rc = mfs_sign_public_to_pem(key, &pem, err)) || (rc = mfs_sign_key_id(key, id))) {
		EVP_PKEY_free(key);
		free(pem);
		return rc;
	}
	int lock_fd;
	struct mfs_policy *p;
	if ((rc = policy_begin(store_dir, &lock_fd, &p, err))) {
		EVP_PKEY_free(key);
		free(pem);
		return rc;
	}
	for (size_t i = 0; i < p->n_keys; i++) {
		if (!strcmp(p->keys[i].key_id, id) && !strcmp(p->keys[i].prefix, prefix)) {
			EVP_PKEY_free(key);
			free(pem);
			memcpy(key_id, id, sizeof(id));
			return policy_end(lock_fd, p, 0);
		}
	}
	struct policy_key *keys = realloc(p->keys, (p->n_keys + 1) * sizeof(*keys));
	char added[32];
	now_iso(added);
	if (keys)
		p->keys = keys;
	struct policy_key *k = keys ? &keys[p->n_keys] : NULL;
	if (k) {
		*k = (struct policy_key){ .prefix = strdup(prefix), .pem = pem,
					  .added = strdup(added), .pkey = key };
		memcpy(k->key_id, id, sizeof(id));
		p->n_keys++;
		pem = NULL;
		key = NULL;
	}
	if (!k || !k->prefix || !k->added) {
		EVP_PKEY_free(key);
		free(pem);
		return policy_end(lock_fd, p, MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM,
						      "out of memory adding the key"));
	}
	rc = policy_save(store_dir, p, err);
	if (!rc)
		memcpy(key_id, id, sizeof(id));
	return policy_end(lock_fd, p, rc);
}

int mfs_policy_add_hub(const char *store_dir, const char *prefix, struct mfs_err *err)
{
	if (!mfs_policy_prefix_is_valid(prefix))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad prefix '%s': expected '', 'ORG', 'ORG/' or 'ORG/NAME' "
			       "(letters, digits, '-', '_', '.'; no spaces or '..')",
			       prefix ? prefix : "");
	int lock_fd, rc;
	struct mfs_policy *p;
	if ((rc = policy_begin(store_dir, &lock_fd, &p, err)))
		return rc;
	for (size_t i = 0; i < p->n_hubs; i++)
		if (!strcmp(p->hubs[i].prefix, prefix))
			return policy_end(lock_fd, p, 0);
	struct policy_hub *hubs = realloc(p->hubs, (p->n_hubs + 1) * sizeof(*hubs));
	char added[32];
	now_iso(added);
	if (hubs) {
		p->hubs = hubs;
		hubs[p->n_hubs] = (struct policy_hub){ .prefix = strdup(prefix),
						       .added = strdup(added) };
		p->n_hubs++;
	}
	if (!hubs || !hubs[p->n_hubs - 1].prefix || !hubs[p->n_hubs - 1].added)
		return policy_end(lock_fd, p, MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM,
						      "out of memory adding the hub prefix"));
	return policy_end(lock_fd, p, policy_save(store_dir, p, err));
}

int mfs_policy_remove_key(const char *store_dir, const char *key_id, struct mfs_err *err)
{
	int lock_fd, rc;
	struct mfs_policy *p;
	if ((rc = policy_begin(store_dir, &lock_fd, &p, err)))
		return rc;
	size_t kept = 0;
	for (size_t i = 0; i < p->n_keys; i++) {
		struct policy_key *k = &p->keys[i];
		if (strcmp(k->key_id, key_id)) {
			p->keys[kept++] = *k;
			continue;
		}
		free(k->prefix);
		free(k->pem);
		free(k->added);
		EVP_PKEY_free(k->pkey);
	}
	if (kept == p->n_keys)
		return policy_end(lock_fd, p, MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
						      "key '%s' is not in the trust policy "
						      "(see 'modelfs trust ls')", key_id));
	p->n_keys = kept;
	return policy_end(lock_fd, p, policy_save(store_dir, p, err));
}

int mfs_policy_remove_hub(const char *store_dir, const char *prefix, struct mfs_err *err)
{
	int lock_fd, rc;
	struct mfs_policy *p;
	if ((rc = policy_begin(store_dir, &lock_fd, &p, err)))
		return rc;
	size_t kept = 0;
	for (size_t i = 0; i < p->n_hubs; i++) {
		struct policy_hub *h = &p->hubs[i];
		if (strcmp(h->prefix, prefix)) {
			p->hubs[kept++] = *h;
			continue;
		}
		free(h->prefix);
		free(h->added);
	}
	if (kept == p->n_hubs)
		return policy_end(lock_fd, p, MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
						      "hub prefix '%s' is not in the trust policy "
						      "(see 'modelfs trust ls')", prefix));
	p->n_hubs = kept;
	return policy_end(lock_fd, p, policy_save(store_dir, p, err));
}

/* ---- checks ------------------------------------------------------------ */

/* The suggested prefix for repo: its org followed by '/'. */
static void org_prefix(const char *repo, char *out, size_t size)
{
	size_t n = strcspn(repo, "/");
	snprintf(out, size, "%.*s/", (int)(n < 200 ? n : 200), repo);
}

int mfs_policy_verify_manifest(const struct mfs_policy *p, const char *repo,
			       const char *json, size_t len, const char *sig, size_t sig_len,
			       struct mfs_manifest *out, char key_id[17], struct mfs_err *err)
{
	char org[256];
	uint8_t raw[MFS_SIGN_LEN];
	int rc;

	org_prefix(repo, org, sizeof(org));
	if (!sig || sig_len == 0)
		return MFS_ERR(err, -EBADMSG, MFS_ERR_SIGNATURE,
			       "the manifest of '%s' is unsigned (no %s); ask the publisher to "
			       "run 'modelfs publish', or allow hub checksums with "
			       "'modelfs trust hub --prefix %s'", repo, MFS_MANIFEST_SIG, org);
	if ((rc = mfs_sign_parse_hex(sig, sig_len, raw, err))) {
		mfs_err_prefix(err, "the manifest signature of '%s' (%s)", repo, MFS_MANIFEST_SIG);
		return rc;
	}
	struct mfs_manifest m;
	if ((rc = mfs_manifest_parse(json, len, &m, err))) {
		mfs_err_prefix(err, "the manifest of '%s'", repo);
		return rc;
	}
	if (strcmp(m.repo, repo)) {
		rc = MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			     "the manifest found for '%s' is for another repo, '%s'; refusing it "
			     "(the repository carries a copied or misplaced manifest: ask its "
			     "publisher to run 'modelfs publish --repo %s')", repo, m.repo, repo);
		goto fail;
	}

	/* The key the manifest names, among the keys trusted for this repo. */
	const struct policy_key *use = NULL;
	char others[256] = "";
	size_t n_known = 0, olen = 0;
	for (size_t i = 0; p && i < p->n_keys; i++) {
		const struct policy_key *k = &p->keys[i];
		if (strcmp(k->key_id, m.key_id))
			continue;
		n_known++;
		if (mfs_policy_prefix_matches(k->prefix, repo)) {
			/* Two trusted entries of one id hold the same key (the id is
			 * recomputed at load), so the first will do. */
			use = k;
			break;
		}
		int w = snprintf(others + olen, sizeof(others) - olen, "%s'%s'",
				 olen ? ", " : "", k->prefix);
		if (w > 0 && (size_t)w < sizeof(others) - olen)
			olen += (size_t)w;
	}
	if (!n_known) {
		rc = MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			     "the manifest of '%s' is signed by key '%s', which is not trusted; "
			     "if you trust its publisher, run 'modelfs trust add KEY.pub --prefix "
			     "%s' with their public key", repo, m.key_id, org);
		goto fail;
	}
	if (!use) {
		rc = MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			     "the manifest of '%s' is signed by key '%s', which is trusted only "
			     "for %s, not for '%s'; to trust it here too, run 'modelfs trust add "
			     "KEY.pub --prefix %s'", repo, m.key_id, others, repo, org);
		goto fail;
	}
	if ((rc = mfs_sign_verify(use->pkey, json, len, raw, err))) {
		if (rc == -EBADMSG)
			rc = MFS_ERR(err, -EBADMSG, MFS_ERR_SIGNATURE,
				     "the manifest signature of '%s' does not verify with trusted key "
				     "'%s': the manifest or its signature was changed or damaged; "
				     "refusing it (fetch it again, or ask the publisher to publish "
				     "again)", repo, use->key_id);
		goto fail;
	}
	memcpy(key_id, use->key_id, MFS_KEY_ID_LEN + 1);
	*out = m;
	return 0;
fail:
	mfs_manifest_release(&m);
	return rc;
}

int mfs_policy_hub_allowed(const struct mfs_policy *p, const char *repo,
			   const char *endpoint, struct mfs_err *err)
{
	char org[256];
	org_prefix(repo, org, sizeof(org));
	bool covered = false;
	for (size_t i = 0; p && i < p->n_hubs && !covered; i++)
		covered = mfs_policy_prefix_matches(p->hubs[i].prefix, repo);
	if (!covered)
		return MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			       "'%s' has no trusted root: no signed manifest, and hub checksums are "
			       "not allowed for it; allow them with 'modelfs trust hub --prefix %s', "
			       "or ask the publisher for a signed manifest", repo, org);
	if (!mfs_policy_endpoint_is_secure(endpoint))
		return MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			       "hub checksums for '%s' need an HTTPS endpoint (plain HTTP only to "
			       "a loopback host), and '%s' is neither; use an https:// endpoint",
			       repo, !endpoint ? "" : strchr(endpoint, '@') ? "(an endpoint with "
			       "credentials, not shown)" : endpoint);
	return 0;
}
