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

#include "access/xact.h"
#include "billops.h"
#include "billops_bill_client.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
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
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

typedef struct BillWorkerShared
{
	slock_t		mutex;
	Latch	   *latch;			/* the worker's latch, NULL when not running */
	pid_t		pid;
	Oid			database;
} BillWorkerShared;

static BillWorkerShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static bool wake_at_commit = false;
static bool xact_callback_registered = false;

/* in the worker: no request to BILL before this (BDC_1144, or BILL refused our login) */
static TimestampTz pause_until = 0;
static int	login_backoff_s = 0;

PGDLLEXPORT void billops_bill_worker_main(Datum arg);

PG_FUNCTION_INFO_V1(billops_bill_wake);

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
	worker.bgw_restart_time = 10;
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

/* Claim up to n due rows (committed before any HTTP); returns their ids. */
static List *
claim_rows(int n)
{
	List	   *ids = NIL;
	MemoryContext caller = CurrentMemoryContext;
	Datum		arg = Int32GetDatum(n);
	Oid			argtype = INT4OID;

	begin_tx("pg_billops: claiming outbox rows");
	SPI_execute_with_args("SELECT outbox_id FROM billops._outbox_claim($1)", 1, &argtype, &arg, NULL, false, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContext old = MemoryContextSwitchTo(caller);

		ids = lappend(ids, palloc(sizeof(int64)));
		*(int64 *) llast(ids) = id;
		MemoryContextSwitchTo(old);
	}
	end_tx();
	return ids;
}

