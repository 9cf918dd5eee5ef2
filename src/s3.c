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
#include "billops_credentials.h"
#include "billops_http.h"
#include "billops_s3.h"
#include "billops_sigv4.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define S3_ERROR_BODY_MAX (64 * 1024)
#define S3_LIST_BODY_MAX (16 * 1024 * 1024)

/* --- tiny XML helpers for S3's fixed response shapes ---------------------- */

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

/* Text of the first <tag>…</tag> within [from, limit), or NULL; *next after it. */
static char *
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

/* --- request plumbing ----------------------------------------------------- */

typedef struct S3Target
{
	char	   *url_base;		/* scheme://host[:port] */
	char	   *host_header;	/* host[:port] */
	char	   *path;			/* decoded path: /bucket/key or /key */
} S3Target;

static void
s3_target(const S3Location *loc, const char *key, S3Target *t)
{
	char	   *endpoint = loc->endpoint && loc->endpoint[0] ? loc->endpoint
		: psprintf("https://s3.%s.amazonaws.com", loc->region);
	CURLU	   *u = curl_url();
	char	   *scheme = NULL,
			   *host = NULL,
			   *port = NULL;
	char	   *hostport;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
	{
		if (u)
			curl_url_cleanup(u);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid S3 endpoint URL \"%s\"", endpoint)));
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);	/* absent when default */
	hostport = port ? psprintf("%s:%s", host, port) : pstrdup(host);

	/*
	 * Like the AWS SDKs: virtual-hosted style needs a DNS name for the bucket,
	 * so IP-literal endpoints and bucket names with dots or capitals go
	 * path-style whatever the setting says.
	 */
	if (loc->path_style || strspn(host, "0123456789.") == strlen(host) || strchr(host, ':') != NULL ||
		strspn(loc->bucket, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(loc->bucket))
	{
		t->host_header = hostport;
		t->path = psprintf("/%s/%s", loc->bucket, key ? key : "");
		if (key == NULL)
			t->path[strlen(t->path) - 1] = '\0';	/* "/bucket" for bucket operations */
	}
	else
	{
		t->host_header = psprintf("%s.%s", loc->bucket, hostport);
		t->path = psprintf("/%s", key ? key : "");
	}
	t->url_base = psprintf("%s://%s", scheme, t->host_header);
	curl_free(scheme);
	curl_free(host);
	if (port)
		curl_free(port);
	curl_url_cleanup(u);
}

static const char *
s3_display(const S3Location *loc, const char *key)
{
	return psprintf("s3://%s/%s", loc->bucket, key ? key : "");
}

/* Raise the error for a final (non-retried) S3 error response. */
static void
s3_raise_http_error(const S3Location *loc, const char *key, HttpStream *hs, AwsCredentials *creds)
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

/*
 * Send one signed request, retrying what is worth retrying.  Returns a stream
 * whose status is 2xx (or 304/412/416 when allowed by the caller); raises on
 * anything else.
 */
