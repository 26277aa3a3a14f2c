/*
 * test_trust.c - the trust policy: prefix matching, the policy file (add,
 * idempotence, reload, removal, damage), manifest verification and each of
 * its refusals, and the hub-checksum rules for prefixes and endpoints.
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
#include "manifest.h"
#include "sign.h"
#include "trust.h"

struct fixture {
	char dir[64];
	char store[128];
	char key_a[160], pub_a[160], id_a[17]; /* publisher A */
	char key_b[160], pub_b[160], id_b[17]; /* publisher B */
	char model[128];                       /* a model directory */
};

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/mfs-test-trust-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	/* A store directory that does not exist yet: add must create it. */
	snprintf(fx->store, sizeof(fx->store), "%s/store/deep", fx->dir);
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "%s/a", fx->dir);
	assert_int_equal(mfs_sign_keygen(prefix, fx->id_a, NULL), 0);
	snprintf(fx->key_a, sizeof(fx->key_a), "%s.key", prefix);
	snprintf(fx->pub_a, sizeof(fx->pub_a), "%s.pub", prefix);
	snprintf(prefix, sizeof(prefix), "%s/b", fx->dir);
	assert_int_equal(mfs_sign_keygen(prefix, fx->id_b, NULL), 0);
	snprintf(fx->key_b, sizeof(fx->key_b), "%s.key", prefix);
	snprintf(fx->pub_b, sizeof(fx->pub_b), "%s.pub", prefix);
	snprintf(fx->model, sizeof(fx->model), "%s/model", fx->dir);
	assert_int_equal(mkdir(fx->model, 0755), 0);
	char path[200];
	snprintf(path, sizeof(path), "%s/weights.gguf", fx->model);
	write_text(path, "GGUF pretend weights, long enough to hash");
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

/* Builds a manifest for the model dir as repo, signed with key_path; the
 * signature text goes to sig (129 bytes: hex + newline). */
static char *publish(struct fixture *fx, const char *repo, const char *key_path,
		     const char *key_id, char sig[MFS_SIGN_HEX_LEN + 2], size_t *len)
{
	char *json = NULL;
	assert_int_equal(mfs_manifest_build(fx->model, repo, 5, 4096, key_id, &json, len, NULL),
			 0);
	EVP_PKEY *k = NULL;
	assert_int_equal(mfs_sign_load_private(key_path, &k, NULL), 0);
	uint8_t raw[MFS_SIGN_LEN];
	assert_int_equal(mfs_sign(k, json, *len, raw, NULL), 0);
	EVP_PKEY_free(k);
	mfs_hex_encode(raw, sizeof(raw), sig);
	strcat(sig, "\n");
	return json;
}

static struct mfs_policy *load(struct fixture *fx)
{
	struct mfs_policy *p = NULL;
	struct mfs_err err = { 0 };
	if (mfs_policy_load(fx->store, &p, &err))
		fail_msg("load: %s", err.msg);
	return p;
}

static void test_prefix_table(void **state)
{
	(void)state;
	static const struct {
		const char *prefix, *repo;
		bool match;
	} cases[] = {
		{ "", "org/name", true },
		{ "org/name", "org/name", true },
		{ "org/", "org/name", true },
		{ "org", "org/name", true },
		{ "org/na", "org/name", false },
		{ "or", "org/name", false },
		{ "org/", "organisation/name", false },
		{ "org", "organisation/name", false },
		{ "other/", "org/name", false },
		{ "org/name", "org/name2", false },
		{ "Org/", "org/name", false }, /* case matters, like repo names */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mfs_policy_prefix_matches(cases[i].prefix, cases[i].repo) != cases[i].match)
			fail_msg("prefix '%s' repo '%s': expected %d", cases[i].prefix,
				 cases[i].repo, cases[i].match);

	assert_true(mfs_policy_prefix_is_valid(""));
	assert_true(mfs_policy_prefix_is_valid("org"));
	assert_true(mfs_policy_prefix_is_valid("org/"));
	assert_true(mfs_policy_prefix_is_valid("org/name"));
	assert_false(mfs_policy_prefix_is_valid("org/name/"));
	assert_false(mfs_policy_prefix_is_valid("org name/"));
	assert_false(mfs_policy_prefix_is_valid("../"));
	assert_false(mfs_policy_prefix_is_valid("org/.."));
	assert_false(mfs_policy_prefix_is_valid("/org"));
	assert_false(mfs_policy_prefix_is_valid("org//"));
	assert_false(mfs_policy_prefix_is_valid(NULL));
}

