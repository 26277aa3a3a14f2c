/* digest.c - see digest.h. */
#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>

int mfs_sha256_init(struct mfs_sha256 *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	h->ctx = ctx;
	return 0;
}

void mfs_sha256_update(struct mfs_sha256 *h, const void *data, size_t len)
{
	EVP_DigestUpdate(h->ctx, data, len);
}

void mfs_sha256_final(struct mfs_sha256 *h, uint8_t out[MFS_SHA256_LEN])
{
	unsigned int n = 0;
	EVP_DigestFinal_ex(h->ctx, out, &n);
	mfs_sha256_release(h);
}

void mfs_sha256_release(struct mfs_sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void mfs_sha256(const void *data, size_t len, uint8_t out[MFS_SHA256_LEN])
{
	unsigned int n = 0;
	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void mfs_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mfs_hex_decode(const char *in, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(in[2 * i]), lo = hi < 0 ? -1 : hexval(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return in[2 * len] == '\0' ? 0 : -EINVAL;
}

bool mfs_is_hex(const char *s, size_t n)
{
	size_t i = 0;
	for (; s[i] && i < n; i++)
		if (hexval(s[i]) < 0)
			return false;
	return i == n && s[i] == '\0';
}

int mfs_sha256_file(const char *path, char out_hex[MFS_SHA256_HEX])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct mfs_sha256 h;
	int rc = mfs_sha256_init(&h);
	if (rc) {
		close(fd);
		return rc;
	}
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		mfs_sha256_release(&h);
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		mfs_sha256_update(&h, buf, (size_t)n);
	}
	free(buf);
	close(fd);
	if (rc) {
		mfs_sha256_release(&h);
		return rc;
	}
	uint8_t d[MFS_SHA256_LEN];
	mfs_sha256_final(&h, d);
	mfs_hex_encode(d, sizeof(d), out_hex);
	return 0;
}
