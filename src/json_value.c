/*
 * json_value.c — reading the JSON that AWS and BILL answer with (see billops_json.h).
 */
#include "postgres.h"

#include "billops_json.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

Jsonb *
billops_json_parse(const char *text, size_t len)
{
	JsonLexContext *lex;

	if (text == NULL || len == 0 || strlen(text) != len)
		return NULL;
	lex = makeJsonLexContextCstringLen(unconstify(char *, text), (int) len, GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
		return NULL;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

char *
billops_json_string(Jsonb *jb, const char *key)
{
	JsonbValue *v;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	v = getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}
