/*
 * s3.c — the S3 REST client used by CUR ingest.
 *
 * Every request is SigV4-signed by sigv4.c (payload hash = SHA-256 of the empty
 * body, x-amz-date, optional X-Amz-Security-Token).  S3 paths are encoded once
 * and never normalized: the wire path and the canonical URI are the same
 * string, so keys with "=", "+", spaces or "//" sign correctly.
 *
 * Failure policy:
 *   5xx / SlowDown / connection trouble  → retried, exponential backoff with
 *      full jitter, up to billops.s3_max_retries, sleeping on the latch so a
 *      cancel still works; then SQLSTATE 58030 (io_error).
 *   403 / auth errors                     → 28000, S3's Code and Message only
 *      (S3's SignatureDoesNotMatch body echoes the canonical request, which
 *      contains the session token: it is never copied into an error or a log).
 *   404 NoSuchKey / NoSuchBucket          → 58P01 (undefined_file).
 */
#include "postgres.h"

#include "billops.h"
#include "billops_aws_request.h"
#include "billops_credentials.h"
#include "billops_http.h"
#include "billops_s3.h"
#include "billops_sigv4.h"
#include "billops_xml.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* billops.s3_max_retries, billops.s3_retry_base (defined in billops_s3_init) */
static int	s3_max_retries = 4;
static int	s3_retry_base_ms = 200;

