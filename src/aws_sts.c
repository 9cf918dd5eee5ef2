/*
 * aws_sts.c — AWS STS in the Query protocol (see billops_sts.h).
 *
 * The model is botocore's sts 2011-06-15 service-2.json: protocol "query",
 * POST / with a form body (Action, Version and the operation's members),
 * signing name "sts", answers in XML under the namespace
 * https://sts.amazonaws.com/doc/2011-06-15/ wrapped in <OpResult>, errors as
 * <ErrorResponse><Error><Type/><Code/><Message/></Error>.  AssumeRoleWithWebIdentity
 * needs no AWS credentials (the token is the proof) and is sent unsigned.
 *
 * Errors: what says "you may not" (AccessDenied, InvalidClientTokenId,
 * SignatureDoesNotMatch, ExpiredToken(Exception), InvalidIdentityToken,
 * IDPRejectedClaim, RegionDisabledException) → 28000; a request STS finds
 * malformed (ValidationError, MalformedPolicyDocument, PackedPolicyTooLarge)
 * → 22023; throttling, IDPCommunicationError and 5xx are retried.  Messages
 * name the role and the operation, never a key or a token.
 */
#include "postgres.h"

#include "billops.h"
#include "billops_aws_request.h"
#include "billops_sts.h"
#include "billops_xml.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#define STS_BODY_MAX (64 * 1024)
#define STS_MAX_RETRIES 4
#define STS_RETRY_BASE_MS 200

typedef struct StsCall
{
	const char *action;
	const char *role_arn;		/* for messages; NULL for GetCallerIdentity */
} StsCall;

static bool
sts_accept(HttpStream *hs, void *arg)
{
	return !http_failed(hs) && http_head(hs)->status == 200;
}

static bool
code_is(const char *code, const char *a)
{
	return code && strcmp(code, a) == 0;
}

static char *
sts_refuse(HttpStream *hs, const AwsCredentials *creds, void *arg)
{
	StsCall    *call = arg;
	const HttpResponseHead *head = http_head(hs);
	StringInfoData body;
	char	   *code,
			   *message;
	int			sqlstate;
	const char *hint = NULL;

	initStringInfo(&body);
	(void) http_read_all(hs, &body, STS_BODY_MAX, "STS error response");
	code = xml_child(body.data, NULL, "Code", NULL);
	message = xml_child(body.data, NULL, "Message", NULL);

	if (head->status >= 500 || code_is(code, "Throttling") || code_is(code, "ThrottlingException") ||
		code_is(code, "RequestLimitExceeded") || code_is(code, "IDPCommunicationError") || head->status == 429)
		return psprintf("STS %s answered HTTP %ld%s%s", call->action, head->status, code ? " " : "", code ? code : "");

	if (code_is(code, "ValidationError") || code_is(code, "MalformedPolicyDocument") ||
		code_is(code, "PackedPolicyTooLarge"))
	{
		sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
		hint = "Check the role ARN, the session name (2 to 64 of [A-Za-z0-9+=,.@_-]), the external id and the duration (900 s to the role's maximum; one hour when chained).";
	}
	else
	{
		sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		if (code_is(code, "AccessDenied"))
			hint = "The role's trust policy must allow the caller (and require exactly this external id, if any), and the caller needs sts:AssumeRole on the role.";
		else if (code_is(code, "InvalidIdentityToken") || code_is(code, "IDPRejectedClaim"))
			hint = "The web identity token was refused: check the token file, its audience (sts.amazonaws.com) and the role's trust of the identity provider.";
		else if (code_is(code, "ExpiredTokenException") || code_is(code, "ExpiredToken"))
			hint = "A token expired: the web identity token file must be refreshed by its issuer, or the source credentials are stale.";
		else if (code_is(code, "RegionDisabledException"))
			hint = "STS is not activated in this region for the account; activate it or use another region.";
		else if (code_is(code, "InvalidClientTokenId") || code_is(code, "SignatureDoesNotMatch"))
			hint = "The credentials that call STS are not valid; check the reference the role is assumed from.";
	}
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("AWS STS %s%s%s refused: %s", call->action, call->role_arn ? " of " : "",
					call->role_arn ? call->role_arn : "", code ? code : psprintf("HTTP %ld", head->status)),
			 errdetail("HTTP %ld%s%s%s%s.", head->status, message ? ": " : "", message ? message : "",
					   creds ? "; calling with credentials from " : "", creds ? creds->origin : ""),
			 hint ? errhint("%s", hint) : 0));
	return NULL;				/* not reached */
}

static void
form_append(StringInfo body, const char *key, const char *value)
{
	if (value == NULL)
		return;
	if (body->len > 0)
		appendStringInfoChar(body, '&');
	sigv4_uri_encode(body, key, false);
	appendStringInfoChar(body, '=');
	sigv4_uri_encode(body, value, false);
}

