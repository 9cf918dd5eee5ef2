/*
 * http.c — libcurl driven from a PostgreSQL backend, the event-driven way.
 *
 * curl tells us which sockets it wants (CURLMOPT_SOCKETFUNCTION) and when it
 * next needs a timeout (CURLMOPT_TIMERFUNCTION); we sleep on a WaitEventSet
 * holding those sockets plus the process latch and postmaster death, then hand
 * the ready sockets back to curl_multi_socket_action.  Doing better than
 * pg_net: CHECK_FOR_INTERRUPTS runs on every turn, so cancel and terminate are
 * prompt even in the middle of a slow body.
 *
 * One event loop (HttpLoop: a multi handle, its sockets, its wait set) serves
 * two front ends: HttpStream, one request whose body the caller pulls (S3
 * objects of any size), and HttpBatch, several small requests in flight at
 * once whose whole bodies are collected (BILL, three at a time).
 *
 * Curl callbacks never call palloc or ereport (a longjmp through libcurl would
 * corrupt it): a body goes into a fixed buffer allocated up front, and when
 * that is full the transfer is paused until the reader drains it.  curl
 * handles are released by a memory-context reset callback, so an error
 * anywhere cannot leak them.
 */
#include "postgres.h"

#include <math.h>

#include "billops.h"
#include "billops_http.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* settings (billops.ca_bundle, billops.http_*_timeout): defined in billops_http_init */
static char *ca_bundle = NULL;
static int	connect_timeout_ms = 10000;
static int	stall_timeout_ms = 60000;
static int	request_timeout_ms = 120000;

void
billops_http_init(void)
{
	DefineCustomStringVariable("billops.ca_bundle",
							   "CA certificate bundle for HTTPS peers (empty: the system default).",
							   NULL, &ca_bundle, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.http_connect_timeout",
							"Time allowed to connect to AWS or BILL.",
							NULL, &connect_timeout_ms, 10000, 100, 600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.http_stall_timeout",
							"A response body that delivers nothing for this long is treated as failed (and resumed).",
							NULL, &stall_timeout_ms, 60000, 1000, 3600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.http_request_timeout",
							"Total time allowed for a small API request (listings, manifests).",
							NULL, &request_timeout_ms, 120000, 1000, 3600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* Is host the loopback interface (where plain http is allowed)? */
bool
billops_is_loopback_host(const char *host)
{
	if (host == NULL)
		return false;
	if (pg_strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
		strcmp(host, "[::1]") == 0 || strncmp(host, "127.", 4) == 0)
		return true;
	/* RFC 6761: *.localhost always resolves to loopback (curl enforces it too) */
	{
		size_t		n = strlen(host);

		return n > 10 && pg_strcasecmp(host + n - 10, ".localhost") == 0;
	}
}


#define HTTP_STREAM_BUFFER_SIZE (1024 * 1024)
#define HTTP_BATCH_BUFFER_SIZE (256 * 1024)
/* a few per transfer (happy eyeballs tries IPv4 and IPv6 at once) */
#define HTTP_MAX_SOCKETS (4 * HTTP_BATCH_MAX + 4)

/* One multi handle and what curl asked us to watch for it. */
typedef struct HttpLoop
{
	CURLM	   *multi;
	curl_socket_t socks[HTTP_MAX_SOCKETS];
	int			sock_what[HTTP_MAX_SOCKETS];
	int			nsocks;
	long		timeout_ms;		/* -1: none requested */
	/* the wait set outlives a turn; rebuilt only when curl's sockets change */
	WaitEventSet *wait_set;
	bool		wait_set_dirty;
	MemoryContext cxt;			/* where the wait set lives */
} HttpLoop;

/* One request on a loop. */
typedef struct HttpTransfer
{
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *body;			/* our copy of the request body, if any */

	/* response body buffer: bytes [start, end) are unread */
	char	   *buf;
	size_t		bufsize;
	size_t		start;
	size_t		end;
	bool		paused;

	bool		head_done;
	bool		done;
	CURLcode	result;
	char		errbuf[CURL_ERROR_SIZE];
	HttpResponseHead head;
} HttpTransfer;

struct HttpStream
{
	HttpLoop	loop;
	HttpTransfer xfer;
	bool		closed;
	MemoryContextCallback cleanup;
};

typedef struct HttpBatchSlot
{
	bool		busy;
	HttpTransfer xfer;
	StringInfoData collected;	/* the whole body, drained from xfer.buf */
	size_t		max_body;
	char	   *error;			/* set when the transfer failed or grew too large */
} HttpBatchSlot;

struct HttpBatch
{
	HttpLoop	loop;
	int			nslots;
	HttpBatchSlot slots[HTTP_BATCH_MAX];
	bool		closed;
	MemoryContextCallback cleanup;
};

static bool curl_initialized = false;

/* --- curl callbacks: no palloc, no ereport ------------------------------- */

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	HttpLoop   *l = userp;
	int			i;

	l->wait_set_dirty = true;
	for (i = 0; i < l->nsocks; i++)
		if (l->socks[i] == fd)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < l->nsocks)
		{
			l->socks[i] = l->socks[l->nsocks - 1];
			l->sock_what[i] = l->sock_what[l->nsocks - 1];
			l->nsocks--;
		}
		return 0;
	}
	if (i == l->nsocks)
	{
		if (l->nsocks == HTTP_MAX_SOCKETS)
			return -1;			/* curl aborts the transfer with an error */
		l->nsocks++;
	}
	l->socks[i] = fd;
	l->sock_what[i] = what;
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	((HttpLoop *) userp)->timeout_ms = timeout_ms;
	return 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	HttpTransfer *t = userp;
	size_t		n = size * nmemb;

	if (t->bufsize - t->end < n && t->start > 0)
	{
		memmove(t->buf, t->buf + t->start, t->end - t->start);
		t->end -= t->start;
		t->start = 0;
	}
	if (t->bufsize - t->end < n)
	{
		t->paused = true;
		return CURL_WRITEFUNC_PAUSE;	/* curl keeps the data for later */
	}
	memcpy(t->buf + t->end, data, n);
	t->end += n;
	t->head_done = true;
	return n;
}

