/*
 * text.c - escaping untrusted strings for terminals and text output; see
 * text.h for what is escaped and why.
 *
 * The UTF-8 decoder is the strict one of RFC 3629: shortest form only, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. A byte that does not
 * start a valid character is escaped alone and decoding resumes at the next
 * byte, so one bad byte never hides the characters after it.
 */
#include "text.h"

#include <stdlib.h>
#include <string.h>

size_t mfs_utf8_char(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (n == 0)
		return 0;
	unsigned char c = s[0];
	uint32_t v, min;
	size_t len;
	if (c < 0x80) {
		if (cp)
			*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	if (cp)
		*cp = v;
	return len;
}

bool mfs_utf8_is_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t k = mfs_utf8_char(u + i, n - i, NULL);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

bool mfs_text_cp_is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
	       cp == 0x2028 || cp == 0x2029;
}

char *mfs_text_escape_n(const char *s, size_t n, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t take = n;
	bool cut = false;
	if (max && n > max) {
		take = max;
		cut = true;
	}
	/* Worst case: every byte as \xHH, plus "..." and the NUL. */
	char *out = malloc(take * 4 + 4);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < take;) {
		uint32_t cp;
		size_t k = mfs_utf8_char(u + i, n - i, &cp);
		if (k && i + k > take) /* a character across the cut: stop before it */
			break;
		if (k && !mfs_text_cp_is_control(cp)) {
			if (cp == '\\')
				out[o++] = '\\';
			memcpy(out + o, u + i, k);
			o += k;
			i += k;
			continue;
		}
		if (!k)
			k = 1;
		for (size_t j = 0; j < k; j++) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[u[i + j] >> 4];
			out[o++] = hex[u[i + j] & 15];
		}
		i += k;
	}
	if (cut) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

char *mfs_text_escape(const char *s, size_t max)
{
	return mfs_text_escape_n(s ? s : "", s ? strlen(s) : 0, max);
}
