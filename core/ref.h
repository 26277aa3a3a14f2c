/*
 * ref.h - model refs: what a user types to name a model.
 *
 * A model ref names a repository, optionally a revision and a selector:
 *
 *     org/repo[@revision][:selector]       (":sel@rev" is accepted too)
 *     https://huggingface.co/org/repo[/tree/REVISION]
 *
 * The grammar is facts.md §3 (mesh-llm's model-ref rules), restated:
 *  - the text is trimmed (Unicode White_Space, as Rust's str::trim); empty is
 *    an error;
 *  - a text starting with "https://huggingface.co/" or "http://huggingface.co/"
 *    (case-sensitive) is a URL: "?query" and "#fragment" are dropped, leading
 *    and trailing '/' trimmed, and what remains must be "org/TAIL" or
 *    "org/TAIL/tree/REV"; TAIL is parsed as below and a /tree/REV revision
 *    overrides an "@rev" in TAIL. Anything else (a /resolve/ or /blob/ URL,
 *    /datasets/..., extra segments after REV) is an error;
 *  - otherwise the text is split at the first '/' into org and tail; org is
 *    non-empty and has no ':' (which is what rejects other URL schemes);
 *  - in the tail the first '@' and the first ':' split repo, revision and
 *    selector: "repo@rev:sel" and "repo:sel@rev" both mean revision rev and
 *    selector sel; whatever follows the later separator belongs to the last
 *    component, so "org/repo@main/file.gguf" has revision "main/file.gguf";
 *  - repo has no '/'; every component that is present is non-empty.
 *
 * modelfs is stricter than mesh-llm in five documented ways: a ref with an
 * ASCII control character (0x00-0x1f, 0x7f) is refused; org, repo and
 * revision (a /tree/ revision after decoding) may not contain whitespace
 * (Unicode White_Space), a selector not at its start or end (inside, it may
 * name a file with a space); no component may contain a C1 or
 * bidirectional control character
 * (U+0080..U+009F, U+200E/F, U+202A..U+202E, U+2066..U+2069, U+2028/9) or
 * bytes that are not UTF-8, so that the display form of every accepted ref
 * parses back to the same ref ("org/repo:sel @rev" would otherwise keep
 * "sel " and print as "org/repo@rev:sel ", which trims to another ref, and a
 * name with a space is no hub name anyway); org and repo may not
 * be "." or ".." (they become path components); a revision may not contain
 * ':' (git forbids it in ref names, and it would make "org/repo:sel@re:v"
 * display as a different ref); and the REV of a /tree/REV URL is
 * percent-decoded ("refs%2Fpr%2F1" is revision "refs/pr/1"), since the hub
 * client percent-encodes revisions itself and would otherwise encode twice.
 *
 * No function here blocks or keeps state; all are thread-safe.
 */
#ifndef MFS_REF_H
#define MFS_REF_H

#include "err.h"

struct mfs_ref {
	char *org;        /* non-empty, no ':' or '/', not "." or ".." */
	char *repo;       /* non-empty, no '/', not "." or ".." */
	char *revision;   /* NULL when absent, else non-empty, no ':' (may contain '/') */
	char *selector;   /* NULL when absent, else non-empty (may contain '/') */
};

/*
 * Parses a model ref. Returns 0 and fills *out (all strings malloc'd, owned by
 * the caller, released with mfs_ref_release); -EINVAL (kind MFS_ERR_PARSE)
 * with a message that quotes the input, says what is wrong and names the
 * expected forms; -ENOMEM. *out is written only on success. text may be NULL
 * (-EINVAL).
 */
int mfs_ref_parse(const char *text, struct mfs_ref *out, struct mfs_err *err);

/* Frees the strings and zeroes *ref. NULL, or a zeroed ref, is a no-op. */
void mfs_ref_release(struct mfs_ref *ref);

/*
 * Display form "org/repo[@rev][:sel]" (always revision before selector), in a
 * malloc'd string the caller frees; NULL on ENOMEM or when org or repo is NULL.
 * For a ref from mfs_ref_parse, parsing the display form gives back an equal
 * ref.
 */
char *mfs_ref_display(const struct mfs_ref *ref);

#endif