static void
copy_header_value(char *dst, size_t dstlen, const char *v, size_t vlen)
{
	while (vlen > 0 && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	if (vlen >= dstlen)
		vlen = dstlen - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	HttpTransfer *s = userp;
	size_t		n = size * nmemb;
	const char *colon;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		/* a new response head (after 100-continue too): start afresh */
		s->head.content_length = -1;
		s->head.etag[0] = s->head.content_range[0] = s->head.request_id[0] = '\0';
		s->head.status = 0;
		{
			const char *sp = memchr(data, ' ', n);

			if (sp)
				s->head.status = strtol(sp + 1, NULL, 10);
		}
		return n;
	}
	if (n <= 2 && (data[0] == '\r' || data[0] == '\n'))
	{
		if (s->head.status >= 200)
			s->head_done = true;
		return n;
	}
	colon = memchr(data, ':', n);
	if (colon == NULL)
		return n;
#define HDR_IS(name) ((size_t)(colon - data) == strlen(name) && pg_strncasecmp(data, name, strlen(name)) == 0)
	if (HDR_IS("etag"))
		copy_header_value(s->head.etag, sizeof(s->head.etag), colon + 1, n - (colon + 1 - data));
	else if (HDR_IS("content-range"))
		copy_header_value(s->head.content_range, sizeof(s->head.content_range), colon + 1, n - (colon + 1 - data));
	else if (HDR_IS("x-amz-request-id") || HDR_IS("x-amzn-requestid"))
		copy_header_value(s->head.request_id, sizeof(s->head.request_id), colon + 1, n - (colon + 1 - data));
	else if (HDR_IS("content-length"))
	{
		char		tmp[32];

		copy_header_value(tmp, sizeof(tmp), colon + 1, n - (colon + 1 - data));
		s->head.content_length = strtoll(tmp, NULL, 10);
	}
#undef HDR_IS
	return n;
}

