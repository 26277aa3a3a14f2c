/*
 * select.c - artifact selection, see select.h for the rules.
 *
 * A listing may hold thousands of paths (the hub pages 1000 entries at a time),
 * so selection is one linear pass that keeps the best candidate under a total
 * order (rank, preference score, path bytes); no sorting, no allocation per
 * path: lower-casing goes through a stack buffer, which is enough because a
 * safe path is at most MFS_PATH_MAX bytes. Only the file set of a split
 * primary is sorted. Case folding is ASCII-only and locale-independent, as in
 * mesh-llm (Rust's to_ascii_lowercase).
 */
#include "select.h"
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_DIGITS 5

/* ---- small string helpers ---------------------------------------------- */

static void ascii_lower(const char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
}

static bool starts_with(const char *s, size_t n, const char *pre, size_t k)
{
	return n >= k && memcmp(s, pre, k) == 0;
}

static bool ends_with(const char *s, size_t n, const char *suf, size_t k)
{
	return n >= k && memcmp(s + n - k, suf, k) == 0;
}

static bool ends_with_str(const char *s, const char *suf)
{
	return ends_with(s, strlen(s), suf, strlen(suf));
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* True if hay contains pre + s + post (pre and post single bytes, m >= 1). */
static bool contains_wrapped(const char *hay, size_t n, char pre, const char *s, size_t m,
			     char post)
{
	for (size_t i = 1; i + m < n;) {
		const char *hit = memmem(hay + i, n - i, s, m);
		if (!hit)
			return false;
		size_t at = (size_t)(hit - hay);
		if (at + m >= n)
			return false;
		if (hay[at - 1] == pre && hay[at + m] == post)
			return true;
		i = at + 1;
	}
	return false;
}

/* True if hay ends with pre + s + suf (pre a single byte). */
static bool ends_wrapped(const char *hay, size_t n, char pre, const char *s, size_t m,
			 const char *suf)
{
	size_t k = strlen(suf);
	if (n < 1 + m + k || !ends_with(hay, n, suf, k))
		return false;
	return hay[n - k - m - 1] == pre && memcmp(hay + n - k - m, s, m) == 0;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* ---- shard names ------------------------------------------------------- */

struct shard {
	size_t prefix_len;     /* bytes before "-NNNNN" */
	const char *part;      /* the five digits NNNNN */
	const char *total;     /* the five digits MMMMM */
	unsigned part_no, total_no;
};

/*
 * Parses stem[0..n) as "PREFIX-NNNNN-of-MMMMM" the way mesh-llm does: the
 * last "-of-" must be followed by exactly five digits, and the last '-'
 * before it by exactly five digits. PREFIX may be empty.
 */
static bool shard_parse_stem(const char *stem, size_t n, struct shard *sh)
{
	const char *of = NULL;
	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(stem + i, "-of-", 4) == 0)
			of = stem + i;
	if (!of)
		return false;
	size_t before = (size_t)(of - stem);
	if (n - before - 4 != SHARD_DIGITS || !all_digits(of + 4, SHARD_DIGITS))
		return false;
	const char *dash = NULL;
	for (size_t i = 0; i < before; i++)
		if (stem[i] == '-')
			dash = stem + i;
	if (!dash || before - (size_t)(dash - stem) - 1 != SHARD_DIGITS ||
	    !all_digits(dash + 1, SHARD_DIGITS))
		return false;
	sh->prefix_len = (size_t)(dash - stem);
	sh->part = dash + 1;
	sh->total = of + 4;
	sh->part_no = (unsigned)strtoul(sh->part, NULL, 10);   /* five digits: no overflow */
	sh->total_no = (unsigned)strtoul(sh->total, NULL, 10);
	return true;
}

/* The shard extension of path (".gguf" or ".safetensors"), or NULL. */
static const char *shard_ext(const char *path)
{
	if (ends_with_str(path, ".gguf"))
		return ".gguf";
	if (ends_with_str(path, ".safetensors"))
		return ".safetensors";
	return NULL;
}

static bool shard_parse_path(const char *path, struct shard *sh, const char **ext)
{
	const char *e = shard_ext(path);
	if (!e)
		return false;
	*ext = e;
	return shard_parse_stem(path, strlen(path) - strlen(e), sh);
}

/* ---- public helpers ---------------------------------------------------- */

/* Why path is unsafe, or NULL when it is safe (mfs_path_is_safe's rules). */
static const char *path_problem(const char *path)
{
	if (!path || !*path)
		return "the path is empty";
	if (path[0] == '/')
		return "the path is absolute";
	size_t n = strnlen(path, MFS_PATH_MAX + 1);
	if (n > MFS_PATH_MAX)
		return "the path is longer than 1024 bytes";
	const char *comp = path;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)path[i];
		if (i < n && (c < 0x20 || c == 0x7f))
			return "the path contains a control character";
		if (i < n && c == '\\')
			return "the path contains a backslash";
		if (i == n || c == '/') {
			size_t len = (size_t)(path + i - comp);
			if (len == 0)
				return "the path has an empty component ('//' or a trailing '/')";
			if ((len == 1 && comp[0] == '.') ||
			    (len == 2 && comp[0] == '.' && comp[1] == '.'))
				return "the path has a '.' or '..' component";
			if (len > MFS_PATH_NAME_MAX)
				return "a component of the path is longer than 255 bytes (NAME_MAX)";
			comp = path + i + 1;
		}
	}
	return NULL;
}