void
billops_s3_init(void)
{
	DefineCustomIntVariable("billops.s3_max_retries",
							"Retries for S3 5xx/throttling/transport failures, and resumes of a cut-off body.",
							NULL, &s3_max_retries, 4, 0, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.s3_retry_base",
							"Base of the exponential backoff (with full jitter) between S3 retries.",
							NULL, &s3_retry_base_ms, 200, 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

#define S3_ERROR_BODY_MAX (64 * 1024)
#define S3_LIST_BODY_MAX (16 * 1024 * 1024)

/* --- request plumbing ----------------------------------------------------- */

/* Where a request for key (NULL: the bucket) goes: the endpoint, and the decoded path. */
static void
s3_target(const S3Location *loc, const char *key, AwsEndpoint *ep, char **path)
{
	/* the source's own endpoint, else as the SDKs configure it (aws_endpoint.c) */
	const char *endpoint = aws_known_service_endpoint("s3", loc->endpoint, loc->credentials, loc->region, NULL);
	const char *host;

	aws_endpoint_parse(endpoint, "S3", ep);
	host = ep->host;

	/*
	 * Like the AWS SDKs: virtual-hosted style needs a DNS name for the bucket,
	 * so IP-literal endpoints and bucket names with dots or capitals go
	 * path-style whatever the setting says.
	 */
	if (loc->path_style || strspn(host, "0123456789.") == strlen(host) || strchr(host, ':') != NULL ||
		strspn(loc->bucket, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(loc->bucket))
	{
		*path = psprintf("/%s/%s", loc->bucket, key ? key : "");
		if (key == NULL)
			(*path)[strlen(*path) - 1] = '\0';	/* "/bucket" for bucket operations */
	}
	else
	{
		char	   *scheme_end = strstr(ep->url_base, "://");

		ep->host_header = psprintf("%s.%s", loc->bucket, ep->host_header);
		ep->url_base = psprintf("%.*s://%s", (int) (scheme_end - ep->url_base), ep->url_base, ep->host_header);
		*path = psprintf("/%s", key ? key : "");
	}
}

const char *
s3_display(const S3Location *loc, const char *key)
{
	return psprintf("s3://%s/%s", loc->bucket, key ? key : "");
}

/*
 * Raise the error for a final (non-retried) S3 error response -- unless S3
 * says the request's temporary keys expired and the request may make them
 * again (aws_request_credentials_expired): then return.
 */
static void
s3_raise_http_error(const S3Location *loc, const char *key, HttpStream *hs, const AwsCredentials *creds)
{
	const HttpResponseHead *head = http_head(hs);
	StringInfoData body;
	char	   *code = NULL,
			   *message = NULL;
	const char *what = s3_display(loc, key);
	int			sqlstate;
	const char *hint = NULL;

	initStringInfo(&body);
	(void) http_read_all(hs, &body, S3_ERROR_BODY_MAX, "S3 error response");
	code = xml_child(body.data, NULL, "Code", NULL);
	message = xml_child(body.data, NULL, "Message", NULL);
	if (code == NULL)
		code = psprintf("HTTP %ld", head->status);
	if (strcmp(code, "ExpiredToken") == 0 && aws_request_credentials_expired(creds))
		return;

	if (head->status == 404)
	{
		sqlstate = ERRCODE_UNDEFINED_FILE;
		hint = strcmp(code, "NoSuchBucket") == 0
			? "Check the source's bucket name and endpoint."
			: "The object named by the manifest is not in the bucket; the delivery may still be in progress, or the manifest is wrong.";
	}
	else if (head->status == 403 || strcmp(code, "ExpiredToken") == 0 ||
			 strcmp(code, "InvalidToken") == 0 || strcmp(code, "AuthorizationHeaderMalformed") == 0)
	{
		sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		if (strcmp(code, "SignatureDoesNotMatch") == 0)
			hint = "The secret access key does not match the access key id; check the credentials and the source's region.";
		else if (strcmp(code, "InvalidAccessKeyId") == 0)
			hint = "The access key id is unknown to AWS; check the credentials reference.";
		else if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidToken") == 0)
			hint = "The session token is expired or invalid; refresh the temporary credentials.";
		else if (strcmp(code, "RequestTimeTooSkewed") == 0)
			hint = "The database server's clock is off by more than 15 minutes; fix its time synchronization.";
		else if (strcmp(code, "AuthorizationHeaderMalformed") == 0)
			hint = "Check the source's region: it must be the bucket's region.";
		else
			hint = "The credentials need s3:ListBucket and s3:GetObject on the bucket and prefix.";
	}
	else if (head->status == 301 || head->status == 307)
	{
		sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
		hint = "The bucket lives in another region; set the source's region to the bucket's region.";
	}
	else
		sqlstate = ERRCODE_IO_ERROR;

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("S3 refused the request for %s: %s", what, code),
			 errdetail("HTTP %ld%s%s; credentials from %s%s%s.", head->status,
					   message ? ": " : "", message ? message : "",
					   creds->origin,
					   head->request_id[0] ? "; request id " : "", head->request_id),
			 hint ? errhint("%s", hint) : 0));
}

/* What s3_request's callbacks need to know about the request. */
typedef struct S3Call
{
	const S3Location *loc;
	const char *key;
	bool		bounded;
	bool		conditional;	/* a Range or If-Match was sent */
} S3Call;

static bool
s3_accept(HttpStream *hs, void *arg)
{
	S3Call	   *c = arg;
	long		status = http_head(hs)->status;

	/*
	 * A streamed body that already broke still carries the bytes that did
	 * arrive: hand it over, and the reader resumes from there with Range.
	 */
	if ((!http_failed(hs) || !c->bounded) && status >= 200 && status < 300)
		return true;
	/* the caller decides what a failed precondition means */
	return !http_failed(hs) && (status == 412 || status == 416) && c->conditional;
}

static char *
s3_refuse(HttpStream *hs, const AwsCredentials *creds, void *arg)
{
	S3Call	   *c = arg;
	long		status = http_head(hs)->status;
	StringInfoData body;
	char	   *code;

	if (status < 500 && status != 429)
	{
		s3_raise_http_error(c->loc, c->key, hs, creds);
		return pstrdup("the temporary credentials expired");	/* (returned: they are made again) */
	}
	/* retryable: 5xx (SlowDown, InternalError) or 429 */
	initStringInfo(&body);
	(void) http_read_all(hs, &body, S3_ERROR_BODY_MAX, "S3 error response");
	code = xml_child(body.data, NULL, "Code", NULL);
	return psprintf("HTTP %ld %s", status, code ? code : "");
}

/*
 * Send one signed request through the shared AWS request path.  Returns a
 * stream whose status is 2xx (or 412/416 for a Range or If-Match request);
 * raises on anything else.
 */
static HttpStream *
s3_request(const S3Location *loc, const char *method, const char *key,
		   const SigV4Pair *query, int nquery, const char *range,
		   const char *if_match, bool bounded)
{
	AwsEndpoint ep;
	char	   *path;
	S3Call		call = {loc, key, bounded, range != NULL || if_match != NULL};
	AwsRequest	req = {0};

	s3_target(loc, key, &ep, &path);
	req.what = psprintf("S3 request for %s", s3_display(loc, key));
	req.service = "s3";
	req.region = loc->region;
	req.credentials = loc->credentials;
	if (loc->role_arn)
	{
		AwsRoleSpec *role = palloc0(sizeof(AwsRoleSpec));

		role->role_arn = loc->role_arn;
		role->external_id = loc->role_external_id;
		role->session_name = loc->role_session_name;
		req.role = role;
	}
	req.method = method;
	req.endpoint = &ep;
	req.path = path;
	req.query = query;
	req.nquery = nquery;
	if (range)
		req.plain_headers = lappend(req.plain_headers, psprintf("Range: %s", range));
	if (if_match)
		req.plain_headers = lappend(req.plain_headers, psprintf("If-Match: %s", if_match));
	req.s3 = true;
	req.bounded = bounded;
	req.max_retries = s3_max_retries;
	req.retry_base_ms = s3_retry_base_ms;
	req.retries_hint = "S3 is unavailable or throttling; data already loaded is unchanged. Retry later, or raise billops.s3_max_retries.";
	req.accept = s3_accept;
	req.refuse = s3_refuse;
	req.arg = &call;
	return aws_request_send(&req, NULL);
}

/* --- ListObjectsV2 -------------------------------------------------------- */

List *
s3_list(const S3Location *loc, const char *prefix, const char *delimiter)
{
	List	   *result = NIL;
	char	   *token = NULL;

	for (;;)
	{
		SigV4Pair	q[4];
		int			nq = 0;
		HttpStream *hs;
		StringInfoData body;
		const char *p;
		char	   *truncated;
		const char *end;

		q[nq++] = (SigV4Pair) {"list-type", "2"};
		q[nq++] = (SigV4Pair) {"prefix", prefix ? prefix : ""};
		if (delimiter && delimiter[0])
			q[nq++] = (SigV4Pair) {"delimiter", delimiter};
		if (token)
			q[nq++] = (SigV4Pair) {"continuation-token", token};
		hs = s3_request(loc, "GET", NULL, q, nq, NULL, NULL, true);
		initStringInfo(&body);
		if (http_read_all(hs, &body, S3_LIST_BODY_MAX, "S3 listing page") < 0)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not read S3 listing of %s: %s", s3_display(loc, prefix), http_error(hs))));
		http_close(hs);
		if (strstr(body.data, "<ListBucketResult") == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("S3 listing of %s is not a ListBucketResult", s3_display(loc, prefix))));

		p = body.data;
		while ((p = strstr(p, "<Contents>")) != NULL)
		{
			S3Object   *o = palloc0(sizeof(S3Object));
			char	   *size;

			end = strstr(p, "</Contents>");
			if (end == NULL)
				break;
			o->key = xml_child(p, end, "Key", NULL);
			size = xml_child(p, end, "Size", NULL);
			o->size = size ? strtoll(size, NULL, 10) : -1;
			o->etag = xml_child(p, end, "ETag", NULL);
			o->last_modified = xml_child(p, end, "LastModified", NULL);
			if (o->key)
				result = lappend(result, o);
			p = end;
		}
		p = body.data;
		while ((p = strstr(p, "<CommonPrefixes>")) != NULL)
		{
			S3Object   *o = palloc0(sizeof(S3Object));

			end = strstr(p, "</CommonPrefixes>");
			if (end == NULL)
				break;
			o->key = xml_child(p, end, "Prefix", NULL);
			o->size = -1;
			o->is_prefix = true;
			if (o->key)
				result = lappend(result, o);
			p = end;
		}
		truncated = xml_child(body.data, NULL, "IsTruncated", NULL);
		if (truncated == NULL || strcmp(truncated, "true") != 0)
			break;
		token = xml_child(body.data, NULL, "NextContinuationToken", NULL);
		if (token == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("S3 listing of %s is truncated but has no NextContinuationToken", s3_display(loc, prefix))));
	}
	return result;
}

