/*
 * bill_worker.c — the background worker that delivers the BILL outbox: its
 * settings, its registration, and its main loop (recovery after a restart,
 * delivery, the poll of BILL's changed bills, reading BILL's users for the
 * approver directory, sleeping until the next due
 * row or a commit wakes it).
 *
 * Written like worker_spi, and better than pg_net where it falls short:
 *  - woken on COMMIT (bill_shared.c): the only timed wakeups are retries that
 *    are due and the BILL state poll;
 *  - every claim is committed before any HTTP, and every answer is recorded
 *    in its own short transaction (bill_lanes.c), so no transaction stays
 *    open across the network and DROP EXTENSION is never blocked for longer
 *    than one of them;
 *  - HTTP waits on the latch and curl's sockets together (http.c), with
 *    CHECK_FOR_INTERRUPTS on every turn: SIGTERM stops it mid-request;
 *  - it reports what it does in pg_stat_activity (never a secret);
 *  - DROP DATABASE of its database is not blocked (bill_shared.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "billops_bill_client.h"
#include "billops_bill_worker.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* settings: defined in billops_bill_worker_init */
static char *bill_database = NULL;
static int	bill_poll_interval_s = 300;
static int	bill_max_concurrent_requests = 3;
static int	bill_worker_restart_interval_s = 10;	/* before the postmaster restarts a worker that exited */

static TimestampTz next_poll = 0;

PGDLLEXPORT void billops_bill_worker_main(Datum arg);

/* --- settings and registration ------------------------------------------- */

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
}

/*
 * The worker, its shared memory and its hooks: only from
 * shared_preload_libraries (the postmaster starts it).
 */
