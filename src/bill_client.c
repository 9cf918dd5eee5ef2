/*
 * bill_client.c — talk to BILL's v3 API from the worker.
 *
 * Login: POST /v3/login {username, password, organizationId, devKey} →
 * sessionId.  Every other request sends the devKey and sessionId headers.
 * A session dies after 35 minutes idle (BDC_1109): we log in again and resend
 * once.  The login body is built and freed here, wiped, and never logged; the
 * session id lives in the worker's memory only.
 *
 * Query parameters arrive as a JSON object from SQL and are percent-encoded
 * here; values such as "name:eq:Datadog, Inc." must survive intact.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "billops.h"
#include "billops_bill.h"
#include "billops_bill_client.h"
#include "billops_http.h"
#include "billops_json.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

/* billops.bill_base_url (defined in billops_bill_client_init) */
static char *bill_base_url = NULL;

void
billops_bill_client_init(void)
{
	DefineCustomStringVariable("billops.bill_base_url",
							   "BILL API base URL, e.g. https://gateway.prod.bill.com/connect (empty: the worker does not call BILL).",
							   NULL, &bill_base_url, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
}


static char *session_id = NULL;		/* in TopMemoryContext */
static char *session_dev_key = NULL;	/* the devKey goes with every request */

bool
bill_client_configured(void)
{
	return bill_base_url != NULL && bill_base_url[0] != '\0' && bill_credentials_configured();
}


void
bill_client_forget_session(void)
{
	billops_wipe_free(session_id);
	session_id = NULL;
}

static char *
url_for(const char *path, const char *query_json)
{
	StringInfoData url;
	CURL	   *esc = curl_easy_init();
	Jsonb	   *q;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		first = true;
	char	   *key = NULL;

	initStringInfo(&url);
	appendStringInfo(&url, "%s%s", bill_base_url, path);
	if (query_json == NULL || esc == NULL)
	{
		if (esc)
			curl_easy_cleanup(esc);
		return url.data;
	}
	q = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(query_json)));
	it = JsonbIteratorInit(&q->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && key != NULL && v.type == jbvString)
		{
			char	   *k = curl_easy_escape(esc, key, 0);
			char	   *val = curl_easy_escape(esc, v.val.string.val, v.val.string.len);

			appendStringInfo(&url, "%c%s=%s", first ? '?' : '&', k, val);
			first = false;
			curl_free(k);
			curl_free(val);
		}
	}
	curl_easy_cleanup(esc);
	return url.data;
}

static void
send_once(const char *method, const char *url, List *headers, const char *body, BillResponse *out)
{
	HttpStream *s = http_open(method, url, headers, body, body ? strlen(body) : 0, true);

	resetStringInfo(&out->body);
	out->transport_error = NULL;
	out->status = http_head(s)->status;
	if (!http_failed(s) && http_read_all(s, &out->body, BILL_MAX_BODY, "BILL response") < 0)
		out->transport_error = pstrdup(http_error(s));
	else if (http_failed(s))
		out->transport_error = pstrdup(http_error(s));
	if (out->transport_error)
		out->status = 0;
	http_close(s);
}

static List *
json_headers(void)
{
	List	   *h = NIL;

	h = lappend(h, pstrdup("Content-Type: application/json"));
	h = lappend(h, pstrdup("Accept: application/json"));
	return h;
}

/* Log in; on failure the response is left in *out for the caller to report. */
static bool
login(BillResponse *out)
{
	BillCredentials *c = bill_credentials_load(true);
	StringInfoData body;
	MemoryContext old;
	char	   *sid;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"username\":");
	escape_json(&body, c->username);
	appendStringInfoString(&body, ",\"password\":");
	escape_json(&body, c->password);
	appendStringInfoString(&body, ",\"organizationId\":");
	escape_json(&body, c->organization_id);
	appendStringInfoString(&body, ",\"devKey\":");
	escape_json(&body, c->dev_key);
	appendStringInfoChar(&body, '}');

	PG_TRY();
	{
		send_once("POST", url_for("/v3/login", NULL), json_headers(), body.data, out);
	}
	PG_FINALLY();
	{
		billops_wipe(body.data, body.len);
	}
	PG_END_TRY();

	sid = (out->status >= 200 && out->status < 300) ? billops_json_string(billops_json_parse(out->body.data, out->body.len), "sessionId") : NULL;
	old = MemoryContextSwitchTo(TopMemoryContext);
	bill_client_forget_session();
	billops_wipe_free(session_dev_key);
	session_dev_key = NULL;
	if (sid)
	{
		session_id = pstrdup(sid);
		session_dev_key = pstrdup(c->dev_key);
	}
	MemoryContextSwitchTo(old);
	bill_credentials_free(c);
	return sid != NULL;
}

static uint64 session_generation = 0;	/* counts logins */

bool
bill_call_prepare(const char *path, const char *query_json, const char *content_type,
				  BillCall *call, BillResponse *login_answer)
{
	memset(call, 0, sizeof(*call));
	login_answer->login_failed = false;
	if (session_id == NULL)
	{
		if (!login(login_answer))
		{
			login_answer->login_failed = true;	/* the caller backs off; no row is to blame */
			return false;
		}
		session_generation++;
	}
	call->url = url_for(path, query_json);
	call->headers = list_make2(psprintf("Content-Type: %s", content_type ? content_type : "application/json"),
							   pstrdup("Accept: application/json"));
	call->headers = lappend(call->headers, psprintf("devKey: %s", session_dev_key));
	call->headers = lappend(call->headers, psprintf("sessionId: %s", session_id));
	call->session = session_generation;
	return true;
}

void
bill_call_free(BillCall *call)
{
	http_headers_free_wiped(call->headers);	/* they carry the devKey and session id */
	call->headers = NIL;
}

bool
bill_response_session_invalid(const BillResponse *r)
{
	/* BILL's error body is an array of {code, message}: BDC_1109 = log in again */
	return r->status >= 400 && strstr(r->body.data, "\"BDC_1109\"") != NULL;
}

void
bill_client_forget_session_of(uint64 session)
{
	/* several requests may fail with the same dead session; the first one's re-login counts */
	if (session == session_generation)
		bill_client_forget_session();
}

void
bill_client_request(const char *method, const char *path, const char *query_json,
					const char *body_json, BillResponse *out)
{
	for (int attempt = 0; attempt < 2; attempt++)
	{
		BillCall	call;

		if (!bill_call_prepare(path, query_json, NULL, &call, out))
			return;
		send_once(method, call.url, call.headers, body_json, out);
		bill_call_free(&call);
		if (!bill_response_session_invalid(out))
			return;
		bill_client_forget_session_of(call.session);
	}
}
