/*
 * aws_api.c — calls to AWS's JSON-protocol billing APIs (Cost Explorer,
 * Invoicing) and downloads of the documents they link to.
 *
 * One call is `POST /` with `X-Amz-Target: <prefix>.<Operation>`, a JSON body
 * and the service's JSON media type, signed with SigV4 over the body's
 * SHA-256 (sigv4.c).  Paging, caching, call counting and caps live in SQL
 * (65_aws_billing_api.sql), which calls billops._aws_api_call once per page:
 * this file only signs, sends, retries and turns AWS errors into SQLSTATEs.
 *
 * Failure policy:
 *   throttling (ThrottlingException, Cost Explorer's LimitExceededException),
 *   5xx and transport trouble  → retried with exponential backoff and full
 *      jitter, up to billops.aws_api_max_retries, sleeping on the latch;
 *      then 58030 (io_error).
 *   signature / credential / access errors → 28000, AWS's type and message.
 *      An InvalidSignatureException's message goes on with the canonical
 *      request AWS expected, which holds the session token: it is cut there.
 *   ValidationException, SerializationException, bad page tokens → 22023.
 *   ResourceNotFoundException → 42704; DataUnavailable/BillExpiration → 55000.
 * Neither model gives HTTP statuses for its errors, so decisions key on the
 * error type (`__type`, or the x-amzn-ErrorType header), not on the status.
 */
#include "postgres.h"

#include "billops.h"
#include "billops_credentials.h"
#include "billops_http.h"
#include "billops_sigv4.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#define AWS_API_BODY_MAX (32 * 1024 * 1024)
#define AWS_API_ERROR_BODY_MAX (64 * 1024)

PG_FUNCTION_INFO_V1(billops_aws_api_call);
PG_FUNCTION_INFO_V1(billops_aws_document_get);

typedef struct AwsJsonService
{
	const char *name;			/* as SQL names it */
	const char *display;		/* for messages */
	const char *signing_name;
	const char *target_prefix;
	const char *content_type;
} AwsJsonService;

static const AwsJsonService aws_json_services[] = {
	{"ce", "AWS Cost Explorer", "ce", "AWSInsightsIndexService", "application/x-amz-json-1.1"},
	{"invoicing", "AWS Invoicing", "invoicing", "Invoicing", "application/x-amz-json-1.0"},
};

static const AwsJsonService *
aws_json_service(const char *name)
{
	for (int i = 0; i < lengthof(aws_json_services); i++)
		if (strcmp(aws_json_services[i].name, name) == 0)
			return &aws_json_services[i];
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown AWS billing API \"%s\"", name),
			 errhint("Known: ce, invoicing.")));
	return NULL;				/* not reached */
}

/* The body as jsonb, or NULL when it is not valid JSON text. */
static Jsonb *
json_or_null(StringInfo body)
{
	JsonLexContext *lex;

	if (body->len == 0 || strlen(body->data) != (size_t) body->len)
		return NULL;
	lex = makeJsonLexContextCstringLen(body->data, body->len, GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
		return NULL;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(body->data)));
}

