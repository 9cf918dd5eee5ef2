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
/* defines billops.ca_bundle and billops.http_*_timeout (from _PG_init) */
extern void billops_http_init(void);
/* localhost, 127.x, ::1, *.localhost: where plain http is allowed */
extern bool billops_is_loopback_host(const char *host);

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

/*
 * HttpBatch: up to HTTP_BATCH_MAX small requests in flight at once on one
 * event loop, each collecting its whole body (up to max_body bytes).  The
 * waits are interruptible like a stream's, and also return when the latch is
 * set, so a caller can take new work while requests are running.
 */
#define HTTP_BATCH_MAX 8

typedef struct HttpBatch HttpBatch;

extern HttpBatch *http_batch_create(int nslots);
/* Start a request in a free slot (0 .. nslots-1); the body and headers are copied. */
extern void http_batch_start(HttpBatch *b, int slot, const char *method, const char *url,
							 const List *headers, const char *body, size_t body_len,
							 size_t max_body);
extern bool http_batch_busy(HttpBatch *b, int slot);
/*
 * Drive the transfers until one has finished (its slot is returned), the
 * latch is set (-1, *latch_set) or timeout_ms passes (-1).
 */
extern int	http_batch_wait(HttpBatch *b, long timeout_ms, bool *latch_set);
/*
 * Take a finished slot's answer and free the slot: status 0 and *error set if
 * no complete HTTP answer arrived; the body is appended to `body`.
 */
extern void http_batch_take(HttpBatch *b, int slot, long *status, StringInfo body, char **error);

/* Sleep base_ms * 2^attempt (capped at 20 s) with full jitter, interruptibly. */
extern void http_backoff_sleep(int attempt, int base_ms);

/* Free a header list built for http_open / http_batch_start, wiping each string (signatures, tokens). */
extern void http_headers_free_wiped(List *headers);

/* Check that a URL is https, or http to a loopback host; errors otherwise. */
extern void http_check_url_allowed(const char *url, const char *what);

#endif							/* BILLOPS_HTTP_H */
