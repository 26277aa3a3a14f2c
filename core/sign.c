/*
 * sign.c - Ed25519 keys and signatures through OpenSSL EVP; see sign.h.
 *
 * Ed25519 signs the message itself (no separate digest), so EVP_DigestSign and
 * EVP_DigestVerify are called one-shot with a NULL digest. Key files are small
 * and read whole with a cap, so that a wrong path (a model file, /dev/zero)
 * fails fast instead of being slurped. OpenSSL's error queue is cleared after
 * every failure so that a stale entry never shows up in a later, unrelated
 * message.
 */
#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "digest.h"
#include "statefile.h"

/* Reads at most MFS_KEY_PEM_MAX bytes of path into buf (NUL-terminated). */
static int read_key_file(const char *path, char *buf, size_t cap, size_t *len,
			 struct mfs_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot open key file '%s': %s",
			       path, strerror(errno));
	size_t n = 0;
	for (;;) {
		if (n == cap - 1) {
			char extra;
			ssize_t r = read(fd, &extra, 1);
			close(fd);
			if (r > 0)
				return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
					       "key file '%s' is larger than %d bytes: "
					       "it is not a modelfs key", path, MFS_KEY_PEM_MAX);
			break;
		}
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return MFS_ERR(err, -e, MFS_ERR_IO, "cannot read key file '%s': %s",
				       path, strerror(e));
		}
		if (r == 0) {
			close(fd);
			break;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return 0;
}

static bool is_ed25519(EVP_PKEY *key)
{
	return key && EVP_PKEY_get_id(key) == EVP_PKEY_ED25519;
}

int mfs_sign_key_id(EVP_PKEY *key, char out[MFS_KEY_ID_LEN + 1])
{
	uint8_t raw[MFS_SIGN_PUBKEY_LEN], digest[MFS_SHA256_LEN];
	size_t n = sizeof(raw);
	char hex[MFS_SHA256_HEX];

	if (!is_ed25519(key) || EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 ||
	    n != sizeof(raw)) {
		ERR_clear_error();
		return -EINVAL;
	}
	mfs_sha256(raw, n, digest);
	mfs_hex_encode(digest, sizeof(digest), hex);
	memcpy(out, hex, MFS_KEY_ID_LEN);
	out[MFS_KEY_ID_LEN] = '\0';
	return 0;
}

/* Creates path exclusively with mode and writes the contents of bio to it. */
static int write_new_file(const char *path, mode_t mode, BIO *bio, struct mfs_err *err)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	if (len <= 0 || !data)
		return MFS_ERR(err, -EIO, MFS_ERR_IO, "cannot encode key for '%s'", path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		int e = errno;
		if (e == EEXIST)
			return MFS_ERR(err, -EEXIST, MFS_ERR_USAGE,
				       "'%s' already exists; refusing to overwrite a key "
				       "(choose another name or remove it first)", path);
		return MFS_ERR(err, -e, MFS_ERR_IO, "cannot create '%s': %s", path, strerror(e));
	}
	/* The umask may have narrowed the mode; the public key should be readable. */
	if (fchmod(fd, mode) != 0) {
		int e = errno;
		close(fd);
		unlink(path);
		return MFS_ERR(err, -e, MFS_ERR_IO, "cannot set mode of '%s': %s", path,
			       strerror(e));
	}
	int rc = mfs_write_all(fd, data, (size_t)len);
	if (!rc && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (rc) {
		unlink(path);
		return MFS_ERR(err, rc, MFS_ERR_IO, "cannot write '%s': %s", path, strerror(-rc));
	}
	return 0;
}

int mfs_sign_keygen(const char *out_prefix, char key_id[MFS_KEY_ID_LEN + 1],
		    struct mfs_err *err)
{
	char key_path[PATH_MAX], pub_path[PATH_MAX], id[MFS_KEY_ID_LEN + 1];
	int n1 = snprintf(key_path, sizeof(key_path), "%s.key", out_prefix);
	int n2 = snprintf(pub_path, sizeof(pub_path), "%s.pub", out_prefix);
	if (!*out_prefix || n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(key_path) ||
	    (size_t)n2 >= sizeof(pub_path))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE,
			       "bad key name '%s': empty or too long", out_prefix);
	/* Check both before making anything, so a refusal leaves no half pair. */
	struct stat st;
	if (lstat(key_path, &st) == 0 || lstat(pub_path, &st) == 0)
		return MFS_ERR(err, -EEXIST, MFS_ERR_USAGE,
			       "'%s' already exists; refusing to overwrite a key "
			       "(choose another name or remove it first)",
			       lstat(key_path, &st) == 0 ? key_path : pub_path);

	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!key) {
		ERR_clear_error();
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "cannot generate an Ed25519 key");
	}
	int rc = 0;
	BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
	if (!priv || !pub) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "cannot encode the new key");
		goto out;
	}
	if (PEM_write_bio_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_PUBKEY(pub, key) != 1 || mfs_sign_key_id(key, id) != 0) {
		rc = MFS_ERR(err, -EIO, MFS_ERR_IO, "cannot encode the new key as PEM");
		goto out;
	}
	rc = write_new_file(key_path, 0600, priv, err);
	if (rc)
		goto out;
	rc = write_new_file(pub_path, 0644, pub, err);
	if (rc) {
		unlink(key_path);
		goto out;
	}
	memcpy(key_id, id, sizeof(id));
