/*
 * xml_value.c — reading the small, fixed-shape XML answers AWS sends (S3's
 * listings and errors, STS's Query-protocol results and errors); see
 * billops_xml.h.  Not a general XML parser: these answers have no
 * attributes we need, no CDATA and no repeated names at different depths
 * that matter, so the text of a named element is found by its tags.
 */
#include "postgres.h"

#include "billops_xml.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

static void
xml_unescape_into(StringInfo out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] != '&')
		{
			appendStringInfoChar(out, s[i]);
			continue;
		}
		if (strncmp(s + i, "&amp;", 5) == 0)
			appendStringInfoChar(out, '&'), i += 4;
		else if (strncmp(s + i, "&lt;", 4) == 0)
			appendStringInfoChar(out, '<'), i += 3;
		else if (strncmp(s + i, "&gt;", 4) == 0)
			appendStringInfoChar(out, '>'), i += 3;
		else if (strncmp(s + i, "&quot;", 6) == 0)
			appendStringInfoChar(out, '"'), i += 5;
		else if (strncmp(s + i, "&apos;", 6) == 0)
			appendStringInfoChar(out, '\''), i += 5;
		else if (strncmp(s + i, "&#", 2) == 0)
		{
			const char *semi = memchr(s + i, ';', len - i);
			unsigned long cp;
			char		utf8[8];
			int			n;

			if (semi == NULL)
			{
				appendStringInfoChar(out, '&');
				continue;
			}
			cp = (s[i + 2] == 'x' || s[i + 2] == 'X') ? strtoul(s + i + 3, NULL, 16) : strtoul(s + i + 2, NULL, 10);
			if (cp == 0 || cp > 0x10FFFF)
				cp = 0xFFFD;
			unicode_to_utf8((pg_wchar) cp, (unsigned char *) utf8);
			n = pg_utf_mblen((unsigned char *) utf8);
			appendBinaryStringInfo(out, utf8, n);
			i = semi - s;
		}
		else
			appendStringInfoChar(out, '&');
	}
}

char *
xml_child(const char *from, const char *limit, const char *tag, const char **next)
{
	char		open[64],
				close[64];
	const char *a,
			   *b;
	StringInfoData out;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	a = strstr(from, open);
	if (a == NULL || (limit && a >= limit))
		return NULL;
	a += strlen(open);
	b = strstr(a, close);
	if (b == NULL || (limit && b > limit))
		return NULL;
	if (next)
		*next = b + strlen(close);
	initStringInfo(&out);
	xml_unescape_into(&out, a, b - a);
	return out.data;
}