static void test_policy_file(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };

	/* No store yet: an empty policy. */
	struct mfs_policy *p = load(fx);
	assert_int_equal(mfs_policy_key_count(p), 0);
	assert_int_equal(mfs_policy_hub_count(p), 0);
	mfs_policy_free(p);

	char id[17];
	assert_int_equal(mfs_policy_add_key(fx->store, fx->pub_a, "org/", id, &err), 0);
	assert_string_equal(id, fx->id_a);
	assert_int_equal(mfs_policy_add_key(fx->store, fx->pub_a, "org/", id, &err), 0);
	assert_int_equal(mfs_policy_add_key(fx->store, fx->pub_a, "lab", id, &err), 0);
	assert_int_equal(mfs_policy_add_key(fx->store, fx->pub_b, "", id, &err), 0);
	assert_string_equal(id, fx->id_b);
	assert_int_equal(mfs_policy_add_hub(fx->store, "mirror/", &err), 0);
	assert_int_equal(mfs_policy_add_hub(fx->store, "mirror/", &err), 0);

	char path[200];
	struct stat st;
	snprintf(path, sizeof(path), "%s/policy.json", fx->store);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	p = load(fx);
	assert_int_equal(mfs_policy_key_count(p), 3);
	assert_int_equal(mfs_policy_hub_count(p), 1);
	struct mfs_policy_key_info k;
	mfs_policy_key_at(p, 0, &k);
	assert_string_equal(k.key_id, fx->id_a);
	assert_string_equal(k.prefix, "org/");
	assert_non_null(strstr(k.public_key, "BEGIN PUBLIC KEY"));
	assert_int_equal(strlen(k.added), 20);
	mfs_policy_key_at(p, 2, &k);
	assert_string_equal(k.key_id, fx->id_b);
	assert_string_equal(k.prefix, "");
	struct mfs_policy_hub_info h;
	mfs_policy_hub_at(p, 0, &h);
	assert_string_equal(h.prefix, "mirror/");
	mfs_policy_free(p);

	/* Refusals of add. */
	assert_int_equal(mfs_policy_add_key(fx->store, fx->pub_a, "bad prefix", id, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "bad prefix"));
	assert_int_equal(mfs_policy_add_key(fx->store, fx->key_a, "org/", id, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "private key"));
	assert_int_equal(mfs_policy_add_hub(fx->store, "../", &err), -EINVAL);

	/* Removal. */
	assert_int_equal(mfs_policy_remove_key(fx->store, fx->id_a, &err), 0);
	assert_int_equal(mfs_policy_remove_key(fx->store, fx->id_a, &err), -ENOENT);
	assert_int_equal(err.kind, MFS_ERR_NOT_FOUND);
	assert_int_equal(mfs_policy_remove_hub(fx->store, "mirror/", &err), 0);
	assert_int_equal(mfs_policy_remove_hub(fx->store, "mirror/", &err), -ENOENT);
	p = load(fx);
	assert_int_equal(mfs_policy_key_count(p), 1);
	assert_int_equal(mfs_policy_hub_count(p), 0);
	mfs_policy_free(p);
}