static HttpStream *
s3_request(const S3Location *loc, const char *method, const char *key,
		   const SigV4Pair *query, int nquery, const char *range,
		   const char *if_match, bool bounded)
{
	S3Target	t;
	AwsCredentials *creds;
	StringInfoData url;
	int			attempt;
	char	   *last_problem = NULL;

	s3_target(loc, key, &t);
	initStringInfo(&url);
	appendStringInfoString(&url, t.url_base);
	sigv4_uri_encode(&url, t.path, true);
	for (int i = 0; i < nquery; i++)
	{
		appendStringInfoChar(&url, i == 0 ? '?' : '&');
		sigv4_uri_encode(&url, query[i].key, false);
		appendStringInfoChar(&url, '=');
		sigv4_uri_encode(&url, query[i].value, false);
	}

	creds = aws_credentials_resolve(loc->credentials);

	for (attempt = 0;; attempt++)
	{
		char		amz_date[17];
		SigV4Pair	hdrs[4];
		int			nh = 0;
		SigV4Request req;
		SigV4Scope	scope;
		List	   *wire;
		HttpStream *hs;
		const HttpResponseHead *head;

		sigv4_format_amz_date((pg_time_t) time(NULL), amz_date);
		hdrs[nh++] = (SigV4Pair) {"host", t.host_header};
		hdrs[nh++] = (SigV4Pair) {"x-amz-content-sha256", SIGV4_EMPTY_SHA256};
		hdrs[nh++] = (SigV4Pair) {"x-amz-date", amz_date};
		if (creds->session_token)
			hdrs[nh++] = (SigV4Pair) {"x-amz-security-token", creds->session_token};
		req = (SigV4Request) {method, t.path, query, nquery, hdrs, nh, SIGV4_EMPTY_SHA256};
		scope = (SigV4Scope) {loc->region, "s3", amz_date, false};
		wire = sigv4_sign_to_headers(&req, &scope, creds->access_key_id, creds->secret_access_key);
		if (range)
			wire = lappend(wire, psprintf("Range: %s", range));
		if (if_match)
			wire = lappend(wire, psprintf("If-Match: %s", if_match));

		hs = http_open(method, url.data, wire, NULL, 0, bounded);
		http_headers_free_wiped(wire);	/* they held the signature and token */
		head = http_head(hs);

		/*
		 * A streamed body that already broke still carries the bytes that did
		 * arrive: hand it over, and the reader resumes from there with Range.
		 */
		if ((!http_failed(hs) || !bounded) && head->status >= 200 && head->status < 300)
		{
			aws_credentials_free(creds);
			return hs;
		}
		if (!http_failed(hs) && (head->status == 412 || head->status == 416) && (range || if_match))
		{
			aws_credentials_free(creds);
			return hs;			/* the caller decides what a failed precondition means */
		}

		if (http_failed(hs) && !http_error_transient(hs))
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not send S3 request for %s: %s", s3_display(loc, key), http_error(hs))));
		if (!http_failed(hs) && head->status < 500 && head->status != 429)
			s3_raise_http_error(loc, key, hs, creds);

		/* retryable: 5xx, 429, or a transient transport failure */
		if (http_failed(hs))
			last_problem = pstrdup(http_error(hs));
		else
		{
			StringInfoData body;
			char	   *code;

			initStringInfo(&body);
			(void) http_read_all(hs, &body, S3_ERROR_BODY_MAX, "S3 error response");
			code = xml_child(body.data, NULL, "Code", NULL);
			last_problem = psprintf("HTTP %ld %s", head->status, code ? code : "");
		}
		http_close(hs);
		if (attempt >= billops_s3_max_retries)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("S3 request for %s failed after %d attempts", s3_display(loc, key), attempt + 1),
					 errdetail("Last failure: %s.", last_problem),
					 errhint("S3 is unavailable or throttling; data already loaded is unchanged. Retry later, or raise billops.s3_max_retries.")));
		ereport(DEBUG1, (errmsg("retrying S3 request for %s after %s", s3_display(loc, key), last_problem)));
		http_backoff_sleep(attempt, billops_s3_retry_base_ms);
	}
}

