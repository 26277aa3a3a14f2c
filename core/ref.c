/*
 * ref.c - model ref parsing, see ref.h for the grammar.
 *
 * Refs come from command lines and configuration, so they are short and rare:
 * the parser favours plain span arithmetic over speed and keeps every
 * intermediate as a (pointer, length) span into the trimmed input, copying only
 * the final components. The rules follow mesh-llm's model_ref crate, which
 * facts.md §3 restates; where modelfs is stricter, ref.h says so.
 */
#include "ref.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

#define REF_FORMS                                                             \
	"expected org/repo, org/repo:SELECTOR, org/repo@REVISION[:SELECTOR] " \
	"or https://huggingface.co/org/repo[/tree/REVISION]"

/* How much of a bad ref an error message quotes. */
#define REF_QUOTE_MAX 160

struct span {
	const char *p;
	size_t n;
	bool present;
};

static bool span_eq(struct span s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && memcmp(s.p, lit, n) == 0;
}

static const char *span_chr(struct span s, char c)
{
	return s.n ? memchr(s.p, c, s.n) : NULL;
}

/*
 * Byte length of the Unicode White_Space character at s[0..len), or 0. The
 * set is Rust's char::is_whitespace, which mesh-llm's trim() uses.
 */
static size_t ws_at(const unsigned char *s, size_t len)
{
	if (len >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0d) || s[0] == 0x20))
		return 1;
	if (len >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0))
		return 2; /* U+0085, U+00A0 */
	if (len >= 3) {
		if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80)
			return 3; /* U+1680 */
		if (s[0] == 0xe2 && s[1] == 0x80 &&
		    ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 ||
		     s[2] == 0xa9 || s[2] == 0xaf))
			return 3; /* U+2000..200A, U+2028, U+2029, U+202F */
		if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f)
			return 3; /* U+205F */
		if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80)
			return 3; /* U+3000 */
	}
	return 0;
}

/* Byte length of the White_Space character that ends s[0..len), or 0. */
static size_t ws_before(const unsigned char *s, size_t len)
{
	for (size_t k = 1; k <= 3 && k <= len; k++)
		if (ws_at(s + len - k, k) == k)
			return k;
	return 0;
}

static struct span trim(const char *text)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t len = strlen(text), k;
	while ((k = ws_at(s, len)) > 0) {
		s += k;
		len -= k;
	}
	while ((k = ws_before(s, len)) > 0)
		len -= k;
	return (struct span){ .p = (const char *)s, .n = len, .present = true };
}