bool mfs_path_is_safe(const char *path)
{
	return path_problem(path) == NULL;
}

int mfs_path_check(const char *path, struct mfs_err *err)
{
	const char *why = path_problem(path);
	if (!why)
		return 0;
	char *q = mfs_text_escape(path ? path : "", 200);
	int rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT, "file name '%s' cannot be served: %s",
			 q ? q : "?", why);
	free(q);
	return rc;
}

static int ptr_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int mfs_paths_check_tree(const char *const *paths, size_t n, struct mfs_err *err)
{
	if (n == 0)
		return 0;
	const char **v = malloc(n * sizeof(*v));
	if (!v)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (mfs_path_is_safe(paths[i]))
			v[k++] = paths[i];
	if (k > 1)
		qsort(v, k, sizeof(*v), ptr_str_cmp);
	/* A file "a" is also a directory when some entry starts with "a/": in
	 * byte order the first entry not below "a/" is that entry if there is
	 * one, so one binary search per entry suffices. */
	int rc = 0;
	char key[MFS_PATH_MAX + 2];
	for (size_t i = 0; i < k && !rc; i++) {
		size_t len = strlen(v[i]); /* <= MFS_PATH_MAX: the path is safe */
		memcpy(key, v[i], len);
		key[len] = '/';
		key[len + 1] = '\0';
		size_t lo = 0, hi = k;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(v[mid], key) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < k && !strncmp(v[lo], key, len + 1)) {
			char *a = mfs_text_escape(v[i], 200), *b = mfs_text_escape(v[lo], 200);
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				     "'%s' is listed both as a file and as the directory of '%s': "
				     "neither could be opened", a ? a : "?", b ? b : "?");
			free(a);
			free(b);
		}
	}
	free(v);
	return rc;
}

enum mfs_format mfs_format_from_path(const char *path)
{
	if (!path)
		return MFS_FORMAT_UNKNOWN;
	if (ends_with_str(path, ".gguf"))
		return MFS_FORMAT_GGUF;
	if (ends_with_str(path, ".safetensors") || ends_with_str(path, ".safetensors.index.json"))
		return MFS_FORMAT_SAFETENSORS;
	return MFS_FORMAT_UNKNOWN;
}

