/*
 * bill_lanes.c — delivering the BILL outbox: up to three rows at a time, each
 * a lane that walks its row through its steps (one request, one recorded
 * answer, the next request) on one curl event loop.
 *
 * What to send and what BILL's answers mean is decided in SQL
 * (billops._outbox_request / _outbox_response); here a lane sends what SQL
 * prepared and does what SQL's typed answer (billops._outbox_next) says.
 */
#include "postgres.h"

#include "access/xact.h"
#include "billops_bill_client.h"
#include "billops_bill_worker.h"
#include "billops_http.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* after BILL refused our login: seconds before we ask again (doubling to 15 min) */
static int	login_backoff_s = 0;

/*
 * Delivery: up to three rows at a time (BILL allows three concurrent requests
 * per devKey and organization), each a lane that walks its row through its
 * steps -- one request, one recorded answer, the next request.  All lanes
 * share one curl event loop; while they wait, a commit that enqueues new rows
 * wakes us to fill a free lane.
 */
#define BILL_LANES 3
#define BILL_STEPS_PER_CLAIM 50

typedef struct Lane
{
	bool		busy;			/* holds a claimed outbox row */
	bool		in_flight;		/* its request is on the wire */
	int64		outbox_id;
	int			steps;
	int			relogins;
	uint64		session;		/* the login its request was sent with */
	TimestampTz not_before;		/* after BDC_1322: resend no earlier than this */
	char		activity[96];
	MemoryContext cxt;			/* one step's memory */
} Lane;

typedef struct Delivery
{
	HttpBatch  *batch;
	Lane		lanes[BILL_LANES];
	int			max_lanes;		/* billops.bill_max_concurrent_requests */
	int			limit;			/* lanes we may fill: lowered by BDC_1322, raised by successes */
	int			successes;
} Delivery;


