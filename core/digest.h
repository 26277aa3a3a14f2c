/*
 * digest.h - SHA-256 through OpenSSL's EVP interface, and hex.
 *
 * struct mfs_sha256 is an incremental hasher (init, update, final); one
 * instance is not thread-safe, separate instances are. A digest is 32 raw
 * bytes; its text form is 64 lowercase hex characters plus NUL.
 */
#ifndef MFS_DIGEST_H
#define MFS_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MFS_SHA256_LEN 32
#define MFS_SHA256_HEX 65 /* 64 hex digits + NUL */

struct mfs_sha256 {
	void *ctx; /* EVP_MD_CTX */
};

/* Returns 0, or -ENOMEM. */
int mfs_sha256_init(struct mfs_sha256 *h);
void mfs_sha256_update(struct mfs_sha256 *h, const void *data, size_t len);
/* Writes the digest and releases the context. */
void mfs_sha256_final(struct mfs_sha256 *h, uint8_t out[MFS_SHA256_LEN]);
/* Releases without a result (safe on a zeroed or finalised hasher). */
void mfs_sha256_release(struct mfs_sha256 *h);

/* One-shot digest of a buffer. */
void mfs_sha256(const void *data, size_t len, uint8_t out[MFS_SHA256_LEN]);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void mfs_hex_encode(const uint8_t *in, size_t len, char *out);
/* Parses exactly 2*len hex digits (either case); returns 0 or -EINVAL. */
int mfs_hex_decode(const char *in, uint8_t *out, size_t len);
/* True if s is exactly n lowercase-or-uppercase hex digits. */
bool mfs_is_hex(const char *s, size_t n);

/* Hex SHA-256 of a whole file; 0, or -errno from open/read. */
int mfs_sha256_file(const char *path, char out_hex[MFS_SHA256_HEX]);

#endif
