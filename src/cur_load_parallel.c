/*
 * cur_load_parallel.c — the files of one delivery loaded by several backends.
 *
 * AWS splits a month's report into several files.  With
 * billops.max_load_workers > 0 (by default, -1, one fewer than the CPU
 * cores), the loading session starts that many dynamic background workers
 * (fewer if the delivery has fewer files, or if max_worker_processes has no
 * free slot) and loads files itself as well.
 * Every participant takes the next file nobody has taken yet, so a large
 * file never holds the others up and a worker that could not start leaves
 * its files to the rest.  Each file is read, converted and inserted by the
 * same code as in a single stream (cur_load.c).
 *
 * What the single stream guarantees, and how it still holds:
 *  - One atomic swap.  Before the load, billops._prepare_staging created and
 *    committed the delivery's staging table (attached to nothing: no query
 *    of billops.cur_line_item reads it).  Workers commit their rows into it;
 *    the session inserts its own and swaps the table in, in one transaction,
 *    as before.
 *  - Nothing visible on failure.  The first participant to fail records its
 *    error here; the others stop at their next check; the session raises
 *    that error as it was (SQLSTATE, message, detail, hint, and the file, row
 *    and column in its context); the sync then drops the staging table, with
 *    what workers had committed into it (billops._drop_staging).
 *  - Prompt cancel.  The session waits on its latch and checks for
 *    interrupts; on any error or cancel it terminates its workers, which stop
 *    at their next interrupt check (the HTTP and row loops check often).  A
 *    worker whose session is gone stops too.
 *  - Progress across workers.  Rows and compressed bytes of every participant
 *    are summed here; each loading backend's row in billops.cur_sync_progress
 *    shows its own file and the delivery's totals.
 *  - Bounded memory.  Each participant holds one batch (cur_load.c) and one
 *    daily rollup (billops.daily_rollup_memory): a delivery holds at most
 *    1 + its workers of each.
 *  - Its notices.  What a worker says (a file loaded, a cut body resumed)
 *    is passed to the session, which says it to its client as the single
 *    stream would; a worker has no client of its own.
 *
 * Workers run as the session's user, with the server's settings and the
 * session's billops.load_batch_rows and billops.daily_rollup_memory.  This is not PostgreSQL's parallel query
 * machinery: its workers may not insert (heap_insert refuses in a parallel
 * worker), so ours are plain dynamic background workers with their own
 * transactions.
 */
#include "postgres.h"

#include "access/xact.h"
#include "billops_cur.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#define LOAD_ERROR_TEXT 2048
#define LOAD_NOTICE_BYTES (32 * 1024)	/* workers' notices not yet passed on */

/* a worker's state, as the session sees it */
#define LOAD_WORKER_NOT_STARTED 0
#define LOAD_WORKER_RUNNING 1
#define LOAD_WORKER_DONE 2		/* its transaction committed */

typedef struct LoadWorkerSlot
{
	pg_atomic_uint32 state;
	pg_atomic_uint32 files_taken;
} LoadWorkerSlot;

typedef struct LoadShared
{
	/* set by the session before any worker starts */
	int64		delivery_id;
	Oid			database_id;
	Oid			authenticated_user_id;
	Oid			current_user_id;
	int			sec_context;
	int			batch_rows;
	int			daily_rollup_memory_kb;
	int			session_pid;
	int			nfiles;
	int			nworkers;

	pg_atomic_uint32 next_file; /* files are taken in order, once each */
	pg_atomic_uint32 failed;	/* a participant failed: everyone stops */
	pg_atomic_uint64 rows;		/* rows inserted by all participants */
	pg_atomic_uint64 raw_bytes; /* bytes read from storage by all */

	/* the first failure, as the session raises it */
	slock_t		mutex;
	bool		has_error;
	int			err_sqlstate;
	int			err_pid;
	char		err_message[LOAD_ERROR_TEXT];
	char		err_detail[LOAD_ERROR_TEXT];
	char		err_hint[LOAD_ERROR_TEXT];
	char		err_context[LOAD_ERROR_TEXT];

	/*
	 * Workers' notices for the session, each NUL-terminated, appended under
	 * the mutex; the session takes them all at once.  A notice that does not
	 * fit is counted, not kept.
	 */
	int			notice_used;
	int			notices_dropped;
	char		notices[LOAD_NOTICE_BYTES];

	LoadWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} LoadShared;

struct LoadParallel
{
	dsm_segment *seg;
	LoadShared *sh;
	bool		is_worker;
	int			my_slot;		/* a worker's slot */
	int			nlaunched;		/* the session's workers */
	BackgroundWorkerHandle **handles;
};