/* --- the event loop ------------------------------------------------------- */

static void
loop_init(HttpLoop *l)
{
	if (!curl_initialized)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not initialize libcurl")));
		curl_initialized = true;
	}
	l->timeout_ms = -1;
	l->cxt = CurrentMemoryContext;
	l->multi = curl_multi_init();
	if (l->multi == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not create a libcurl handle")));
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
}

static void
loop_cleanup(HttpLoop *l)
{
	if (l->wait_set)
		FreeWaitEventSet(l->wait_set);
	l->wait_set = NULL;
	if (l->multi)
		curl_multi_cleanup(l->multi);
	l->multi = NULL;
}

/* Mark finished transfers done (each easy handle points at its HttpTransfer). */
static void
loop_collect_done(HttpLoop *l)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(l->multi, &left)) != NULL)
	{
		HttpTransfer *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
		if (t == NULL)
			continue;
		t->done = true;
		t->result = msg->data.result;
		t->head_done = true;
		if (t->head.status == 0)
			curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->head.status);
	}
}

/*
 * One turn: wait up to max_wait_ms for a socket, curl's timer or the latch,
 * then let curl act.  Interrupts are checked first, so a cancel aborts between
 * any two turns.  Returns true if the latch was set.
 */
static bool
loop_turn(HttpLoop *l, long max_wait_ms)
{
	WaitEvent	events[HTTP_MAX_SOCKETS + 2];
	int			nevents;
	long		timeout;
	int			running = 0;
	bool		latch_set = false;

	CHECK_FOR_INTERRUPTS();

	if (l->timeout_ms == 0)
	{
		l->timeout_ms = -1;
		curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		loop_collect_done(l);
		return false;
	}

	/* Cap the sleep so a lost wakeup can never hang us; curl's timers are exact anyway. */
	timeout = (l->timeout_ms < 0 || l->timeout_ms > max_wait_ms) ? max_wait_ms : l->timeout_ms;

	/*
	 * A set per turn would cost an epoll_create/ctl/close for every 16-512 kB
	 * of body; keep one until curl changes what it watches.
	 */
	if (l->wait_set == NULL || l->wait_set_dirty)
	{
		WaitEventSet *set;

		if (l->wait_set)
			FreeWaitEventSet(l->wait_set);
		l->wait_set = NULL;
		set = CreateWaitEventSet(l->cxt, l->nsocks + 2);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		/* a standalone (single-user) backend has no postmaster to watch */
		if (IsUnderPostmaster)
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < l->nsocks; i++)
		{
			uint32		ev = 0;

			if (l->sock_what[i] & CURL_POLL_IN)
				ev |= WL_SOCKET_READABLE;
			if (l->sock_what[i] & CURL_POLL_OUT)
				ev |= WL_SOCKET_WRITEABLE;
			if (ev)
				AddWaitEventToSet(set, ev, l->socks[i], NULL, NULL);
		}
		l->wait_set = set;
		l->wait_set_dirty = false;
	}
	nevents = WaitEventSetWait(l->wait_set, timeout, events, lengthof(events), PG_WAIT_EXTENSION);

	if (nevents == 0)
	{
		l->timeout_ms = -1;
		curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	for (int i = 0; i < nevents; i++)
	{
		int			mask = 0;

		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch_set = true;
			continue;
		}
		if (events[i].events & WL_SOCKET_READABLE)
			mask |= CURL_CSELECT_IN;
		if (events[i].events & WL_SOCKET_WRITEABLE)
			mask |= CURL_CSELECT_OUT;
		curl_multi_socket_action(l->multi, events[i].fd, mask, &running);
	}
	loop_collect_done(l);
	return latch_set;
}

/* --- one transfer ----------------------------------------------------------- */

