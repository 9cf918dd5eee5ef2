/*
 * bill_worker.c — the background worker that delivers the BILL outbox.
 *
 * Written like worker_spi, and better than pg_net where it falls short:
 *  - woken on COMMIT: enqueuing a row registers a transaction callback that
 *    sets the worker's latch when (and only if) the transaction commits; the
 *    only timed wakeups are retries that are due and the BILL state poll;
 *  - every claim is committed before any HTTP, and every answer is recorded
 *    in its own short transaction, so no transaction stays open across the
 *    network and DROP EXTENSION is never blocked for longer than one of them;
 *  - HTTP waits on the latch and curl's sockets together (http.c), with
 *    CHECK_FOR_INTERRUPTS on every turn: SIGTERM stops it mid-request;
 *  - it reports what it does in pg_stat_activity (never a secret);
 *  - DROP DATABASE of its database is not blocked: the dropping backend asks
 *    it to leave first (ProcessUtility hook).
 *
 * What to send and what BILL's answers mean is decided in SQL
 * (billops._outbox_request / _outbox_response); this file is transport.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "billops.h"
#include "billops_bill_client.h"
#include "billops_bill_worker.h"
#include "billops_http.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

typedef struct BillWorkerShared
{
	slock_t		mutex;
	Latch	   *latch;			/* the worker's latch, NULL when not running */
	pid_t		pid;
	Oid			database;
	TimestampTz paused_until;	/* no request to BILL before this (0: not paused) */
	char		pause_reason[200];	/* why, for billops.bill_outbox_status (never a secret) */
} BillWorkerShared;

static BillWorkerShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static bool wake_at_commit = false;
static bool xact_callback_registered = false;

/* in the worker: no request to BILL before this (BDC_1144, or BILL refused our login) */
static TimestampTz pause_until = 0;	/* (its reason is in shared memory only) */
static int	login_backoff_s = 0;

/* settings: defined in billops_bill_worker_init */
static char *bill_database = NULL;
static int	bill_poll_interval_s = 300;
static int	bill_max_concurrent_requests = 3;
static int	bill_worker_restart_interval_s = 10;	/* before the postmaster restarts a worker that exited */

PGDLLEXPORT void billops_bill_worker_main(Datum arg);

PG_FUNCTION_INFO_V1(billops_bill_wake);
PG_FUNCTION_INFO_V1(billops_bill_worker_state);

/* --- shared memory ----------------------------------------------------- */

static void
bill_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(BillWorkerShared)));
}

static void
bill_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_billops bill worker", sizeof(BillWorkerShared), &found);
	if (!found)
	{
		SpinLockInit(&shared->mutex);
		shared->latch = NULL;
		shared->pid = 0;
		shared->database = InvalidOid;
		shared->paused_until = 0;
		shared->pause_reason[0] = '\0';
	}
	LWLockRelease(AddinShmemInitLock);
}

/* --- wake on commit ----------------------------------------------------- */

static void
bill_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit && shared != NULL)
			{
				SpinLockAcquire(&shared->mutex);
				if (shared->latch)
					SetLatch(shared->latch);
				SpinLockRelease(&shared->mutex);
			}
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/* SQL: billops._bill_wake() — wake the worker when this transaction commits. */
Datum
billops_bill_wake(PG_FUNCTION_ARGS)
{
	/* without preload there is no worker and no shared memory: nothing would ever deliver */
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no BILL worker can deliver this: pg_billops is not in shared_preload_libraries"),
				 errdetail("Bills are queued for BILL in billops.bill_outbox and delivered by pg_billops' background worker, which only a preloaded library can start."),
				 errhint("Add pg_billops to shared_preload_libraries in postgresql.conf and restart PostgreSQL.")));
	if (!xact_callback_registered)
	{
		RegisterXactCallback(bill_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
	PG_RETURN_VOID();
}

/* --- DROP DATABASE must not wait for us --------------------------------- */

static void
bill_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, DropdbStmt) && shared != NULL)
	{
		Oid			db = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);
		pid_t		pid = 0;

		SpinLockAcquire(&shared->mutex);
		if (OidIsValid(db) && shared->database == db)
			pid = shared->pid;
		SpinLockRelease(&shared->mutex);
		/* it exits at once; DROP DATABASE waits up to 5 s for other sessions to go */
		if (pid != 0)
			kill(pid, SIGTERM);
	}
	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

