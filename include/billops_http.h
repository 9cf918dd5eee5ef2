/*
 * billops_http.h — HTTP(S) with libcurl, streamed and interruptible.
 *
 * One HttpStream is one request.  The body is pulled by the caller
 * (http_read), so a multi-gigabyte object flows through a fixed buffer; while
 * waiting, the backend sleeps on its latch *and* curl's sockets together, so a
 * query cancel or SIGTERM is honoured within milliseconds, not after a timeout.
 */
#ifndef BILLOPS_HTTP_H
#define BILLOPS_HTTP_H

#include "postgres.h"

#include <curl/curl.h>

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

typedef struct HttpStream HttpStream;

typedef struct HttpResponseHead
{
	long		status;			/* 0 if no response arrived */
	int64		content_length; /* -1 if not announced */
	char		etag[256];
	char		content_range[128];
	char		request_id[128];	/* x-amz-request-id, for support cases */
} HttpResponseHead;

/*
 * Open a request; returns once the response head has arrived or the transfer
 * failed (then http_failed() is true).  `headers` is copied.  `bounded`
 * applies billops.http_request_timeout to the whole transfer (small API
 * calls); streamed downloads only get the stall timeout.
 */
extern HttpStream *http_open(const char *method, const char *url,
							 const List *headers, const char *body, size_t body_len,
							 bool bounded);
extern const HttpResponseHead *http_head(HttpStream *s);
/* >0: bytes copied; 0: end of body; -1: transport failure (see http_error). */
extern ssize_t http_read(HttpStream *s, char *buf, size_t len);
extern bool http_failed(HttpStream *s);
extern const char *http_error(HttpStream *s);
/* Whether the failure is worth a retry (reset, timeout, short body...). */
extern bool http_error_transient(HttpStream *s);
extern void http_close(HttpStream *s);

/* Read a whole (small) body; errors if it exceeds max_bytes. */
extern ssize_t http_read_all(HttpStream *s, StringInfo out, size_t max_bytes, const char *what);

/* Check that a URL is https, or http to a loopback host; errors otherwise. */
extern void http_check_url_allowed(const char *url, const char *what);

#endif							/* BILLOPS_HTTP_H */
