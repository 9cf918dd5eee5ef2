/*
 * sql_api.c — the SQL-callable faces of the S3 client, the signer and the
 * credential resolver.  Source settings are read from billops.cur_source, so
 * SQL never passes a key around: only a source id or a credentials reference.
 */
#include "postgres.h"

#include "billops.h"
#include "billops_credentials.h"
#include "billops_sts.h"
#include "billops_cur.h"
#include "billops_http.h"
#include "billops_s3.h"
#include "billops_sigv4.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(billops_s3_list);
PG_FUNCTION_INFO_V1(billops_s3_get_text);
PG_FUNCTION_INFO_V1(billops_sigv4_sign);
PG_FUNCTION_INFO_V1(billops_credentials_check);
PG_FUNCTION_INFO_V1(billops_credentials_reference_valid);
PG_FUNCTION_INFO_V1(billops_check_url);

/*
 * billops._s3_list(source_id int, prefix text, delimiter text)
 *   RETURNS TABLE (key text, size bigint, etag text, last_modified timestamptz, is_prefix bool)
 */
Datum
billops_s3_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	S3Location	loc;
	List	   *objs;
	ListCell   *lc;

	static const char *const required[] = {"source_id", NULL, NULL};

	billops_require_args(fcinfo, "billops._s3_list", required, lengthof(required));
	InitMaterializedSRF(fcinfo, 0);
	s3_location_for_source(PG_GETARG_INT32(0), &loc);
	objs = s3_list(&loc, PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1)),
				   PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)));
	foreach(lc, objs)
	{
		S3Object   *o = lfirst(lc);
		Datum		v[5];
		bool		n[5] = {false, o->size < 0, o->etag == NULL, o->last_modified == NULL, false};

		v[0] = CStringGetTextDatum(o->key);
		v[1] = Int64GetDatum(o->size);
		v[2] = o->etag ? CStringGetTextDatum(o->etag) : (Datum) 0;
		v[3] = o->last_modified ? DirectFunctionCall3(timestamptz_in, CStringGetDatum(o->last_modified),
													  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)) : (Datum) 0;
		v[4] = BoolGetDatum(o->is_prefix);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

/* billops._s3_get_text(source_id int, key text, max_bytes int) RETURNS text */
Datum
billops_s3_get_text(PG_FUNCTION_ARGS)
{
	S3Location	loc;
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	size_t		len;
	char	   *body;

	s3_location_for_source(PG_GETARG_INT32(0), &loc);
	body = s3_get_small(&loc, key, (size_t) PG_GETARG_INT32(2), &len);
	if (!pg_verifymbstr(body, (int) len, true) || memchr(body, '\0', len) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("s3://%s/%s is not valid text in the database encoding", loc.bucket, key)));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(body, (int) len));
}