void
http_check_url_allowed(const char *url, const char *what)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	bool		ok;

	if (u == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
	{
		curl_url_cleanup(u);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s URL \"%s\"", what, url),
				 errhint("Give a full URL such as https://s3.eu-west-1.amazonaws.com.")));
	}
	ok = (pg_strcasecmp(scheme, "https") == 0) ||
		(pg_strcasecmp(scheme, "http") == 0 && billops_is_loopback_host(host));
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s URL \"%s\" is not allowed", what, url),
				 errdetail("pg_billops only talks HTTPS with verified certificates; plain HTTP is allowed to loopback addresses only, for local emulators."),
				 errhint("Use an https:// endpoint.")));
}

void
http_backoff_sleep(int attempt, int base_ms)
{
	double		cap = Min((double) base_ms * pow(2.0, Min(attempt, 30)), 20000.0);
	long		ms = (long) (pg_prng_double(&pg_global_prng_state) * cap);
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left;

		CHECK_FOR_INTERRUPTS();
		left = (long) ((until - GetCurrentTimestamp()) / 1000);
		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

void
http_headers_free_wiped(List *headers)
{
	ListCell   *lc;

	foreach(lc, headers)
		billops_wipe_free(lfirst(lc));
	list_free(headers);
}

/* Headers may carry session ids and keys: wipe curl's copies before freeing them. */
static void
free_headers_wiped(struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h != NULL; h = h->next)
		billops_wipe(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

static void
transfer_release(HttpLoop *l, HttpTransfer *t)
{
	if (l->multi && t->easy)
		curl_multi_remove_handle(l->multi, t->easy);
	if (t->easy)
		curl_easy_cleanup(t->easy);
	t->easy = NULL;
	if (t->headers)
		free_headers_wiped(t->headers);
	t->headers = NULL;
}

/*
 * Set up a request on a loop and add it.  The caller has zeroed *t and set
 * t->buf / t->bufsize.  `bounded` applies billops.http_request_timeout to the
 * whole transfer; otherwise only the stall timeout applies.
 */
static void
transfer_start(HttpLoop *l, HttpTransfer *t, const char *method, const char *url,
			   const List *headers, const char *body, size_t body_len, bool bounded)
{
	ListCell   *lc;

	http_check_url_allowed(url, "request");
	t->head.content_length = -1;
	t->easy = curl_easy_init();
	if (t->easy == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not create a libcurl handle")));

	foreach(lc, headers)
	{
		struct curl_slist *n = curl_slist_append(t->headers, (const char *) lfirst(lc));

		if (n == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		t->headers = n;
	}
	/* curl would add "Expect: 100-continue" to bodies; neither AWS nor BILL needs the extra round trip */
	t->headers = curl_slist_append(t->headers, "Expect:");

	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (char *) t);
	curl_easy_setopt(t->easy, CURLOPT_URL, url);
	curl_easy_setopt(t->easy, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(t->easy, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);

	/*
	 * When a reused keep-alive connection turns out to be dead before any
	 * answer arrived, libcurl silently sends the request again on a new one.
	 * The first copy may well have been carried out (the server closed after
	 * committing), so a request that is not idempotent -- "create this bill"
	 * -- gets a connection of its own, which libcurl never resends on.
	 */
	if (strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0)
		curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 1L);
	if (body != NULL)
	{
		/* our own copy: the caller's may be gone before curl has sent it all */
		t->body = palloc(Max(body_len, 1));
		memcpy(t->body, body, body_len);
		curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
		curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
	}
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_bundle && ca_bundle[0])
		curl_easy_setopt(t->easy, CURLOPT_CAINFO, ca_bundle);
	curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) connect_timeout_ms);
	/* a body that stops flowing is a failure we can retry, not a hang */
	curl_easy_setopt(t->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(t->easy, CURLOPT_LOW_SPEED_TIME, (long) Max(1, stall_timeout_ms / 1000));
	if (bounded)
		curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long) request_timeout_ms);
	curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "pg_billops/0.1");
	/* fewer, larger reads per wakeup (curl's default is 16 kB) */
	curl_easy_setopt(t->easy, CURLOPT_BUFFERSIZE, (long) Min(t->bufsize / 2, 512L * 1024L));
	/* never let a gzip Content-Encoding be undone behind our back: we count raw bytes */
	curl_easy_setopt(t->easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);

	if (curl_multi_add_handle(l->multi, t->easy) != CURLM_OK)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not start an HTTP request")));
}