static char *
json_member_text(Jsonb *jb, const char *key)
{
	JsonbValue *v;

	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return NULL;
	v = getKeyJsonValueFromContainer(&jb->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * AWS's error type: "__type" may be "aws.ns#Name" or "Name:http://…" (and
 * the header the latter); keep only the Name.
 */
static char *
error_type_of(Jsonb *jb, const char *header_type)
{
	char	   *t = json_member_text(jb, "__type");
	char	   *p;

	if (t == NULL && header_type && header_type[0])
		t = pstrdup(header_type);
	if (t == NULL)
		return NULL;
	if ((p = strchr(t, ':')) != NULL)
		*p = '\0';
	if ((p = strrchr(t, '#')) != NULL)
		t = p + 1;
	return t;
}

/*
 * AWS's message, without anything that could hold a secret: the services
 * append the canonical request and string to sign to signature errors.
 */
static char *
safe_message(Jsonb *jb)
{
	char	   *m = json_member_text(jb, "message");
	char	   *cut;

	if (m == NULL)
		m = json_member_text(jb, "Message");
	if (m == NULL)
		return NULL;
	if ((cut = strstr(m, "The Canonical String")) != NULL)
		*cut = '\0';
	if ((cut = strstr(m, "The String-to-Sign")) != NULL)
		*cut = '\0';
	if ((cut = strchr(m, '\n')) != NULL)
		*cut = '\0';
	for (int n = strlen(m); n > 0 && (m[n - 1] == ' ' || m[n - 1] == '\n'); n--)
		m[n - 1] = '\0';
	if (strlen(m) > 500)
		m[500] = '\0';
	return m;
}

static bool
type_is(const char *type, const char *const *names)
{
	for (; type && *names; names++)
		if (strcmp(type, *names) == 0)
			return true;
	return false;
}

static const char *const retryable_types[] = {
	"ThrottlingException", "LimitExceededException", "TooManyRequestsException",
	"RequestLimitExceeded", "ProvisionedThroughputExceededException",
	"InternalFailure", "InternalServerException", "InternalServerError",
	"ServiceUnavailable", "ServiceUnavailableException", NULL
};
static const char *const auth_types[] = {
	"MissingAuthenticationTokenException", "IncompleteSignatureException",
	"InvalidSignatureException", "UnrecognizedClientException", "ExpiredTokenException",
	"InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDeniedException",
	"AccessDenied", "UnauthorizedOperation", NULL
};
static const char *const request_types[] = {
	"ValidationException", "SerializationException", "InvalidNextTokenException",
	"RequestChangedException", "UnknownOperationException", NULL
};
static const char *const state_types[] = {
	"DataUnavailableException", "BillExpirationException",
	"BillingViewHealthStatusException", NULL
};

static void
raise_api_error(const AwsJsonService *svc, const char *operation, long status,
				const char *type, const char *message, const char *request_id,
				const AwsCredentials *creds)
{
	int			sqlstate;
	const char *hint = NULL;

	if (type_is(type, auth_types) || status == 401 || status == 403)
	{
		sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		if (type && strcmp(type, "AccessDeniedException") == 0)
			hint = psprintf("The credentials need the IAM permission %s:%s.", svc->signing_name, operation);
		else if (type && strcmp(type, "ExpiredTokenException") == 0)
			hint = "The session token has expired; refresh the temporary credentials.";
		else if (message && strstr(message, "Signature expired"))
			hint = "The database server's clock is off by more than 15 minutes; fix its time synchronization.";
		else
			hint = "Check the credentials reference and the region of billops.aws_api_source (these APIs live in us-east-1).";
	}
	else if (type_is(type, request_types))
	{
		sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
		hint = "AWS refused the request's parameters; the message says which.";
	}
	else if (type && strcmp(type, "ResourceNotFoundException") == 0)
		sqlstate = ERRCODE_UNDEFINED_OBJECT;
	else if (type_is(type, state_types))
	{
		sqlstate = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
		hint = "AWS does not have this data (yet, or any more); try a later or shorter period.";
	}
	else
		sqlstate = ERRCODE_IO_ERROR;

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s %s failed: %s", svc->display, operation, type ? type : psprintf("HTTP %ld", status)),
			 errdetail("HTTP %ld%s%s; credentials from %s%s%s.", status,
					   message ? ": " : "", message ? message : "", creds->origin,
					   request_id && request_id[0] ? "; request id " : "", request_id ? request_id : ""),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * Send one signed call, retrying what is worth retrying; returns the parsed
 * answer.  *attempts tells how many requests were sent.
 */
static Jsonb *
aws_json_call(const AwsJsonService *svc, const char *endpoint, const char *region,
			  const char *credentials, const char *operation, const char *body,
			  char **request_id, int *attempts)
{
	CURLU	   *u = curl_url();
	char	   *host = NULL,
			   *port = NULL,
			   *path = NULL;
	char	   *host_header;
	char	   *target = psprintf("%s.%s", svc->target_prefix, operation);
	char		payload_hash[65];
	AwsCredentials *creds;
	char	   *last_problem = NULL;

	http_check_url_allowed(endpoint, svc->display);
	if (u == NULL || curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s endpoint \"%s\"", svc->display, endpoint)));
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	if (path && strcmp(path, "/") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s endpoint \"%s\" must not have a path", svc->display, endpoint),
				 errhint("The JSON protocol always posts to /; give scheme, host and port only.")));
	host_header = port ? psprintf("%s:%s", host, port) : pstrdup(host);
	curl_free(host);
	if (port)
		curl_free(port);
	if (path)
		curl_free(path);
	curl_url_cleanup(u);

	sigv4_sha256_hex(body, strlen(body), payload_hash);
	creds = aws_credentials_resolve(credentials);

	for (*attempts = 1;; (*attempts)++)
	{
		char		amz_date[17];
		SigV4Pair	hdrs[5];
		int			nh = 0;
		SigV4Request req;
		SigV4Scope	scope;
		List	   *wire;
		HttpStream *hs;
		const HttpResponseHead *head;
		StringInfoData answer;
		Jsonb	   *jb;
		char	   *type;

		sigv4_format_amz_date((pg_time_t) time(NULL), amz_date);
		hdrs[nh++] = (SigV4Pair) {"content-type", svc->content_type};
		hdrs[nh++] = (SigV4Pair) {"host", host_header};
		hdrs[nh++] = (SigV4Pair) {"x-amz-date", amz_date};
		if (creds->session_token)
			hdrs[nh++] = (SigV4Pair) {"x-amz-security-token", creds->session_token};
		hdrs[nh++] = (SigV4Pair) {"x-amz-target", target};
		req = (SigV4Request) {"POST", "/", NULL, 0, hdrs, nh, payload_hash};
		scope = (SigV4Scope) {region, svc->signing_name, amz_date, true};
		wire = sigv4_sign_to_headers(&req, &scope, creds->access_key_id, creds->secret_access_key);
		wire = lappend(wire, pstrdup("Accept: application/json"));

		hs = http_open("POST", psprintf("%s/", endpoint[strlen(endpoint) - 1] == '/'
										? pnstrdup(endpoint, strlen(endpoint) - 1) : endpoint),
					   wire, body, strlen(body), true);
		http_headers_free_wiped(wire);
		head = http_head(hs);

		initStringInfo(&answer);
		if (!http_failed(hs))
			(void) http_read_all(hs, &answer, head->status >= 200 && head->status < 300
								 ? AWS_API_BODY_MAX : AWS_API_ERROR_BODY_MAX,
								 psprintf("%s %s answer", svc->display, operation));
		if (http_failed(hs))
		{
			if (!http_error_transient(hs))
				ereport(ERROR,
						(errcode(ERRCODE_IO_ERROR),
						 errmsg("could not call %s %s: %s", svc->display, operation, http_error(hs))));
			last_problem = pstrdup(http_error(hs));
			http_close(hs);
		}
		else
		{
			*request_id = pstrdup(head->request_id);
			http_close(hs);
			jb = json_or_null(&answer);
			if (head->status >= 200 && head->status < 300)
			{
				if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
					ereport(ERROR,
							(errcode(ERRCODE_IO_ERROR),
							 errmsg("%s %s answered with something that is not a JSON object", svc->display, operation),
							 errdetail("HTTP %ld, %d bytes; request id %s.", head->status, answer.len, *request_id)));
				aws_credentials_free(creds);
				return jb;
			}
			type = error_type_of(jb, NULL);
			if (!(type_is(type, retryable_types) || head->status >= 500 || head->status == 429))
				raise_api_error(svc, operation, head->status, type, safe_message(jb), *request_id, creds);
			last_problem = psprintf("HTTP %ld %s", head->status, type ? type : "");
		}
		if (*attempts > billops_aws_api_max_retries)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("%s %s failed after %d attempts", svc->display, operation, *attempts),
					 errdetail("Last failure: %s.", last_problem),
					 errhint("AWS is throttling or unavailable; data already fetched is unchanged. Retry later, or raise billops.aws_api_max_retries.")));
		ereport(DEBUG1, (errmsg("retrying %s %s after %s", svc->display, operation, last_problem)));
		http_backoff_sleep(*attempts - 1, billops_aws_api_retry_base_ms);
	}
}