int			billops_max_load_workers = -1;

PGDLLEXPORT void billops_load_worker_main(Datum main_arg);

LoadParallel *
load_parallel_begin(int64 delivery_id, int nfiles, int nworkers, int batch_rows)
{
	LoadParallel *lp = palloc0(sizeof(LoadParallel));
	Size		size = add_size(offsetof(LoadShared, slots), mul_size(nworkers, sizeof(LoadWorkerSlot)));
	LoadShared *sh;

	lp->seg = dsm_create(size, 0);
	lp->sh = sh = dsm_segment_address(lp->seg);
	memset(sh, 0, size);
	sh->delivery_id = delivery_id;
	sh->database_id = MyDatabaseId;
	sh->authenticated_user_id = GetAuthenticatedUserId();
	GetUserIdAndSecContext(&sh->current_user_id, &sh->sec_context);
	sh->batch_rows = batch_rows;
	sh->daily_rollup_memory_kb = billops_daily_rollup_memory_kb;
	sh->session_pid = MyProcPid;
	sh->nfiles = nfiles;
	sh->nworkers = nworkers;
	pg_atomic_init_u32(&sh->next_file, 0);
	pg_atomic_init_u32(&sh->failed, 0);
	pg_atomic_init_u64(&sh->rows, 0);
	pg_atomic_init_u64(&sh->raw_bytes, 0);
	SpinLockInit(&sh->mutex);
	for (int i = 0; i < nworkers; i++)
	{
		pg_atomic_init_u32(&sh->slots[i].state, LOAD_WORKER_NOT_STARTED);
		pg_atomic_init_u32(&sh->slots[i].files_taken, 0);
	}

	lp->handles = palloc0(sizeof(BackgroundWorkerHandle *) * Max(nworkers, 1));
	for (int i = 0; i < nworkers; i++)
	{
		BackgroundWorker w;

		memset(&w, 0, sizeof(w));
		w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		w.bgw_start_time = BgWorkerStart_ConsistentState;
		w.bgw_restart_time = BGW_NEVER_RESTART;
		snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_billops");
		snprintf(w.bgw_function_name, BGW_MAXLEN, "billops_load_worker_main");
		snprintf(w.bgw_name, BGW_MAXLEN, "pg_billops load worker %d for delivery %lld", i + 1, (long long) delivery_id);
		snprintf(w.bgw_type, BGW_MAXLEN, "pg_billops load worker");
		w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(lp->seg));
		w.bgw_notify_pid = MyProcPid;	/* the postmaster sets our latch when it starts or stops */
		memcpy(w.bgw_extra, &i, sizeof(i));
		if (!RegisterDynamicBackgroundWorker(&w, &lp->handles[i]))
			break;
		lp->nlaunched++;
	}
	if (lp->nlaunched < nworkers)
		ereport(NOTICE,
				(errmsg("billops: delivery %lld: %d of %d load workers started",
						(long long) delivery_id, lp->nlaunched, nworkers),
				 errdetail("The server has no free background worker slot for the others; the files are shared among those loading."),
				 errhint("Raise max_worker_processes (a restart), or lower billops.max_load_workers.")));
	return lp;
}

/* The next file (0-based) this participant loads, or -1: none left, or a participant failed. */
int
load_parallel_next_file(LoadParallel *lp)
{
	uint32		f;

	if (pg_atomic_read_u32(&lp->sh->failed) != 0)
		return -1;
	/*
	 * A worker counts the file before it takes it: one that ends in between
	 * is then taken for one that lost a file (a false alarm that fails the
	 * delivery), never the other way round.
	 */
	if (lp->is_worker)
		pg_atomic_fetch_add_u32(&lp->sh->slots[lp->my_slot].files_taken, 1);
	f = pg_atomic_fetch_add_u32(&lp->sh->next_file, 1);
	if (f >= (uint32) lp->sh->nfiles)
	{
		if (lp->is_worker)
			pg_atomic_fetch_sub_u32(&lp->sh->slots[lp->my_slot].files_taken, 1);
		return -1;
	}
	return (int) f;
}

void
load_parallel_add(LoadParallel *lp, int64 rows, uint64 raw_bytes, int64 *total_rows, uint64 *total_raw)
{
	*total_rows = (int64) pg_atomic_add_fetch_u64(&lp->sh->rows, (uint64) rows);
	*total_raw = pg_atomic_add_fetch_u64(&lp->sh->raw_bytes, raw_bytes);
}

