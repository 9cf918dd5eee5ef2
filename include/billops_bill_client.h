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

typedef struct BillResponse
{
	long		status;			/* 0: no HTTP answer (transport_error set) */
	StringInfoData body;
	char	   *transport_error;	/* NULL unless the request did not complete */
	bool		login_failed;	/* BILL refused the login: the answer is about us, not the row */
} BillResponse;

/* Sends one request; logs in first (and again once after BDC_1109) as needed. */
extern void bill_client_request(const char *method, const char *path, const char *query_json,
								const char *body_json, BillResponse *out);
/* Forget the session (after BILL said it is invalid). */
extern void bill_client_forget_session(void);
extern bool bill_client_configured(void);

#endif							/* BILLOPS_BILL_CLIENT_H */
