/*
 * trust.h - the trust policy: which publisher keys, and where hub checksums
 * are enough (product.md §3, docs/trust.md).
 *
 * The policy lives in `<store dir>/policy.json`, beside the store's database
 * but not in it, so that losing or rebuilding the index never loses the
 * user's trust decisions. Changes are made under an advisory lock
 * (`policy.lock`) and written atomically (temporary file, fsync, rename), so a
 * reader sees either the old policy or the new one.
 *
 * Prefixes. A prefix P covers a repo R ("org/name") when P is "" (every repo),
 * R equals P, P ends in "/" and R starts with P, or R starts with P followed
 * by "/". So "org", "org/" and "org/name" are the useful forms; "org/na" does
 * not cover "org/name". Valid prefixes are "", "ORG", "ORG/" and "ORG/NAME"
 * with the characters of mfs_manifest_repo_is_valid.
 *
 * A loaded struct mfs_policy is immutable: the check functions may be called
 * from several threads at once. Load, add and remove block on file I/O.
 * Functions return 0 or a negative errno and fill the optional error.
 */
#ifndef MFS_TRUST_H
#define MFS_TRUST_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "manifest.h"

#define MFS_POLICY_FILE "policy.json"
#define MFS_POLICY_VERSION 1
#define MFS_POLICY_MAX (16u << 20) /* cap on the policy file, bytes */

struct mfs_policy; /* opaque, immutable once loaded */

/*
 * Loads <store_dir>/policy.json into *out (free with mfs_policy_free). A
 * missing file (or store directory) is an empty policy that trusts nothing.
 * Errors: -EINVAL kind PARSE for a damaged file (the message names it and
 * says to fix or remove it), -EFBIG above MFS_POLICY_MAX, -errno kind IO,
 * -ENOMEM.
 */
int mfs_policy_load(const char *store_dir, struct mfs_policy **out, struct mfs_err *err);

/* Frees p; NULL is a no-op. */
void mfs_policy_free(struct mfs_policy *p);

/*
 * Trusts the Ed25519 public key in the PEM file pub_path for repos under
 * prefix ("" for every repo). Creates the store directory (mode 0755) and the
 * policy file as needed. Adding a key already trusted for the same prefix
 * changes nothing and succeeds. Writes the key's id to key_id.
 * Errors: -EINVAL kind USAGE for a bad prefix, kind PARSE for a file that is
 * not an Ed25519 public key (a private key is refused with a hint), plus the
 * errors of mfs_policy_load and -errno kind IO for the write.
 */
int mfs_policy_add_key(const char *store_dir, const char *pub_path, const char *prefix,
		       char key_id[17], struct mfs_err *err);

/* Allows hub checksums for repos under prefix. Idempotent. Errors as above. */
int mfs_policy_add_hub(const char *store_dir, const char *prefix, struct mfs_err *err);

/* Removes every entry for key_id (all its prefixes). -ENOENT kind NOT_FOUND
 * if the key is not in the policy. */
int mfs_policy_remove_key(const char *store_dir, const char *key_id, struct mfs_err *err);

/* Removes the hub entry for exactly prefix. -ENOENT kind NOT_FOUND if none. */
int mfs_policy_remove_hub(const char *store_dir, const char *prefix, struct mfs_err *err);

/*
 * The decisive check of signed mode. json/len are the manifest bytes exactly
 * as fetched, sig/sig_len the text of manifest.sig (NULL or 0 when it is
 * missing), repo the "org/name" the user asked for. On success parses the
 * manifest into *out (the caller releases it) and writes the signing key's
 * id; nothing is written on failure. Refusals, each with a message that says
 * what to do:
 *   -EBADMSG kind SIGNATURE: the signature is missing, malformed, or does not
 *            verify with the trusted key the manifest names;
 *   -EPERM   kind POLICY: the manifest names another repo, its key is not
 *            trusted at all, or the key is trusted only for other prefixes
 *            (the message lists them);
 *   -EINVAL / -EFBIG kind PARSE or FORMAT: a malformed manifest;
 *   -ENOMEM.
 * The signature is always checked with the full public key from the policy,
 * never with anything taken from the manifest.
 */
int mfs_policy_verify_manifest(const struct mfs_policy *p, const char *repo,
			       const char *json, size_t len, const char *sig, size_t sig_len,
			       struct mfs_manifest *out, char key_id[17], struct mfs_err *err);

/*
 * Whether hub checksums may stand in for a signed manifest for repo fetched
 * from endpoint: the policy must allow hub checksums for a prefix covering
 * repo, and the endpoint must be secure (mfs_policy_endpoint_is_secure).
 * 0 if allowed; -EPERM kind POLICY with a message otherwise.
 */
int mfs_policy_hub_allowed(const struct mfs_policy *p, const char *repo,
			   const char *endpoint, struct mfs_err *err);

/* True for "https://...", for "http://" to a loopback host (127.0.0.0/8,
 * [::1], localhost) and for "file://" (local, no network). Scheme and host
 * names compare case-insensitively. */
bool mfs_policy_endpoint_is_secure(const char *endpoint);

/* The prefix rule above. */
bool mfs_policy_prefix_matches(const char *prefix, const char *repo);

/* True for "", "ORG", "ORG/" and "ORG/NAME". */
bool mfs_policy_prefix_is_valid(const char *prefix);

/* Iteration for listing. The strings are owned by p and live as long as it. */
struct mfs_policy_key_info {
	const char *key_id;     /* 16 lowercase hex */
	const char *prefix;     /* "" for every repo */
	const char *public_key; /* PEM text */
	const char *added;      /* ISO 8601 UTC, e.g. "2024-05-01T12:00:00Z" */
};
struct mfs_policy_hub_info {
	const char *prefix;
	const char *added;
};

size_t mfs_policy_key_count(const struct mfs_policy *p);
/* i must be below mfs_policy_key_count(p). */
void mfs_policy_key_at(const struct mfs_policy *p, size_t i, struct mfs_policy_key_info *out);
size_t mfs_policy_hub_count(const struct mfs_policy *p);
void mfs_policy_hub_at(const struct mfs_policy *p, size_t i, struct mfs_policy_hub_info *out);

#endif