/* One STS call: the whole answer body (XML). */
static char *
sts_call(StsCall *call, const char *body, const AwsCredentials *creds, const char *reference, const char *region)
{
	AwsEndpoint ep;
	AwsRequest	req;
	static const SigV4Pair headers[] = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
	HttpStream *hs;
	StringInfoData answer;
	/*
	 * STS's endpoint is configured like every service's (aws_endpoint.c,
	 * service id "STS"); by default the regional one, which is the SDKs'
	 * default for STS now (sts_regional_endpoints = regional).  The legacy
	 * global endpoint (AWS_STS_REGIONAL_ENDPOINTS=legacy) is not offered:
	 * point AWS_ENDPOINT_URL_STS at https://sts.amazonaws.com to use it.
	 */
	char	   *endpoint = aws_known_service_endpoint("sts", NULL, reference, region, NULL);

	aws_endpoint_parse(endpoint, "STS", &ep);
	http_check_url_allowed(endpoint, "STS");
	memset(&req, 0, sizeof(req));
	req.what = psprintf("AWS STS %s", call->action);
	req.service = "sts";
	req.region = region && region[0] ? region : "us-east-1";
	req.creds = creds;
	req.unsigned_request = (creds == NULL);
	req.method = "POST";
	req.endpoint = &ep;
	req.path = ep.path[0] ? ep.path : "/";
	req.headers = headers;
	req.nheaders = lengthof(headers);
	req.body = body;
	req.body_len = strlen(body);
	req.bounded = true;
	req.max_retries = STS_MAX_RETRIES;
	req.retry_base_ms = STS_RETRY_BASE_MS;
	req.retries_hint = "STS did not answer; check the network path to the STS endpoint (AWS_ENDPOINT_URL_STS for a VPC endpoint).";
	req.accept = sts_accept;
	req.refuse = sts_refuse;
	req.arg = call;
	hs = aws_request_send(&req, NULL);
	initStringInfo(&answer);
	(void) http_read_all(hs, &answer, STS_BODY_MAX, req.what);
	http_close(hs);
	return answer.data;
}

/* The <Credentials> of an AssumeRole* answer, or an error naming what was missing. */
static AwsCredentials *
credentials_of(const char *xml, const char *action, const char *role_arn)
{
	const char *result = strstr(xml, "<Credentials>");
	AwsCredentials *c = palloc0(sizeof(AwsCredentials));
	char	   *expiration;

	if (result)
	{
		c->access_key_id = xml_child(result, NULL, "AccessKeyId", NULL);
		c->secret_access_key = xml_child(result, NULL, "SecretAccessKey", NULL);
		c->session_token = xml_child(result, NULL, "SessionToken", NULL);
	}
	expiration = result ? xml_child(result, NULL, "Expiration", NULL) : NULL;
	if (c->access_key_id == NULL || c->secret_access_key == NULL || c->session_token == NULL || expiration == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("AWS STS %s of %s answered without complete credentials", action, role_arn),
				 errdetail("An answer needs Credentials with AccessKeyId, SecretAccessKey, SessionToken and Expiration.")));
	/* an ISO 8601 timestamp ("2026-12-07T01:00:00Z"), read as timestamptz */
	c->expiration = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(expiration),
															ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	c->role_arn = pstrdup(role_arn);
	return c;
}

static const char *
session_name_of(const AwsRoleSpec *role)
{
	return role->session_name && role->session_name[0] ? role->session_name : "pg_billops";
}

AwsCredentials *
aws_sts_assume_role(const AwsRoleSpec *role, const AwsCredentials *source, const char *reference, const char *region)
{
	StringInfoData body;
	StsCall		call = {"AssumeRole", role->role_arn};
	AwsCredentials *c;
	char	   *answer;
	int			duration = role->duration_seconds;

	/* AWS: a role session made with another role's session lasts at most one hour */
	if (source->role_arn && (duration == 0 || duration > 3600))
		duration = 3600;
	initStringInfo(&body);
	form_append(&body, "Action", "AssumeRole");
	form_append(&body, "Version", "2011-06-15");
	form_append(&body, "RoleArn", role->role_arn);
	form_append(&body, "RoleSessionName", session_name_of(role));
	if (duration > 0)
		form_append(&body, "DurationSeconds", psprintf("%d", duration));
	form_append(&body, "ExternalId", role->external_id && role->external_id[0] ? role->external_id : NULL);
	answer = sts_call(&call, body.data, source, reference, region);
	c = credentials_of(answer, "AssumeRole", role->role_arn);
	billops_wipe(answer, strlen(answer));
	c->chained = source->role_arn != NULL;
	c->origin = psprintf("role %s assumed with %s", role->role_arn, source->origin);
	return c;
}

AwsCredentials *
aws_sts_assume_role_with_web_identity(const AwsRoleSpec *role, const char *token, const char *reference,
									  const char *region)
{
	StringInfoData body;
	StsCall		call = {"AssumeRoleWithWebIdentity", role->role_arn};
	AwsCredentials *c;
	char	   *answer;

	initStringInfo(&body);
	form_append(&body, "Action", "AssumeRoleWithWebIdentity");
	form_append(&body, "Version", "2011-06-15");
	form_append(&body, "RoleArn", role->role_arn);
	form_append(&body, "RoleSessionName", session_name_of(role));
	form_append(&body, "WebIdentityToken", token);
	if (role->duration_seconds > 0)
		form_append(&body, "DurationSeconds", psprintf("%d", role->duration_seconds));
	answer = sts_call(&call, body.data, NULL, reference, region);
	billops_wipe(body.data, body.len);	/* it held the token */
	c = credentials_of(answer, "AssumeRoleWithWebIdentity", role->role_arn);
	billops_wipe(answer, strlen(answer));
	return c;
}

AwsCallerIdentity *
aws_sts_get_caller_identity(const AwsCredentials *creds, const char *reference, const char *region)
{
	StsCall		call = {"GetCallerIdentity", NULL};
	char	   *answer = sts_call(&call, "Action=GetCallerIdentity&Version=2011-06-15", creds, reference, region);
	AwsCallerIdentity *id = palloc0(sizeof(AwsCallerIdentity));

	id->account = xml_child(answer, NULL, "Account", NULL);
	id->arn = xml_child(answer, NULL, "Arn", NULL);
	id->user_id = xml_child(answer, NULL, "UserId", NULL);
	if (id->arn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("AWS STS GetCallerIdentity answered without an Arn")));
	return id;
}
