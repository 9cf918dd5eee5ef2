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
 * Curl callbacks never call palloc or ereport (a longjmp through libcurl would
 * corrupt it): the body goes into a fixed buffer allocated up front, and when
 * that is full the transfer is paused until the reader drains it.  curl
 * handles are released by a memory-context reset callback, so an error
 * anywhere cannot leak them.
 */
#include "postgres.h"

#include "billops.h"
#include "billops_http.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#define HTTP_BUFFER_SIZE (1024 * 1024)
#define HTTP_MAX_SOCKETS 8

struct HttpStream
{
	CURLM	   *multi;
	CURL	   *easy;
	struct curl_slist *headers;
	bool		closed;

	/* what curl asked us to watch */
	curl_socket_t socks[HTTP_MAX_SOCKETS];
	int			sock_what[HTTP_MAX_SOCKETS];
	int			nsocks;
	long		timeout_ms;		/* -1: none requested */

	/* body buffer: bytes [start, end) are unread */
	char	   *buf;
	size_t		start;
	size_t		end;
	bool		paused;

	/* the wait set outlives a turn; rebuilt only when curl's sockets change */
	WaitEventSet *wait_set;
	bool		wait_set_dirty;

	bool		head_done;
	bool		done;
	CURLcode	result;
	char		errbuf[CURL_ERROR_SIZE];
	HttpResponseHead head;
	MemoryContextCallback cleanup;
};

static bool curl_initialized = false;

static void
http_cleanup_callback(void *arg)
{
	HttpStream *s = arg;

	if (s->closed)
		return;
	s->closed = true;
	if (s->wait_set)
		FreeWaitEventSet(s->wait_set);
	s->wait_set = NULL;
	if (s->multi && s->easy)
		curl_multi_remove_handle(s->multi, s->easy);
	if (s->easy)
		curl_easy_cleanup(s->easy);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	if (s->headers)
		curl_slist_free_all(s->headers);
	s->easy = NULL;
	s->multi = NULL;
	s->headers = NULL;
}

/* --- curl callbacks: no palloc, no ereport ------------------------------- */

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	HttpStream *s = userp;
	int			i;

	s->wait_set_dirty = true;
	for (i = 0; i < s->nsocks; i++)
		if (s->socks[i] == fd)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < s->nsocks)
		{
			s->socks[i] = s->socks[s->nsocks - 1];
			s->sock_what[i] = s->sock_what[s->nsocks - 1];
			s->nsocks--;
		}
		return 0;
	}
	if (i == s->nsocks)
	{
		if (s->nsocks == HTTP_MAX_SOCKETS)
			return -1;			/* curl aborts the transfer with an error */
		s->nsocks++;
	}
	s->socks[i] = fd;
	s->sock_what[i] = what;
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	((HttpStream *) userp)->timeout_ms = timeout_ms;
	return 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	HttpStream *s = userp;
	size_t		n = size * nmemb;

	if (HTTP_BUFFER_SIZE - s->end < n && s->start > 0)
	{
		memmove(s->buf, s->buf + s->start, s->end - s->start);
		s->end -= s->start;
		s->start = 0;
	}
	if (HTTP_BUFFER_SIZE - s->end < n)
	{
		s->paused = true;
		return CURL_WRITEFUNC_PAUSE;	/* curl keeps the data for later */
	}
	memcpy(s->buf + s->end, data, n);
	s->end += n;
	s->head_done = true;
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
	HttpStream *s = userp;
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
	else if (HDR_IS("x-amz-request-id"))
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

/* --- driving the transfer ------------------------------------------------- */

static void
collect_done(HttpStream *s)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(s->multi, &left)) != NULL)
	{
		if (msg->msg == CURLMSG_DONE)
		{
			s->done = true;
			s->result = msg->data.result;
			s->head_done = true;
			if (s->head.status == 0)
				curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->head.status);
		}
	}
}

/*
 * One turn: wait for a socket, the timer or the latch, then let curl act.
 * Interrupts are checked first, so a cancel aborts between any two turns.
 */
