/*
 * aws_request.c — one signed AWS request (see billops_aws_request.h).
 *
 * Each attempt is signed anew (x-amz-date must be within 15 minutes of
 * AWS's clock, and a retry may come minutes later); the credentials are
 * taken once per request (from this backend's cache, refreshed before they
 * expire: aws_credentials.c) and the copy is wiped when it ends.  The signed headers and
 * any session token live only in the header list handed to http_open, which
 * is wiped right after.
 *
 * Failure policy, the same for every service:
 *   the transport failed for good (bad URL, TLS, refused by policy) → 58030;
 *   the transport failed transiently, or `refuse` calls the answer
 *   retryable (5xx, throttling) → retried up to max_retries with
 *   exponential backoff and full jitter, sleeping on the latch; then 58030
 *   with the last failure and the service's hint;
 *   any other answer → the service's own error, raised by `refuse`.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "billops.h"
#include "billops_aws_request.h"

void
aws_endpoint_parse(const char *url, const char *what, AwsEndpoint *out)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL,
			   *host = NULL,
			   *port = NULL,
			   *path = NULL;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
	{
		if (u)
			curl_url_cleanup(u);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s endpoint \"%s\"", what, url)));
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);	/* absent when default */
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	out->host = pstrdup(host);
	out->host_header = port ? psprintf("%s:%s", host, port) : pstrdup(host);
	out->url_base = psprintf("%s://%s", scheme, out->host_header);
	out->path = pstrdup(path && strcmp(path, "/") != 0 ? path : "");
	curl_free(scheme);
	curl_free(host);
	if (port)
		curl_free(port);
	if (path)
		curl_free(path);
	curl_url_cleanup(u);
}

/* The request's URL: endpoint, encoded path (once: the canonical URI is the wire path), query. */
static char *
request_url(const AwsRequest *req)
{
	StringInfoData url;

	initStringInfo(&url);
	appendStringInfoString(&url, req->endpoint->url_base);
	sigv4_uri_encode(&url, req->path, true);
	for (int i = 0; i < req->nquery; i++)
	{
		appendStringInfoChar(&url, i == 0 ? '?' : '&');
		sigv4_uri_encode(&url, req->query[i].key, false);
		appendStringInfoChar(&url, '=');
		sigv4_uri_encode(&url, req->query[i].value, false);
	}
	return url.data;
}

/* Sign one attempt: the header lines for http_open (wipe them after use). */
static List *
sign_attempt(const AwsRequest *req, const AwsCredentials *creds, const char *payload_hash)
{
	char		amz_date[17];
	SigV4Pair  *hdrs = palloc(sizeof(SigV4Pair) * (req->nheaders + 4));
	int			nh = 0;
	SigV4Request sreq;
	SigV4Scope	scope;
	List	   *wire;
	ListCell   *lc;

	if (creds == NULL)
	{
		/* unsigned: the service headers and nothing that claims an identity */
		wire = NIL;
		for (int i = 0; i < req->nheaders; i++)
			wire = lappend(wire, psprintf("%s: %s", req->headers[i].key, req->headers[i].value));
		pfree(hdrs);
		foreach(lc, req->plain_headers)
			wire = lappend(wire, pstrdup(lfirst(lc)));
		return wire;
	}
	sigv4_format_amz_date((pg_time_t) time(NULL), amz_date);
	for (int i = 0; i < req->nheaders; i++)
		hdrs[nh++] = req->headers[i];
	hdrs[nh++] = (SigV4Pair) {"host", req->endpoint->host_header};
	if (req->s3)
		hdrs[nh++] = (SigV4Pair) {"x-amz-content-sha256", payload_hash};
	hdrs[nh++] = (SigV4Pair) {"x-amz-date", amz_date};
	if (creds->session_token)
		hdrs[nh++] = (SigV4Pair) {"x-amz-security-token", creds->session_token};
	sreq = (SigV4Request) {req->method, req->path, req->query, req->nquery, hdrs, nh, payload_hash};
	scope = (SigV4Scope) {req->region, req->service, amz_date, !req->s3};
	wire = sigv4_sign_to_headers(&sreq, &scope, creds->access_key_id, creds->secret_access_key);
	pfree(hdrs);
	foreach(lc, req->plain_headers)
		wire = lappend(wire, pstrdup(lfirst(lc)));
	return wire;
}

/* set around a `refuse` call: may it ask for fresh credentials, and did it */
static bool refresh_allowed = false;
static bool refresh_asked = false;

bool
aws_request_credentials_expired(const AwsCredentials *creds)
{
	if (!refresh_allowed || creds == NULL || creds->expiration == 0)
		return false;
	refresh_asked = true;
	return true;
}

HttpStream *
aws_request_send(const AwsRequest *req, int *attempts)
{
	bool		refreshed = false;

	char	   *url = request_url(req);
	char		payload_hash[65];
	AwsCredentials *creds;
	char	   *last_problem = NULL;

	if (req->body)
		sigv4_sha256_hex(req->body, req->body_len, payload_hash);
	else
		strlcpy(payload_hash, SIGV4_EMPTY_SHA256, sizeof(payload_hash));
	creds = req->unsigned_request ? NULL
		: req->creds ? aws_credentials_copy(req->creds)
		: aws_credentials_get(req->credentials, req->role, req->region);

	for (int attempt = 0;; attempt++)
	{
		List	   *wire = sign_attempt(req, creds, payload_hash);
		HttpStream *hs;

		hs = http_open(req->method, url, wire, req->body, req->body ? req->body_len : 0, req->bounded);
		http_headers_free_wiped(wire);	/* they held the signature and any session token */
		if (attempts)
			*attempts = attempt + 1;

		if (req->accept(hs, req->arg))
		{
			aws_credentials_free(creds);
			return hs;
		}
		if (http_failed(hs))
		{
			if (!http_error_transient(hs))
				ereport(ERROR,
						(errcode(ERRCODE_IO_ERROR),
						 errmsg("could not send %s: %s", req->what, http_error(hs))));
			last_problem = pstrdup(http_error(hs));
		}
		else
		{
			/* (no request is sent between setting and reading these) */
			refresh_allowed = !refreshed && !req->creds && !req->unsigned_request;
			refresh_asked = false;
			last_problem = req->refuse(hs, creds, req->arg);	/* raises unless retryable */
			refresh_allowed = false;
			if (refresh_asked)
			{
				/*
				 * AWS says the temporary keys expired (clock skew, or revoked
				 * early): forget them, make them again, resend at once -- once.
				 */
				http_close(hs);
				aws_credentials_forget(req->credentials, req->role, req->region);
				aws_credentials_free(creds);
				creds = aws_credentials_get(req->credentials, req->role, req->region);
				refreshed = true;
				ereport(DEBUG1, (errmsg("%s: temporary credentials expired; made again", req->what)));
				continue;
			}
		}
		http_close(hs);

		if (attempt >= req->max_retries)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("%s failed after %d attempts", req->what, attempt + 1),
					 errdetail("Last failure: %s.", last_problem),
					 errhint("%s", req->retries_hint)));
		ereport(DEBUG1, (errmsg("retrying %s after %s", req->what, last_problem)));
		http_backoff_sleep(attempt, req->retry_base_ms);
	}
}
