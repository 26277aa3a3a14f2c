/*
 * cmd_publish.c - `modelfs publish`: sign a model directory.
 *
 * Hashes every file of DIR (except .modelfs/) into a manifest v1, signs its
 * bytes with the publisher's key, and writes .modelfs/manifest.json and
 * .modelfs/manifest.sig, each through a temporary file and a rename so that
 * neither is ever seen half written. The manifest is renamed first: a reader
 * that catches the instant between the two renames sees a signature that does
 * not verify and refuses, which is the safe side.
 *
 * The sequence defaults to one more than the manifest already in DIR, so that
 * republishing moves forward and clients that track a branch accept it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "digest.h"
#include "manifest.h"
#include "sign.h"

static void publish_usage(FILE *out)
{
	fprintf(out,
		"usage: modelfs publish --key KEY.key --repo ORG/NAME [options] DIR\n\n"
		"Write a signed manifest for the files of DIR: .modelfs/manifest.json (path,\n"
		"size, SHA-256 and chunk digests of every file) and .modelfs/manifest.sig.\n"
		"Upload both with the model; users who trust your key get verified files.\n\n"
		"options:\n"
		"  --key FILE          the private key from 'modelfs keygen' (required)\n"
		"  --repo ORG/NAME     the repository the manifest is bound to (required)\n"
		"  --sequence N        the manifest's sequence number (default: one more\n"
		"                      than the manifest already in DIR, else 1)\n"
		"  --chunk-size BYTES  a power of two from 4K to 64M (default 4M)\n"
		"  --help              this text\n");
}

/* Reads DIR's current manifest, if any, into *m. 0 if parsed, -ENOENT if
 * absent, another negative errno (with err) if it cannot be read or parsed. */
static int read_existing(const char *dir, struct mfs_manifest *m, struct mfs_err *err)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, MFS_MANIFEST_JSON);
	if (n < 0 || (size_t)n >= sizeof(path))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "path too long");
	FILE *f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? -ENOENT
				       : MFS_ERR(err, -errno, MFS_ERR_IO, "cannot open '%s': %s",
						 path, strerror(errno));
	/* One byte over the cap lets the parser see, and name, an oversized file. */
	struct stat st;
	size_t cap = MFS_MANIFEST_MAX + 1, len = 0;
	if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 && (uint64_t)st.st_size < cap)
		cap = (size_t)st.st_size + 1;
	char *buf = malloc(cap);
	if (!buf) {
		fclose(f);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	len = fread(buf, 1, cap, f);
	int rc = ferror(f) ? MFS_ERR(err, -EIO, MFS_ERR_IO, "cannot read '%s'", path) : 0;
	fclose(f);
	if (!rc)
		rc = mfs_manifest_parse(buf, len, m, err);
	free(buf);
	return rc;
}

/* Writes data to dir/name through dir/name.tmp and a rename. */
static int write_atomic(const char *dir, const char *name, const void *data, size_t len,
			struct mfs_err *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int n1 = snprintf(path, sizeof(path), "%s/%s", dir, name);
	int n2 = snprintf(tmp, sizeof(tmp), "%s/%s.tmp.%ld", dir, name, (long)getpid());
	if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(path) || (size_t)n2 >= sizeof(tmp))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "path too long in '%s'", dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot create '%s': %s", tmp,
			       strerror(errno));
	int rc = 0;
	const char *p = data;
	while (len && !rc) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno != EINTR)
			rc = -errno;
		else if (w > 0) {
			p += w;
			len -= (size_t)w;
		}
	}
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return MFS_ERR(err, rc, MFS_ERR_IO, "cannot write '%s': %s", path, strerror(-rc));
	}
	return 0;
}