/* Let a paused transfer go on once the reader has made room. */
static void
transfer_unpause(HttpTransfer *t)
{
	if (t->paused && t->bufsize - (t->end - t->start) >= CURL_MAX_WRITE_SIZE * 4)
	{
		t->paused = false;
		curl_easy_pause(t->easy, CURLPAUSE_CONT);
	}
}

static const char *
transfer_error(HttpTransfer *t)
{
	if (!t->done || t->result == CURLE_OK)
		return "no error";
	return t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
}

/* --- HttpStream: one request, the body pulled by the caller ---------------- */

static void
stream_cleanup_callback(void *arg)
{
	HttpStream *s = arg;

	if (s->closed)
		return;
	s->closed = true;
	transfer_release(&s->loop, &s->xfer);
	loop_cleanup(&s->loop);
}

HttpStream *
http_open(const char *method, const char *url, const List *headers,
		  const char *body, size_t body_len, bool bounded)
{
	HttpStream *s = palloc0(sizeof(HttpStream));

	s->cleanup.func = stream_cleanup_callback;
	s->cleanup.arg = s;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &s->cleanup);
	loop_init(&s->loop);
	s->xfer.bufsize = HTTP_STREAM_BUFFER_SIZE;
	s->xfer.buf = palloc(s->xfer.bufsize);
	transfer_start(&s->loop, &s->xfer, method, url, headers, body, body_len, bounded);

	while (!s->xfer.head_done && !s->xfer.done)
		(void) loop_turn(&s->loop, 1000);
	return s;
}

const HttpResponseHead *
http_head(HttpStream *s)
{
	return &s->xfer.head;
}

ssize_t
http_read(HttpStream *s, char *out, size_t len)
{
	HttpTransfer *t = &s->xfer;

	for (;;)
	{
		if (t->end > t->start)
		{
			size_t		n = Min(len, t->end - t->start);

			memcpy(out, t->buf + t->start, n);
			t->start += n;
			if (t->start == t->end)
				t->start = t->end = 0;
			transfer_unpause(t);
			return (ssize_t) n;
		}
		if (t->paused)
		{
			t->paused = false;
			curl_easy_pause(t->easy, CURLPAUSE_CONT);
			continue;
		}
		if (t->done)
			return t->result == CURLE_OK ? 0 : -1;
		(void) loop_turn(&s->loop, 1000);
	}
}

bool
http_failed(HttpStream *s)
{
	return s->xfer.done && s->xfer.result != CURLE_OK;
}

const char *
http_error(HttpStream *s)
{
	return transfer_error(&s->xfer);
}

bool
http_error_transient(HttpStream *s)
{
	switch (s->xfer.result)
	{
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_PARTIAL_FILE:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_COULDNT_RESOLVE_HOST:
			return true;
		default:
			return false;
	}
}

void
http_close(HttpStream *s)
{
	stream_cleanup_callback(s);
	if (s->xfer.buf)
		pfree(s->xfer.buf);
	s->xfer.buf = NULL;
	if (s->xfer.body)
		pfree(s->xfer.body);
	s->xfer.body = NULL;
}

ssize_t
http_read_all(HttpStream *s, StringInfo out, size_t max_bytes, const char *what)
{
	char		chunk[65536];
	ssize_t		n;

	while ((n = http_read(s, chunk, sizeof(chunk))) > 0)
	{
		if ((size_t) out->len + n > max_bytes)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("%s is larger than %zu bytes", what, max_bytes)));
		appendBinaryStringInfo(out, chunk, n);
	}
	return n < 0 ? -1 : out->len;
}

