/*
 * cmd_trust.c - `modelfs trust add|hub|ls|rm`: edit and show the trust policy.
 *
 * The policy is the file <store>/policy.json (core/trust.h); these commands
 * never open the store's database, so they work before the first `add` and
 * after the index is lost. Granting trust to every repo (no --prefix) is
 * allowed but always said out loud.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "trust.h"

static void trust_usage(FILE *out)
{
	fprintf(out,
		"usage: modelfs trust add KEY.pub [--prefix P]\n"
		"       modelfs trust hub [--prefix P]\n"
		"       modelfs trust ls [--json]\n"
		"       modelfs trust rm KEY_ID | --hub P\n\n"
		"The trust policy: which publisher keys are trusted for which repos, and\n"
		"for which repos the hub's own SHA-256 checksums are enough.\n\n"
		"  add   trust the publisher key KEY.pub for repos under P\n"
		"  hub   accept hub checksums for repos under P (HTTPS endpoints only,\n"
		"        or plain HTTP to a loopback host)\n"
		"  ls    show the policy\n"
		"  rm    remove a key (all its prefixes) or a hub prefix\n\n"
		"A prefix P is 'ORG/' or 'ORG' (every repo of ORG), 'ORG/NAME' (one repo),\n"
		"or '' (every repo; the default when --prefix is omitted).\n\n"
		"options:\n"
		"  --prefix P   the repos the entry applies to\n"
		"  --json       (ls) machine-readable output\n"
		"  --hub P      (rm) remove the hub entry for exactly P\n"
		"  --help       this text\n"
		"The policy lives in the store directory (--store DIR) as %s.\n",
		MFS_POLICY_FILE);
}

/* Parses the options shared by the actions; returns -1 to go on, else an
 * exit status. */
static int parse_opts(const char *action, int argc, char **argv, const char **prefix,
		      bool *json, const char **hub)
{
	static const struct option opts[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "hub", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "p:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (!prefix)
				return mfs_cmd_usage("trust", "'trust %s' takes no --prefix", action);
			*prefix = optarg;
			break;
		case 'j':
			if (!json)
				return mfs_cmd_usage("trust", "'trust %s' takes no --json", action);
			*json = true;
			break;
		case 'H':
			if (!hub)
				return mfs_cmd_usage("trust", "'trust %s' takes no --hub", action);
			*hub = optarg;
			break;
		case 'h':
			trust_usage(stdout);
			return 0;
		default:
			return mfs_cmd_usage("trust", "unknown option");
		}
	}
	return -1;
}

static const char *prefix_label(const char *prefix)
{
	return *prefix ? prefix : "(every repo)";
}

static int trust_add(struct mfs_cmd *cmd, int argc, char **argv)
{
	const char *prefix = NULL;
	int rc = parse_opts("add", argc, argv, &prefix, NULL, NULL);
	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return mfs_cmd_usage("trust", optind >= argc ? "'trust add' needs the publisher's "
				     "public key file (KEY.pub)" : "too many arguments");
	const char *pub = argv[optind];
	if (prefix && !mfs_policy_prefix_is_valid(prefix))
		return mfs_cmd_usage("trust", "bad --prefix '%s': expected ORG/, ORG, ORG/NAME "
				     "or '' (letters, digits, '-', '_', '.'; no spaces or '..')",
				     prefix);
	struct mfs_err err = { 0 };
	char key_id[17];
	if (mfs_policy_add_key(cmd->store_dir, pub, prefix ? prefix : "", key_id, &err))
		return mfs_cmd_fail(&err, "cannot trust the key", NULL);
	if (!prefix || !*prefix)
		fprintf(stderr, "modelfs: note: no --prefix given: key %s is trusted for every "
			"repo; use --prefix ORG/ to limit it\n", key_id);
	printf("trusted key %s for %s\n", key_id, prefix && *prefix ? prefix : "every repo");
	return 0;
}

static int trust_hub(struct mfs_cmd *cmd, int argc, char **argv)
{
	const char *prefix = NULL;
	int rc = parse_opts("hub", argc, argv, &prefix, NULL, NULL);
	if (rc >= 0)
		return rc;
	if (optind != argc)
		return mfs_cmd_usage("trust", "'trust hub' takes no arguments; did you mean "
				     "'--prefix %s'?", argv[optind]);
	if (prefix && !mfs_policy_prefix_is_valid(prefix))
		return mfs_cmd_usage("trust", "bad --prefix '%s': expected ORG/, ORG, ORG/NAME "
				     "or '' (letters, digits, '-', '_', '.'; no spaces or '..')",
				     prefix);
	struct mfs_err err = { 0 };
	if (mfs_policy_add_hub(cmd->store_dir, prefix ? prefix : "", &err))
		return mfs_cmd_fail(&err, "cannot allow hub checksums", NULL);
	if (!prefix || !*prefix)
		fprintf(stderr, "modelfs: note: no --prefix given: hub checksums are accepted for "
			"every repo; use --prefix ORG/ to limit them\n");
	printf("hub checksums accepted for %s (HTTPS endpoints, or HTTP to a loopback host)\n",
	       prefix && *prefix ? prefix : "every repo");
	return 0;
}