out:
	BIO_free(priv);
	BIO_free(pub);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

int mfs_sign_load_private(const char *path, EVP_PKEY **out, struct mfs_err *err)
{
	char buf[MFS_KEY_PEM_MAX + 1];
	size_t len;
	int rc = read_key_file(path, buf, sizeof(buf), &len, err);
	if (rc)
		return rc;
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	if (!bio)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "cannot read key '%s'", path);
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	bool public_only = !key && memmem(buf, len, "PUBLIC KEY", 10);
	OPENSSL_cleanse(buf, sizeof(buf));
	ERR_clear_error();
	if (public_only)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "'%s' is a public key; signing needs the private key "
			       "(the NAME.key file written by 'modelfs keygen')", path);
	if (!is_ed25519(key)) {
		EVP_PKEY_free(key);
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "'%s' is not an Ed25519 private key in PEM form "
			       "(make one with 'modelfs keygen NAME' and use NAME.key)", path);
	}
	*out = key;
	return 0;
}

int mfs_sign_public_from_pem(const char *pem, size_t len, EVP_PKEY **out,
			     struct mfs_err *err)
{
	if (len > MFS_KEY_PEM_MAX)
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
			       "public key text is larger than %d bytes", MFS_KEY_PEM_MAX);
	if (memmem(pem, len, "PRIVATE KEY", 11))
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "this is a private key; give the public key (NAME.pub) instead "
			       "and keep NAME.key secret");
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "cannot read public key");
	EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (!is_ed25519(key)) {
		EVP_PKEY_free(key);
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "not an Ed25519 public key in PEM form "
			       "(expected the NAME.pub file written by 'modelfs keygen')");
	}
	*out = key;
	return 0;
}

int mfs_sign_load_public(const char *path, EVP_PKEY **out, struct mfs_err *err)
{
	char buf[MFS_KEY_PEM_MAX + 1];
	size_t len;
	int rc = read_key_file(path, buf, sizeof(buf), &len, err);
	if (rc)
		return rc;
	rc = mfs_sign_public_from_pem(buf, len, out, err);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc)
		mfs_err_prefix(err, "'%s'", path);
	return rc;
}

int mfs_sign_public_to_pem(EVP_PKEY *key, char **out, struct mfs_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "cannot encode public key");
	int rc = 0;
	char *data = NULL;
	long len;
	if (PEM_write_bio_PUBKEY(bio, key) != 1 ||
	    (len = BIO_get_mem_data(bio, &data)) <= 0 || !data) {
		rc = MFS_ERR(err, -EIO, MFS_ERR_IO, "cannot encode public key as PEM");
		goto out;
	}
	char *s = malloc((size_t)len + 1);
	if (!s) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "cannot encode public key");
		goto out;
	}
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	*out = s;
out:
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

int mfs_sign(EVP_PKEY *key, const void *data, size_t len,
	     uint8_t sig[MFS_SIGN_LEN], struct mfs_err *err)
{
	if (!is_ed25519(key))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "signing needs an Ed25519 key");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "cannot sign: out of memory");
	uint8_t out[MFS_SIGN_LEN];
	size_t n = sizeof(out);
	int rc = 0;
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, out, &n, data, len) != 1 || n != sizeof(out))
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_SIGNATURE,
			     "cannot sign: the key is not a usable Ed25519 private key");
	else
		memcpy(sig, out, sizeof(out));
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

int mfs_sign_verify(EVP_PKEY *key, const void *data, size_t len,
		    const uint8_t sig[MFS_SIGN_LEN], struct mfs_err *err)
{
	if (!is_ed25519(key))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "verifying needs an Ed25519 key");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "cannot verify: out of memory");
	int rc = 0;
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "cannot verify with this key");
	} else if (EVP_DigestVerify(ctx, sig, MFS_SIGN_LEN, data, len) != 1) {
		char id[MFS_KEY_ID_LEN + 1] = "?";
		mfs_sign_key_id(key, id);
		rc = MFS_ERR(err, -EBADMSG, MFS_ERR_SIGNATURE,
			     "signature does not verify with key '%s': the data was changed "
			     "or signed with another key", id);
	}
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

int mfs_sign_parse_hex(const char *text, size_t len, uint8_t sig[MFS_SIGN_LEN],
		       struct mfs_err *err)
{
	if (!text || len == 0)
		return MFS_ERR(err, -EBADMSG, MFS_ERR_SIGNATURE, "signature is empty");
	size_t n = len;
	if (n > 0 && text[n - 1] == '\n')
		n--;
	if (n > 0 && text[n - 1] == '\r')
		n--;
	if (n != MFS_SIGN_HEX_LEN)
		return MFS_ERR(err, -EBADMSG, MFS_ERR_SIGNATURE,
			       "signature is malformed: expected %d hex digits, found %zu bytes",
			       MFS_SIGN_HEX_LEN, n);
	char hex[MFS_SIGN_HEX_LEN + 1];
	memcpy(hex, text, MFS_SIGN_HEX_LEN);
	hex[MFS_SIGN_HEX_LEN] = '\0';
	uint8_t out[MFS_SIGN_LEN];
	if (mfs_hex_decode(hex, out, sizeof(out)) != 0)
		return MFS_ERR(err, -EBADMSG, MFS_ERR_SIGNATURE,
			       "signature is malformed: not hex");
	memcpy(sig, out, sizeof(out));
	return 0;
}