/*
 * SQL: billops._bill_worker_state() — the worker as the outbox sees it: its
 * pid and database (NULL when none runs) and a pause it is sitting out (BILL
 * refused the login, or its hourly limit), so that a pause is never mistaken
 * for a hang.
 */
Datum
billops_bill_worker_state(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {true, true, true, true};
	pid_t		pid = 0;
	Oid			database = InvalidOid;
	TimestampTz until = 0;
	char		reason[sizeof(shared->pause_reason)];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("function returning record called in context that cannot accept type record")));
	reason[0] = '\0';
	if (shared != NULL)
	{
		SpinLockAcquire(&shared->mutex);
		pid = shared->pid;
		database = shared->database;
		until = shared->paused_until;
		strlcpy(reason, shared->pause_reason, sizeof(reason));
		SpinLockRelease(&shared->mutex);
	}
	if (pid != 0)
	{
		char	   *dbname = get_database_name(database);

		values[0] = Int32GetDatum((int32) pid);
		nulls[0] = false;
		if (dbname)
		{
			values[1] = CStringGetTextDatum(dbname);
			nulls[1] = false;
		}
		if (until > GetCurrentTimestamp())
		{
			values[2] = TimestampTzGetDatum(until);
			values[3] = CStringGetTextDatum(reason);
			nulls[2] = nulls[3] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* Sit out a pause (no request to BILL before `until`), visibly. */
static void
pause_worker(TimestampTz until, const char *reason)
{
	pause_until = until;
	SpinLockAcquire(&shared->mutex);
	shared->paused_until = until;
	strlcpy(shared->pause_reason, reason, sizeof(shared->pause_reason));
	SpinLockRelease(&shared->mutex);
}

static void
unpause_worker(void)
{
	pause_worker(0, "");
}

/* billops.bill_database, bill_poll_interval, bill_max_concurrent_requests, bill_worker_restart_interval */
void
billops_bill_worker_init(void)
{
	DefineCustomStringVariable("billops.bill_database",
							   "Database whose BILL outbox the background worker delivers (empty: the worker waits).",
							   NULL, &bill_database, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.bill_poll_interval",
							"How often the BILL worker asks BILL for bills changed since the last poll (0: never; webhooks only).",
							NULL, &bill_poll_interval_s, 300, 0, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	/*
	 * BILL allows 3 concurrent requests per devKey per organization.  Lower
	 * it when other integrations share the devKey and organization.
	 */
	DefineCustomIntVariable("billops.bill_max_concurrent_requests",
							"Requests the BILL worker keeps in flight at once (BILL allows 3 per devKey and organization).",
							NULL, &bill_max_concurrent_requests, 3, 1, 3,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.bill_worker_restart_interval",
							"Seconds before the postmaster restarts the BILL worker after it exited.",
							"A worker that is killed or fails restarts after this interval; its rows left in flight are recovered then.",
							&bill_worker_restart_interval_s, 10, 1, 3600, PGC_POSTMASTER, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/*
 * The worker, its shared memory and its hooks: only from
 * shared_preload_libraries (the postmaster starts it).
 */
void
billops_bill_worker_register(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = bill_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = bill_shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = bill_process_utility;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = bill_worker_restart_interval_s;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_billops");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "billops_bill_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_billops BILL worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_billops BILL worker");
	RegisterBackgroundWorker(&worker);
}

/* --- the worker --------------------------------------------------------- */

static void
detach_shared(int code, Datum arg)
{
	SpinLockAcquire(&shared->mutex);
	shared->latch = NULL;
	shared->pid = 0;
	shared->database = InvalidOid;
	shared->paused_until = 0;
	shared->pause_reason[0] = '\0';
	SpinLockRelease(&shared->mutex);
}

static void
begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Is pg_billops (with its outbox) installed in our database? */
static bool
extension_present(void)
{
	bool		present;

	begin_tx("pg_billops: checking for the extension");
	SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_billops'", true, 1);
	present = SPI_processed > 0;
	end_tx();
	return present;
}

/* Claim the next due row (committed before any HTTP); 0 if none is due. */
static int64
claim_one(void)
{
	int64		id = 0;

	begin_tx("pg_billops: claiming an outbox row");
	SPI_execute("SELECT outbox_id FROM billops._outbox_claim(1)", false, 0);
	if (SPI_processed > 0)
	{
		bool		isnull;

		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	end_tx();
	return id;
}

static char *
spi_text(int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/* Give a claimed row back to the queue (see billops._outbox_defer). */
static void
defer_row(int64 outbox_id, double delay_s, bool count_attempt, const char *code, const char *message)
{
	Datum		args[5];
	Oid			types[5] = {INT8OID, NUMERICOID, BOOLOID, TEXTOID, TEXTOID};
	char		nulls[5] = {' ', ' ', ' ', code ? ' ' : 'n', message ? ' ' : 'n'};

	begin_tx("pg_billops: deferring an outbox row");
	args[0] = Int64GetDatum(outbox_id);
	args[1] = DirectFunctionCall1(float8_numeric, Float8GetDatum(delay_s));
	args[2] = BoolGetDatum(count_attempt);
	args[3] = code ? CStringGetTextDatum(code) : (Datum) 0;
	args[4] = message ? CStringGetTextDatum(message) : (Datum) 0;
	SPI_execute_with_args("SELECT billops._outbox_defer($1, $2, $3, $4, $5)", 5, types, args, nulls, false, 1);
	end_tx();
}

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
	int			limit;			/* lanes we may fill: lowered by BDC_1322, raised by successes */
	int			successes;
} Delivery;

static TimestampTz next_poll = 0;

static bool
paused_now(void)
{
	return GetCurrentTimestamp() < pause_until;
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

	if (paused_now())
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
		begin_tx("pg_billops: preparing a BILL request");
		SPI_execute_with_args("SELECT method, path, query::text, body::text, raw_body, content_type "
							  "FROM billops._outbox_request($1)", 1, &type, &arg, NULL, false, 1);
		method = spi_text(1, lane->cxt);
		path = spi_text(2, lane->cxt);
		query = spi_text(3, lane->cxt);
		body = spi_text(4, lane->cxt);
		content_type = spi_text(6, lane->cxt);
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
		end_tx();
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
		pause_worker(GetCurrentTimestamp() + (TimestampTz) login_backoff_s * USECS_PER_SEC,
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

/* Record the answer to a lane's request and decide what the lane does next. */
static void
lane_answer(Delivery *d, int i)
{
	Lane	   *lane = &d->lanes[i];
	BillResponse resp;
	Datum		args[4];
	Oid			types[4] = {INT8OID, INT4OID, TEXTOID, TEXTOID};
	char		nulls[4] = {' ', ' ', ' ', ' '};
	const char *volatile next = NULL;
	MemoryContext old = MemoryContextSwitchTo(lane->cxt);

	initStringInfo(&resp.body);
	http_batch_take(d->batch, i, &resp.status, &resp.body, &resp.transport_error);
	lane->in_flight = false;

	PG_TRY();
	{
		begin_tx("pg_billops: recording BILL's answer");
		args[0] = Int64GetDatum(lane->outbox_id);
		args[1] = Int32GetDatum((int32) resp.status);
		nulls[1] = resp.status == 0 ? 'n' : ' ';
		args[2] = CStringGetTextDatum(resp.body.data);
		args[3] = resp.transport_error ? CStringGetTextDatum(resp.transport_error) : (Datum) 0;
		nulls[3] = resp.transport_error ? ' ' : 'n';
		SPI_execute_with_args("SELECT billops._outbox_response($1, $2, $3, $4)", 4, types, args, nulls, false, 1);
		next = spi_text(1, lane->cxt);
		end_tx();
	}
	PG_CATCH();
	{
		lane_sql_failed(lane, "recording BILL's answer");
		MemoryContextSwitchTo(old);
		return;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);

	if (strcmp(next, "throttle") == 0)
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
	if (++d->successes >= 20 && d->limit < bill_max_concurrent_requests)
	{
		d->limit++;
		d->successes = 0;
	}
	if (strcmp(next, "continue") == 0)
		return;					/* sent on the next turn */
	if (strcmp(next, "relogin") == 0)
	{
		bill_client_forget_session_of(lane->session);
		/* a session refused again right after a fresh login: not worth BILL's login budget */
		if (++lane->relogins > 2)
		{
			defer_row(lane->outbox_id, -1, true, "BDC_1109", "BILL refused fresh sessions repeatedly");
			lane_free(lane);
		}
		return;
	}
	if (strcmp(next, "hourly") == 0)
	{
		/* BDC_1144: nothing more this hour (TimestampTz counts from an hour boundary) */
		pause_worker((GetCurrentTimestamp() / USECS_PER_HOUR + 1) * USECS_PER_HOUR,
					 "BILL's hourly request limit is reached (BDC_1144)");
		ereport(LOG, (errmsg("pg_billops: BILL's hourly request limit is reached; pausing until the next hour")));
	}
	lane_free(lane);			/* done, retry, hourly, dead: the row left the worker */
}

/*
 * Deliver due rows until none is left, BILL asks us to pause, or the poll is
 * due (then the lanes drain first, so the poll never makes a fourth request).
 */
static void
deliver_outbox(MemoryContext cxt)
{
	Delivery	d;
	bool		queue_may_have_rows = true;

	memset(&d, 0, sizeof(d));
	d.batch = http_batch_create(BILL_LANES);
	d.limit = bill_max_concurrent_requests;
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

		while (queue_may_have_rows && !paused_now() && lanes_busy(&d) < Min(d.limit, bill_max_concurrent_requests) &&
			   !(bill_poll_interval_s > 0 && GetCurrentTimestamp() >= next_poll))
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
static long
ms_until_next_due(long cap)
{
	long		ms = cap;

	begin_tx("pg_billops: looking for due outbox rows");
	/* NULL when nothing is pending: then sleep the whole cap (until a commit wakes us) */
	SPI_execute("SELECT ceil(extract(epoch FROM min(next_attempt_at) - clock_timestamp()) * 1000)::bigint "
				"FROM billops.bill_outbox WHERE state = 'pending'", true, 1);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			ms = Max(0L, Min(cap, (long) DatumGetInt64(d)));
	}
	end_tx();
	return ms;
}

/*
 * Poll BILL for bills changed since the watermark (webhooks are not the only
 * source of truth, says BILL).  Pages until the list ends; errors are logged
 * and the next poll tries again.
 */
static void
poll_bill(MemoryContext cxt)
{
	for (int page = 0; page < 50; page++)
	{
		char	   *method,
				   *path,
				   *query;
		BillResponse resp;
		Datum		arg;
		Oid			type = TEXTOID;

		CHECK_FOR_INTERRUPTS();
		begin_tx("pg_billops: preparing the BILL poll");
		SPI_execute("SELECT method, path, query::text FROM billops._bill_poll_request()", true, 1);
		method = spi_text(1, cxt);
		path = spi_text(2, cxt);
		query = spi_text(3, cxt);
		end_tx();

		pgstat_report_activity(STATE_RUNNING, "pg_billops: polling BILL for changed bills");
		initStringInfo(&resp.body);
		bill_client_request(method, path, query, NULL, &resp);
		if (resp.status < 200 || resp.status >= 300)
		{
			ereport(WARNING,
					(errmsg("pg_billops: polling BILL failed: %s",
							resp.transport_error ? resp.transport_error : psprintf("HTTP %ld", resp.status)),
					 errdetail("%.300s", resp.body.data)));
			return;
		}
		begin_tx("pg_billops: applying BILL's changes");
		arg = CStringGetTextDatum(resp.body.data);
		SPI_execute_with_args("SELECT billops._bill_poll_response($1)", 1, &type, &arg, NULL, false, 1);
		SPI_execute("SELECT 1 FROM billops.bill_sync_state WHERE name = 'poll_page'", true, 1);
		if (SPI_processed == 0)
		{
			end_tx();
			return;				/* the list is read to its end */
		}
		end_tx();
	}
}

static void
recover_rows(void)
{
	begin_tx("pg_billops: recovering rows left in flight");
	SPI_execute("SELECT billops._outbox_recover()", false, 1);
	end_tx();
}

void
billops_bill_worker_main(Datum arg)
{
	MemoryContext loop_cxt;
	volatile bool recovered = false;
	char	   *database;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* wait, unconnected, until an administrator names the database */
	while (bill_database == NULL || bill_database[0] == '\0')
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 60000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
	database = MemoryContextStrdup(TopMemoryContext, bill_database);
	BackgroundWorkerInitializeConnection(database, NULL, 0);
	pgstat_report_appname("pg_billops BILL worker");

	/*
	 * Exactly once rests on what we commit before sending: the claim, and the
	 * intent to create a bill (after which every create is preceded by a
	 * lookup).  A commit that a crash can take back (synchronous_commit = off,
	 * or local only while a failover is possible) would let us create a
	 * bill twice, so this process always waits for its commits to be durable.
	 */
	SetConfigOption("synchronous_commit", "on", PGC_USERSET, PGC_S_OVERRIDE);

	SpinLockAcquire(&shared->mutex);
	shared->latch = MyLatch;
	shared->pid = MyProcPid;
	shared->database = MyDatabaseId;
	SpinLockRelease(&shared->mutex);
	before_shmem_exit(detach_shared, (Datum) 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_billops BILL worker loop", ALLOCSET_DEFAULT_SIZES);
	/* the first poll after one interval: a restart loop must not hammer BILL */
	next_poll = GetCurrentTimestamp() + (TimestampTz) bill_poll_interval_s * USECS_PER_SEC;
	ereport(LOG, (errmsg("pg_billops BILL worker started for database \"%s\"", database)));

	for (;;)
	{
		volatile long sleep_ms = 60000L;
		volatile bool paused = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* another database, or none: start over (the postmaster restarts us) */
			if (bill_database == NULL || strcmp(bill_database, database) != 0)
				proc_exit(1);
			/* an operator's reload means "try BILL again now" (e.g. after fixing credentials) */
			unpause_worker();
			login_backoff_s = 0;
			/* a shorter poll interval takes effect now, not after the old one */
			next_poll = Min(next_poll, GetCurrentTimestamp() + (TimestampTz) bill_poll_interval_s * USECS_PER_SEC);
		}
		ResetLatch(MyLatch);
		MemoryContextReset(loop_cxt);

		PG_TRY();
		{
			MemoryContext old = MemoryContextSwitchTo(loop_cxt);

			if (extension_present() && bill_client_configured())
			{
				if (!recovered)
				{
					recover_rows();
					recovered = true;
				}
				if (!paused_now())
					deliver_outbox(loop_cxt);
				paused = paused_now();
				if (bill_poll_interval_s > 0 && !paused && GetCurrentTimestamp() >= next_poll)
				{
					poll_bill(loop_cxt);
					next_poll = GetCurrentTimestamp() + (TimestampTz) bill_poll_interval_s * USECS_PER_SEC;
				}
				/* paused: a commit may wake us, but we go back to sleep until the pause ends */
				sleep_ms = paused ? Max(10L, Min(60000L, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), pause_until)))
					: ms_until_next_due(60000L);
				if (bill_poll_interval_s > 0)
					sleep_ms = Min(sleep_ms, Max(10L, (long) ((next_poll - GetCurrentTimestamp()) / 1000)));
			}
			MemoryContextSwitchTo(old);
		}
		PG_CATCH();
		{
			/* report, roll back, keep serving: one bad row must not stop the queue */
			MemoryContextSwitchTo(loop_cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			SPI_finish();
			pgstat_report_activity(STATE_IDLE, NULL);
			recovered = false;	/* put the row we were on back in the queue */
			sleep_ms = 5000L;
		}
		PG_END_TRY();

		if (paused_now())
		{
			/* a pause is not a hang: say so where a DBA looks first */
			char		reason[sizeof(shared->pause_reason)];
			char		activity[320];

			SpinLockAcquire(&shared->mutex);
			strlcpy(reason, shared->pause_reason, sizeof(reason));
			SpinLockRelease(&shared->mutex);
			snprintf(activity, sizeof(activity), "pg_billops: paused until %s: %s",
					 timestamptz_to_str(pause_until), reason);
			pgstat_report_activity(STATE_IDLE, activity);
		}
		else
			pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 10L), PG_WAIT_EXTENSION);
	}
}