/* --- HttpBatch: a few small requests in flight together ------------------- */

static void
batch_cleanup_callback(void *arg)
{
	HttpBatch  *b = arg;

	if (b->closed)
		return;
	b->closed = true;
	for (int i = 0; i < b->nslots; i++)
		transfer_release(&b->loop, &b->slots[i].xfer);
	loop_cleanup(&b->loop);
}

HttpBatch *
http_batch_create(int nslots)
{
	HttpBatch  *b = palloc0(sizeof(HttpBatch));

	Assert(nslots >= 1 && nslots <= HTTP_BATCH_MAX);
	b->nslots = nslots;
	b->cleanup.func = batch_cleanup_callback;
	b->cleanup.arg = b;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &b->cleanup);
	loop_init(&b->loop);
	for (int i = 0; i < nslots; i++)
	{
		b->slots[i].xfer.bufsize = HTTP_BATCH_BUFFER_SIZE;
		b->slots[i].xfer.buf = palloc(HTTP_BATCH_BUFFER_SIZE);
		initStringInfo(&b->slots[i].collected);
	}
	return b;
}

void
http_batch_start(HttpBatch *b, int slot, const char *method, const char *url, const List *headers,
				 const char *body, size_t body_len, size_t max_body)
{
	HttpBatchSlot *s = &b->slots[slot];
	char	   *buf = s->xfer.buf;

	Assert(slot >= 0 && slot < b->nslots && !s->busy);
	memset(&s->xfer, 0, sizeof(s->xfer));
	s->xfer.buf = buf;
	s->xfer.bufsize = HTTP_BATCH_BUFFER_SIZE;
	resetStringInfo(&s->collected);
	s->max_body = max_body;
	s->error = NULL;
	s->busy = true;
	transfer_start(&b->loop, &s->xfer, method, url, headers, body, body_len, true);
}

bool
http_batch_busy(HttpBatch *b, int slot)
{
	return b->slots[slot].busy;
}

/* Move what curl wrote into the slot's body; stop a body that grows too large. */
static void
batch_drain(HttpBatch *b, HttpBatchSlot *s)
{
	HttpTransfer *t = &s->xfer;

	if (t->end > t->start && s->error == NULL)
	{
		if ((size_t) s->collected.len + (t->end - t->start) > s->max_body)
		{
			s->error = psprintf("the response is larger than %zu bytes", s->max_body);
			transfer_release(&b->loop, t);
			t->done = true;
			return;
		}
		appendBinaryStringInfo(&s->collected, t->buf + t->start, t->end - t->start);
	}
	t->start = t->end = 0;
	transfer_unpause(t);
}

int
http_batch_wait(HttpBatch *b, long timeout_ms, bool *latch_set)
{
	TimestampTz deadline = GetCurrentTimestamp() + (TimestampTz) Max(timeout_ms, 0) * 1000;

	*latch_set = false;
	for (;;)
	{
		long		left;

		for (int i = 0; i < b->nslots; i++)
		{
			HttpBatchSlot *s = &b->slots[i];

			if (!s->busy)
				continue;
			batch_drain(b, s);
			if (s->xfer.done)
				return i;
		}
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (*latch_set || left <= 0)
			return -1;
		*latch_set = loop_turn(&b->loop, Min(left, 1000L));
	}
}

void
http_batch_take(HttpBatch *b, int slot, long *status, StringInfo body, char **error)
{
	HttpBatchSlot *s = &b->slots[slot];

	Assert(s->busy && s->xfer.done);
	batch_drain(b, s);
	if (s->error == NULL && s->xfer.result != CURLE_OK)
		s->error = pstrdup(transfer_error(&s->xfer));
	*status = s->error ? 0 : s->xfer.head.status;
	*error = s->error;
	appendBinaryStringInfo(body, s->collected.data, s->collected.len);
	transfer_release(&b->loop, &s->xfer);
	if (s->xfer.body)
		pfree(s->xfer.body);
	s->xfer.body = NULL;
	s->busy = false;
}