static int print_json(const struct mfs_policy *p)
{
	json_t *root = json_object(), *keys = json_array(), *hubs = json_array();
	bool bad = !root || !keys || !hubs;
	for (size_t i = 0; !bad && i < mfs_policy_key_count(p); i++) {
		struct mfs_policy_key_info k;
		mfs_policy_key_at(p, i, &k);
		bad = json_array_append_new(keys, json_pack("{s:s,s:s,s:s,s:s}", "key_id", k.key_id,
							    "prefix", k.prefix, "added", k.added,
							    "public_key", k.public_key));
	}
	for (size_t i = 0; !bad && i < mfs_policy_hub_count(p); i++) {
		struct mfs_policy_hub_info h;
		mfs_policy_hub_at(p, i, &h);
		bad = json_array_append_new(hubs, json_pack("{s:s,s:s}", "prefix", h.prefix,
							    "added", h.added));
	}
	char *text = NULL;
	bad = bad || json_object_set(root, "keys", keys) || json_object_set(root, "hub", hubs) ||
	      !(text = json_dumps(root, JSON_INDENT(2)));
	json_decref(keys);
	json_decref(hubs);
	json_decref(root);
	if (bad) {
		free(text);
		return mfs_cmd_fail(NULL, "out of memory", NULL);
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

static int trust_ls(struct mfs_cmd *cmd, int argc, char **argv)
{
	bool json = false;
	int rc = parse_opts("ls", argc, argv, NULL, &json, NULL);
	if (rc >= 0)
		return rc;
	if (optind != argc)
		return mfs_cmd_usage("trust", "'trust ls' takes no arguments");
	struct mfs_err err = { 0 };
	struct mfs_policy *p = NULL;
	if (mfs_policy_load(cmd->store_dir, &p, &err))
		return mfs_cmd_fail(&err, "cannot read the trust policy", NULL);
	if (json) {
		rc = print_json(p);
		mfs_policy_free(p);
		return rc;
	}
	size_t nk = mfs_policy_key_count(p), nh = mfs_policy_hub_count(p);
	if (!nk && !nh) {
		printf("no trusted keys and no hub prefixes: every repo is refused\n"
		       "add a publisher key with 'modelfs trust add KEY.pub --prefix ORG/',\n"
		       "or accept hub checksums with 'modelfs trust hub --prefix ORG/'\n");
	} else {
		printf("%-5s %-16s  %-24s  %s\n", "KIND", "KEY_ID", "PREFIX", "ADDED");
		for (size_t i = 0; i < nk; i++) {
			struct mfs_policy_key_info k;
			mfs_policy_key_at(p, i, &k);
			printf("%-5s %-16s  %-24s  %s\n", "key", k.key_id, prefix_label(k.prefix),
			       k.added);
		}
		for (size_t i = 0; i < nh; i++) {
			struct mfs_policy_hub_info h;
			mfs_policy_hub_at(p, i, &h);
			printf("%-5s %-16s  %-24s  %s\n", "hub", "-", prefix_label(h.prefix),
			       h.added);
		}
	}
	mfs_policy_free(p);
	return 0;
}

static int trust_rm(struct mfs_cmd *cmd, int argc, char **argv)
{
	const char *hub = NULL;
	int rc = parse_opts("rm", argc, argv, NULL, NULL, &hub);
	if (rc >= 0)
		return rc;
	struct mfs_err err = { 0 };
	if (hub) {
		if (optind != argc)
			return mfs_cmd_usage("trust", "'trust rm --hub P' takes no other argument");
		if (mfs_policy_remove_hub(cmd->store_dir, hub, &err))
			return mfs_cmd_fail(&err, "cannot remove the hub prefix", NULL);
		printf("hub checksums no longer accepted for %s\n", prefix_label(hub));
		return 0;
	}
	if (optind != argc - 1)
		return mfs_cmd_usage("trust", "'trust rm' needs a KEY_ID (see 'modelfs trust ls') "
				     "or --hub P");
	if (mfs_policy_remove_key(cmd->store_dir, argv[optind], &err))
		return mfs_cmd_fail(&err, "cannot remove the key", NULL);
	printf("key %s is no longer trusted\n", argv[optind]);
	return 0;
}

MFS_CMD(trust)
{
	if (argc < 2)
		return mfs_cmd_usage("trust", "missing action: add, hub, ls or rm");
	const char *action = argv[1];
	if (!strcmp(action, "--help") || !strcmp(action, "-h")) {
		trust_usage(stdout);
		return 0;
	}
	/* The action becomes argv[0] of its own option parse. */
	if (!strcmp(action, "add"))
		return trust_add(cmd, argc - 1, argv + 1);
	if (!strcmp(action, "hub"))
		return trust_hub(cmd, argc - 1, argv + 1);
	if (!strcmp(action, "ls"))
		return trust_ls(cmd, argc - 1, argv + 1);
	if (!strcmp(action, "rm"))
		return trust_rm(cmd, argc - 1, argv + 1);
	return mfs_cmd_usage("trust", "unknown action '%s': expected add, hub, ls or rm", action);
}