const char *mfs_format_name(enum mfs_format f)
{
	switch (f) {
	case MFS_FORMAT_GGUF:
		return "gguf";
	case MFS_FORMAT_SAFETENSORS:
		return "safetensors";
	default:
		return "unknown";
	}
}

char *mfs_distribution_id(const char *path)
{
	if (!path)
		return NULL;
	const char *b = basename_of(path);
	size_t n = strlen(b);
	const char *e = shard_ext(b);
	if (e)
		n -= strlen(e);
	struct shard sh;
	if (shard_parse_stem(b, n, &sh))
		n = sh.prefix_len;
	return strndup(b, n);
}

char *mfs_canonical_ref(const char *org, const char *repo, const char *commit,
			const char *primary)
{
	if (!org || !repo || !commit || !primary)
		return NULL;
	size_t n = strlen(org) + strlen(repo) + strlen(commit) + strlen(primary) + 4;
	char *s = malloc(n);
	if (!s)
		return NULL;
	char *o = stpcpy(stpcpy(stpcpy(s, org), "/"), repo);
	o = stpcpy(stpcpy(o, "@"), commit);
	stpcpy(stpcpy(o, "/"), primary);
	return s;
}

/* ---- ranking ----------------------------------------------------------- */

/* The lower-cased selector and what the rank tests need of it. */
struct sel_key {
	char s[MFS_PATH_MAX + 1];
	size_t m;
};

/* Path-and-basename views of one candidate, lower-cased. */
struct cand_view {
	char lower[MFS_PATH_MAX + 1];
	size_t n;
	const char *b;   /* basename inside lower */
	size_t bn;
};

static int rank_with_selector(const struct cand_view *v, const struct sel_key *k)
{
	const char *s = k->s;
	size_t m = k->m;
	static const char first[] = "-00001-of-";
	const size_t fl = sizeof(first) - 1;

	if ((v->n == m && memcmp(v->lower, s, m) == 0) ||
	    (v->bn == m && memcmp(v->b, s, m) == 0))
		return 0;
	if (ends_with(v->lower, v->n, ".gguf", 5) &&
	    (contains_wrapped(v->lower, v->n, '/', s, m, '/') ||
	     contains_wrapped(v->lower, v->n, '-', s, m, '-') ||
	     contains_wrapped(v->lower, v->n, '.', s, m, '-') ||
	     ends_wrapped(v->lower, v->n, '-', s, m, ".gguf") ||
	     ends_wrapped(v->lower, v->n, '.', s, m, ".gguf") ||
	     ends_wrapped(v->lower, v->n, '/', s, m, ".gguf")))
		return 1;
	if (v->bn == m + 12 && memcmp(v->b, s, m) == 0 && memcmp(v->b + m, ".safetensors", 12) == 0)
		return 2;
	bool split_first = starts_with(v->b, v->bn, s, m) &&
			   starts_with(v->b + m, v->bn - m, first, fl);
	if (split_first && ends_with(v->b, v->bn, ".safetensors", 12))
		return 3;
	if (v->bn == m + 5 && memcmp(v->b, s, m) == 0 && memcmp(v->b + m, ".gguf", 5) == 0)
		return 4;
	if (split_first && ends_with(v->b, v->bn, ".gguf", 5))
		return 5;
	return -1;
}

static int rank_default(const struct cand_view *v)
{
	if (v->bn == 17 && memcmp(v->b, "model.safetensors", 17) == 0)
		return 0;
	if (ends_with(v->b, v->bn, ".safetensors", 12)) {
		struct shard sh;
		if (shard_parse_stem(v->b, v->bn - 12, &sh) && memcmp(sh.part, "00001", 5) == 0)
			return 1;
	}
	if (ends_with(v->lower, v->n, ".gguf", 5)) {
		if (starts_with(v->b, v->bn, "mmproj", 6))
			return -1;
		bool first = strstr(v->lower, "-00001-of-") != NULL;
		if (strstr(v->lower, "-000") && !first)
			return -1;
		return first ? 2 : 3;
	}
	return -1;
}