static void test_policy_damaged(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	char id[17], path[200];
	assert_int_equal(mfs_policy_add_key(fx->store, fx->pub_a, "org/", id, &err), 0);
	snprintf(path, sizeof(path), "%s/policy.json", fx->store);

	struct mfs_policy *p = NULL;
	write_text(path, "{\"version\":1,\"keys\":[");
	assert_int_equal(mfs_policy_load(fx->store, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "fix or remove it"));
	write_text(path, "{\"version\":9,\"keys\":[]}");
	assert_int_equal(mfs_policy_load(fx->store, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "version 9"));

	/* A key entry whose id does not match its key is refused. */
	char pem[1024] = { 0 };
	FILE *f = fopen(fx->pub_a, "r");
	assert_non_null(f);
	assert_true(fread(pem, 1, sizeof(pem) - 1, f) > 0);
	fclose(f);
	char *nl;
	while ((nl = strchr(pem, '\n')))
		*nl = '|'; /* JSON-escape below */
	char text[2048], esc[1200];
	size_t j = 0;
	for (size_t i = 0; pem[i]; i++) {
		if (pem[i] == '|') {
			esc[j++] = '\\';
			esc[j++] = 'n';
		} else {
			esc[j++] = pem[i];
		}
	}
	esc[j] = '\0';
	snprintf(text, sizeof(text), "{\"version\":1,\"keys\":[{\"key_id\":\"%s\",\"public_key\":"
				     "\"%s\",\"prefix\":\"org/\"}],\"hub\":[]}", fx->id_b, esc);
	write_text(path, text);
	assert_int_equal(mfs_policy_load(fx->store, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "does not hold"));
	snprintf(text, sizeof(text), "{\"version\":1,\"keys\":[{\"key_id\":\"%s\",\"public_key\":"
				     "\"%s\",\"prefix\":\"org/\"}],\"hub\":[]}", fx->id_a, esc);
	write_text(path, text);
	assert_int_equal(mfs_policy_load(fx->store, &p, &err), 0);
	assert_int_equal(mfs_policy_key_count(p), 1);
	mfs_policy_free(p);
}

static void test_verify_ok_and_refusals(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	char id[17], sig[MFS_SIGN_HEX_LEN + 2];
	size_t len;
	assert_int_equal(mfs_policy_add_key(fx->store, fx->pub_a, "org/", id, &err), 0);
	assert_int_equal(mfs_policy_add_key(fx->store, fx->pub_b, "lab/", id, &err), 0);
	struct mfs_policy *p = load(fx);

	char *json = publish(fx, "org/model", fx->key_a, fx->id_a, sig, &len);
	struct mfs_manifest m = { 0 };
	char used[17] = "";
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len, sig,
						    strlen(sig), &m, used, &err), 0);
	assert_string_equal(used, fx->id_a);
	assert_string_equal(m.repo, "org/model");
	assert_int_equal(m.sequence, 5);
	assert_non_null(mfs_manifest_find(&m, "weights.gguf"));
	mfs_manifest_release(&m);

	/* Unsigned. */
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len, NULL, 0, &m,
						    used, &err), -EBADMSG);
	assert_int_equal(err.kind, MFS_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, "unsigned"));
	/* Malformed signature text. */
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len, "abc", 3, &m,
						    used, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "malformed"));
	/* Wrong signature: one flipped hex digit of the signature... */
	char bad[sizeof(sig)];
	memcpy(bad, sig, sizeof(sig));
	bad[0] = bad[0] == '0' ? '1' : '0';
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len, bad, strlen(bad),
						    &m, used, &err), -EBADMSG);
	assert_int_equal(err.kind, MFS_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, "does not verify"));
	/* ...and one changed byte of the manifest (still valid JSON). */
	char *changed = strdup(json);
	char *seq = strstr(changed, "\"sequence\":5");
	assert_non_null(seq);
	seq[11] = '6';
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", changed, len, sig,
						    strlen(sig), &m, used, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, fx->id_a));
	free(changed);
	/* Manifest from another repo. */
	assert_int_equal(mfs_policy_verify_manifest(p, "org/other", json, len, sig,
						    strlen(sig), &m, used, &err), -EPERM);
	assert_int_equal(err.kind, MFS_ERR_POLICY);
	assert_non_null(strstr(err.msg, "another repo, 'org/model'"));
	/* Damaged manifest. */
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len / 2, sig,
						    strlen(sig), &m, used, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "the manifest of 'org/model'"));
	free(json);

	/* Key trusted only for another prefix: B signs for org/. */
	json = publish(fx, "org/model", fx->key_b, fx->id_b, sig, &len);
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len, sig,
						    strlen(sig), &m, used, &err), -EPERM);
	assert_int_equal(err.kind, MFS_ERR_POLICY);
	assert_non_null(strstr(err.msg, "trusted only for 'lab/'"));
	assert_non_null(strstr(err.msg, "--prefix org/"));
	free(json);

	/* An untrusted key. */
	char prefix[128], key[160], cid[17];
	snprintf(prefix, sizeof(prefix), "%s/c", fx->dir);
	assert_int_equal(mfs_sign_keygen(prefix, cid, NULL), 0);
	snprintf(key, sizeof(key), "%s.key", prefix);
	json = publish(fx, "org/model", key, cid, sig, &len);
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len, sig,
						    strlen(sig), &m, used, &err), -EPERM);
	assert_int_equal(err.kind, MFS_ERR_POLICY);
	assert_non_null(strstr(err.msg, "not trusted"));
	assert_non_null(strstr(err.msg, "modelfs trust add"));
	assert_non_null(strstr(err.msg, cid));
	free(json);

	/* A manifest that claims trusted key A but is signed by the untrusted C. */
	json = publish(fx, "org/model", key, fx->id_a, sig, &len);
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len, sig,
						    strlen(sig), &m, used, &err), -EBADMSG);
	assert_int_equal(err.kind, MFS_ERR_SIGNATURE);
	free(json);
	assert_string_equal(used, fx->id_a); /* unchanged since the success */

	/* With an empty policy every signed manifest is refused. */
	mfs_policy_free(p);
	assert_int_equal(mfs_policy_load(fx->dir, &p, NULL), 0);
	json = publish(fx, "org/model", fx->key_a, fx->id_a, sig, &len);
	assert_int_equal(mfs_policy_verify_manifest(p, "org/model", json, len, sig,
						    strlen(sig), &m, used, &err), -EPERM);
	free(json);
	mfs_policy_free(p);
}

