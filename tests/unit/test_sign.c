/*
 * test_sign.c - Ed25519 keys: keygen files and modes, sign/verify round
 * trips, refusal with a wrong key or a flipped byte, PEM round trips, key ids,
 * and the signature text parser.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "digest.h"
#include "sign.h"

struct fixture {
	char dir[64];
	char prefix[128], key[160], pub[160];
	char key_id[17];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/mfs-test-sign-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->prefix, sizeof(fx->prefix), "%s/pub1", fx->dir);
	snprintf(fx->key, sizeof(fx->key), "%s.key", fx->prefix);
	snprintf(fx->pub, sizeof(fx->pub), "%s.pub", fx->prefix);
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_sign_keygen(fx->prefix, fx->key_id, &err), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", fx->dir);
	free(fx);
	return 0;
}

static void test_keygen_files(void **state)
{
	struct fixture *fx = *state;
	struct stat st;
	assert_int_equal(stat(fx->key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(fx->pub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(strlen(fx->key_id), 16);
	assert_true(mfs_is_hex(fx->key_id, 16));

	/* The key id is the first 16 hex digits of SHA-256 of the raw public key. */
	EVP_PKEY *pub = NULL;
	assert_int_equal(mfs_sign_load_public(fx->pub, &pub, NULL), 0);
	uint8_t raw[32], dig[32];
	size_t n = sizeof(raw);
	assert_int_equal(EVP_PKEY_get_raw_public_key(pub, raw, &n), 1);
	assert_int_equal(n, 32);
	mfs_sha256(raw, n, dig);
	char hex[65];
	mfs_hex_encode(dig, 32, hex);
	assert_memory_equal(hex, fx->key_id, 16);
	char id[17];
	assert_int_equal(mfs_sign_key_id(pub, id), 0);
	assert_string_equal(id, fx->key_id);
	EVP_PKEY_free(pub);
}

static void test_keygen_refuses_overwrite(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	char id[17] = "unchanged";
	assert_int_equal(mfs_sign_keygen(fx->prefix, id, &err), -EEXIST);
	assert_int_equal(err.kind, MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, "already exists"));
	assert_string_equal(id, "unchanged");

	/* Only the .pub existing is refused too, and no .key is left behind. */
	char prefix[160], path[170];
	snprintf(prefix, sizeof(prefix), "%s/half", fx->dir);
	snprintf(path, sizeof(path), "%s.pub", prefix);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(mfs_sign_keygen(prefix, id, &err), -EEXIST);
	snprintf(path, sizeof(path), "%s.key", prefix);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_round_trip(void **state)
{
	struct fixture *fx = *state;
	EVP_PKEY *priv = NULL, *pub = NULL;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_sign_load_private(fx->key, &priv, &err), 0);
	assert_int_equal(mfs_sign_load_public(fx->pub, &pub, &err), 0);

	const char msg[] = "{\"format\":\"modelfs-manifest\",\"version\":1}";
	uint8_t sig[MFS_SIGN_LEN];
	assert_int_equal(mfs_sign(priv, msg, sizeof(msg) - 1, sig, &err), 0);
	assert_int_equal(mfs_sign_verify(pub, msg, sizeof(msg) - 1, sig, &err), 0);
	/* The private key verifies too (it holds the public half). */
	assert_int_equal(mfs_sign_verify(priv, msg, sizeof(msg) - 1, sig, &err), 0);

	/* Signature text round trip, with and without the newline. */
	char hex[MFS_SIGN_HEX_LEN + 2];
	mfs_hex_encode(sig, sizeof(sig), hex);
	strcat(hex, "\n");
	uint8_t back[MFS_SIGN_LEN];
	assert_int_equal(mfs_sign_parse_hex(hex, strlen(hex), back, &err), 0);
	assert_memory_equal(back, sig, sizeof(sig));
	assert_int_equal(mfs_sign_parse_hex(hex, MFS_SIGN_HEX_LEN, back, &err), 0);
	assert_memory_equal(back, sig, sizeof(sig));

	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
}