/* Case-sensitive, on the path as listed (facts.md: "x-q4_k_m" scores 9). */
static int preference_score(const char *path)
{
	static const char *const preferred[] = { "Q4_K_M", "Q4_K_S", "Q4_1", "Q5_K_M",
						 "Q5_K_S", "Q8_0",   "BF16" };
	const size_t np = sizeof(preferred) / sizeof(preferred[0]);
	if (strstr(path, "-00001-of-"))
		return 0;
	for (size_t i = 0; i < np; i++)
		if (strstr(path, preferred[i]))
			return (int)i + 1;
	return (int)np + 2;
}

static bool selector_ok(const char *selector)
{
	if (!*selector)
		return false;
	for (const unsigned char *p = (const unsigned char *)selector; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

int mfs_select_primary(const char *const *paths, size_t n, const char *selector,
		       size_t *index, struct mfs_err *err)
{
	if (!paths && n > 0)
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "no listing given to select from");
	if (selector && !selector_ok(selector))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "invalid selector: empty or with a control character");

	/* Both keys live on the heap: together they are 2 KiB, too much for a
	 * FUSE thread's stack to spend on a helper. */
	struct sel_key *key = NULL;
	struct cand_view *v = malloc(sizeof(*v));
	if (!v)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory selecting an artifact");
	bool selector_fits = true;
	if (selector) {
		size_t m = strlen(selector);
		/* Every rank needs S inside a safe path, so a longer S matches nothing. */
		selector_fits = m <= MFS_PATH_MAX;
		if (selector_fits) {
			key = malloc(sizeof(*key));
			if (!key) {
				free(v);
				return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM,
					       "out of memory selecting an artifact");
			}
			ascii_lower(selector, m, key->s);
			key->m = m;
		}
	}

	bool found = false;
	size_t best = 0;
	int best_rank = 0, best_score = 0;
	for (size_t i = 0; i < n && selector_fits; i++) {
		const char *p = paths[i];
		if (!mfs_path_is_safe(p))
			continue;
		v->n = strlen(p);
		ascii_lower(p, v->n, v->lower);
		v->b = basename_of(v->lower);
		v->bn = v->n - (size_t)(v->b - v->lower);
		int rank = selector ? rank_with_selector(v, key) : rank_default(v);
		if (rank < 0)
			continue;
		int score = preference_score(p);
		if (found) {
			if (rank != best_rank) {
				if (rank > best_rank)
					continue;
			} else if (score != best_score) {
				if (score > best_score)
					continue;
			} else if (strcmp(p, paths[best]) >= 0) {
				continue; /* equal paths: keep the lower index */
			}
		}
		found = true;
		best = i;
		best_rank = rank;
		best_score = score;
	}
	free(v);
	free(key);
	if (!found) {
		if (selector)
			return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
				       "no model artifact matching selector '%s' in repository",
				       selector);
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
			       "no supported model artifact files found in repository");
	}
	*index = best;
	return 0;
}

/* ---- file sets --------------------------------------------------------- */

