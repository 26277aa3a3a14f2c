/*
 * cmd_add.c - `modelfs add` and `modelfs pull`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admit.h"
#include "cmd.h"
#include "text.h"

static int usage_add(const char *name)
{
	printf("usage: modelfs %s [--endpoint URL] [--sidecar PATH]... REF\n\n"
	       "%s\n\n"
	       "REF is org/repo[@revision][:selector] or https://huggingface.co/org/repo[/tree/REV].\n"
	       "The repository is --endpoint URL (file:///DIR for a local directory laid out\n"
	       "DIR/<org>/<repo>/<files>, or an HF-compatible hub), else $HF_ENDPOINT, else\n"
	       "https://huggingface.co. HF_TOKEN (or USER:PASSWORD@ in the URL, never stored)\n"
	       "is sent to the hub's own host only, and never over plain HTTP to another\n"
	       "machine. MODELFS_TIMEOUT=SECONDS bounds each request, retries included\n"
	       "(default 30; docs/network.md).\n\n"
	       "options:\n"
	       "  --endpoint URL   the repository\n"
	       "  --sidecar PATH   also install this file of the repository (repeatable)\n"
	       "  --json           print the result as JSON\n",
	       name,
	       !strcmp(name, "add")
		       ? "Resolves REF to a commit, checks its root of trust and structure, and\n"
			 "installs it (visible under the mount). Prints the canonical_ref.\n"
			 "A repo that a trusted key covers needs a manifest signed by a trusted key.\n"
			 "On a branch or tag, a manifest with a lower sequence than one admitted\n"
			 "before for the same repo, key and ref is refused, from any endpoint (name\n"
			 "the commit to get an older release); a path already installed keeps its\n"
			 "bytes: other bytes under the same commit are refused."
		       : "Like add, then fetches and verifies every byte. Resumable: an interrupted\n"
			 "pull fetches only what is missing.");
	return 0;
}

static int add_or_pull(struct mfs_cmd *cmd, int argc, char **argv, bool pull)
{
	static const struct option opts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "sidecar", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *name = argv[0];
	const char *sidecars[64];
	struct mfs_admit_opts ao = { .sidecars = sidecars };
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'e': ao.endpoint = optarg; break;
		case 's':
			if (ao.n_sidecars == 64)
				return mfs_cmd_usage(name, "at most 64 sidecars");
			sidecars[ao.n_sidecars++] = optarg;
			break;
		case 'j': json = true; break;
		case 'h': return usage_add(name);
		default: return mfs_cmd_usage(name, "unknown option");
		}
	}
	if (optind != argc - 1)
		return mfs_cmd_usage(name, "expected one model ref");
	struct mfs_store *s = mfs_cmd_store(cmd);
	if (!s)
		return 1;
	struct mfs_cache *cache;
	struct mfs_err err = { 0 };
	if (mfs_cache_new(s, NULL, &cache, &err))
		return mfs_cmd_fail(&err, "cannot start", NULL);
	ao.progress = cmd->tty ? (mfs_progress_fn)mfs_cmd_progress : NULL;
	ao.progress_ctx = cmd;
	struct mfs_admit_result res = { 0 };
	int rc = mfs_admit(s, cache, argv[optind], &ao, &res, &err);
	if (rc) {
		mfs_cache_free(cache);
		return mfs_cmd_fail(&err, "cannot add the model", NULL);
	}
	if (pull) {
		rc = mfs_admit_pull(s, cache, res.artifact_id, ao.progress, cmd, &err);
		if (cmd->tty)
			fputc('\n', stderr);
	}
	mfs_cache_free(cache);
	if (rc) {
		int r = mfs_cmd_fail(&err, "pull did not finish",
				     "what was verified is kept; run the same pull again to resume");
		mfs_admit_result_release(&res);
		return r;
	}
	if (json) {
		/* Built by jansson, not by hand: the ref holds a path the
		 * repository chose, which may contain '"' or '\\'. */
		json_t *o = json_pack("{s:s, s:s, s:b}", "canonical_ref", res.canonical_ref, "trust",
				      res.trust, "pulled", pull);
		char *t = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
		printf("%s\n", t ? t : "{}");
		free(t);
		json_decref(o);
	} else {
		char *t = mfs_text_escape(res.canonical_ref, 0);
		printf("%s\n", t ? t : "?");
		free(t);
	}
	mfs_admit_result_release(&res);
	return 0;
}

int mfs_cmd_add(struct mfs_cmd *cmd, int argc, char **argv)
{
	return add_or_pull(cmd, argc, argv, false);
}

int mfs_cmd_pull(struct mfs_cmd *cmd, int argc, char **argv)
{
	return add_or_pull(cmd, argc, argv, true);
}
