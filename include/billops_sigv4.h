/*
 * billops_sigv4.h — AWS Signature Version 4 (header-based), signed with OpenSSL.
 *
 * libcurl 7.88's CURLOPT_AWS_SIGV4 is not used: it neither sorts nor re-encodes
 * the canonical query, mishandles valueless parameters, does not encode the
 * canonical path, and cannot sign a session token (see docs/aws-billing.md).
 */
#ifndef BILLOPS_SIGV4_H
#define BILLOPS_SIGV4_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "pgtime.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct SigV4Pair
{
	const char *key;			/* header name, or query parameter name (decoded) */
	const char *value;			/* header value as sent, or parameter value (decoded) */
} SigV4Pair;

typedef struct SigV4Request
{
	const char *method;
	const char *path;			/* absolute path, NOT percent-encoded ("/b/my key") */
	const SigV4Pair *query;		/* decoded query parameters, any order */
	int			nquery;
	const SigV4Pair *headers;	/* every header to sign (Host included) */
	int			nheaders;
	const char *payload_hash;	/* lower-case hex SHA-256, or UNSIGNED-PAYLOAD */
} SigV4Request;

typedef struct SigV4Scope
{
	const char *region;
	const char *service;
	const char *amz_date;		/* YYYYMMDDTHHMMSSZ, also sent as X-Amz-Date */
	bool		normalize_path; /* RFC 3986 dot-segment removal; never for S3 */
} SigV4Scope;

typedef struct SigV4Result
{
	char	   *canonical_request;
	char	   *string_to_sign;
	char	   *signed_headers;
	char	   *authorization;	/* value of the Authorization header */
} SigV4Result;

extern void sigv4_sign(const SigV4Request *req, const SigV4Scope *scope,
					   const char *access_key_id, const char *secret_access_key,
					   SigV4Result *result);

/*
 * Sign, then return the request's header lines for http_open (a palloc'd
 * List of "name: value" strings): Authorization, then every signed header
 * but host (libcurl sends Host from the URL).  Free it with
 * http_headers_free_wiped: it holds the signature and any session token.
 */
extern List *sigv4_sign_to_headers(const SigV4Request *req, const SigV4Scope *scope,
								   const char *access_key_id, const char *secret_access_key);

/* AWS URI encoding: every byte but A-Z a-z 0-9 - . _ ~ as %XX (and '/' if keep_slash). */
extern void sigv4_uri_encode(StringInfo out, const char *s, bool keep_slash);
extern void sigv4_sha256_hex(const void *data, size_t len, char out[65]);
extern void sigv4_format_amz_date(pg_time_t t, char out[17]);

#endif							/* BILLOPS_SIGV4_H */
