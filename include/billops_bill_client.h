/*
 * billops_bill_client.h — one BILL v3 API session, as the worker uses it.
 *
 * The client knows transport and authentication only: where BILL is, how to
 * log in (secrets stay in C memory, never in SQL or logs), the devKey and
 * sessionId headers, and the BDC codes that mean "log in again".  What to
 * send and what an answer means is decided in SQL (50_bill_outbox.sql).
 */
#ifndef BILLOPS_BILL_CLIENT_H
#define BILLOPS_BILL_CLIENT_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

/* defines billops.bill_base_url (from _PG_init) */
extern void billops_bill_client_init(void);

/* the largest answer we accept from BILL */
#define BILL_MAX_BODY (16 * 1024 * 1024)

typedef struct BillResponse
{
	long		status;			/* 0: no HTTP answer (transport_error set) */
	StringInfoData body;
	char	   *transport_error;	/* NULL unless the request did not complete */
	bool		login_failed;	/* BILL refused the login: the answer is about us, not the row */
} BillResponse;

/*
 * One prepared request: its URL and headers (which carry the session, so
 * bill_call_free wipes them).  `session` tells which login it was made with.
 */
typedef struct BillCall
{
	char	   *url;
	List	   *headers;
	uint64		session;
} BillCall;

/*
 * Prepare a request, logging in first when there is no session.  false: BILL
 * refused the login, whose answer is left in *login_answer (login_failed set).
 * content_type NULL means JSON.
 */
extern bool bill_call_prepare(const char *path, const char *query_json, const char *content_type,
							  BillCall *call, BillResponse *login_answer);
extern void bill_call_free(BillCall *call);
/* BILL said the session is invalid (BDC_1109). */
extern bool bill_response_session_invalid(const BillResponse *r);
/* Forget the session a failed call used, unless a newer login has replaced it. */
extern void bill_client_forget_session_of(uint64 session);

/* Sends one request synchronously; logs in first (and again once after BDC_1109) as needed. */
extern void bill_client_request(const char *method, const char *path, const char *query_json,
								const char *body_json, BillResponse *out);
/* Forget the session (after BILL said it is invalid). */
extern void bill_client_forget_session(void);
extern bool bill_client_configured(void);

#endif							/* BILLOPS_BILL_CLIENT_H */
