/*
 * json_map.c — CUR 2.0's map columns read as the flat JSON objects they are.
 *
 * product, resource_tags and cost_category are JSON objects of strings
 * (AWS's CUR 2.0 data dictionary: map<string,string>), one of each per line
 * item.  jsonb_in reads any JSON: a lexer that appends a string character by
 * character, a parse state per token, then a sort of the keys; for these
 * columns it cost more than all the other columns of a row together.  Here
 * an object of plain strings is read in one pass and its pairs handed to
 * JsonbValueToJsonb as jsonb_in would hand them: sorted the way jsonb orders
 * keys (shorter first, then bytewise), a repeated key keeping its last
 * value.  Anything else — an escape, a number, a nested value, a byte JSON
 * forbids unescaped — is left to jsonb_in (NULL here), which also gives
 * invalid JSON its error.  The bytes are valid in the database encoding:
 * COPY checked the line.  The result is the same jsonb, byte for byte
 * (test/pgtap/24_json_maps.sql compares the two on generated objects).
 */
#include "postgres.h"

#include "billops_json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

static inline const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* a string without escapes at p (after its opening quote); the char after the closing quote, or NULL */
static inline const char *
plain_string(const char *p, JsonbValue *v)
{
	const char *start = p;

	for (;; p++)
	{
		unsigned char ch = (unsigned char) *p;

		if (ch == '"')
			break;
		if (ch == '\\' || ch < 0x20)	/* an escape, a control character, or the end */
			return NULL;
	}
	v->type = jbvString;
	v->val.string.val = unconstify(char *, start);
	v->val.string.len = p - start;
	return p + 1;
}

/* jsonb's order of keys (jsonb_util.c, lengthCompareJsonbStringValue) */
static inline int
key_cmp(const JsonbValue *a, const JsonbValue *b)
{
	if (a->val.string.len != b->val.string.len)
		return a->val.string.len > b->val.string.len ? 1 : -1;
	return memcmp(a->val.string.val, b->val.string.val, a->val.string.len);
}

#define MAX_PAIRS 1024			/* more is left to jsonb_in: the buffer below stays small */

Jsonb *
billops_json_flat_string_map(const char *text, StringInfo keys)
{
	static JsonbPair *pairs = NULL;
	static int	room = 0;
	int			n = 0;
	int			kept;
	const char *p = skip_ws(text);
	JsonbValue	object;

	if (*p++ != '{')
		return NULL;
	p = skip_ws(p);
	if (*p == '}')
		p++;
	else
		for (;;)
		{
			if (n == MAX_PAIRS)
				return NULL;
			if (n == room)
			{
				room = Max(16, room * 2);
				pairs = pairs ? repalloc(pairs, sizeof(JsonbPair) * room)
					: MemoryContextAlloc(TopMemoryContext, sizeof(JsonbPair) * room);
			}
			if (*p++ != '"' || (p = plain_string(p, &pairs[n].key)) == NULL)
				return NULL;
			p = skip_ws(p);
			if (*p++ != ':')
				return NULL;
			p = skip_ws(p);
			if (*p++ != '"' || (p = plain_string(p, &pairs[n].value)) == NULL)
				return NULL;
			pairs[n].order = n;
			n++;
			p = skip_ws(p);
			if (*p == ',')
			{
				p = skip_ws(p + 1);
				continue;
			}
			if (*p++ != '}')
				return NULL;
			break;
		}
	if (*skip_ws(p) != '\0')
		return NULL;

	/* sorted by insertion (stable, and the keys are few and mostly in order) */
	for (int i = 1; i < n; i++)
	{
		JsonbPair	x = pairs[i];
		int			j = i - 1;

		while (j >= 0 && key_cmp(&pairs[j].key, &x.key) > 0)
		{
			pairs[j + 1] = pairs[j];
			j--;
		}
		pairs[j + 1] = x;
	}
	/* of a repeated key, its last value (as jsonb_in keeps) */
	kept = 0;
	for (int i = 0; i < n; i++)
	{
		if (i + 1 < n && key_cmp(&pairs[i].key, &pairs[i + 1].key) == 0)
			continue;
		pairs[kept++] = pairs[i];
	}
	if (keys != NULL)
		for (int i = 0; i < kept; i++)
		{
			appendBinaryStringInfo(keys, (char *) &pairs[i].key.val.string.len, sizeof(int));
			appendBinaryStringInfo(keys, pairs[i].key.val.string.val, pairs[i].key.val.string.len);
		}
	object.type = jbvObject;
	object.val.object.nPairs = kept;
	object.val.object.pairs = pairs;
	return JsonbValueToJsonb(&object);
}