static void test_hub_allowed(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_policy_add_hub(fx->store, "org/", &err), 0);
	struct mfs_policy *p = load(fx);

	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "https://huggingface.co", &err), 0);
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "HTTPS://hub.example", &err), 0);
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "http://127.0.0.1:8080", &err), 0);
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "http://127.5.6.7/api", &err), 0);
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "http://[::1]:9000/", &err), 0);
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "http://localhost", &err), 0);
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "http://LocalHost:80/x", &err), 0);

	static const char *const refused[] = {
		"http://hub.example", "http://128.0.0.1", "http://localhost.evil.com",
		"http://127.0.0.1.evil.com", "http://evil.com@", "ftp://127.0.0.1",
		"http://[::2]", "https://", "", "127.0.0.1",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (mfs_policy_hub_allowed(p, "org/m", refused[i], &err) != -EPERM)
			fail_msg("endpoint '%s' was allowed", refused[i]);
		assert_int_equal(err.kind, MFS_ERR_POLICY);
		assert_non_null(strstr(err.msg, "HTTPS"));
	}
	/* Userinfo does not hide the real host, and is not printed. */
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "http://localhost:pw@evil.com", &err),
			 -EPERM);
	assert_null(strstr(err.msg, "pw@"));
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "http://u:pw@127.0.0.1/", &err), 0);

	/* Prefix mismatch: refused whatever the endpoint. */
	assert_int_equal(mfs_policy_hub_allowed(p, "other/m", "https://huggingface.co", &err),
			 -EPERM);
	assert_int_equal(err.kind, MFS_ERR_POLICY);
	assert_non_null(strstr(err.msg, "modelfs trust hub --prefix other/"));
	assert_int_equal(mfs_policy_hub_allowed(p, "organisation/m", "https://h.example", &err),
			 -EPERM);
	mfs_policy_free(p);

	/* An empty policy allows no hub checksums. */
	assert_int_equal(mfs_policy_load(fx->dir, &p, NULL), 0);
	assert_int_equal(mfs_policy_hub_allowed(p, "org/m", "https://huggingface.co", &err),
			 -EPERM);
	mfs_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_table),
		cmocka_unit_test_setup_teardown(test_policy_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_ok_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hub_allowed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