void
billops_bill_worker_register(void)
{
	BackgroundWorker worker;

	/*
	 * A postmaster setting can only be defined while the postmaster loads
	 * the library: a backend that loads it later would die (FATAL) on it.
	 */
	DefineCustomIntVariable("billops.bill_worker_restart_interval",
							"Seconds before the postmaster restarts the BILL worker after it exited.",
							"A worker that is killed or fails restarts after this interval; its rows left in flight are recovered then.",
							&bill_worker_restart_interval_s, 10, 1, 3600, PGC_POSTMASTER, GUC_UNIT_S,
							NULL, NULL, NULL);
	bill_shared_install_hooks();

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

/* --- transactions ------------------------------------------------------- */

void
bill_begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

void
bill_end_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Is pg_billops (with its outbox) installed in our database? */
char *
bill_spi_text(int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/* Give a claimed row back to the queue (see billops._outbox_defer). */
/* --- the main loop ------------------------------------------------------- */

static bool
extension_present(void)
{
	bool		present;

	bill_begin_tx("pg_billops: checking for the extension");
	SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_billops'", true, 1);
	present = SPI_processed > 0;
	bill_end_tx();
	return present;
}

/* Claim the next due row (committed before any HTTP); 0 if none is due. */
static long
ms_until_next_due(long cap)
{
	long		ms = cap;

	bill_begin_tx("pg_billops: looking for due outbox rows");
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
	bill_end_tx();
	return ms;
}

/*
 * One conversation with BILL that SQL leads, a request at a time: the
 * request function answers the next (method, path, query) or no row when
 * there is nothing to ask; the response function records an answer and says
 * whether to ask again.  The poll of changed bills and the reading of BILL's
 * users and roles are both this.  Errors are logged; the next turn tries
 * again.
 */
static void
exchange_with_bill(MemoryContext cxt, const char *activity, const char *request_sql, const char *response_sql)
{
	for (int turn = 0; turn < 50; turn++)
	{
		char	   *method,
				   *path,
				   *query;
		BillResponse resp;
		Datum		arg;
		Oid			type = TEXTOID;
		bool		more;
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		bill_begin_tx(activity);
		SPI_execute(request_sql, true, 1);
		if (SPI_processed == 0)
		{
			bill_end_tx();
			return;				/* nothing to ask */
		}
		method = bill_spi_text(1, cxt);
		path = bill_spi_text(2, cxt);
		query = bill_spi_text(3, cxt);
		bill_end_tx();

		pgstat_report_activity(STATE_RUNNING, activity);
		initStringInfo(&resp.body);
		bill_client_request(method, path, query, NULL, &resp);
		if (resp.status < 200 || resp.status >= 300)
		{
			ereport(WARNING,
					(errmsg("pg_billops: %s failed: %s", activity,
							resp.transport_error ? resp.transport_error : psprintf("HTTP %ld", resp.status)),
					 errdetail("%.300s", resp.body.data)));
			return;
		}
		bill_begin_tx(activity);
		arg = CStringGetTextDatum(resp.body.data);
		SPI_execute_with_args(response_sql, 1, &type, &arg, NULL, false, 1);
		more = SPI_processed == 1 &&
			DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
		bill_end_tx();
		if (!more)
			return;
	}
}

/* Bills changed since the watermark: webhooks are not the only source of truth, says BILL. */
static void
poll_bill(MemoryContext cxt)
{
	exchange_with_bill(cxt, "pg_billops: polling BILL for changed bills",
					   "SELECT method, path, query::text FROM billops._bill_poll_request()",
					   "SELECT billops._bill_poll_more($1)");
}

/* BILL's users and roles, when the approver directory needs them (54_bill_approvers.sql). */
static void
read_bill_directory(MemoryContext cxt)
{
	exchange_with_bill(cxt, "pg_billops: reading BILL's users for the approver directory",
					   "SELECT method, path, query::text FROM billops._bill_directory_request()",
					   "SELECT billops._bill_directory_response($1)");
}

static void
recover_rows(void)
{
	bill_begin_tx("pg_billops: recovering rows left in flight");
	SPI_execute("SELECT billops._outbox_recover()", false, 1);
	bill_end_tx();
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

	/*
	 * A reload that came while the postmaster was starting us is lost: the
	 * postmaster's SIGHUP reached this process before our handler existed
	 * (PostgreSQL sets SIGHUP to SIG_IGN in a new worker, which discards a
	 * pending one), and the settings we inherited at fork are the old ones.
	 * Read the files once now that no later reload can be missed; otherwise
	 * we could wait, unconnected or in the wrong database, for the next one.
	 */
	ProcessConfigFile(PGC_SIGHUP);

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

	bill_shared_attach();

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
			bill_unpause();
			bill_lanes_forget_login_backoff();
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
				if (!bill_paused())
					bill_deliver_outbox(loop_cxt, bill_max_concurrent_requests,
									bill_poll_interval_s > 0 ? next_poll : 0);
				paused = bill_paused();
				if (!paused)
					read_bill_directory(loop_cxt);	/* asks nothing unless the directory is due */
				if (bill_poll_interval_s > 0 && !paused && GetCurrentTimestamp() >= next_poll)
				{
					poll_bill(loop_cxt);
					next_poll = GetCurrentTimestamp() + (TimestampTz) bill_poll_interval_s * USECS_PER_SEC;
				}
				/* paused: a commit may wake us, but we go back to sleep until the pause ends */
				sleep_ms = paused ? Max(10L, Min(60000L, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), bill_pause_end())))
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

		if (bill_paused())
		{
			/* a pause is not a hang: say so where a DBA looks first */
			char		reason[BILL_PAUSE_REASON_LEN];
			char		activity[320];

			bill_pause_reason(reason, sizeof(reason));
			snprintf(activity, sizeof(activity), "pg_billops: paused until %s: %s",
					 timestamptz_to_str(bill_pause_end()), reason);
			pgstat_report_activity(STATE_IDLE, activity);
		}
		else
			pgstat_report_activity(STATE_IDLE, NULL);
		/* a reload that came while we delivered: its latch may be spent already */
		if (!ConfigReloadPending)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Max(sleep_ms, 10L), PG_WAIT_EXTENSION);
	}
}

