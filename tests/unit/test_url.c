/*
 * test_url.c - redaction, credentials, the plain-HTTP decision and sites.
 *
 * The decisions of url.h on the inputs an attacker would choose: passwords
 * with '/', '@' and ':' in them, endpoints that carry a query, hosts that are
 * public suffixes (co.uk), private suffixes (github.io), IP addresses and
 * loopback names spelled several ways.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

static void redact(const char *in, const char *want)
{
	char out[256];
	assert_string_equal(mfs_url_redact(in, out, sizeof(out)), want);
	char *m = mfs_url_redacted(in);
	assert_non_null(m);
	assert_string_equal(m, want);
	free(m);
}

static void test_redact(void **state)
{
	(void)state;
	redact("https://huggingface.co", "https://huggingface.co");
	redact("http://127.0.0.1:8080/", "http://127.0.0.1:8080/");
	redact("http://user:pass@host:1/x", "http://host:1/x");
	redact("http://user@host", "http://host");
	redact("https://u:p%40ss@h/p?token=abc#frag", "https://h/p");
	/* An unencoded '/' in the password: nothing of it may survive. */
	redact("http://user:pa/ss@host/", "http://host/");
	redact("http://a@b@host", "http://host");
	redact("file:///srv/models", "file:///srv/models");
	redact("mem:x?y", "mem:x");
	redact("", "");
	/* Cut to fit, never leaving part of a secret. */
	char small[12];
	mfs_url_redact("http://user:secret@averyveryverylonghost/", small, sizeof(small));
	assert_null(strstr(small, "secret"));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_string_equal(small + sizeof(small) - 4, "...");
}

static void test_split(void **state)
{
	(void)state;
	char *r, *u, *p;
	struct mfs_err e = { 0 };
	assert_int_equal(mfs_url_split_credentials("http://al%40ice:p%3Aw%2Fd@h:9/x", &r, &u, &p,
						   &e), 0);
	assert_string_equal(r, "http://h:9/x");
	assert_string_equal(u, "al@ice");
	assert_string_equal(p, "p:w/d");
	free(r), free(u), free(p);
	assert_int_equal(mfs_url_split_credentials("https://bob@h", &r, &u, &p, &e), 0);
	assert_string_equal(u, "bob");
	assert_string_equal(p, "");
	free(r), free(u), free(p);
	assert_int_equal(mfs_url_split_credentials("https://h", &r, &u, &p, &e), 0);
	assert_null(u);
	assert_null(p);
	free(r);
	/* An '@' that does not close the authority is refused, and the message
	 * shows no secret. */
	assert_int_equal(mfs_url_split_credentials("http://u:se/cret@h/", &r, &u, &p, &e), -EINVAL);
	assert_null(strstr(e.msg, "cret"));
	assert_int_equal(mfs_url_split_credentials("file://u:secret@/d", &r, &u, &p, &e), -EINVAL);
	assert_null(strstr(e.msg, "secret"));
	assert_true(mfs_url_has_credentials("http://u@h"));
	/* Greedy on purpose: an '@' in the path reads as credentials (and such
	 * an endpoint is refused), never the other way round. */
	assert_true(mfs_url_has_credentials("http://h/a@b?c"));
	assert_int_equal(mfs_url_split_credentials("http://h/a@b", &r, &u, &p, &e), -EINVAL);
	assert_false(mfs_url_has_credentials("http://h?x=@y"));
}

static void test_loopback(void **state)
{
	(void)state;
	const char *yes[] = { "localhost", "127.0.0.1", "127.0.0.2", "127.255.1.1", "[::1]",
			      "::1", "localhost.", "[::ffff:127.0.0.1]" };
	const char *no[] = { "10.0.0.1", "192.168.1.1", "example.com", "localhost.example.com",
			     "127.0.0.1.nip.io", "[::2]", "0.0.0.0", "128.0.0.1", "" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
		assert_true(mfs_url_host_is_loopback(yes[i]));
	for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
		assert_false(mfs_url_host_is_loopback(no[i]));
	/* The decision of finding 7: a secret never goes over plain HTTP to
	 * another machine, whatever the host name looks like. */
	assert_true(mfs_url_secret_may_go("https", "huggingface.co"));
	assert_true(mfs_url_secret_may_go("https", "10.0.0.1"));
	assert_true(mfs_url_secret_may_go("http", "127.0.0.1"));
	assert_true(mfs_url_secret_may_go("http", "localhost"));
	assert_false(mfs_url_secret_may_go("http", "10.0.0.1"));
	assert_false(mfs_url_secret_may_go("http", "mirror.example.com"));
	assert_false(mfs_url_secret_may_go("http", "127.0.0.1.nip.io"));
	assert_false(mfs_url_secret_may_go("ftp", "127.0.0.1"));
}

static void test_sites(void **state)
{
	(void)state;
	/* A hub under a public suffix of two labels (finding 16). */
	assert_true(mfs_url_same_site("hub.example.co.uk", "cdn.example.co.uk"));
	assert_true(mfs_url_same_site("example.co.uk", "example.co.uk"));
	assert_false(mfs_url_same_site("hub.example.co.uk", "evil.co.uk"));
	assert_false(mfs_url_same_site("hub.example.co.uk", "co.uk"));
	/* Private suffixes: each github.io user is a site of its own. */
	assert_true(mfs_url_same_site("alice.github.io", "cdn.alice.github.io"));
	assert_false(mfs_url_same_site("alice.github.io", "mallory.github.io"));
	assert_false(mfs_url_same_site("alice.github.io", "github.io"));
	/* The real hub and its CDN. */
	assert_true(mfs_url_same_site("huggingface.co", "cdn-lfs.huggingface.co"));
	assert_true(mfs_url_same_site("huggingface.co", "cas-bridge.xethub.hf.co"));
	assert_false(mfs_url_same_site("hf.co", "huggingface.co"));
	assert_false(mfs_url_same_site("huggingface.co", "huggingface.co.evil.com"));
	/* IP addresses: only the same address. */
	assert_true(mfs_url_same_site("127.0.0.1", "127.0.0.1"));
	assert_false(mfs_url_same_site("127.0.0.1", "127.0.0.2"));
	assert_false(mfs_url_same_site("10.0.0.1", "11.0.0.1"));
	assert_false(mfs_url_same_site("[::1]", "[::2]"));
	/* localhost has no registrable domain: only itself. */
	assert_true(mfs_url_same_site("localhost", "localhost"));
	assert_false(mfs_url_same_site("localhost", "evil.localhost"));
	assert_false(mfs_url_same_site("a.localhost", "b.localhost"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_sites),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