static int cmp_paths(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void mfs_selection_release(struct mfs_selection *sel)
{
	if (!sel)
		return;
	for (size_t i = 0; i < sel->n_files; i++)
		free(sel->files[i]);
	free(sel->files);
	free(sel->primary);
	free(sel->distribution_id);
	memset(sel, 0, sizeof(*sel));
}

/*
 * Collects, sorted and without duplicates, the listed shards of the split set
 * the primary belongs to into *set (pointers into paths), and checks that
 * 1..total are all there. Returns 0, -ENOENT, -EINVAL or -ENOMEM.
 */
static int collect_shards(const char *const *paths, size_t n, const char *primary,
			  const struct shard *psh, const char *ext, const char ***set,
			  size_t *count, struct mfs_err *err)
{
	if (psh->total_no == 0 || psh->part_no == 0 || psh->part_no > psh->total_no)
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			       "shard '%s' is numbered outside 1..%u", primary, psh->total_no);
	const char **v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory selecting an artifact");
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct shard sh;
		const char *e;
		const char *p = paths[i];
		if (!mfs_path_is_safe(p) || !shard_parse_path(p, &sh, &e) || e != ext ||
		    sh.prefix_len != psh->prefix_len || memcmp(p, primary, sh.prefix_len) != 0 ||
		    memcmp(sh.total, psh->total, SHARD_DIGITS) != 0)
			continue;
		if (sh.part_no == 0 || sh.part_no > sh.total_no) {
			free(v);
			return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				       "shard '%s' is numbered outside 1..%u", p, sh.total_no);
		}
		v[k++] = p;
	}
	qsort(v, k, sizeof(*v), cmp_paths);
	size_t u = 0;
	for (size_t i = 0; i < k; i++)
		if (u == 0 || strcmp(v[u - 1], v[i]) != 0)
			v[u++] = v[i];
	k = u;

	/* Same prefix, total and extension, distinct paths: sorted by path is
	 * sorted by shard number, and shard i sits at index i-1 when complete. */
	unsigned missing = 0, n_missing = psh->total_no - (unsigned)k;
	for (size_t i = 0, want = 1; want <= psh->total_no; want++) {
		struct shard sh;
		const char *e;
		if (i < k && shard_parse_path(v[i], &sh, &e) && sh.part_no == want) {
			i++;
			continue;
		}
		missing = (unsigned)want;
		break;
	}
	if (missing) {
		free(v);
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
			       "split model '%s' is missing shard '%.*s-%05u-of-%.5s%s' "
			       "(%u of %u missing) in repository",
			       primary, (int)psh->prefix_len, primary, missing, psh->total, ext,
			       n_missing, psh->total_no);
	}
	*set = v;
	*count = k;
	return 0;
}

int mfs_select(const char *const *paths, size_t n, const char *selector,
	       struct mfs_selection *out, struct mfs_err *err)
{
	size_t idx;
	int rc = mfs_select_primary(paths, n, selector, &idx, err);
	if (rc < 0)
		return rc;
	const char *primary = paths[idx];

	enum mfs_format fmt = mfs_format_from_path(primary);
	if (fmt == MFS_FORMAT_UNKNOWN)
		return MFS_ERR(err, -ENOTSUP, MFS_ERR_FORMAT,
			       "unsupported model artifact file format: '%s' (expected .gguf, "
			       ".safetensors or .safetensors.index.json)",
			       primary);

	struct mfs_selection s = { .format = fmt };
	s.distribution_id = mfs_distribution_id(primary);
	if (!s.distribution_id)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory selecting an artifact");
	if (!*s.distribution_id) {
		mfs_selection_release(&s);
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			       "model artifact file '%s' has an empty name", primary);
	}

	const char **set = NULL;
	size_t count = 0;
	struct shard sh;
	const char *ext;
	if (shard_parse_path(primary, &sh, &ext)) {
		rc = collect_shards(paths, n, primary, &sh, ext, &set, &count, err);
		if (rc < 0) {
			mfs_selection_release(&s);
			return rc;
		}
		s.split_count = sh.total_no;
	} else {
		set = malloc(sizeof(*set));
		if (!set)
			goto nomem;
		set[0] = primary;
		count = 1;
	}
	s.primary = strdup(primary);
	s.files = calloc(count, sizeof(*s.files));
	if (!s.primary || !s.files)
		goto nomem;
	for (size_t i = 0; i < count; i++) {
		s.files[i] = strdup(set[i]);
		if (!s.files[i])
			goto nomem;
		s.n_files = i + 1;
	}
	free(set);
	*out = s;
	return 0;

nomem:
	free(set);
	mfs_selection_release(&s);
	return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory selecting an artifact");
}