static void
http_turn(HttpStream *s)
{
	WaitEventSet *set;
	WaitEvent	events[HTTP_MAX_SOCKETS + 2];
	int			nevents;
	long		timeout;
	int			running = 0;

	CHECK_FOR_INTERRUPTS();

	if (s->timeout_ms == 0)
	{
		s->timeout_ms = -1;
		curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		collect_done(s);
		return;
	}

	/* Cap the sleep so a lost wakeup can never hang us; curl's timers are exact anyway. */
	timeout = (s->timeout_ms < 0 || s->timeout_ms > 1000) ? 1000 : s->timeout_ms;

	/*
	 * A set per turn would cost an epoll_create/ctl/close for every 16-512 kB
	 * of body; keep one until curl changes what it watches.
	 */
	if (s->wait_set == NULL || s->wait_set_dirty)
	{
		if (s->wait_set)
			FreeWaitEventSet(s->wait_set);
		s->wait_set = NULL;
		set = CreateWaitEventSet(GetMemoryChunkContext(s), s->nsocks + 2);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		/* a standalone (single-user) backend has no postmaster to watch */
		if (IsUnderPostmaster)
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < s->nsocks; i++)
		{
			uint32		ev = 0;

			if (s->sock_what[i] & CURL_POLL_IN)
				ev |= WL_SOCKET_READABLE;
			if (s->sock_what[i] & CURL_POLL_OUT)
				ev |= WL_SOCKET_WRITEABLE;
			if (ev)
				AddWaitEventToSet(set, ev, s->socks[i], NULL, NULL);
		}
		s->wait_set = set;
		s->wait_set_dirty = false;
	}
	nevents = WaitEventSetWait(s->wait_set, timeout, events, lengthof(events), PG_WAIT_EXTENSION);

	if (nevents == 0)
	{
		s->timeout_ms = -1;
		curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	for (int i = 0; i < nevents; i++)
	{
		int			mask = 0;

		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			continue;
		}
		if (events[i].events & WL_SOCKET_READABLE)
			mask |= CURL_CSELECT_IN;
		if (events[i].events & WL_SOCKET_WRITEABLE)
			mask |= CURL_CSELECT_OUT;
		curl_multi_socket_action(s->multi, events[i].fd, mask, &running);
	}
	collect_done(s);
}

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

HttpStream *
http_open(const char *method, const char *url, const List *headers,
		  const char *body, size_t body_len, bool bounded)
{
	HttpStream *s = palloc0(sizeof(HttpStream));
	ListCell   *lc;

	if (!curl_initialized)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not initialize libcurl")));
		curl_initialized = true;
	}
	http_check_url_allowed(url, "request");

	s->buf = palloc(HTTP_BUFFER_SIZE);
	s->timeout_ms = -1;
	s->head.content_length = -1;
	s->cleanup.func = http_cleanup_callback;
	s->cleanup.arg = s;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &s->cleanup);

	s->multi = curl_multi_init();
	s->easy = curl_easy_init();
	if (s->multi == NULL || s->easy == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not create a libcurl handle")));

	foreach(lc, headers)
	{
		struct curl_slist *n = curl_slist_append(s->headers, (const char *) lfirst(lc));

		if (n == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		s->headers = n;
	}
	/* curl would add "Expect: 100-continue" to bodies; AWS does not need the extra round trip */
	s->headers = curl_slist_append(s->headers, "Expect:");

	curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);

	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(s->easy, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
	if (body != NULL)
	{
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (billops_ca_bundle && billops_ca_bundle[0])
		curl_easy_setopt(s->easy, CURLOPT_CAINFO, billops_ca_bundle);
	curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) billops_http_connect_timeout_ms);
	/* a body that stops flowing is a failure we can retry, not a hang */
	curl_easy_setopt(s->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(s->easy, CURLOPT_LOW_SPEED_TIME, (long) Max(1, billops_http_stall_timeout_ms / 1000));
	if (bounded)
		curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long) billops_http_request_timeout_ms);
	curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "pg_billops/0.1");
	/* fewer, larger reads per wakeup (curl's default is 16 kB) */
	curl_easy_setopt(s->easy, CURLOPT_BUFFERSIZE, 512L * 1024L);
	/* never let a gzip Content-Encoding be undone behind our back: we count raw bytes */
	curl_easy_setopt(s->easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);

	if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not start an HTTP request")));

	while (!s->head_done && !s->done)
		http_turn(s);
	return s;
}

const HttpResponseHead *
http_head(HttpStream *s)
{
	return &s->head;
}

ssize_t
http_read(HttpStream *s, char *out, size_t len)
{
	for (;;)
	{
		if (s->end > s->start)
		{
			size_t		n = Min(len, s->end - s->start);

			memcpy(out, s->buf + s->start, n);
			s->start += n;
			if (s->start == s->end)
				s->start = s->end = 0;
			if (s->paused && HTTP_BUFFER_SIZE - (s->end - s->start) >= CURL_MAX_WRITE_SIZE * 4)
			{
				s->paused = false;
				curl_easy_pause(s->easy, CURLPAUSE_CONT);
			}
			return (ssize_t) n;
		}
		if (s->paused)
		{
			s->paused = false;
			curl_easy_pause(s->easy, CURLPAUSE_CONT);
			continue;
		}
		if (s->done)
			return s->result == CURLE_OK ? 0 : -1;
		http_turn(s);
	}
}

bool
http_failed(HttpStream *s)
{
	return s->done && s->result != CURLE_OK;
}

const char *
http_error(HttpStream *s)
{
	if (!http_failed(s))
		return "no error";
	return s->errbuf[0] ? s->errbuf : curl_easy_strerror(s->result);
}

bool
http_error_transient(HttpStream *s)
{
	switch (s->result)
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
	http_cleanup_callback(s);
	if (s->buf)
	{
		pfree(s->buf);
		s->buf = NULL;
	}
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
