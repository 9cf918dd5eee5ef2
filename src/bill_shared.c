/*
 * bill_shared.c — what the BILL worker shares with every backend, through
 * shared memory: its latch (woken when a transaction that queued rows
 * commits), its pid and database (DROP DATABASE asks it to leave first;
 * billops._bill_worker_state shows it), and the pause it sits out (BILL
 * refused the login, or its hourly limit), so a pause is never taken for a
 * hang.  Only a preloaded library has it: without, `shared` stays NULL and
 * queuing for BILL is said to wait (billops_bill_wake).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "billops_bill_worker.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

typedef struct BillWorkerShared
{
	slock_t		mutex;
	Latch	   *latch;			/* the worker's latch, NULL when not running */
	pid_t		pid;
	Oid			database;
	TimestampTz paused_until;	/* no request to BILL before this (0: not paused) */
	char		pause_reason[BILL_PAUSE_REASON_LEN];	/* why, for billops.bill_outbox_status (never a secret) */
} BillWorkerShared;

static BillWorkerShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static bool wake_at_commit = false;
static bool xact_callback_registered = false;

/* in the worker: no request to BILL before this (its reason is in shared memory only) */
static TimestampTz pause_until = 0;

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
	/*
	 * Without preload there is no worker (and no shared memory) to wake.
	 * The rows stay queued and go out once the worker runs, so nothing is
	 * refused; but the caller hears it, once per transaction, instead of
	 * the queue silently going nowhere.
	 */
	if (shared == NULL)
	{
		static LocalTransactionId warned_in = InvalidLocalTransactionId;

		if (MyProc->lxid != warned_in)
		{
			warned_in = MyProc->lxid;
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("queued for BILL, but no BILL worker can deliver it: pg_billops is not in shared_preload_libraries"),
					 errdetail("The rows wait in billops.bill_outbox and go out once the worker runs."),
					 errhint(BILL_PRELOAD_HINT)));
		}
		PG_RETURN_VOID();
	}
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

/* Sit out a pause (no request to BILL before `until`), visibly; 0 ends it. */
/* --- the pause ---------------------------------------------------------- */

void
bill_pause(TimestampTz until, const char *reason)
{
	pause_until = until;
	SpinLockAcquire(&shared->mutex);
	shared->paused_until = until;
	strlcpy(shared->pause_reason, reason, sizeof(shared->pause_reason));
	SpinLockRelease(&shared->mutex);
}

void
bill_unpause(void)
{
	bill_pause(0, "");
}

/* billops.bill_database, bill_poll_interval, bill_max_concurrent_requests, bill_worker_restart_interval */
bool
bill_paused(void)
{
	return GetCurrentTimestamp() < pause_until;
}

TimestampTz
bill_pause_end(void)
{
	return pause_until;
}

void
bill_pause_reason(char *buf, size_t len)
{
	SpinLockAcquire(&shared->mutex);
	strlcpy(buf, shared->pause_reason, len);
	SpinLockRelease(&shared->mutex);
}

/* --- the worker's side --------------------------------------------------- */

void
bill_shared_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = bill_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = bill_shmem_startup;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = bill_process_utility;
}

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

/* The worker publishes its latch, pid and database; they are cleared when it exits. */
void
bill_shared_attach(void)
{
	SpinLockAcquire(&shared->mutex);
	shared->latch = MyLatch;
	shared->pid = MyProcPid;
	shared->database = MyDatabaseId;
	SpinLockRelease(&shared->mutex);
	before_shmem_exit(detach_shared, (Datum) 0);
}
