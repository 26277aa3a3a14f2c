/*
 * text.h - untrusted strings made safe to print.
 *
 * Names and metadata come from hubs, listings and model files: a GGUF's
 * general.name, a tensor name, a path in a listing. Printed raw, such a
 * string can carry terminal control sequences (ESC [ ... moves the cursor,
 * rewrites the title, hides text), lines that forge other output, or bytes
 * that are not UTF-8. Every command that prints an untrusted string to a
 * terminal or a text output passes it through mfs_text_escape; JSON output is
 * made by jansson with JSON_ENSURE_ASCII instead (docs/names.md).
 *
 * Escaped, each byte as \xHH: C0 controls (0x00-0x1f, so also newline and
 * tab), DEL (0x7f), the C1 controls U+0080..U+009F (as their two UTF-8
 * bytes), the bidirectional controls U+200E, U+200F, U+202A..U+202E and
 * U+2066..U+2069 and the separators U+2028, U+2029 (which can reorder or
 * break what a reader sees), and every byte that is not part of valid,
 * shortest-form UTF-8. A backslash is written "\\" so that the output
 * reads back unambiguously. Everything else, including other non-ASCII
 * characters, is kept as is.
 *
 * No function here keeps state or blocks; all are thread-safe.
 */
#ifndef MFS_TEXT_H
#define MFS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Length in bytes (1..4) of the valid UTF-8 character at s[0..n) and its
 * code point in *cp (may be NULL), or 0 if s does not start with one
 * (truncated, overlong, a surrogate, above U+10FFFF, a stray continuation
 * byte) or n is 0.
 */
size_t mfs_utf8_char(const unsigned char *s, size_t n, uint32_t *cp);

/* True when s[0..n) is valid UTF-8 (an embedded NUL is valid UTF-8). */
bool mfs_utf8_is_valid(const char *s, size_t n);

/* True for a code point that mfs_text_escape escapes (C0, DEL, C1, the
 * bidirectional controls and line separators listed above). */
bool mfs_text_cp_is_control(uint32_t cp);

/*
 * The escaped form of s[0..n), as a malloc'd NUL-terminated string the caller
 * frees; NULL on ENOMEM. At most max input bytes are taken (0: no limit);
 * when s is cut, "..." follows (cut at a character boundary). s may be NULL
 * only when n is 0.
 */
char *mfs_text_escape_n(const char *s, size_t n, size_t max);

/* mfs_text_escape_n over a NUL-terminated string; NULL s gives "". */
char *mfs_text_escape(const char *s, size_t max);

#endif