static bool has_control(struct span s)
{
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

/* Copies at most REF_QUOTE_MAX bytes of s for an error message, control
 * characters shown as '?', "..." when cut (at a UTF-8 character boundary). */
static void quote(struct span s, char out[REF_QUOTE_MAX + 4])
{
	size_t n = s.n;
	if (n > REF_QUOTE_MAX) {
		n = REF_QUOTE_MAX;
		while (n > 0 && ((unsigned char)s.p[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (n < s.n) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

#define REF_FAIL(err, in, why)                                                \
	do {                                                                   \
		char q_[REF_QUOTE_MAX + 4];                                    \
		quote((in), q_);                                               \
		return MFS_ERR((err), -EINVAL, MFS_ERR_PARSE,                  \
			       "invalid model ref '%s': %s; " REF_FORMS, q_,   \
			       (why));                                         \
	} while (0)

struct parts {
	struct span org, repo, revision, selector;
};

/*
 * Splits a tail "repo[@rev][:sel]" or "repo[:sel][@rev]" at its first '@' and
 * first ':'. Returns NULL, or why it is malformed.
 */
static const char *split_tail(struct span tail, struct parts *p)
{
	const char *at = span_chr(tail, '@');
	const char *colon = span_chr(tail, ':');
	const char *end = tail.p + tail.n;
	const char *repo_end = end;

	p->revision = (struct span){ 0 };
	p->selector = (struct span){ 0 };
	if (at && (!colon || at < colon)) {
		repo_end = at;
		const char *rev_end = colon ? colon : end;
		p->revision = (struct span){ at + 1, (size_t)(rev_end - at - 1), true };
		if (colon)
			p->selector = (struct span){ colon + 1, (size_t)(end - colon - 1), true };
	} else if (colon) {
		repo_end = colon;
		const char *sel_end = at ? at : end;
		p->selector = (struct span){ colon + 1, (size_t)(sel_end - colon - 1), true };
		if (at)
			p->revision = (struct span){ at + 1, (size_t)(end - at - 1), true };
	}
	p->repo = (struct span){ tail.p, (size_t)(repo_end - tail.p), true };

	if (p->repo.n == 0)
		return "empty repository name";
	if (span_chr(p->repo, '/'))
		return "the repository name has a '/' (a file path is not a model ref; "
		       "name the file with :SELECTOR)";
	if (p->revision.present && p->revision.n == 0)
		return "empty revision after '@'";
	if (p->selector.present && p->selector.n == 0)
		return "empty selector after ':'";
	return NULL;
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

/* Percent-decodes s into a new string. NULL with *bad set when an escape is
 * malformed or decodes to a control character; NULL alone on ENOMEM. */
static char *percent_decode(struct span s, bool *bad)
{
	char *out = malloc(s.n + 1);
	size_t o = 0;
	*bad = false;
	if (!out)
		return NULL;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] != '%') {
			out[o++] = s.p[i];
			continue;
		}
		int hi = i + 2 < s.n ? hexval(s.p[i + 1]) : -1;
		int lo = hi >= 0 ? hexval(s.p[i + 2]) : -1;
		if (hi < 0 || lo < 0 || hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f) {
			free(out);
			*bad = true;
			return NULL;
		}
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

/*
 * Reduces what follows "https://huggingface.co/" to org, tail and, for a
 * /tree/REV URL, the still-encoded REV. Query and fragment are dropped and
 * slashes trimmed at both ends, as mesh-llm does; unlike mesh-llm, nothing may
 * follow REV. Returns NULL, or why the URL is not a model ref.
 */
static const char *split_url(struct span rest, struct span *org, struct span *tail,
			     struct span *tree_rev)
{
	const char *b = rest.p, *e = rest.p;
	while (e < rest.p + rest.n && *e != '?' && *e != '#')
		e++;
	while (b < e && *b == '/')
		b++;
	while (e > b && e[-1] == '/')
		e--;

	struct span seg[4];
	size_t nseg = 0; /* all segments, of which the first four are kept */
	for (const char *q = b;;) {
		const char *slash = memchr(q, '/', (size_t)(e - q));
		const char *end = slash ? slash : e;
		if (nseg < 4)
			seg[nseg] = (struct span){ q, (size_t)(end - q), true };
		nseg++;
		if (!slash)
			break;
		q = slash + 1;
	}
	if (nseg == 1)
		return "a URL needs /org/repo";
	if (nseg >= 3 && (span_eq(seg[2], "resolve") || span_eq(seg[2], "blob") ||
			  span_eq(seg[2], "raw")))
		return "a file URL is not a model ref (name the file with :SELECTOR)";
	if (nseg > 4 && span_eq(seg[2], "tree"))
		return "a URL has at most /org/repo/tree/REVISION (a folder is not a model ref)";
	if (nseg != 2 && (nseg != 4 || !span_eq(seg[2], "tree")))
		return "a URL is /org/repo or /org/repo/tree/REVISION";
	*org = seg[0];
	*tail = seg[1];
	if (nseg == 4)
		*tree_rev = seg[3];
	return NULL;
}

/*
 * Why a final component (org, repo, revision or selector) is not a name, or
 * NULL. Whitespace (Unicode White_Space, the set trim() removes at the ends)
 * at the end of a component would not survive display and re-parse, which
 * trims ("org/repo:sel @rev" displays as "org/repo@rev:sel "); org, repo and
 * revision may hold none at all (hub names and git refs never do), a
 * selector only inside it (inner_ws), since it may name a file such as
 * "my model.gguf". Control characters (C0, DEL, C1, bidirectional controls)
 * would reach terminals and paths; bytes that are not UTF-8 have no display
 * form.
 */
static const char *name_problem(const char *s, size_t n, bool inner_ws)
{
	const unsigned char *u = (const unsigned char *)s;
	if (memchr(s, '\0', n))
		return "a NUL byte";
	if (inner_ws && (ws_at(u, n) || ws_before(u, n)))
		return "whitespace at its start or end";
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		if (!inner_ws && ws_at(u + i, n - i))
			return "whitespace";
		size_t k = mfs_utf8_char(u + i, n - i, &cp);
		if (!k)
			return "bytes that are not UTF-8";
		if (mfs_text_cp_is_control(cp))
			return "a control character";
		i += k;
	}
	return NULL;
}

static bool is_dot_name(struct span s)
{
	return span_eq(s, ".") || span_eq(s, "..");
}

static char *span_dup(struct span s)
{
	return s.present ? strndup(s.p, s.n) : NULL;
}

int mfs_ref_parse(const char *text, struct mfs_ref *out, struct mfs_err *err)
{
	static const char *const url_prefixes[] = { "https://huggingface.co/",
						    "http://huggingface.co/" };
	if (!text)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "no model ref given; " REF_FORMS);
	struct span in = trim(text);
	if (in.n == 0)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "empty model ref; " REF_FORMS);
	if (has_control(in))
		REF_FAIL(err, in, "it contains a control character");

	struct parts p = { 0 };
	struct span tail = { 0 }, tree_rev = { 0 };
	const char *why = NULL;
	bool is_url = false;
	for (size_t i = 0; i < sizeof(url_prefixes) / sizeof(url_prefixes[0]); i++) {
		size_t k = strlen(url_prefixes[i]);
		if (in.n >= k && memcmp(in.p, url_prefixes[i], k) == 0) {
			is_url = true;
			why = split_url((struct span){ in.p + k, in.n - k, true }, &p.org,
					&tail, &tree_rev);
			break;
		}
	}
	if (!is_url) {
		const char *slash = span_chr(in, '/');
		if (!slash) {
			why = "no '/' between organisation and repository";
		} else {
			p.org = (struct span){ in.p, (size_t)(slash - in.p), true };
			tail = (struct span){ slash + 1, in.n - (size_t)(slash + 1 - in.p), true };
		}
	}
	if (!why && p.org.n == 0)
		why = "empty organisation";
	if (!why && span_chr(p.org, ':'))
		why = "the organisation has a ':' (only https://huggingface.co/ URLs are understood)";
	if (!why && tail.n == 0)
		why = "empty repository name";
	if (!why)
		why = split_tail(tail, &p);
	if (!why && (is_dot_name(p.org) || is_dot_name(p.repo)))
		why = "'.' and '..' are not organisation or repository names";
	if (!why && p.revision.present && span_chr(p.revision, ':'))
		why = "a revision cannot contain ':'";
	if (why)
		REF_FAIL(err, in, why);

	char *rev = NULL;
	if (tree_rev.present) {
		bool bad = false;
		rev = percent_decode(tree_rev, &bad);
		if (bad)
			REF_FAIL(err, in, "malformed percent-escape in the /tree/ revision");
		if (rev && strchr(rev, ':')) {
			free(rev);
			REF_FAIL(err, in, "a revision cannot contain ':'");
		}
	} else {
		rev = span_dup(p.revision);
	}
	/* Every component is checked in its final form: a /tree/ revision
	 * after percent-decoding ("%20" is a space). */
	static const char *const what[] = { "organisation", "repository name", "revision",
					    "selector" };
	struct span comp[] = { p.org, p.repo,
			       tree_rev.present ? (struct span){ rev, rev ? strlen(rev) : 0, true }
						: p.revision,
			       p.selector };
	for (size_t i = 0; i < sizeof(comp) / sizeof(comp[0]); i++) {
		const char *bad = comp[i].present && comp[i].p
					  ? name_problem(comp[i].p, comp[i].n, i == 3)
					  : NULL;
		if (bad) {
			char reason[96];
			snprintf(reason, sizeof(reason), "the %s contains %s", what[i], bad);
			free(rev);
			REF_FAIL(err, in, reason);
		}
	}
	struct mfs_ref r = {
		.org = span_dup(p.org),
		.repo = span_dup(p.repo),
		.revision = rev,
		.selector = span_dup(p.selector),
	};
	if (!r.org || !r.repo || ((tree_rev.present || p.revision.present) && !r.revision) ||
	    (p.selector.present && !r.selector)) {
		mfs_ref_release(&r);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory parsing a model ref");
	}
	*out = r;
	return 0;
}

void mfs_ref_release(struct mfs_ref *ref)
{
	if (!ref)
		return;
	free(ref->org);
	free(ref->repo);
	free(ref->revision);
	free(ref->selector);
	memset(ref, 0, sizeof(*ref));
}

char *mfs_ref_display(const struct mfs_ref *ref)
{
	if (!ref || !ref->org || !ref->repo)
		return NULL;
	size_t n = strlen(ref->org) + 1 + strlen(ref->repo) + 1;
	if (ref->revision)
		n += 1 + strlen(ref->revision);
	if (ref->selector)
		n += 1 + strlen(ref->selector);
	char *s = malloc(n);
	if (!s)
		return NULL;
	char *o = stpcpy(stpcpy(stpcpy(s, ref->org), "/"), ref->repo);
	if (ref->revision)
		o = stpcpy(stpcpy(o, "@"), ref->revision);
	if (ref->selector)
		stpcpy(stpcpy(o, ":"), ref->selector);
	return s;
}
