/*
 * aws_api.c — calls to AWS's JSON-protocol billing APIs (Cost Explorer,
 * Invoicing) and downloads of the documents they link to.
 *
 * One call is `POST /` with `X-Amz-Target: <prefix>.<Operation>`, a JSON body
 * and the service's JSON media type, signed with SigV4 over the body's
 * SHA-256 (sigv4.c).  Paging, caching, call counting and caps live in SQL
 * (25_aws_billing_api.sql), which calls billops._aws_api_call once per page:
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
#include "billops_aws_api.h"
#include "billops_aws_request.h"
#include "billops_credentials.h"
#include "billops_http.h"
#include "billops_json.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

/* billops.aws_api_max_retries, billops.aws_api_retry_base (defined in billops_aws_api_init) */
static int	aws_api_max_retries = 4;
static int	aws_api_retry_base_ms = 500;

void
billops_aws_api_init(void)
{
	DefineCustomIntVariable("billops.aws_api_max_retries",
							"Retries of a Cost Explorer or Invoicing call that was throttled, failed with 5xx or lost its connection.",
							NULL, &aws_api_max_retries, 4, 0, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.aws_api_retry_base",
							"Base of the exponential backoff (with full jitter) between Cost Explorer / Invoicing retries.",
							NULL, &aws_api_retry_base_ms, 500, 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

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

/*
 * AWS's error type: "__type" may be "aws.ns#Name" or "Name:http://…" (and
 * the header the latter); keep only the Name.
 */
static char *
error_type_of(Jsonb *jb, const char *header_type)
{
	char	   *t = billops_json_string(jb, "__type");
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
	char	   *m = billops_json_string(jb, "message");
	char	   *cut;

	if (m == NULL)
		m = billops_json_string(jb, "Message");
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

/* What aws_json_call's callbacks need to know about the call. */
typedef struct AwsJsonCall
{
	const AwsJsonService *svc;
	const char *operation;
	StringInfoData answer;		/* the accepted answer's body */
} AwsJsonCall;

/*
 * A 2xx answer is read here, whole: a body cut off in transit is a transport
 * failure, so the shared path retries it like a lost connection.
 */
static bool
json_accept(HttpStream *hs, void *arg)
{
	AwsJsonCall *c = arg;
	long		status = http_head(hs)->status;

	if (http_failed(hs) || status < 200 || status >= 300)
		return false;
	resetStringInfo(&c->answer);
	(void) http_read_all(hs, &c->answer, AWS_API_BODY_MAX, psprintf("%s %s answer", c->svc->display, c->operation));
	return !http_failed(hs);
}

/*
 * An error answer: the decision keys on AWS's error type (in the body, or
 * the x-amzn-ErrorType header), since neither model gives HTTP statuses.
 */
static char *
json_refuse(HttpStream *hs, const AwsCredentials *creds, void *arg)
{
	AwsJsonCall *c = arg;
	const HttpResponseHead *head = http_head(hs);
	StringInfoData answer;
	Jsonb	   *jb;
	char	   *type;

	initStringInfo(&answer);
	(void) http_read_all(hs, &answer, AWS_API_ERROR_BODY_MAX,
						 psprintf("%s %s answer", c->svc->display, c->operation));
	jb = billops_json_parse(answer.data, answer.len);
	type = error_type_of(jb, NULL);
	if (type && strcmp(type, "ExpiredTokenException") == 0 && aws_request_credentials_expired(creds))
		return pstrdup("the temporary credentials expired");	/* made again and resent once */
	if (!(type_is(type, retryable_types) || head->status >= 500 || head->status == 429))
		raise_api_error(c->svc, c->operation, head->status, type, safe_message(jb), head->request_id, creds);
	return psprintf("HTTP %ld %s", head->status, type ? type : "");
}

/*
 * Send one signed call through the shared AWS request path; returns the
 * parsed answer.  *attempts tells how many requests were sent.
 */
static Jsonb *
aws_json_call(const AwsJsonService *svc, const char *endpoint, const char *region,
			  const char *credentials, const AwsRoleSpec *role, const char *operation, const char *body,
			  char **request_id, int *attempts)
{
	AwsEndpoint ep;
	AwsJsonCall call = {svc, operation};
	SigV4Pair	hdrs[2];
	AwsRequest	req = {0};
	HttpStream *hs;
	long		status;
	Jsonb	   *jb;

	/* the source's own endpoint, else as the SDKs configure it (aws_endpoint.c) */
	endpoint = aws_known_service_endpoint(svc->name, endpoint, credentials, region, NULL);
	http_check_url_allowed(endpoint, svc->display);
	aws_endpoint_parse(endpoint, svc->display, &ep);
	if (ep.path[0] != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s endpoint \"%s\" must not have a path", svc->display, endpoint),
				 errhint("The JSON protocol always posts to /; give scheme, host and port only.")));
	hdrs[0] = (SigV4Pair) {"content-type", svc->content_type};
	hdrs[1] = (SigV4Pair) {"x-amz-target", psprintf("%s.%s", svc->target_prefix, operation)};
	req.what = psprintf("%s %s", svc->display, operation);
	req.service = svc->signing_name;
	req.region = region;
	req.credentials = credentials;
	req.role = role;
	req.method = "POST";
	req.endpoint = &ep;
	req.path = "/";
	req.headers = hdrs;
	req.nheaders = lengthof(hdrs);
	req.plain_headers = list_make1(pstrdup("Accept: application/json"));
	req.body = body;
	req.body_len = strlen(body);
	req.bounded = true;
	req.max_retries = aws_api_max_retries;
	req.retry_base_ms = aws_api_retry_base_ms;
	req.retries_hint = "AWS is throttling or unavailable; data already fetched is unchanged. Retry later, or raise billops.aws_api_max_retries.";
	req.accept = json_accept;
	req.refuse = json_refuse;
	req.arg = &call;
	initStringInfo(&call.answer);
	hs = aws_request_send(&req, attempts);
	*request_id = pstrdup(http_head(hs)->request_id);
	status = http_head(hs)->status;
	http_close(hs);

	jb = billops_json_parse(call.answer.data, call.answer.len);
	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("%s %s answered with something that is not a JSON object", svc->display, operation),
				 errdetail("HTTP %ld, %d bytes; request id %s.", status, call.answer.len, *request_id)));
	return jb;
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
	AwsRoleSpec role = {0};
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	/* endpoint NULL: as the SDKs configure it */
	static const char *const required[] = {NULL, "region", "credentials", "service", "operation", "request"};

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
	if (!PG_ARGISNULL(6))
	{
		role.role_arn = text_to_cstring(PG_GETARG_TEXT_PP(6));
		role.external_id = PG_ARGISNULL(7) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(7));
		role.session_name = PG_ARGISNULL(8) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(8));
	}
	answer = aws_json_call(svc, PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
						   text_to_cstring(PG_GETARG_TEXT_PP(2)), PG_ARGISNULL(6) ? NULL : &role, operation,
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
		if (attempt >= aws_api_max_retries)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not download the AWS document %s after %d attempts", shown, attempt + 1),
					 errdetail("Last failure: %s.", http_failed(hs) ? http_error(hs) : psprintf("HTTP %ld", head->status))));
		http_close(hs);
		http_backoff_sleep(attempt, aws_api_retry_base_ms);
	}
	http_close(hs);
	{
		bytea	   *out = palloc(VARHDRSZ + body.len);

		SET_VARSIZE(out, VARHDRSZ + body.len);
		memcpy(VARDATA(out), body.data, body.len);
		PG_RETURN_BYTEA_P(out);
	}
}