MFS_CMD(publish)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "repo", required_argument, NULL, 'r' },
		{ "sequence", required_argument, NULL, 's' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *key_path = NULL, *repo = NULL;
	unsigned long long sequence = 0, chunk_size = MFS_CHUNK_SIZE_DEFAULT;
	bool have_sequence = false;
	int c;
	(void)cmd;

	while ((c = getopt_long(argc, argv, "k:r:s:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			key_path = optarg;
			break;
		case 'r':
			repo = optarg;
			break;
		case 's': {
			char *end;
			errno = 0;
			sequence = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || sequence < 1 ||
			    sequence > INT64_MAX)
				return mfs_cmd_usage("publish", "bad --sequence '%s': expected a "
						     "whole number from 1 to %lld", optarg,
						     (long long)INT64_MAX);
			have_sequence = true;
			break;
		}
		case 'c':
			if (mfs_cmd_parse_size(optarg, &chunk_size) ||
			    !mfs_manifest_chunk_size_is_valid(chunk_size))
				return mfs_cmd_usage("publish", "bad --chunk-size '%s': expected a "
						     "power of two from 4K to 64M", optarg);
			break;
		case 'h':
			publish_usage(stdout);
			return 0;
		default:
			return mfs_cmd_usage("publish", "unknown option");
		}
	}
	if (!key_path)
		return mfs_cmd_usage("publish", "missing --key KEY.key (make one with "
				     "'modelfs keygen NAME')");
	if (!repo)
		return mfs_cmd_usage("publish", "missing --repo ORG/NAME");
	if (!mfs_manifest_repo_is_valid(repo))
		return mfs_cmd_usage("publish", "bad --repo '%s': expected ORG/NAME (letters, "
				     "digits, '-', '_', '.')", repo);
	if (optind != argc - 1)
		return mfs_cmd_usage("publish", optind >= argc ? "missing DIR (the model "
				     "directory)" : "too many arguments");
	const char *dir = argv[optind];
	struct stat st;
	if (stat(dir, &st) != 0) {
		fprintf(stderr, "modelfs: cannot publish '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "modelfs: cannot publish '%s': not a directory\n  give the "
			"directory that holds the model's files\n", dir);
		return 1;
	}

	struct mfs_err err = { 0 };
	EVP_PKEY *key = NULL;
	if (mfs_sign_load_private(key_path, &key, &err))
		return mfs_cmd_fail(&err, "cannot load the signing key", NULL);
	char key_id[MFS_KEY_ID_LEN + 1];
	if (mfs_sign_key_id(key, key_id)) {
		EVP_PKEY_free(key);
		return mfs_cmd_fail(NULL, "cannot compute the key id", NULL);
	}

	struct mfs_manifest old = { 0 };
	struct mfs_err oerr = { 0 };
	int orc = read_existing(dir, &old, &oerr);
	if (orc && orc != -ENOENT)
		fprintf(stderr, "modelfs: note: the existing manifest in '%s' cannot be read "
			"(%s)%s\n", dir, oerr.msg,
			have_sequence ? "" : "; starting at sequence 1 (use --sequence to choose)");
	if (!have_sequence) {
		sequence = orc ? 1 : old.sequence + 1;
		if (!orc && old.sequence >= INT64_MAX) {
			mfs_manifest_release(&old);
			EVP_PKEY_free(key);
			return mfs_cmd_fail(NULL, "the existing manifest's sequence cannot grow",
					    "choose one with --sequence");
		}
	} else if (!orc && sequence <= old.sequence) {
		fprintf(stderr, "modelfs: warning: sequence %llu is not above the existing "
			"manifest's %llu; clients that saw %llu will refuse it for branches and "
			"tags\n", sequence, (unsigned long long)old.sequence,
			(unsigned long long)old.sequence);
	}
	if (!orc && strcmp(old.repo, repo))
		fprintf(stderr, "modelfs: note: the existing manifest was for '%s'; now '%s'\n",
			old.repo, repo);
	mfs_manifest_release(&old);

	char *json = NULL;
	size_t len = 0;
	int rc = 1;
	if (mfs_manifest_build(dir, repo, sequence, (uint32_t)chunk_size, key_id, &json, &len,
			       &err)) {
		mfs_cmd_fail(&err, "cannot build the manifest", NULL);
		goto out;
	}
	uint8_t sig[MFS_SIGN_LEN];
	char sig_text[MFS_SIGN_HEX_LEN + 2];
	if (mfs_sign(key, json, len, sig, &err) || mfs_sign_verify(key, json, len, sig, &err)) {
		mfs_cmd_fail(&err, "cannot sign the manifest", NULL);
		goto out;
	}
	mfs_hex_encode(sig, sizeof(sig), sig_text);
	sig_text[MFS_SIGN_HEX_LEN] = '\n';
	sig_text[MFS_SIGN_HEX_LEN + 1] = '\0';

	char mdir[PATH_MAX];
	int n = snprintf(mdir, sizeof(mdir), "%s/%s", dir, MFS_MANIFEST_DIR);
	if (n < 0 || (size_t)n >= sizeof(mdir)) {
		mfs_cmd_fail(NULL, "the directory path is too long", NULL);
		goto out;
	}
	if (mkdir(mdir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "modelfs: cannot create '%s': %s\n", mdir, strerror(errno));
		goto out;
	}
	if (write_atomic(mdir, "manifest.json", json, len, &err) ||
	    write_atomic(mdir, "manifest.sig", sig_text, MFS_SIGN_HEX_LEN + 1, &err)) {
		mfs_cmd_fail(&err, "cannot write the signed manifest", NULL);
		goto out;
	}
	struct mfs_manifest m;
	size_t n_files = 0;
	if (!mfs_manifest_parse(json, len, &m, NULL)) {
		n_files = m.n_files;
		mfs_manifest_release(&m);
	}
	printf("published %s sequence %llu: %zu file%s, key id %s\n", repo, sequence, n_files,
	       n_files == 1 ? "" : "s", key_id);
	printf("  %s/%s\n  %s/%s\n", dir, MFS_MANIFEST_JSON, dir, MFS_MANIFEST_SIG);
	rc = 0;
out:
	free(json);
	EVP_PKEY_free(key);
	return rc;
}