/*
 * billops._aws_api_call(endpoint text, region text, credentials text,
 *                       service text, operation text, request jsonb,
 *                       OUT response jsonb, OUT request_id text, OUT attempts int)
 */
Datum
billops_aws_api_call(PG_FUNCTION_ARGS)
{
	const AwsJsonService *svc;
	char	   *operation;
	char	   *request_id = NULL;
	int			attempts = 0;
	Jsonb	   *answer;
	Jsonb	   *request;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	static const char *const required[] = {"endpoint", "region", "credentials", "service", "operation", "request"};

	billops_require_args(fcinfo, "billops._aws_api_call", required, lengthof(required));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	svc = aws_json_service(text_to_cstring(PG_GETARG_TEXT_PP(3)));
	operation = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (strspn(operation, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != strlen(operation) ||
		operation[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid AWS operation name \"%s\"", operation)));

	request = PG_GETARG_JSONB_P(5);
	if (!JB_ROOT_IS_OBJECT(request))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an AWS request body is a JSON object")));
	answer = aws_json_call(svc, text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
						   text_to_cstring(PG_GETARG_TEXT_PP(2)), operation,
						   JsonbToCString(NULL, &request->root, VARSIZE(request)),
						   &request_id, &attempts);
	values[0] = JsonbPGetDatum(answer);
	values[1] = request_id ? CStringGetTextDatum(request_id) : (Datum) 0;
	nulls[1] = request_id == NULL || request_id[0] == '\0';
	values[2] = Int32GetDatum(attempts);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/*
 * billops._aws_document_get(url text, max_bytes int) RETURNS bytea
 *
 * An unsigned GET of a document link AWS handed out (GetInvoicePDF's
 * pre-signed URLs).  The query string is a short-lived credential: no
 * message shows it, only scheme, host and path.
 */
Datum
billops_aws_document_get(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		max_bytes = PG_GETARG_INT32(1);
	char	   *shown = pstrdup(url);
	char	   *q = strpbrk(shown, "?#");
	HttpStream *hs;
	const HttpResponseHead *head;
	StringInfoData body;
	int			attempt;

	if (q)
		*q = '\0';
	http_check_url_allowed(shown, "AWS document");
	for (attempt = 0;; attempt++)
	{
		hs = http_open("GET", url, NIL, NULL, 0, true);
		head = http_head(hs);
		initStringInfo(&body);
		if (!http_failed(hs))
			(void) http_read_all(hs, &body, head->status == 200 ? (size_t) max_bytes : AWS_API_ERROR_BODY_MAX,
								 psprintf("document %s", shown));
		if (!http_failed(hs) && head->status == 200)
			break;
		if (!http_failed(hs) && head->status < 500 && head->status != 429)
		{
			/* S3-style XML error: the Code is enough, the rest may echo the query */
			char	   *code = strstr(body.data, "<Code>");
			char	   *end = code ? strstr(code, "</Code>") : NULL;

			code = (code && end && end - code < 80) ? pnstrdup(code + 6, end - code - 6) : psprintf("HTTP %ld", head->status);
			ereport(ERROR,
					(errcode(head->status == 403 ? ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION : ERRCODE_IO_ERROR),
					 errmsg("could not download the AWS document %s: %s", shown, code),
					 errdetail("HTTP %ld.", head->status),
					 head->status == 403 ? errhint("Document links expire; ask AWS for a new one (GetInvoicePDF).") : 0));
		}
		if (http_failed(hs) && !http_error_transient(hs))
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not download the AWS document %s: %s", shown, http_error(hs))));
		if (attempt >= billops_aws_api_max_retries)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not download the AWS document %s after %d attempts", shown, attempt + 1),
					 errdetail("Last failure: %s.", http_failed(hs) ? http_error(hs) : psprintf("HTTP %ld", head->status))));
		http_close(hs);
		http_backoff_sleep(attempt, billops_aws_api_retry_base_ms);
	}
	http_close(hs);
	{
		bytea	   *out = palloc(VARHDRSZ + body.len);

		SET_VARSIZE(out, VARHDRSZ + body.len);
		memcpy(VARDATA(out), body.data, body.len);
		PG_RETURN_BYTEA_P(out);
	}
}
