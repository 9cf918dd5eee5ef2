/*
 * aws_metadata.c — the last two steps of AWS's default credential chain:
 * the container credentials endpoint (ECS task roles, EKS Pod Identity) and
 * the EC2 instance profile through IMDSv2 (AWS SDKs and Tools Reference
 * Guide, "Container credential provider" and "IMDS credential provider").
 *
 * Container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (appended to
 * http://169.254.170.2), else AWS_CONTAINER_CREDENTIALS_FULL_URI, which must
 * be https or http to a loopback address, 169.254.170.2, 169.254.170.23 or
 * fd00:ec2::23 (the SDKs' rule; botocore checks the host name as written,
 * as here).  The Authorization header is the content of
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, else AWS_CONTAINER_AUTHORIZATION_TOKEN
 * (SDKs differ on which wins; botocore's order is followed).
 *
 * IMDS: unless AWS_EC2_METADATA_DISABLED is true, at
 * AWS_EC2_METADATA_SERVICE_ENDPOINT (else http://169.254.169.254): PUT
 * /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds: 21600), then
 * GET /latest/meta-data/iam/security-credentials/ for the role name and
 * GET …/<role> with X-aws-ec2-metadata-token.  IMDSv1 (no token) only when
 * billops.aws_imds_v1_allowed is on: AWS recommends v2 only.
 *
 * Both answer {AccessKeyId, SecretAccessKey, Token, Expiration}.  Tokens and
 * secrets are wiped after use and never shown.
 */
#include "postgres.h"

#include "billops.h"
#include "billops_credentials.h"
#include "billops_http.h"
#include "billops_json.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#define METADATA_BODY_MAX (64 * 1024)

static bool imds_v1_allowed = false;

void
billops_aws_metadata_init(void)
{
	DefineCustomBoolVariable("billops.aws_imds_v1_allowed",
							 "Fall back to IMDSv1 (no session token) when the instance metadata service refuses IMDSv2.",
							 "Off: only IMDSv2, as AWS recommends.",
							 &imds_v1_allowed, false, PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
}

/* One GET/PUT; the body (palloc'd) when the status is 200, else NULL with *status set. */
static char *
fetch(const char *method, const char *url, List *headers, long *status, const char *what)
{
	HttpStream *hs = http_open(method, url, headers, NULL, 0, true);
	StringInfoData body;

	*status = 0;
	if (http_failed(hs))
	{
		http_close(hs);
		return NULL;
	}
	*status = http_head(hs)->status;
	initStringInfo(&body);
	(void) http_read_all(hs, &body, METADATA_BODY_MAX, what);
	http_close(hs);
	if (*status != 200)
	{
		billops_wipe(body.data, body.len);
		return NULL;
	}
	return body.data;
}

/* The credentials in a metadata answer, or an error naming `what`. */
static AwsCredentials *
credentials_of(char *json, const char *what)
{
	Jsonb	   *jb = billops_json_parse(json, strlen(json));
	AwsCredentials *c = palloc0(sizeof(AwsCredentials));
	char	   *code = billops_json_string(jb, "Code");
	char	   *expiration = billops_json_string(jb, "Expiration");

	c->access_key_id = billops_json_string(jb, "AccessKeyId");
	c->secret_access_key = billops_json_string(jb, "SecretAccessKey");
	c->session_token = billops_json_string(jb, "Token");
	billops_wipe(json, strlen(json));
	if ((code && strcmp(code, "Success") != 0) || c->access_key_id == NULL || c->secret_access_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("%s answered without credentials%s%s", what, code ? ": " : "", code ? code : ""),
				 errdetail("An answer needs AccessKeyId, SecretAccessKey, Token and Expiration.")));
	if (expiration)
		c->expiration = aws_expiration_parse(expiration, what);
	return c;
}