char *
s3_get_small(const S3Location *loc, const char *key, size_t max_bytes, size_t *len)
{
	HttpStream *hs = s3_request(loc, "GET", key, NULL, 0, NULL, NULL, true);
	StringInfoData body;

	initStringInfo(&body);
	if (http_read_all(hs, &body, max_bytes, psprintf("S3 object %s", s3_display(loc, key))) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("could not read %s: %s", s3_display(loc, key), http_error(hs))));
	http_close(hs);
	if (len)
		*len = body.len;
	return body.data;
}

/* --- streamed GetObject with resume --------------------------------------- */

/*
 * One object, or one byte range of it, as a stream.  pos is the next byte
 * wanted (absolute in the object), end the first byte not wanted (-1: the
 * object's end, length unknown).  A body cut short is asked for again from
 * pos with Range and If-Match, so a resumed read never mixes two versions
 * of the object; so is every ranged read once the ETag is known.
 */
typedef struct S3Source
{
	ByteSource	base;
	const S3Location *loc;
	char	   *key;
	int64		pos;
	int64		end;
	bool		ranged;			/* a byte range was asked for, not the whole object */
	char	   *etag;			/* from the listing or the first response */
	HttpStream *hs;
	int			resumes;
} S3Source;

static void
s3_source_open(S3Source *s)
{
	int64		offset = s->pos;
	char	   *range = NULL;
	char	   *expected_range = psprintf("bytes %lld-", (long long) offset);	/* Content-Range */
	bool		partial = offset > 0 || s->ranged;
	const HttpResponseHead *head;

	if (partial)
		range = s->end >= 0 ? psprintf("bytes=%lld-%lld", (long long) offset, (long long) s->end - 1)
			: psprintf("bytes=%lld-", (long long) offset);
	s->hs = s3_request(s->loc, "GET", s->key, NULL, 0, range, partial ? s->etag : NULL, false);
	head = http_head(s->hs);
	if (head->status == 412)
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("%s changed while it was being read", s->base.name),
				 errdetail("The object's ETag is no longer %s.", s->etag),
				 errhint("A new delivery replaced the file mid-read; run the sync again.")));
	if (partial && (head->status != 206 ||
					strncmp(head->content_range, expected_range, strlen(expected_range)) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("S3 did not %s %s at byte %lld", offset > 0 && !s->ranged ? "resume" : "serve the range of",
						s->base.name, (long long) offset),
				 errdetail("HTTP %ld, Content-Range \"%s\".", head->status, head->content_range)));
	if (s->etag == NULL && head->etag[0])
		s->etag = pstrdup(head->etag);
}