int64
load_parallel_total_rows(LoadParallel *lp)
{
	return (int64) pg_atomic_read_u64(&lp->sh->rows);
}

/* The first failure, raised in the session as the worker met it. */
static void
raise_recorded_error(LoadShared *sh)
{
	char		message[LOAD_ERROR_TEXT],
				detail[LOAD_ERROR_TEXT],
				hint[LOAD_ERROR_TEXT],
				context[LOAD_ERROR_TEXT];
	int			sqlstate;

	SpinLockAcquire(&sh->mutex);
	sqlstate = sh->err_sqlstate;
	memcpy(message, sh->err_message, LOAD_ERROR_TEXT);
	memcpy(detail, sh->err_detail, LOAD_ERROR_TEXT);
	memcpy(hint, sh->err_hint, LOAD_ERROR_TEXT);
	memcpy(context, sh->err_context, LOAD_ERROR_TEXT);
	SpinLockRelease(&sh->mutex);

	/* the worker's context says which file, row and column; the session's own would not */
	error_context_stack = NULL;
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg_internal("%s", message),
			 detail[0] ? errdetail_internal("%s", detail) : 0,
			 hint[0] ? errhint("%s", hint) : 0,
			 context[0] ? errcontext("%s", context) : 0));
}

/* The worker's shared state, for its notice hook. */
static LoadShared *worker_shared = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * A worker's NOTICEs go to the session (the worker makes them reach this
 * hook by logging notices, and keeps them out of the server log here).
 */
static void
forward_notice(ErrorData *edata)
{
	LoadShared *sh = worker_shared;
	int			len;

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	if (sh == NULL || edata->elevel != NOTICE || edata->message == NULL)
		return;
	len = strlen(edata->message) + 1;
	SpinLockAcquire(&sh->mutex);
	if (sh->notice_used + len <= LOAD_NOTICE_BYTES)
	{
		memcpy(sh->notices + sh->notice_used, edata->message, len);
		sh->notice_used += len;
	}
	else
		sh->notices_dropped++;
	SpinLockRelease(&sh->mutex);
	edata->output_to_server = false;
}

/* The session: say the workers' notices to the client, as they were said. */
static void
pass_on_notices(LoadShared *sh)
{
	char	   *copy;
	int			used,
				dropped;
	ErrorContextCallback *saved;

	if (sh->notice_used == 0 && sh->notices_dropped == 0)	/* unlocked peek: a later call sees the rest */
		return;
	copy = palloc(LOAD_NOTICE_BYTES);
	SpinLockAcquire(&sh->mutex);
	used = sh->notice_used;
	dropped = sh->notices_dropped;
	memcpy(copy, sh->notices, used);
	sh->notice_used = 0;
	sh->notices_dropped = 0;
	SpinLockRelease(&sh->mutex);

	/* a worker's notice is about its file, not about the one this session reads */
	saved = error_context_stack;
	error_context_stack = NULL;
	for (int off = 0; off < used; off += strlen(copy + off) + 1)
		ereport(NOTICE, (errmsg_internal("%s", copy + off)));
	if (dropped > 0)
		ereport(NOTICE,
				(errmsg("billops: %d notices of load workers were not passed on", dropped),
				 errdetail("They came faster than the session could pass them on.")));
	error_context_stack = saved;
	pfree(copy);
}

/*
 * Between batches: stop if another participant failed (the session raises
 * that failure; a worker just stops), or, in a worker, if the session that
 * started it is gone.
 */
void
load_parallel_check(LoadParallel *lp)
{
	if (!lp->is_worker)
		pass_on_notices(lp->sh);
	if (pg_atomic_read_u32(&lp->sh->failed) == 0)
	{
		if (lp->is_worker && BackendPidGetProc(lp->sh->session_pid) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OPERATOR_INTERVENTION),
					 errmsg("the session loading delivery %lld ended", (long long) lp->sh->delivery_id)));
		return;
	}
	if (!lp->is_worker)
		raise_recorded_error(lp->sh);
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("load of delivery %lld stopped: another of its loaders failed", (long long) lp->sh->delivery_id)));
}

/* A worker records its error for the session (the first failure wins). */
static void
record_error(LoadShared *sh)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	ErrorData  *ed = CopyErrorData();

	MemoryContextSwitchTo(old);
	SpinLockAcquire(&sh->mutex);
	if (!sh->has_error)
	{
		sh->has_error = true;
		sh->err_sqlstate = ed->sqlerrcode;
		sh->err_pid = MyProcPid;
		strlcpy(sh->err_message, ed->message ? ed->message : "load worker failed", LOAD_ERROR_TEXT);
		strlcpy(sh->err_detail, ed->detail ? ed->detail : "", LOAD_ERROR_TEXT);
		strlcpy(sh->err_hint, ed->hint ? ed->hint : "", LOAD_ERROR_TEXT);
		strlcpy(sh->err_context, ed->context ? ed->context : "", LOAD_ERROR_TEXT);
	}
	SpinLockRelease(&sh->mutex);
	pg_atomic_write_u32(&sh->failed, 1);
}

