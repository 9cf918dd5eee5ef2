/*
 * billops_aws_request.h — one signed AWS request, the only way pg_billops
 * talks to AWS: target → credentials → SigV4 → HTTP → retry with backoff →
 * error classification.  S3 (s3.c), Cost Explorer and Invoicing (aws_api.c)
 * send through it, and so will every AWS service added later.
 *
 * What differs by service is data (signing name, the headers to sign, the
 * retry settings) and two decisions only the service can make, given as
 * callbacks: which answers go back to the caller, and what a refused answer
 * means (its error is raised there, in the service's words).
 */
#ifndef BILLOPS_AWS_REQUEST_H
#define BILLOPS_AWS_REQUEST_H

#include "postgres.h"

#include "billops_credentials.h"
#include "billops_http.h"
#include "billops_sigv4.h"
#include "nodes/pg_list.h"

typedef struct AwsEndpoint
{
	char	   *url_base;		/* scheme://host[:port] */
	char	   *host;			/* host name or address, without the port */
	char	   *host_header;	/* host[:port] */
	char	   *path;			/* the URL's path, "" when it has none */
} AwsEndpoint;

/* Splits an endpoint URL; a URL libcurl cannot parse is a 22023 naming `what`. */
extern void aws_endpoint_parse(const char *url, const char *what, AwsEndpoint *out);

/*
 * Where a request to a service goes (aws_endpoint.c): the source's own
 * endpoint when it names one, else AWS_ENDPOINT_URL_<SERVICE>,
 * AWS_ENDPOINT_URL, the profile's services section and endpoint_url of the
 * shared config file, else default_url.  `service_id` is the model's
 * serviceId ("S3", "Cost Explorer"); `reference` picks the profile.
 * *configured_by (if given) says which setting answered.
 */
extern char *aws_service_endpoint(const char *service_id, const char *explicit_url, const char *reference,
								  const char *default_url, char **configured_by);
/* The same for a service pg_billops calls, by its SQL name (s3, ce, invoicing, sts), with its default endpoint. */
extern char *aws_known_service_endpoint(const char *service, const char *explicit_url, const char *reference,
										const char *region, char **configured_by);

typedef struct AwsRequest
{
	const char *what;			/* for messages: "S3 request for s3://b/k", "AWS Invoicing ListInvoiceSummaries" */
	const char *service;		/* SigV4 signing name: "s3", "ce", "invoicing" */
	const char *region;
	const char *credentials;	/* a credentials reference, never a key */
	const AwsRoleSpec *role;	/* a role to assume on top of it, or NULL */
	const AwsCredentials *creds;	/* keys already in hand (STS's AssumeRole signs with the source's): used instead */
	bool		unsigned_request;	/* no signature at all (STS AssumeRoleWithWebIdentity) */
	const char *method;
	const AwsEndpoint *endpoint;
	const char *path;			/* absolute path, decoded ("/bucket/my key") */
	const SigV4Pair *query;		/* decoded query parameters */
	int			nquery;
	const SigV4Pair *headers;	/* service headers to sign (content-type, x-amz-target); not host or x-amz-* */
	int			nheaders;
	List	   *plain_headers;	/* sent unsigned, as "Name: value" (Range, If-Match, Accept) */
	const char *body;			/* NULL: none */
	size_t		body_len;
	bool		s3;				/* S3's rules: x-amz-content-sha256 is sent and paths are never normalized */
	bool		bounded;		/* a small answer: billops.http_request_timeout applies */
	int			max_retries;
	int			retry_base_ms;
	const char *retries_hint;	/* the hint when the retries run out */

	/*
	 * An answer whose transfer did not fail at the transport level (or a
	 * streamed one that broke after its head): true hands it to the caller.
	 */
	bool		(*accept) (HttpStream *hs, void *arg);

	/*
	 * An answer not accepted that did arrive: raise its error (never
	 * returns), or return a short description of a failure worth retrying.
	 * `creds` is NULL for an unsigned request.
	 */
	char	   *(*refuse) (HttpStream *hs, const AwsCredentials *creds, void *arg);
	void	   *arg;
} AwsRequest;

/*
 * Sends the request, retrying transport trouble and what `refuse` calls
 * retryable, with exponential backoff and full jitter on the latch (a cancel
 * is prompt).  Returns the accepted answer; *attempts (may be NULL) says how
 * many requests were sent.  Every error names req->what.
 */
extern HttpStream *aws_request_send(const AwsRequest *req, int *attempts);

/*
 * For `refuse`: AWS said the request's temporary credentials expired.  True
 * when the request may make them again and resend once (then `refuse`
 * returns a retry description instead of raising); false when it already
 * did, or the keys are not temporary (then the error is raised as usual).
 */
extern bool aws_request_credentials_expired(const AwsCredentials *creds);

#endif							/* BILLOPS_AWS_REQUEST_H */
