/*
 * sign.h - publisher keys: Ed25519 through OpenSSL's EVP interface.
 *
 * A publisher signs the exact bytes of a manifest (see manifest.h) with an
 * Ed25519 private key; a consumer verifies them with the public key its trust
 * policy names. Keys are stored as PEM: the private key as PKCS#8, the public
 * key as SubjectPublicKeyInfo. A key's id is the first 16 lowercase hex digits
 * of the SHA-256 of the raw 32-byte public key; it names a key in messages and
 * in the manifest, but it is never trusted by itself: verification always uses
 * the full public key.
 *
 * Keys are EVP_PKEY objects owned by the caller (free with EVP_PKEY_free).
 * Every function here is thread-safe on distinct keys, and verification with
 * one shared key from several threads is safe too (OpenSSL 3 keys are
 * read-only once loaded). Functions return 0 or a negative errno and fill the
 * optional caller-owned error; out-parameters are written only on success.
 */
#ifndef MFS_SIGN_H
#define MFS_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "err.h"

#define MFS_SIGN_LEN 64          /* raw Ed25519 signature */
#define MFS_SIGN_HEX_LEN 128     /* its lowercase hex text, without NUL */
#define MFS_SIGN_PUBKEY_LEN 32   /* raw Ed25519 public key */
#define MFS_KEY_ID_LEN 16        /* hex digits of a key id, without NUL */
#define MFS_KEY_PEM_MAX 4096     /* cap on PEM text accepted from files */

/*
 * Makes a new key pair: writes out_prefix + ".key" (PEM PKCS#8, created with
 * mode 0600, O_EXCL) and out_prefix + ".pub" (PEM SubjectPublicKeyInfo, 0644).
 * Never overwrites: -EEXIST (kind USAGE) if either file exists. On a failure
 * after the .key file was made, both files are removed. Writes the key id.
 * Errors: -EEXIST, -ENAMETOOLONG, -errno from open/write, -ENOMEM, -EIO.
 */
int mfs_sign_keygen(const char *out_prefix, char key_id[MFS_KEY_ID_LEN + 1],
		    struct mfs_err *err);

/* Loads an Ed25519 private key from a PEM file. -ENOENT/-EACCES from open,
 * -EINVAL (kind PARSE) if it is not an Ed25519 private key. */
int mfs_sign_load_private(const char *path, EVP_PKEY **out, struct mfs_err *err);

/* Loads an Ed25519 public key from a PEM file (SubjectPublicKeyInfo).
 * -errno from open, -EINVAL (kind PARSE) if it is not an Ed25519 public key,
 * -EFBIG if the file exceeds MFS_KEY_PEM_MAX. */
int mfs_sign_load_public(const char *path, EVP_PKEY **out, struct mfs_err *err);

/* Parses a public key from PEM text of len bytes (need not be NUL-terminated).
 * Same errors as mfs_sign_load_public. A private-key PEM is refused. */
int mfs_sign_public_from_pem(const char *pem, size_t len, EVP_PKEY **out,
			     struct mfs_err *err);

/* Writes the public half of key as PEM SubjectPublicKeyInfo text into a
 * malloc'd NUL-terminated string *out (the caller frees). -ENOMEM, -EIO. */
int mfs_sign_public_to_pem(EVP_PKEY *key, char **out, struct mfs_err *err);

/* Signs len bytes of data. -EINVAL if key is not an Ed25519 private key. */
int mfs_sign(EVP_PKEY *key, const void *data, size_t len,
	     uint8_t sig[MFS_SIGN_LEN], struct mfs_err *err);

/* Verifies sig over data. 0 if it verifies, -EBADMSG (kind SIGNATURE) if not. */
int mfs_sign_verify(EVP_PKEY *key, const void *data, size_t len,
		    const uint8_t sig[MFS_SIGN_LEN], struct mfs_err *err);

/* Writes the key id of key (public or private). -EINVAL if key is not
 * Ed25519; out is untouched then. */
int mfs_sign_key_id(EVP_PKEY *key, char out[MFS_KEY_ID_LEN + 1]);

/*
 * Parses the text of a signature file: exactly 128 hex digits, optionally
 * followed by one "\n" (or "\r\n"). -EBADMSG (kind SIGNATURE) otherwise,
 * including an empty text.
 */
int mfs_sign_parse_hex(const char *text, size_t len, uint8_t sig[MFS_SIGN_LEN],
		       struct mfs_err *err);

#endif