/*
 * The session, once it has no file left to take: wait until every worker has
 * committed its files.  Raises the first failure, or the end of a worker that
 * took a file and stopped without committing it.
 */
void
load_parallel_finish(LoadParallel *lp)
{
	for (;;)
	{
		bool		all_done = true;

		CHECK_FOR_INTERRUPTS();
		pass_on_notices(lp->sh);
		if (pg_atomic_read_u32(&lp->sh->failed) != 0)
			raise_recorded_error(lp->sh);
		for (int i = 0; i < lp->nlaunched; i++)
		{
			pid_t		pid;
			BgwHandleStatus status;

			if (pg_atomic_read_u32(&lp->sh->slots[i].state) == LOAD_WORKER_DONE)
				continue;
			status = GetBackgroundWorkerPid(lp->handles[i], &pid);
			if (status != BGWH_STOPPED)
			{
				all_done = false;
				continue;
			}
			/* stopped: it failed (raised above, once recorded) or was ended */
			if (pg_atomic_read_u32(&lp->sh->failed) != 0)
				raise_recorded_error(lp->sh);
			if (pg_atomic_read_u32(&lp->sh->slots[i].files_taken) > 0)
				ereport(ERROR,
						(errcode(ERRCODE_OPERATOR_INTERVENTION),
						 errmsg("load worker %d of delivery %lld ended before it finished its files",
								i + 1, (long long) lp->sh->delivery_id),
						 errdetail("It was terminated or crashed; the server log says why. Nothing of this delivery was loaded."),
						 errhint("The next sync loads the delivery again.")));
			/* it never took a file (it could not start, or started too late): nothing is missing */
		}
		if (all_done)
		{
			pass_on_notices(lp->sh);
			return;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* The session, on error or cancel: stop every worker (they roll back). */
void
load_parallel_abort(LoadParallel *lp)
{
	pg_atomic_write_u32(&lp->sh->failed, 1);
	for (int i = 0; i < lp->nlaunched; i++)
		TerminateBackgroundWorker(lp->handles[i]);
}

void
load_parallel_end(LoadParallel *lp)
{
	dsm_detach(lp->seg);
}

/* a worker loads with its session's value of an integer setting */
static void
take_session_setting(const char *name, int value)
{
	char		text[16];

	snprintf(text, sizeof(text), "%d", value);
	SetConfigOption(name, text, PGC_USERSET, PGC_S_SESSION);
}

void
billops_load_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	LoadShared *sh;
	LoadParallel lp;
	int			slot;
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	CurrentResourceOwner = ResourceOwnerCreate(NULL, "pg_billops load worker");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(0);			/* the session gave up before we started: nothing was taken */
	sh = dsm_segment_address(seg);
	memcpy(&slot, MyBgworkerEntry->bgw_extra, sizeof(slot));
	if (slot < 0 || slot >= sh->nworkers)
		proc_exit(0);
	pg_atomic_write_u32(&sh->slots[slot].state, LOAD_WORKER_RUNNING);

	memset(&lp, 0, sizeof(lp));
	lp.seg = seg;
	lp.sh = sh;
	lp.is_worker = true;
	lp.my_slot = slot;

	BackgroundWorkerInitializeConnectionByOid(sh->database_id, sh->authenticated_user_id, 0);
	SetUserIdAndSecContext(sh->current_user_id, sh->sec_context);
	take_session_setting("billops.load_batch_rows", sh->batch_rows);
	take_session_setting("billops.daily_rollup_memory", sh->daily_rollup_memory_kb);
	/* notices reach emit_log_hook only if they are logged: forward_notice takes them out of the log */
	SetConfigOption("log_min_messages", "notice", PGC_SUSET, PGC_S_OVERRIDE);
	worker_shared = sh;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = forward_notice;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "pg_billops: loading files of a CUR delivery");
		cur_load_files_as_worker(sh->delivery_id, &lp);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		record_error(sh);
		PG_RE_THROW();			/* no handler above: the worker exits, its transaction rolled back */
	}
	PG_END_TRY();

	pg_atomic_write_u32(&sh->slots[slot].state, LOAD_WORKER_DONE);
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