static int64
claim_one(void)
{
	int64		id = 0;

	bill_begin_tx("pg_billops: claiming an outbox row");
	SPI_execute("SELECT outbox_id FROM billops._outbox_claim(1)", false, 0);
	if (SPI_processed > 0)
	{
		bool		isnull;

		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	bill_end_tx();
	return id;
}

static void
defer_row(int64 outbox_id, double delay_s, bool count_attempt, const char *code, const char *message)
{
	Datum		args[5];
	Oid			types[5] = {INT8OID, NUMERICOID, BOOLOID, TEXTOID, TEXTOID};
	char		nulls[5] = {' ', ' ', ' ', code ? ' ' : 'n', message ? ' ' : 'n'};

	bill_begin_tx("pg_billops: deferring an outbox row");
	args[0] = Int64GetDatum(outbox_id);
	args[1] = DirectFunctionCall1(float8_numeric, Float8GetDatum(delay_s));
	args[2] = BoolGetDatum(count_attempt);
	args[3] = code ? CStringGetTextDatum(code) : (Datum) 0;
	args[4] = message ? CStringGetTextDatum(message) : (Datum) 0;
	SPI_execute_with_args("SELECT billops._outbox_defer($1, $2, $3, $4, $5)", 5, types, args, nulls, false, 1);
	bill_end_tx();
}

static int
lanes_busy(Delivery *d)
{
	int			n = 0;

	for (int i = 0; i < BILL_LANES; i++)
		n += d->lanes[i].busy ? 1 : 0;
	return n;
}

/* pg_stat_activity: "pg_billops: waiting on BILL: outbox 12: POST /v3/bills; outbox 13: GET /v3/vendors" */
static void
report_lanes(Delivery *d)
{
	char		activity[400];
	int			len;
	bool		first = true;

	len = snprintf(activity, sizeof(activity), "pg_billops: waiting on BILL:");
	for (int i = 0; i < BILL_LANES && len < (int) sizeof(activity); i++)
		if (d->lanes[i].in_flight)
		{
			len += snprintf(activity + len, sizeof(activity) - len, "%s %s", first ? "" : ";", d->lanes[i].activity);
			first = false;
		}
	pgstat_report_activity(STATE_RUNNING, first ? "pg_billops: delivering the BILL outbox" : activity);
}

static void
lane_free(Lane *lane)
{
	lane->busy = false;
	lane->in_flight = false;
}

/*
 * The SQL side of one lane's step failed (a row BILL answered with something
 * we cannot record, a lock conflict, a bug): report it, and give the row back
 * as a failed attempt -- it restarts where it finds out what BILL did, backs
 * off, and becomes a dead letter with this reason after bill_max_attempts.
 * The other lanes and the rest of the queue go on.
 */
static void
lane_sql_failed(Lane *lane, const char *doing)
{
	ErrorData  *edata;
	char	   *message;

	MemoryContextSwitchTo(lane->cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	SPI_finish();
	message = psprintf("%s: %s", doing, edata->message);
	ereport(WARNING,
			(errmsg("pg_billops: outbox row %lld failed while %s: %s", (long long) lane->outbox_id, doing, edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
			 errhint("The row is retried with backoff and becomes dead after billops.bill_max_attempts; see billops.bill_outbox_status.")));
	defer_row(lane->outbox_id, -1, true, unpack_sql_state(edata->sqlerrcode), message);
	FreeErrorData(edata);
	lane_free(lane);
}

/* Send the lane's next request, or hand its row back when we must not. */
static void
lane_send(Delivery *d, int i)
{
	Lane	   *lane = &d->lanes[i];
	char	   *volatile method = NULL;
	char	   *volatile path = NULL;
	char	   *volatile query = NULL;
	char	   *volatile body = NULL;
	char	   *volatile content_type = NULL;
	volatile size_t body_len = 0;
	bool		raw_null;
	Datum		raw;
	BillCall	call;
	BillResponse login_answer;
	Datum		arg = Int64GetDatum(lane->outbox_id);
	Oid			type = INT8OID;
	MemoryContext old;

	if (bill_paused())
	{
		/* BILL asked us to stop: the row keeps its cursor and waits in the queue */
		defer_row(lane->outbox_id, 0, false, NULL, NULL);
		lane_free(lane);
		return;
	}
	if (lane->steps++ >= BILL_STEPS_PER_CLAIM)
	{
		/* a long walk (a lookup through many pages): let other rows go first, keep the cursor */
		defer_row(lane->outbox_id, 0, false, NULL, NULL);
		lane_free(lane);
		return;
	}

	MemoryContextReset(lane->cxt);
	old = MemoryContextSwitchTo(lane->cxt);
	PG_TRY();
	{
		bill_begin_tx("pg_billops: preparing a BILL request");
		SPI_execute_with_args("SELECT method, path, query::text, body::text, raw_body, content_type "
							  "FROM billops._outbox_request($1)", 1, &type, &arg, NULL, false, 1);
		method = bill_spi_text(1, lane->cxt);
		path = bill_spi_text(2, lane->cxt);
		query = bill_spi_text(3, lane->cxt);
		body = bill_spi_text(4, lane->cxt);
		content_type = bill_spi_text(6, lane->cxt);
		raw = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &raw_null);
		if (body)
			body_len = strlen(body);
		else if (!raw_null)
		{
			/* a file, sent as it is (a document upload) */
			bytea	   *file;

			MemoryContextSwitchTo(lane->cxt);
			file = DatumGetByteaPCopy(raw);
			body = VARDATA(file);
			body_len = VARSIZE(file) - VARHDRSZ;
		}
		/* committed before sending: the intents and what the request carries */
		bill_end_tx();
	}
	PG_CATCH();
	{
		lane_sql_failed(lane, "preparing its request");
		MemoryContextSwitchTo(old);
		return;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(lane->cxt);
	if (method == NULL)
	{
		/* nothing to send: the payable stopped being pushable, the row is finished */
		lane_free(lane);
		MemoryContextSwitchTo(old);
		return;
	}

	initStringInfo(&login_answer.body);
	if (!bill_call_prepare(path, query, content_type, &call, &login_answer))
	{
		/* BILL refused our credentials: not this row's fault; stop asking for a while */
		login_backoff_s = login_backoff_s ? Min(login_backoff_s * 2, 900) : 60;
		bill_pause(GetCurrentTimestamp() + (TimestampTz) login_backoff_s * USECS_PER_SEC,
					 psprintf("BILL refused the login (HTTP %ld); see the server log", login_answer.status));
		ereport(WARNING,
				(errmsg("pg_billops: BILL refused the login (HTTP %ld); no requests for %d s",
						login_answer.status, login_backoff_s),
				 errdetail("%.300s", login_answer.transport_error ? login_answer.transport_error : login_answer.body.data),
				 errhint("Check dev_key, username, password and organization_id in billops.bill_credentials_file.")));
		/* due at once: the pause holds it back, and a reload that ends the pause lets it go */
		defer_row(lane->outbox_id, 0, false, "LOGIN", "BILL refused the login; see the server log");
		lane_free(lane);
		MemoryContextSwitchTo(old);
		return;
	}
	login_backoff_s = 0;
	http_batch_start(d->batch, i, method, call.url, call.headers, body, body_len, BILL_MAX_BODY);
	lane->session = call.session;
	bill_call_free(&call);		/* curl has its own (wiped on release) copy of the headers */
	lane->in_flight = true;
	snprintf(lane->activity, sizeof(lane->activity), "outbox %lld: %s %s",
			 (long long) lane->outbox_id, method, path);
	MemoryContextSwitchTo(old);
}

/*
 * What billops._outbox_response tells the lane to do next: the values of the
 * SQL enum billops._outbox_next, in its order.  The switch in lane_answer
 * handles every one (the compiler checks), and a value C does not know is an
 * error, never a silent default.
 */
typedef enum OutboxNext
{
	NEXT_DONE,					/* the row is finished */
	NEXT_CONTINUE,				/* its next step is ready: send it on the next turn */
	NEXT_RETRY,					/* deferred with backoff */
	NEXT_DEAD,					/* a dead letter */
	NEXT_RELOGIN,				/* BILL said the session is invalid (BDC_1109) */
	NEXT_THROTTLE,				/* BILL's concurrency limit (BDC_1322) */
	NEXT_HOURLY					/* BILL's hourly limit (BDC_1144): the row waits for the next hour */
} OutboxNext;

static const char *const outbox_next_names[] = {
	[NEXT_DONE] = "done",
	[NEXT_CONTINUE] = "continue",
	[NEXT_RETRY] = "retry",
	[NEXT_DEAD] = "dead",
	[NEXT_RELOGIN] = "relogin",
	[NEXT_THROTTLE] = "throttle",
	[NEXT_HOURLY] = "hourly",
};

static OutboxNext
outbox_next_of(const char *name)
{
	for (int i = 0; i < lengthof(outbox_next_names); i++)
		if (name != NULL && strcmp(name, outbox_next_names[i]) == 0)
			return (OutboxNext) i;
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("billops._outbox_response answered \"%s\", which the BILL worker does not know", name ? name : "NULL"),
			 errhint("The installed SQL and the loaded library are of different versions; restart PostgreSQL after installing both.")));
	return NEXT_DEAD;			/* not reached */
}

/* Record the answer to a lane's request and decide what the lane does next. */
static void
lane_answer(Delivery *d, int i)
{
	Lane	   *lane = &d->lanes[i];
	BillResponse resp;
	Datum		args[4];
	Oid			types[4] = {INT8OID, INT4OID, TEXTOID, TEXTOID};
	char		nulls[4] = {' ', ' ', ' ', ' '};
	volatile OutboxNext next = NEXT_DEAD;
	MemoryContext old = MemoryContextSwitchTo(lane->cxt);

	initStringInfo(&resp.body);
	http_batch_take(d->batch, i, &resp.status, &resp.body, &resp.transport_error);
	lane->in_flight = false;

	PG_TRY();
	{
		bill_begin_tx("pg_billops: recording BILL's answer");
		args[0] = Int64GetDatum(lane->outbox_id);
		args[1] = Int32GetDatum((int32) resp.status);
		nulls[1] = resp.status == 0 ? 'n' : ' ';
		args[2] = CStringGetTextDatum(resp.body.data);
		args[3] = resp.transport_error ? CStringGetTextDatum(resp.transport_error) : (Datum) 0;
		nulls[3] = resp.transport_error ? ' ' : 'n';
		SPI_execute_with_args("SELECT billops._outbox_response($1, $2, $3, $4)", 4, types, args, nulls, false, 1);
		next = outbox_next_of(bill_spi_text(1, lane->cxt));
		bill_end_tx();
	}
	PG_CATCH();
	{
		lane_sql_failed(lane, "recording BILL's answer");
		MemoryContextSwitchTo(old);
		return;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);

	if (next == NEXT_THROTTLE)
	{
		/*
		 * BDC_1322: someone else (another integration on the same devKey and
		 * organization) holds slots too.  Back off this lane, and use fewer
		 * lanes until BILL has answered a while without complaint.
		 */
		lane->not_before = GetCurrentTimestamp() + (TimestampTz) (250 + random() % 750) * 1000;
		d->limit = Max(1, lanes_busy(d) - 1);
		d->successes = 0;
		return;
	}
	if (++d->successes >= 20 && d->limit < d->max_lanes)
	{
		d->limit++;
		d->successes = 0;
	}
	switch (next)
	{
		case NEXT_CONTINUE:
			return;				/* sent on the next turn */
		case NEXT_RELOGIN:
			bill_client_forget_session_of(lane->session);
			/* a session refused again right after a fresh login: not worth BILL's login budget */
			if (++lane->relogins > 2)
			{
				defer_row(lane->outbox_id, -1, true, "BDC_1109", "BILL refused fresh sessions repeatedly");
				lane_free(lane);
			}
			return;
		case NEXT_HOURLY:
			/* BDC_1144: nothing more this hour (TimestampTz counts from an hour boundary) */
			bill_pause((GetCurrentTimestamp() / USECS_PER_HOUR + 1) * USECS_PER_HOUR,
					   "BILL's hourly request limit is reached (BDC_1144)");
			ereport(LOG, (errmsg("pg_billops: BILL's hourly request limit is reached; pausing until the next hour")));
			lane_free(lane);
			return;
		case NEXT_DONE:
		case NEXT_RETRY:
		case NEXT_DEAD:
			lane_free(lane);	/* the row left the worker */
			return;
		case NEXT_THROTTLE:
			return;				/* handled above */
	}
}

/*
 * Deliver due rows until none is left, BILL asks us to pause, stop_at (the
 * poll; 0: never) has come, or a configuration reload is pending (then the
 * lanes drain first, so the poll never makes a request beyond max_lanes, and
 * a reload -- another database, new credentials -- takes effect after the
 * requests in flight, not after the whole queue).
 */
void
bill_deliver_outbox(MemoryContext cxt, int max_lanes, TimestampTz stop_at)
{
	Delivery	d;
	bool		queue_may_have_rows = true;

	memset(&d, 0, sizeof(d));
	d.batch = http_batch_create(BILL_LANES);
	d.max_lanes = max_lanes;
	d.limit = max_lanes;
	for (int i = 0; i < BILL_LANES; i++)
		d.lanes[i].cxt = AllocSetContextCreate(cxt, "pg_billops BILL lane", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		wait_ms = 1000;
		bool		latch_set;
		int			slot;

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < BILL_LANES; i++)
			if (d.lanes[i].busy && !d.lanes[i].in_flight && d.lanes[i].not_before <= now)
				lane_send(&d, i);

		while (queue_may_have_rows && !bill_paused() && !ConfigReloadPending &&
			   lanes_busy(&d) < Min(d.limit, d.max_lanes) &&
			   !(stop_at != 0 && GetCurrentTimestamp() >= stop_at))
		{
			int			i = 0;
			int64		id;

			while (d.lanes[i].busy)
				i++;
			if ((id = claim_one()) == 0)
			{
				queue_may_have_rows = false;
				break;
			}
			d.lanes[i].busy = true;
			d.lanes[i].outbox_id = id;
			d.lanes[i].steps = 0;
			d.lanes[i].relogins = 0;
			d.lanes[i].not_before = 0;
			lane_send(&d, i);
		}
		if (lanes_busy(&d) == 0)
			break;

		now = GetCurrentTimestamp();
		for (int i = 0; i < BILL_LANES; i++)
			if (d.lanes[i].busy && !d.lanes[i].in_flight)
				wait_ms = Min(wait_ms, Max(0L, TimestampDifferenceMilliseconds(now, d.lanes[i].not_before)));
		report_lanes(&d);		/* the transactions above overwrote it */
		slot = http_batch_wait(d.batch, wait_ms, &latch_set);
		if (slot >= 0)
		{
			lane_answer(&d, slot);
			queue_may_have_rows = true;	/* the row's successor (same payable) may be due now */
		}
		if (latch_set)
			queue_may_have_rows = true; /* a commit enqueued rows */
	}
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Milliseconds until the next pending row is due (capped). */
void
bill_lanes_forget_login_backoff(void)
{
	login_backoff_s = 0;
}