static void
flat_pairs(ArrayType *arr, SigV4Pair **out, int *n, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			count;

	*out = NULL;
	*n = 0;
	if (arr == NULL)
		return;
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
	if (count % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a flat array of name, value pairs", what)));
	*out = palloc(sizeof(SigV4Pair) * Max(count / 2, 1));
	for (int i = 0; i < count; i += 2)
	{
		(*out)[i / 2].key = nulls[i] ? "" : TextDatumGetCString(elems[i]);
		(*out)[i / 2].value = nulls[i + 1] ? "" : TextDatumGetCString(elems[i + 1]);
	}
	*n = count / 2;
}

/*
 * billops.sigv4_sign(method, path, query text[], headers text[], payload bytea,
 *                    region, service, amz_date, credentials, normalize_path)
 *   RETURNS TABLE (canonical_request text, string_to_sign text, authorization text)
 *
 * Diagnostics: shows how pg_billops would sign a request.  Keys come from a
 * credentials reference, so no secret ever travels through SQL or the logs.
 */
Datum
billops_sigv4_sign(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	SigV4Request req;
	SigV4Scope	scope;
	SigV4Result res;
	SigV4Pair  *q,
			   *h;
	int			nq,
				nh;
	char		hash[65];
	bytea	   *payload = PG_ARGISNULL(4) ? NULL : PG_GETARG_BYTEA_PP(4);
	AwsCredentials *creds;
	Datum		v[3];
	bool		n[3] = {false, false, false};

	/* query, headers and payload may be NULL (none, none, empty) */
	static const char *const required[] = {"method", "path", NULL, NULL, NULL, "region", "service", "amz_date",
	"credentials", "normalize_path"};

	billops_require_args(fcinfo, "billops.sigv4_sign", required, lengthof(required));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	flat_pairs(PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2), &q, &nq, "query");
	flat_pairs(PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3), &h, &nh, "headers");
	if (payload)
		sigv4_sha256_hex(VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload), hash);
	else
		strlcpy(hash, SIGV4_EMPTY_SHA256, sizeof(hash));

	req.method = text_to_cstring(PG_GETARG_TEXT_PP(0));
	req.path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	req.query = q;
	req.nquery = nq;
	req.headers = h;
	req.nheaders = nh;
	req.payload_hash = hash;
	scope.region = text_to_cstring(PG_GETARG_TEXT_PP(5));
	scope.service = text_to_cstring(PG_GETARG_TEXT_PP(6));
	scope.amz_date = text_to_cstring(PG_GETARG_TEXT_PP(7));
	scope.normalize_path = PG_GETARG_BOOL(9);
	if (strlen(scope.amz_date) != 16)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amz_date must look like 20150830T123600Z")));

	creds = aws_credentials_resolve(text_to_cstring(PG_GETARG_TEXT_PP(8)));
	/* temporary credentials: sign the token header, as every request of ours does */
	if (creds->session_token)
	{
		bool		present = false;

		for (int i = 0; i < nh; i++)
			present |= pg_strcasecmp(h[i].key, "x-amz-security-token") == 0;
		if (!present)
		{
			h = h ? repalloc(h, sizeof(SigV4Pair) * (nh + 1)) : palloc(sizeof(SigV4Pair));
			h[nh].key = "X-Amz-Security-Token";
			h[nh].value = creds->session_token;
			req.headers = h;
			req.nheaders = ++nh;
		}
	}
	sigv4_sign(&req, &scope, creds->access_key_id, creds->secret_access_key, &res);
	aws_credentials_free(creds);

	v[0] = CStringGetTextDatum(res.canonical_request);
	v[1] = CStringGetTextDatum(res.string_to_sign);
	v[2] = CStringGetTextDatum(res.authorization);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), v, n)));
}

/*
 * billops.credentials_check(reference text, region text, ask_aws boolean,
 *                            role_arn text, role_external_id text, role_session_name text)
 *   RETURNS TABLE (origin text, access_key_id text, session_token boolean,
 *                  role_arn text, expires_at timestamptz, caller_arn text)
 *
 * Lets an admin confirm which keys a reference resolves to without revealing
 * them: the access key id is masked to its last four characters, the session
 * token is only said to exist.  With ask_aws, STS GetCallerIdentity says who
 * AWS takes them for (it needs no permission).
 */
Datum
billops_credentials_check(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	AwsCredentials *c;
	size_t		idlen;
	Datum		v[6];
	bool		n[6] = {false, false, false, false, false, true};
	char	   *region = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	AwsRoleSpec role = {0};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a credentials reference is required")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (!PG_ARGISNULL(3))
	{
		role.role_arn = text_to_cstring(PG_GETARG_TEXT_PP(3));
		role.external_id = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
		role.session_name = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	}
	c = aws_credentials_get(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_ARGISNULL(3) ? NULL : &role, region);
	idlen = strlen(c->access_key_id);
	v[0] = CStringGetTextDatum(c->origin);
	v[1] = CStringGetTextDatum(psprintf("****%s", idlen > 4 ? c->access_key_id + idlen - 4 : ""));
	v[2] = BoolGetDatum(c->session_token != NULL);
	n[3] = c->role_arn == NULL;
	v[3] = c->role_arn ? CStringGetTextDatum(c->role_arn) : (Datum) 0;
	n[4] = c->expiration == 0;
	v[4] = TimestampTzGetDatum(c->expiration);
	if (!PG_ARGISNULL(2) && PG_GETARG_BOOL(2))
	{
		AwsCallerIdentity *id = aws_sts_get_caller_identity(c, text_to_cstring(PG_GETARG_TEXT_PP(0)), region);

		v[5] = CStringGetTextDatum(id->arn);
		n[5] = false;
	}
	aws_credentials_free(c);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), v, n)));
}

/* billops.credentials_reference_valid(text) RETURNS boolean — used by a CHECK constraint */
Datum
billops_credentials_reference_valid(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(aws_credentials_reference_valid(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/* billops._check_url(url text, what text) RETURNS void — https, or http to loopback only */
Datum
billops_check_url(PG_FUNCTION_ARGS)
{
	http_check_url_allowed(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}