static void test_wrong_key_and_flipped_byte(void **state)
{
	struct fixture *fx = *state;
	char other[160], other_pub[170], other_id[17];
	snprintf(other, sizeof(other), "%s/other", fx->dir);
	snprintf(other_pub, sizeof(other_pub), "%s.pub", other);
	assert_int_equal(mfs_sign_keygen(other, other_id, NULL), 0);
	assert_string_not_equal(other_id, fx->key_id);

	EVP_PKEY *priv = NULL, *pub = NULL, *wrong = NULL;
	assert_int_equal(mfs_sign_load_private(fx->key, &priv, NULL), 0);
	assert_int_equal(mfs_sign_load_public(fx->pub, &pub, NULL), 0);
	assert_int_equal(mfs_sign_load_public(other_pub, &wrong, NULL), 0);

	char msg[] = "the exact bytes of a manifest";
	size_t len = strlen(msg);
	uint8_t sig[MFS_SIGN_LEN];
	assert_int_equal(mfs_sign(priv, msg, len, sig, NULL), 0);

	struct mfs_err err = { 0 };
	assert_int_equal(mfs_sign_verify(wrong, msg, len, sig, &err), -EBADMSG);
	assert_int_equal(err.kind, MFS_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, other_id));

	msg[3] ^= 1;
	assert_int_equal(mfs_sign_verify(pub, msg, len, sig, &err), -EBADMSG);
	msg[3] ^= 1;
	assert_int_equal(mfs_sign_verify(pub, msg, len, sig, NULL), 0);
	sig[10] ^= 0x80;
	assert_int_equal(mfs_sign_verify(pub, msg, len, sig, &err), -EBADMSG);
	assert_int_equal(err.kind, MFS_ERR_SIGNATURE);

	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(wrong);
}

static void test_pem_round_trip(void **state)
{
	struct fixture *fx = *state;
	EVP_PKEY *priv = NULL, *pub = NULL;
	assert_int_equal(mfs_sign_load_private(fx->key, &priv, NULL), 0);
	char *pem = NULL;
	assert_int_equal(mfs_sign_public_to_pem(priv, &pem, NULL), 0);
	assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
	assert_null(strstr(pem, "PRIVATE"));
	assert_int_equal(mfs_sign_public_from_pem(pem, strlen(pem), &pub, NULL), 0);
	char id[17];
	assert_int_equal(mfs_sign_key_id(pub, id), 0);
	assert_string_equal(id, fx->key_id);

	/* Same text as the .pub file keygen wrote. */
	FILE *f = fopen(fx->pub, "r");
	assert_non_null(f);
	char buf[1024] = { 0 };
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	assert_int_equal(n, strlen(pem));
	assert_string_equal(buf, pem);
	free(pem);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
}

static void test_bad_key_files(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	EVP_PKEY *k = NULL;

	/* Private key given where the public key is expected, and the reverse. */
	assert_int_equal(mfs_sign_load_public(fx->key, &k, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "private key"));
	assert_int_equal(mfs_sign_load_private(fx->pub, &k, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "public key"));
	assert_null(k);

	char path[160];
	snprintf(path, sizeof(path), "%s/garbage.pub", fx->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n", f);
	fclose(f);
	assert_int_equal(mfs_sign_load_public(path, &k, &err), -EINVAL);
	assert_int_equal(err.kind, MFS_ERR_PARSE);

	/* An oversized file is refused without being read whole. */
	snprintf(path, sizeof(path), "%s/big.pub", fx->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < MFS_KEY_PEM_MAX + 10; i++)
		fputc('A', f);
	fclose(f);
	assert_int_equal(mfs_sign_load_public(path, &k, &err), -EFBIG);

	snprintf(path, sizeof(path), "%s/missing.pub", fx->dir);
	assert_int_equal(mfs_sign_load_public(path, &k, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "missing.pub"));
	assert_null(k);
}

static void test_parse_hex_refusals(void **state)
{
	(void)state;
	struct mfs_err err = { 0 };
	uint8_t sig[MFS_SIGN_LEN];
	char text[200];

	assert_int_equal(mfs_sign_parse_hex("", 0, sig, &err), -EBADMSG);
	assert_int_equal(err.kind, MFS_ERR_SIGNATURE);
	assert_int_equal(mfs_sign_parse_hex(NULL, 0, sig, &err), -EBADMSG);
	memset(text, 'a', 127);
	assert_int_equal(mfs_sign_parse_hex(text, 127, sig, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "128"));
	memset(text, 'a', 129);
	assert_int_equal(mfs_sign_parse_hex(text, 129, sig, &err), -EBADMSG);
	memset(text, 'a', 128);
	text[50] = 'g';
	assert_int_equal(mfs_sign_parse_hex(text, 128, sig, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "hex"));
	text[50] = '\0';
	assert_int_equal(mfs_sign_parse_hex(text, 128, sig, &err), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keygen_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keygen_refuses_overwrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key_and_flipped_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pem_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_key_files, setup, teardown),
		cmocka_unit_test(test_parse_hex_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