static char *
spi_text(int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/*
 * Sleep until a deadline.  New work (a latch set by a commit) does not cut a
 * backoff short -- BILL asked us to wait -- but interrupts are served at once.
 */
static void
sleep_until(TimestampTz deadline)
{
	for (;;)
	{
		long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

		if (ms <= 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
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

/* Drive one row until it is done, retried later, dead, or BILL says stop. */
static const char *
deliver_row(int64 outbox_id, MemoryContext cxt)
{
	int			relogins = 0;

	for (int steps = 0; steps < 50; steps++)
	{
		char	   *method,
				   *path,
				   *query,
				   *body;
		char		activity[200];
		BillResponse resp;
		Datum		args[4];
		Oid			types[4] = {INT8OID, INT4OID, TEXTOID, TEXTOID};
		char		nulls[4] = {' ', ' ', ' ', ' '};
		const char *next;

		CHECK_FOR_INTERRUPTS();
		begin_tx("pg_billops: preparing a BILL request");
		args[0] = Int64GetDatum(outbox_id);
		SPI_execute_with_args("SELECT method, path, query::text, body::text FROM billops._outbox_request($1)",
							  1, types, args, NULL, true, 1);
		method = spi_text(1, cxt);
		path = spi_text(2, cxt);
		query = spi_text(3, cxt);
		body = spi_text(4, cxt);
		end_tx();

		snprintf(activity, sizeof(activity), "pg_billops: outbox %lld: %s %s",
				 (long long) outbox_id, method, path);
		pgstat_report_activity(STATE_RUNNING, activity);
		initStringInfo(&resp.body);
		bill_client_request(method, path, query, body, &resp);
		if (resp.login_failed)
		{
			/* BILL refused our credentials: not this row's fault; stop asking for a while */
			login_backoff_s = login_backoff_s ? Min(login_backoff_s * 2, 900) : 60;
			pause_until = GetCurrentTimestamp() + (TimestampTz) login_backoff_s * USECS_PER_SEC;
			ereport(WARNING,
					(errmsg("pg_billops: BILL refused the login (HTTP %ld); no requests for %d s",
							resp.status, login_backoff_s),
					 errdetail("%.300s", resp.transport_error ? resp.transport_error : resp.body.data),
					 errhint("Check dev_key, username, password and organization_id in billops.bill_credentials_file.")));
			defer_row(outbox_id, login_backoff_s, false, "LOGIN", "BILL refused the login; see the server log");
			return "paused";
		}
		login_backoff_s = 0;

		begin_tx("pg_billops: recording BILL's answer");
		args[1] = Int32GetDatum((int32) resp.status);
		nulls[1] = resp.status == 0 ? 'n' : ' ';
		args[2] = CStringGetTextDatum(resp.body.data);
		args[3] = resp.transport_error ? CStringGetTextDatum(resp.transport_error) : (Datum) 0;
		nulls[3] = resp.transport_error ? ' ' : 'n';
		SPI_execute_with_args("SELECT billops._outbox_response($1, $2, $3, $4)", 4, types, args, nulls, false, 1);
		next = spi_text(1, cxt);
		end_tx();

		if (strcmp(next, "continue") == 0)
			continue;
		if (strcmp(next, "relogin") == 0)
		{
			bill_client_forget_session();
			/* a session refused again right after a fresh login: not worth BILL's login budget */
			if (++relogins > 2)
			{
				defer_row(outbox_id, -1, true, "BDC_1109", "BILL refused fresh sessions repeatedly");
				return "retry";
			}
			continue;
		}
		if (strcmp(next, "throttle") == 0)
		{
			/* BDC_1322: too many requests in flight for the org; back off, and mean it */
			sleep_until(GetCurrentTimestamp() + (TimestampTz) (250 + random() % 750) * 1000);
			continue;
		}
		if (strcmp(next, "hourly") == 0)
		{
			/* BDC_1144: nothing more this hour (TimestampTz counts from an hour boundary) */
			pause_until = (GetCurrentTimestamp() / USECS_PER_HOUR + 1) * USECS_PER_HOUR;
			ereport(LOG, (errmsg("pg_billops: BILL's hourly request limit is reached; pausing until the next hour")));
		}
		return next;			/* done, retry, hourly, dead */
	}
	/* a long walk (e.g. a lookup through many pages): let other rows go first, keep the cursor */
	defer_row(outbox_id, 0, false, NULL, NULL);
	return "yield";
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
	TimestampTz next_poll;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* wait, unconnected, until an administrator names the database */
	while (billops_bill_database == NULL || billops_bill_database[0] == '\0')
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
	database = MemoryContextStrdup(TopMemoryContext, billops_bill_database);
	BackgroundWorkerInitializeConnection(database, NULL, 0);
	pgstat_report_appname("pg_billops BILL worker");

	SpinLockAcquire(&shared->mutex);
	shared->latch = MyLatch;
	shared->pid = MyProcPid;
	shared->database = MyDatabaseId;
	SpinLockRelease(&shared->mutex);
	before_shmem_exit(detach_shared, (Datum) 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_billops BILL worker loop", ALLOCSET_DEFAULT_SIZES);
	/* the first poll after one interval: a restart loop must not hammer BILL */
	next_poll = GetCurrentTimestamp() + (TimestampTz) billops_bill_poll_interval_s * USECS_PER_SEC;
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
			if (billops_bill_database == NULL || strcmp(billops_bill_database, database) != 0)
				proc_exit(1);
			/* an operator's reload means "try BILL again now" (e.g. after fixing credentials) */
			pause_until = 0;
			login_backoff_s = 0;
			/* a shorter poll interval takes effect now, not after the old one */
			next_poll = Min(next_poll, GetCurrentTimestamp() + (TimestampTz) billops_bill_poll_interval_s * USECS_PER_SEC);
		}
		ResetLatch(MyLatch);
		MemoryContextReset(loop_cxt);

		PG_TRY();
		{
			MemoryContext old = MemoryContextSwitchTo(loop_cxt);

			if (extension_present() && bill_client_configured())
			{
				List	   *ids;

				if (!recovered)
				{
					recover_rows();
					recovered = true;
				}
				paused = GetCurrentTimestamp() < pause_until;
				while (!paused && (ids = claim_rows(1)) != NIL)
				{
					(void) deliver_row(*(int64 *) linitial(ids), loop_cxt);
					paused = GetCurrentTimestamp() < pause_until;
					MemoryContextReset(loop_cxt);
					CHECK_FOR_INTERRUPTS();
				}
				if (billops_bill_poll_interval_s > 0 && !paused && GetCurrentTimestamp() >= next_poll)
				{
					poll_bill(loop_cxt);
					next_poll = GetCurrentTimestamp() + (TimestampTz) billops_bill_poll_interval_s * USECS_PER_SEC;
				}
				/* paused: a commit may wake us, but we go back to sleep until the pause ends */
				sleep_ms = paused ? Max(10L, Min(60000L, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), pause_until)))
					: ms_until_next_due(60000L);
				if (billops_bill_poll_interval_s > 0)
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

		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 10L), PG_WAIT_EXTENSION);
	}
}