static bool
container_host_allowed(const char *url)
{
	static const char *const hosts[] = {
		"http://127.", "http://localhost:", "http://localhost/", "http://[::1]",
		"http://169.254.170.2:", "http://169.254.170.2/", "http://169.254.170.23:", "http://169.254.170.23/",
		"http://[fd00:ec2::23]",
	};

	if (pg_strncasecmp(url, "https://", 8) == 0)
		return true;
	for (int i = 0; i < lengthof(hosts); i++)
		if (pg_strncasecmp(url, hosts[i], strlen(hosts[i])) == 0)
			return true;
	return false;
}

AwsCredentials *
aws_container_credentials(StringInfo searched)
{
	char	   *relative = billops_getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	char	   *full = billops_getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	char	   *url;
	char	   *token = NULL;
	List	   *headers = NIL;
	long		status;
	char	   *body;
	AwsCredentials *c;

	if (relative == NULL && full == NULL)
	{
		appendStringInfoString(searched, "; container credentials AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI (not set)");
		return NULL;
	}
	url = relative ? psprintf("http://169.254.170.2%s", relative) : pstrdup(full);
	if (!relative && !container_host_allowed(url))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23")));
	if (billops_getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
		token = aws_read_token_file(getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), "container authorization token file");
	else if (billops_getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
		token = pstrdup(getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
	if (token)
	{
		headers = list_make1(psprintf("Authorization: %s", token));
		billops_wipe_free(token);
	}
	body = fetch("GET", url, headers, &status, "the container credentials endpoint");
	http_headers_free_wiped(headers);
	if (body == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the container credentials endpoint did not give credentials: %s",
						status ? psprintf("HTTP %ld", status) : "no answer"),
				 errhint("Check the task role (ECS) or the pod identity association (EKS).")));
	c = credentials_of(body, "the container credentials endpoint");
	c->origin = pstrdup("the container credentials endpoint");
	return c;
}

AwsCredentials *
aws_imds_credentials(StringInfo searched)
{
	char	   *disabled = billops_getenv("AWS_EC2_METADATA_DISABLED");
	char	   *base = billops_getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	List	   *headers = NIL;
	char	   *token;
	char	   *role;
	char	   *body;
	long		status;
	AwsCredentials *c;

	if (disabled && pg_strcasecmp(disabled, "true") == 0)
	{
		appendStringInfoString(searched, "; the EC2 instance profile (AWS_EC2_METADATA_DISABLED)");
		return NULL;
	}
	base = psprintf("%s", base ? base : "http://169.254.169.254");
	if (base[strlen(base) - 1] == '/')
		base[strlen(base) - 1] = '\0';
	token = fetch("PUT", psprintf("%s/latest/api/token", base),
				  list_make1(pstrdup("X-aws-ec2-metadata-token-ttl-seconds: 21600")), &status, "IMDS token");
	if (token == NULL && !(imds_v1_allowed && (status == 403 || status == 404 || status == 405)))
	{
		appendStringInfo(searched, "; the EC2 instance profile at %s (%s)", base,
						 status ? psprintf("IMDSv2 token refused: HTTP %ld%s", status,
										   imds_v1_allowed ? "" : "; IMDSv1 is not allowed") : "no answer");
		return NULL;
	}
	if (token)
	{
		headers = list_make1(psprintf("X-aws-ec2-metadata-token: %s", token));
		billops_wipe_free(token);
	}
	role = fetch("GET", psprintf("%s/latest/meta-data/iam/security-credentials/", base), headers, &status, "IMDS role");
	if (role == NULL || role[0] == '\0')
	{
		http_headers_free_wiped(headers);
		appendStringInfo(searched, "; the EC2 instance profile at %s (no role: HTTP %ld)", base, status);
		return NULL;
	}
	role[strcspn(role, "\r\n")] = '\0';
	body = fetch("GET", psprintf("%s/latest/meta-data/iam/security-credentials/%s", base, role), headers, &status,
				 "IMDS credentials");
	http_headers_free_wiped(headers);
	if (body == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the instance metadata service did not give the credentials of role \"%s\": HTTP %ld", role, status)));
	c = credentials_of(body, "the instance metadata service");
	c->origin = psprintf("the EC2 instance profile (role %s)", role);
	return c;
}