static size_t
s3_source_read(ByteSource *self, char *buf, size_t len)
{
	S3Source   *s = (S3Source *) self;

	if (s->end >= 0 && (int64) len > s->end - s->pos)
		len = (size_t) (s->end - s->pos);
	if (len == 0)
		return 0;
	for (;;)
	{
		ssize_t		n = http_read(s->hs, buf, len);
		const char *problem;

		if (n > 0)
		{
			self->raw_bytes += n;
			s->pos += n;
			return (size_t) n;
		}
		if (n == 0 && s->end < 0)
			return 0;
		/* short body or transport failure: resume where we are, if allowed */
		problem = n == 0 ? psprintf("body ended at byte %lld of %lld", (long long) s->pos, (long long) s->end)
			: pstrdup(http_error(s->hs));
		if (n < 0 && !http_error_transient(s->hs))
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not read %s: %s", self->name, problem)));
		http_close(s->hs);
		s->hs = NULL;
		if (s->resumes >= s3_max_retries)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not read %s completely", self->name),
					 errdetail("Last failure: %s; gave up after %d resumed requests.", problem, s->resumes),
					 errhint("Data already loaded is unchanged. Retry later, or raise billops.s3_max_retries.")));
		ereport(NOTICE,
				(errmsg("resuming %s at byte %lld after: %s", self->name, (long long) s->pos, problem)));
		http_backoff_sleep(s->resumes, s3_retry_base_ms);
		s->resumes++;
		s3_source_open(s);
	}
}

/* At the end of a whole object: a body longer than the listing said is an error. */
static size_t
s3_whole_object_read(ByteSource *self, char *buf, size_t len)
{
	S3Source   *s = (S3Source *) self;
	size_t		n = s3_source_read(self, buf, len);

	if (n == 0 && s->end >= 0)
	{
		char		extra;

		if (s->hs && http_read(s->hs, &extra, 1) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("%s is longer than listed", self->name),
					 errdetail("Received more than the %lld bytes the listing said.", (long long) s->end)));
	}
	return n;
}

static void
s3_source_close(ByteSource *self)
{
	S3Source   *s = (S3Source *) self;

	if (s->hs)
		http_close(s->hs);
	s->hs = NULL;
}

static S3Source *
s3_source_new(const S3Location *loc, const char *key, const char *etag)
{
	S3Source   *s = palloc0(sizeof(S3Source));

	s->base.read = s3_source_read;
	s->base.close = s3_source_close;
	s->base.name = (char *) s3_display(loc, key);
	s->loc = loc;
	s->key = pstrdup(key);
	s->etag = etag ? pstrdup(etag) : NULL;
	return s;
}

ByteSource *
s3_object_source(const S3Location *loc, const char *key, int64 expected_size, const char *etag)
{
	S3Source   *s = s3_source_new(loc, key, etag);

	s->base.read = s3_whole_object_read;
	s->end = expected_size;
	s3_source_open(s);
	return &s->base;
}

void
s3_read_range(const S3Location *loc, const char *key, char **etag, int64 offset, size_t len, char *dst)
{
	S3Source   *s = s3_source_new(loc, key, *etag);
	size_t		got = 0;

	s->pos = offset;
	s->end = offset + (int64) len;
	s->ranged = true;
	s3_source_open(s);
	while (got < len)
	{
		size_t		n = s3_source_read(&s->base, dst + got, len - got);

		if (n == 0)
			break;
		got += n;
	}
	s3_source_close(&s->base);
	if (*etag == NULL && s->etag)
		*etag = s->etag;		/* the first range names the version the others must match */
	pfree(s->key);
	pfree(s);
}
