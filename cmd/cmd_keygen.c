/*
 * cmd_keygen.c - `modelfs keygen OUT`: a publisher key pair.
 *
 * Writes OUT.key (the private key, mode 0600) and OUT.pub (the public key to
 * hand to users), never overwriting either, and prints the key id. The store
 * is not touched: a publisher may have no store at all.
 */
#include <getopt.h>
#include <stdio.h>

#include "cmd.h"
#include "sign.h"

static void keygen_usage(FILE *out)
{
	fprintf(out, "usage: modelfs keygen OUT\n\n"
		     "Make an Ed25519 publisher key pair: OUT.key (private, mode 0600; keep it\n"
		     "secret) and OUT.pub (public; give it to your users). Existing files are\n"
		     "never overwritten. Prints the key id.\n\n"
		     "options:\n"
		     "  --help   this text\n");
}

MFS_CMD(keygen)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			keygen_usage(stdout);
			return 0;
		default:
			return mfs_cmd_usage("keygen", "unknown option");
		}
	}
	if (optind != argc - 1)
		return mfs_cmd_usage("keygen", optind >= argc ? "missing OUT (the name of the "
				     "key files to write)" : "too many arguments");
	const char *out = argv[optind];
	char key_id[MFS_KEY_ID_LEN + 1];
	struct mfs_err err = { 0 };
	if (mfs_sign_keygen(out, key_id, &err))
		return mfs_cmd_fail(&err, "cannot make a key pair", NULL);
	printf("key id: %s\n", key_id);
	printf("private key: %s.key (keep it secret; sign with 'modelfs publish --key %s.key')\n",
	       out, out);
	printf("public key:  %s.pub (users trust it with 'modelfs trust add %s.pub --prefix ORG/')\n",
	       out, out);
	(void)cmd;
	return 0;
}