/* Read an S3 source's settings from billops.cur_source (strings palloc'd in the caller's context). */
void
s3_location_for_source(int32 source_id, S3Location *loc)
{
	Datum		arg[1] = {Int32GetDatum(source_id)};
	Oid			argt[1] = {INT4OID};
	bool		isnull;
	MemoryContext caller = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT bucket, endpoint_url, region, path_style, credentials "
							  "FROM billops.cur_source WHERE source_id = $1 AND storage = 's3'",
							  1, argt, arg, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("S3 source %d does not exist", source_id)));
	{
		HeapTuple	t = SPI_tuptable->vals[0];
		TupleDesc	d = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(caller);

		loc->bucket = SPI_getvalue(t, d, 1);
		loc->endpoint = SPI_getvalue(t, d, 2);
		loc->region = SPI_getvalue(t, d, 3);
		loc->path_style = DatumGetBool(SPI_getbinval(t, d, 4, &isnull));
		loc->credentials = SPI_getvalue(t, d, 5);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
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

typedef struct S3Source
{
	ByteSource	base;
	const S3Location *loc;
	char	   *key;
	int64		expected_size;
	char	   *etag;			/* from the listing or the first response */
	HttpStream *hs;
	int			resumes;
} S3Source;

static void
s3_source_open_at(S3Source *s, int64 offset)
{
	char	   *range = offset > 0 ? psprintf("bytes=%lld-", (long long) offset) : NULL;
	char	   *expected_range = psprintf("bytes %lld-", (long long) offset);	/* Content-Range */
	const HttpResponseHead *head;

	s->hs = s3_request(s->loc, "GET", s->key, NULL, 0, range,
					   offset > 0 ? s->etag : NULL, false);
	head = http_head(s->hs);
	if (head->status == 412)
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("%s changed while it was being read", s->base.name),
				 errdetail("The object's ETag is no longer %s.", s->etag),
				 errhint("A new delivery replaced the file mid-read; run the sync again.")));
	if (offset > 0 && (head->status != 206 ||
					   strncmp(head->content_range, expected_range, strlen(expected_range)) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("S3 did not resume %s at byte %lld", s->base.name, (long long) offset),
				 errdetail("HTTP %ld, Content-Range \"%s\".", head->status, head->content_range)));
	if (offset == 0 && s->etag == NULL && head->etag[0])
		s->etag = pstrdup(head->etag);
}

static size_t
s3_source_read(ByteSource *self, char *buf, size_t len)
{
	S3Source   *s = (S3Source *) self;

	for (;;)
	{
		ssize_t		n = http_read(s->hs, buf, len);
		const char *problem;

		if (n > 0)
		{
			self->raw_bytes += n;
			return (size_t) n;
		}
		if (n == 0 && (s->expected_size < 0 || (int64) self->raw_bytes == s->expected_size))
			return 0;
		if (n == 0 && (int64) self->raw_bytes > s->expected_size)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("%s is longer than listed", self->name),
					 errdetail("Received %llu bytes; the listing said %lld.",
							   (unsigned long long) self->raw_bytes, (long long) s->expected_size)));
		/* short body or transport failure: resume where we are, if allowed */
		problem = n == 0 ? psprintf("body ended after %llu of %lld bytes",
									(unsigned long long) self->raw_bytes, (long long) s->expected_size)
			: pstrdup(http_error(s->hs));
		if (n < 0 && !http_error_transient(s->hs))
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not read %s: %s", self->name, problem)));
		http_close(s->hs);
		s->hs = NULL;
		if (s->resumes >= billops_s3_max_retries)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not read %s completely", self->name),
					 errdetail("Last failure: %s; gave up after %d resumed requests.", problem, s->resumes),
					 errhint("Data already loaded is unchanged. Retry later, or raise billops.s3_max_retries.")));
		ereport(NOTICE,
				(errmsg("resuming %s at byte %llu after: %s", self->name,
						(unsigned long long) self->raw_bytes, problem)));
		http_backoff_sleep(s->resumes, billops_s3_retry_base_ms);
		s->resumes++;
		s3_source_open_at(s, (int64) self->raw_bytes);
	}
}

static void
s3_source_close(ByteSource *self)
{
	S3Source   *s = (S3Source *) self;

	if (s->hs)
		http_close(s->hs);
	s->hs = NULL;
}

ByteSource *
s3_object_source(const S3Location *loc, const char *key, int64 expected_size, const char *etag)
{
	S3Source   *s = palloc0(sizeof(S3Source));

	s->base.read = s3_source_read;
	s->base.close = s3_source_close;
	s->base.name = (char *) s3_display(loc, key);
	s->loc = loc;
	s->key = pstrdup(key);
	s->expected_size = expected_size;
	s->etag = etag ? pstrdup(etag) : NULL;
	s3_source_open_at(s, 0);
	return &s->base;
}
