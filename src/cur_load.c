/*
 * cur_load.c — stream one CUR delivery into fresh staging tables.
 *
 *   S3 GetObject (or a local file) → gunzip → COPY's CSV parser
 *   (BeginCopyFrom with a data-source callback, NextCopyFromRawFields)
 *   → per-column input functions / jsonb building → table_multi_insert
 *
 * Rows are routed by (billing period, payer) to a staging table created on
 * first sight through billops._staging_table().  A FOCUS export (a source
 * of layout 'focus') goes the same way into billops.focus_line_item: its
 * columns by their FOCUS names, routed by (BillingPeriodStart,
 * BillingAccountId) through billops._focus_staging_table(); a local FOCUS
 * file may hold several providers' accounts and periods.  A delivery holds one period
 * of one payer (check_row_belongs_to_delivery), so it fills one table; the
 * routing is kept general because it costs nothing per row.  The SQL side then
 * swaps them in atomically (billops._swap_delivery).  Nothing here touches the
 * live partitions, so any error leaves the previous delivery untouched.
 *
 * We use COPY's parser but not CopyFrom() itself, because a CUR row is not a
 * table row: legacy tag columns become jsonb keys, unknown columns go to
 * "extras", and each row is routed by its own period and payer.  Insertion is
 * batched like COPY's (table_multi_insert with a bulk-insert ring, skipping the
 * FSM for tables created in this transaction).
 */
#include "postgres.h"

#ifdef __linux__
#include <sched.h>
#endif
#include <unistd.h>

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "billops.h"
#include "billops_byte_source.h"
#include "billops_cur.h"
#include "billops_json.h"
#include "billops_s3.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/progress.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"

/*
 * billops.load_batch_rows, and the two settings the SQL side of a load reads
 * (billops.swap_lock_timeout, billops.analyze_after_load): defined in
 * billops_cur_load_init.
 */
static int	load_batch_rows = 1000;
static int	swap_lock_timeout_ms = 60000;
static bool analyze_after_load = true;

void
billops_cur_load_init(void)
{
	DefineCustomIntVariable("billops.load_batch_rows",
							"Rows buffered per multi-insert while loading CUR files.",
							NULL, &load_batch_rows, 1000, 1, 1000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.max_load_workers",
							"Background workers that load a delivery's files alongside the loading session.",
							"-1: one fewer than the CPU cores the server may run on (within max_worker_processes less two), so that the loaders fill them. 0 loads every file in the session. Each worker takes one of max_worker_processes while it runs.",
							&billops_max_load_workers, -1, -1, 64,
							/* the slots are the server's (the BILL worker's and pg_cron's too): a DBA's to give */
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.daily_rollup_memory",
							"Memory a loader's daily rollup may hold before it writes its partial sums out.",
							"Past it, the sums so far become rows of billops.cur_daily and summing starts afresh: more rows, the same totals.",
							&billops_daily_rollup_memory_kb, 65536, 1024, INT_MAX / 1024,
							PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.swap_lock_timeout",
							"How long the swap of a new delivery waits for readers of the old one.",
							"0 waits forever. On timeout the load fails, the old delivery stays, and the next sync retries.",
							&swap_lock_timeout_ms, 60000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("billops.analyze_after_load",
							 "ANALYZE each new partition before it is swapped in, so BI queries plan well at once.",
							 NULL, &analyze_after_load, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);
}

PG_FUNCTION_INFO_V1(billops_ingest_delivery);
PG_FUNCTION_INFO_V1(billops_prepare_staging);

/*
 * Progress slots we add to COPY's report (pg_stat_get_progress_info('COPY')
 * paramN = slot N-1).  COPY uses 0-5.  Index builds write slots 9-12, 15 and
 * 16 of whatever report is active (CREATE TABLE builds a TOAST index for each
 * new staging table), so ours avoid them.
 */
#define PROG_DELIVERY_ID	6
#define PROG_FILE_NO		7
#define PROG_FILE_COUNT		8
#define PROG_FILE_RAW_BYTES 13
#define PROG_FILE_SIZE		14
#define PROG_DELIVERY_ROWS	17
#define PROG_DELIVERY_RAW	18

#define MAX_BATCH_SLOTS 1000
/*
 * Like COPY's 64 kB MAX_BUFFERED_BYTES: rows are inserted while their
 * converted values are still in the CPU cache.  (copy_bytes advances by the
 * 64 kB chunks COPY reads, so in effect a batch is one chunk's rows.)
 */
#define BATCH_MAX_BYTES (64 * 1024)
#define BATCH_KEEPER_BYTES (1024 * 1024)
#define MAX_INVOICE_IDS 64

typedef struct Route
{
	int64		period;			/* CUR: a DateADT; FOCUS: a TimestampTz */
	char	   *payer;
	Relation	rel;
	AttrNumber *attmap;			/* parent attno → this table's attno (by name) */
	bool		same_attnos;	/* attmap is the identity: rows are built in the slot */
	TupleTableSlot **slots;
	int			nused;
	BulkInsertState bistate;
	int			ti_options;
	int64		rows;
	int64		rows_with_invoice;
	List	   *invoice_ids;
	char	   *last_invoice;
	DailyRollup *daily;			/* the CUR's: its rows summed into billops.cur_daily */
} Route;

#define MAP_KEY_SETS 16

typedef struct LoadState
{
	int64		delivery_id;
	bool		focus;			/* a FOCUS export into billops.focus_line_item */
	bool		one_route;		/* the delivery is one period of one payer */
	bool		peek;			/* billops._prepare_staging: route the first row, load nothing */
	LoadParallel *par;			/* a parallel load's shared state, or NULL */
	const char *what;			/* "CUR" or "FOCUS", for messages */
	Relation	parent;
	TupleDesc	ptupdesc;
	FmgrInfo   *in_funcs;		/* per parent attribute */
	Oid		   *typioparams;
	int32	   *typmods;
	bool	   *is_text;		/* text needs no input function call */
	bool	   *is_numeric;		/* numeric: must be finite */
	bool	   *is_temporal;	/* date / timestamptz: must be in AWS's ISO 8601 form */
	bool	   *is_timestamptz; /* timestamptz: UTC unless the value names its zone */
	bool		has_period;		/* expected_period is known (S3: from the manifest) */
	DateADT		expected_period;	/* the one billing period of the delivery */
	char	   *expected_payer; /* its one payer: the first row's */
	List	   *routes;
	Route	   *current;
	char	   *cur_payer_raw;
	char	   *cur_period_raw;
	MemoryContext batch_cxt;
	int			batch_rows;
	uint64		batch_start_bytes;	/* copy_bytes when the batch began */

	/* per file, for messages */
	const char *file_name;
	int64		row_no;
	const char *column;
	bool		in_row;			/* converting a row (vs. reading the stream) */

	/* totals */
	int64		delivery_rows;
	uint64		delivery_raw;

	/* the keys seen in each map column (billops.cur_delivery_map_key) */
	HTAB	   *map_keys;
	/* per map column, the last few distinct sets of keys rows had: most rows repeat one */
	struct
	{
		const char *column;
		StringInfoData keys[MAP_KEY_SETS];
		int			next;		/* the one to replace */
	}			map_last[8];
	int			nmap_last;
	StringInfoData map_row_keys;	/* the row's, as they are read */
} LoadState;

/*
 * The keys of the map columns (tags, cost categories, product attributes) a
 * delivery holds, recorded so that billops.athena_cur can offer one column
 * per key as Athena's crawler does, without rescanning the rows.  Bounded: a
 * delivery with more distinct keys than this is recorded up to the bound.
 */
#define MAP_KEY_LEN 256
#define MAX_MAP_KEYS 20000

typedef struct MapKeyEntry
{
	char		key[MAP_KEY_LEN];	/* "<map column>\t<key>", truncated */
} MapKeyEntry;

static void
note_map_key(LoadState *st, const char *column, const char *key, int keylen)
{
	char		buf[MAP_KEY_LEN];
	int			n;

	if (st->map_keys == NULL)
	{
		HASHCTL		ctl = {0};

		ctl.keysize = MAP_KEY_LEN;
		ctl.entrysize = sizeof(MapKeyEntry);
		ctl.hcxt = TopTransactionContext;
		st->map_keys = hash_create("billops map keys", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	if (hash_get_num_entries(st->map_keys) >= MAX_MAP_KEYS)
		return;
	n = snprintf(buf, sizeof(buf), "%s\t", column);
	if (n >= (int) sizeof(buf) - 1)
		return;
	keylen = Min(keylen, (int) sizeof(buf) - n - 1);
	/* never cut a multi-byte character in half */
	keylen = pg_mbcliplen(key, keylen, keylen);
	memcpy(buf + n, key, keylen);
	buf[n + keylen] = '\0';
	(void) hash_search(st->map_keys, buf, HASH_ENTER, NULL);
}

/*
 * Note the keys of a row's map column (st->map_row_keys), unless the column
 * had this very set of keys in a recent row: a CUR's rows carry a few sets
 * of product attributes and tags over and over, and noting each key of each
 * row (a formatted string, a hash lookup) cost a tenth of the load.
 */
static void
note_map_keys_of_row(LoadState *st, const char *column)
{
	StringInfo	row = &st->map_row_keys;
	int			c;

	for (c = 0; c < st->nmap_last; c++)
		if (strcmp(st->map_last[c].column, column) == 0)
			break;
	if (c == st->nmap_last && st->nmap_last < (int) lengthof(st->map_last))
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		st->map_last[c].column = pstrdup(column);
		for (int k = 0; k < MAP_KEY_SETS; k++)
		{
			initStringInfo(&st->map_last[c].keys[k]);
			appendStringInfoChar(&st->map_last[c].keys[k], 'x');	/* no row's keys */
		}
		st->map_last[c].next = 0;
		st->nmap_last++;
		MemoryContextSwitchTo(old);
	}
	if (c < st->nmap_last)
		for (int k = 0; k < MAP_KEY_SETS; k++)
		{
			StringInfo	seen = &st->map_last[c].keys[k];

			if (seen->len == row->len && memcmp(seen->data, row->data, row->len) == 0)
				return;
		}
	for (int at = 0; at < row->len;)
	{
		int			len;

		memcpy(&len, row->data + at, sizeof(int));
		note_map_key(st, column, row->data + at + sizeof(int), len);
		at += sizeof(int) + len;
	}
	if (c < st->nmap_last)
	{
		StringInfo	seen = &st->map_last[c].keys[st->map_last[c].next];

		st->map_last[c].next = (st->map_last[c].next + 1) % MAP_KEY_SETS;
		resetStringInfo(seen);
		appendBinaryStringInfo(seen, row->data, row->len);
	}
}

/* COPY's data-source callback takes no argument: the stream it reads is here. */
static ByteSource *copy_source = NULL;
static uint64 copy_bytes = 0;
static LoadParallel *copy_parallel = NULL;	/* a parallel load's shared state */

static int
copy_read_cb(void *outbuf, int minread, int maxread)
{
	int			got = (int) byte_source_read_at_least(copy_source, outbuf, minread, maxread);

	copy_bytes += got;
	/* every 64 kB: stop once another loader failed, or (a worker) once its session is gone */
	if (copy_parallel)
		load_parallel_check(copy_parallel);
	/* cheap (a store into shared memory): keeps the view live even for slow files */
	pgstat_progress_update_param(PROG_FILE_RAW_BYTES, (int64) byte_source_raw_bytes(copy_source));
	return got;
}

static void
load_error_context(void *arg)
{
	LoadState  *st = arg;

	if (st->file_name == NULL)
		return;
	/*
	 * COPY reads ahead, so a decompression or encoding error surfaces while
	 * reading a row, not necessarily in it: say "after" unless we are
	 * converting the row itself.
	 */
	if (st->in_row && st->row_no <= 0)
		errcontext("%s file \"%s\", header row", st->what, st->file_name);
	else if (st->in_row && st->column)
		errcontext("%s file \"%s\", data row %lld, column \"%s\"",
				   st->what, st->file_name, (long long) st->row_no, st->column);
	else if (st->in_row)
		errcontext("%s file \"%s\", data row %lld", st->what, st->file_name, (long long) st->row_no);
	else if (st->row_no <= 0)
		errcontext("%s file \"%s\", reading the header", st->what, st->file_name);
	else
		errcontext("%s file \"%s\", reading after data row %lld", st->what, st->file_name, (long long) st->row_no);
}

/* --- routes: one staging table per (period, payer) ------------------------ */

/*
 * A staging table created in this very subtransaction is written frozen, as
 * COPY FREEZE writes a table created in its transaction: its pages are
 * all-visible and all-frozen from the start.  Otherwise the month's first
 * reader sets the hint bits of every page and writes it again (after a
 * 988,000-row load the first count(*) of the month dirtied and wrote 130,902
 * pages, 1 GB; with data checksums or wal_log_hints each is also a full-page
 * image in the WAL), and vacuum later visits every page to set the visibility
 * map and to freeze.
 *
 * Frozen rows are visible to every snapshot at once, which is safe here: no
 * other session can reach a table whose creation is not committed, and if
 * this subtransaction aborts the table goes with its rows.  (COPY FREEZE
 * also refuses when the transaction holds older snapshots, lest one of them
 * see rows it should not; nothing reads a staging table while the load
 * writes it, and a snapshot older than the table cannot have planned a scan
 * of it.)  A table committed before the load -- the one parallel loaders
 * share -- or reopened in a later subtransaction is written as usual.
 */
int
billops_frozen_insert_option(Relation rel)
{
	return rel->rd_createSubid != InvalidSubTransactionId &&
		rel->rd_createSubid == GetCurrentSubTransactionId() ? TABLE_INSERT_FROZEN : 0;
}

static Route *
route_open(LoadState *st, int64 period, const char *payer)
{
	Route	   *r;
	Oid			relid;
	Datum		args[3];
	Oid			argtypes[3] = {INT8OID, st->focus ? TIMESTAMPTZOID : DATEOID, TEXTOID};
	bool		isnull;
	TupleDesc	rdesc;
	MemoryContext old;

	args[0] = Int64GetDatum(st->delivery_id);
	args[1] = st->focus ? TimestampTzGetDatum(period) : DateADTGetDatum((DateADT) period);
	args[2] = CStringGetTextDatum(payer);
	if (SPI_execute_with_args(st->focus ? "SELECT billops._focus_staging_table($1, $2, $3)::oid"
							  : "SELECT billops._staging_table($1, $2, $3)::oid",
							  3, argtypes, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not create a staging table");
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	old = MemoryContextSwitchTo(TopTransactionContext);
	r = palloc0(sizeof(Route));
	r->period = period;
	r->payer = pstrdup(payer);
	r->rel = table_open(relid, RowExclusiveLock);
	rdesc = RelationGetDescr(r->rel);
	r->attmap = palloc0(sizeof(AttrNumber) * st->ptupdesc->natts);
	for (int i = 0; i < st->ptupdesc->natts; i++)
	{
		Form_pg_attribute pa = TupleDescAttr(st->ptupdesc, i);

		if (pa->attisdropped)
			continue;
		for (int j = 0; j < rdesc->natts; j++)
			if (!TupleDescAttr(rdesc, j)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(rdesc, j)->attname), NameStr(pa->attname)) == 0)
				r->attmap[i] = j + 1;
	}
	r->same_attnos = rdesc->natts == st->ptupdesc->natts;
	for (int i = 0; i < st->ptupdesc->natts && r->same_attnos; i++)
		r->same_attnos = TupleDescAttr(st->ptupdesc, i)->attisdropped
			? TupleDescAttr(rdesc, i)->attisdropped
			: r->attmap[i] == i + 1;
	r->slots = palloc0(sizeof(TupleTableSlot *) * MAX_BATCH_SLOTS);
	for (int i = 0; i < MAX_BATCH_SLOTS; i++)
		r->slots[i] = table_slot_create(r->rel, NULL);
	r->bistate = GetBulkInsertState();
	/* the CUR's rows are summed per day as they are inserted (cur_daily.c) */
	if (!st->focus && !st->peek)
	{
		Datum		dargs[2] = {Int64GetDatum(st->delivery_id), ObjectIdGetDatum(relid)};
		Oid			dargt[2] = {INT8OID, OIDOID};

		if (SPI_execute_with_args("SELECT daily_table::oid FROM billops.cur_delivery_partition "
								  "WHERE delivery_id = $1 AND staging_table = $2::regclass",
								  2, dargt, dargs, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "staging table %u has no rollup table", relid);
		r->daily = daily_rollup_begin(r->rel,
									  DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
									  st->delivery_id, (DateADT) period, payer);
	}
	/*
	 * A staging table is only ever appended to, never deleted from, so it has
	 * no free space worth looking up: like COPY into a table created in its
	 * transaction.  Except when loaders share it: PostgreSQL 15 extends a
	 * relation a page at a time, and only when inserts use the free space
	 * map does a loader that finds the extension lock taken add pages for
	 * all (hio.c, RelationAddExtraBlocks); without it the loaders queue for
	 * the lock page by page.
	 */
	if (st->par == NULL)
		r->ti_options |= TABLE_INSERT_SKIP_FSM;
	r->ti_options |= billops_frozen_insert_option(r->rel);
	st->routes = lappend(st->routes, r);
	MemoryContextSwitchTo(old);
	return r;
}

static void
routes_flush(LoadState *st)
{
	ListCell   *lc;
	CommandId	cid = GetCurrentCommandId(true);

	foreach(lc, st->routes)
	{
		Route	   *r = lfirst(lc);

		if (r->nused == 0)
			continue;
		if (r->daily)
			daily_rollup_add(r->daily, r->slots, r->nused);
		table_multi_insert(r->rel, r->slots, r->nused, cid, r->ti_options, r->bistate);
		for (int i = 0; i < r->nused; i++)
			ExecClearTuple(r->slots[i]);
		r->nused = 0;
	}
	MemoryContextReset(st->batch_cxt);
	st->batch_rows = 0;
	st->batch_start_bytes = copy_bytes;
}

static void
route_note_invoice(Route *r, const char *inv)
{
	ListCell   *lc;
	MemoryContext old;

	r->rows_with_invoice++;
	if (r->last_invoice && strcmp(r->last_invoice, inv) == 0)
		return;
	foreach(lc, r->invoice_ids)
		if (strcmp((char *) lfirst(lc), inv) == 0)
		{
			r->last_invoice = lfirst(lc);
			return;
		}
	if (list_length(r->invoice_ids) >= MAX_INVOICE_IDS)
		return;
	old = MemoryContextSwitchTo(TopTransactionContext);
	r->invoice_ids = lappend(r->invoice_ids, pstrdup(inv));
	r->last_invoice = llast(r->invoice_ids);
	MemoryContextSwitchTo(old);
}

/* --- one row --------------------------------------------------------------- */

/*
 * FOCUS's ChargeFrequency values as the specification spells them
 * (columns/chargefrequency.md); AWS's FOCUS 1.0 export writes "Usage-based".
 * Any other value is kept as written.
 */
static const char *
focus_charge_frequency(const char *v)
{
	static const char *const spellings[] = {"One-Time", "Recurring", "Usage-Based"};

	for (int i = 0; i < lengthof(spellings); i++)
		if (pg_strcasecmp(v, spellings[i]) == 0)
			return spellings[i];
	return v;
}

typedef struct JsonTarget
{
	AttrNumber	attnum;
	JsonbParseState *ps;
	bool		any;
} JsonTarget;

static void
json_put(JsonTarget *jt, const char *key, const char *value)
{
	JsonbValue	k,
				v;

	if (!jt->any)
	{
		jt->ps = NULL;
		pushJsonbValue(&jt->ps, WJB_BEGIN_OBJECT, NULL);
		jt->any = true;
	}
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(&jt->ps, WJB_KEY, &k);
	pushJsonbValue(&jt->ps, WJB_VALUE, &v);
}

typedef struct FileMap
{
	CurColumn  *cols;
	int			ncols;
	int			payer_idx;
	int			period_idx;
	int			invoice_idx;
	int			frequency_idx;	/* FOCUS ChargeFrequency, spelled as the specification does */
	JsonTarget *targets;		/* jsonb columns fed by entries/extras */
	int			ntargets;
	int		   *target_of;		/* column → targets[] index or -1 */
	bool	   *string_map;		/* a CUR 2.0 map of strings (all but discount, a map of numbers) */
} FileMap;

static FileMap *
file_map_build(LoadState *st, char **fields, int nfields)
{
	FileMap    *fm = palloc0(sizeof(FileMap));
	AttrNumber	extras;

	fm->cols = (st->focus ? focus_map_header : cur_map_header) (fields, nfields, st->ptupdesc, st->file_name, &extras);
	fm->ncols = nfields;
	fm->payer_idx = fm->period_idx = fm->invoice_idx = fm->frequency_idx = -1;
	fm->targets = palloc0(sizeof(JsonTarget) * (nfields + 1));
	fm->target_of = palloc(sizeof(int) * Max(nfields, 1));
	fm->string_map = palloc0(sizeof(bool) * Max(nfields, 1));
	for (int i = 0; i < nfields; i++)
	{
		CurColumn  *c = &fm->cols[i];

		fm->target_of[i] = -1;
		fm->string_map[i] = c->kind == CUR_COL_MAP_JSON && !st->focus && strcmp(c->name, "discount") != 0;
		if (c->kind != CUR_COL_TYPED)
			;
		else if (strcmp(c->name, st->focus ? "BillingAccountId" : "bill_payer_account_id") == 0)
			fm->payer_idx = i;
		else if (strcmp(c->name, st->focus ? "BillingPeriodStart" : "bill_billing_period_start_date") == 0)
			fm->period_idx = i;
		else if (strcmp(c->name, st->focus ? "InvoiceId" : "bill_invoice_id") == 0)
			fm->invoice_idx = i;
		else if (st->focus && strcmp(c->name, "ChargeFrequency") == 0)
			fm->frequency_idx = i;
		if (c->kind == CUR_COL_MAP_ENTRY)
			note_map_key(st, NameStr(TupleDescAttr(st->ptupdesc, c->attnum - 1)->attname),
						 c->key, strlen(c->key));
		if (c->kind == CUR_COL_MAP_ENTRY || c->kind == CUR_COL_EXTRA)
		{
			int			t;

			if (c->attnum == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("%s has no \"extras\" column to keep unknown columns", RelationGetRelationName(st->parent))));
			for (t = 0; t < fm->ntargets; t++)
				if (fm->targets[t].attnum == c->attnum)
					break;
			if (t == fm->ntargets)
				fm->targets[fm->ntargets++].attnum = c->attnum;
			fm->target_of[i] = t;
		}
	}
	return fm;
}

/* --- what a row must be before anything of it is kept ----------------------- */

/*
 * An AWS account id is 12 digits.  A spreadsheet turns it into a number
 * (1.23457E+11) or drops leading zeros: refused, never loaded as a payer.
 */
static void
check_account_id(const char *v)
{
	int			n = 0;

	while (v[n] >= '0' && v[n] <= '9')
		n++;
	if (n != 12 || v[n] != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("\"%.40s%s\" is not an AWS account id", v, strlen(v) > 40 ? "…" : ""),
				 errdetail("An account id is 12 digits, with its leading zeros."),
				 errhint("A file opened and saved in a spreadsheet loses them (1.23457E+11); load the file AWS delivered.")));
}

/*
 * Dates and times exactly as AWS writes them in CUR and CUR 2.0 (ISO 8601:
 * 2023-11-01T00:00:00Z, 2023-11-01T00:00:00.000Z, 2023-11-01 00:00:00.000,
 * or a plain date), never read through DateStyle: "01/11/2023" would be
 * January or November depending on the session.  Returns whether the value
 * has that form, and in *zoned whether it names its zone (Z or an offset);
 * the input function then checks the ranges.
 */
static bool
aws_datetime_form(const char *v, bool *zoned)
{
	const char *p = v;

	*zoned = false;

#define DIGITS(k) do { for (int i_ = 0; i_ < (k); i_++, p++) if (*p < '0' || *p > '9') return false; } while (0)
	DIGITS(4);
	if (*p++ != '-')
		return false;
	DIGITS(2);
	if (*p++ != '-')
		return false;
	DIGITS(2);
	if (*p == '\0')
		return true;
	if (*p != 'T' && *p != ' ')
		return false;
	p++;
	DIGITS(2);
	if (*p++ != ':')
		return false;
	DIGITS(2);
	if (*p == ':')
	{
		p++;
		DIGITS(2);
		if (*p == '.')
		{
			p++;
			if (*p < '0' || *p > '9')
				return false;
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	if (*p == 'Z')
	{
		p++;
		*zoned = true;
	}
	else if (*p == '+' || *p == '-')
	{
		p++;
		*zoned = true;
		DIGITS(2);
		/* ±hh, ±hhmm or ±hh:mm (ISO 8601; PostgreSQL writes +00) */
		if (*p == ':')
		{
			p++;
			DIGITS(2);
		}
		else if (*p != '\0')
			DIGITS(2);
	}
#undef DIGITS
	return *p == '\0';
}

static bool
check_datetime_form(LoadState *st, const char *v)
{
	bool		zoned;

	if (!aws_datetime_form(v, &zoned))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("\"%.40s%s\" is not a date or time in %s", v, strlen(v) > 40 ? "…" : "",
						st->focus ? "ISO 8601 form" : "AWS's format"),
				 errdetail("%s dates and times are ISO 8601, e.g. 2023-11-01T00:00:00Z; other forms read differently under different DateStyle settings.", st->what),
				 errhint("A file opened and saved in a spreadsheet rewrites them; load the file %s delivered.",
						 st->focus ? "the provider" : "AWS")));
	return zoned;
}

/* n digits at *p as a number (aws_datetime_form has checked they are digits) */
static inline int
digits_at(const char *p, int n)
{
	int			v = 0;

	for (int i = 0; i < n; i++)
		v = v * 10 + (p[i] - '0');
	return v;
}

/*
 * The timestamps AWS writes, read directly: YYYY-MM-DD, then optionally
 * [T ]hh:mm[:ss[.f…]] and Z or ±hh[[:]mm], no zone meaning UTC.  Every line
 * item has four of them, and timestamptz_in (a general date/time parser)
 * cost more than all of a row's numbers.  Anything else it could mean
 * (24:00:00, a leap second, more than microseconds, an invalid day) is left
 * to timestamptz_in: false means "not this simple", never "invalid".
 */
static bool
iso_timestamptz(const char *v, TimestampTz *out)
{
	const char *p = v + 10;
	int			y = digits_at(v, 4),
				m = digits_at(v + 5, 2),
				d = digits_at(v + 8, 2);
	int			h = 0,
				mi = 0,
				sec = 0,
				offset = 0;		/* seconds east of UTC */
	int64		usec = 0;

	if (y < 1 || m < 1 || m > 12 || d < 1 || d > day_tab[isleap(y)][m - 1])
		return false;
	if (*p == 'T' || *p == ' ')
	{
		h = digits_at(p + 1, 2);
		mi = digits_at(p + 4, 2);
		p += 6;
		if (*p == ':')
		{
			sec = digits_at(p + 1, 2);
			p += 3;
			if (*p == '.')
			{
				int			n = 0;

				for (p++; *p >= '0' && *p <= '9'; p++, n++)
				{
					if (n == 6)
						return false;
					usec = usec * 10 + (*p - '0');
				}
				for (; n < 6; n++)
					usec *= 10;
			}
		}
		if (h > 23 || mi > 59 || sec > 59)
			return false;
	}
	if (*p == 'Z')
		p++;
	else if (*p == '+' || *p == '-')
	{
		int			sign = *p == '-' ? -1 : 1;
		int			oh = digits_at(p + 1, 2),
					om = 0;

		p += 3;
		if (*p == ':')
			p++;
		if (*p >= '0' && *p <= '9')
		{
			om = digits_at(p, 2);
			p += 2;
		}
		if (oh > 15 || om > 59)
			return false;
		offset = sign * (oh * SECS_PER_HOUR + om * SECS_PER_MINUTE);
	}
	if (*p != '\0')
		return false;
	*out = ((int64) (date2j(y, m, d) - POSTGRES_EPOCH_JDATE) * SECS_PER_DAY +
			h * SECS_PER_HOUR + mi * SECS_PER_MINUTE + sec - offset) * USECS_PER_SEC + usec;
	return true;
}

/*
 * A timestamptz value: one without a zone is UTC, the zone of AWS's billing
 * data and of FOCUS's Date/Time Format, never the session's TimeZone.
 */
static Datum
utc_timestamptz_in(LoadState *st, const char *v, int a)
{
	char		buf[64];
	bool		zoned = check_datetime_form(st, v);
	TimestampTz ts;

	if (st->typmods[a] == -1 && iso_timestamptz(v, &ts))
		return TimestampTzGetDatum(ts);
	if (zoned || strlen(v) > sizeof(buf) - 4)
		return InputFunctionCall(&st->in_funcs[a], (char *) v, st->typioparams[a], st->typmods[a]);
	snprintf(buf, sizeof(buf), "%s+00", v);
	return InputFunctionCall(&st->in_funcs[a], buf, st->typioparams[a], st->typmods[a]);
}

/* A billing period starts at midnight on the first of a month (UTC). */
static DateADT
billing_period_of(LoadState *st, const char *v)
{
	DateADT		period;
	int			y,
				m,
				d;
	bool		midnight_utc = true;

	check_datetime_form(st, v);
	period = DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(v)));
	j2date(period + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	/* every digit of the time and of an offset is 0: 00:00:00(.000)(Z|+00:00) */
	for (const char *p = v + Min(strlen(v), 10); *p; p++)
		midnight_utc &= !(*p >= '1' && *p <= '9');
	if (d != 1 || !midnight_utc)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("billing period \"%.40s\" does not start on the first of a month", v),
				 errdetail("AWS bills by calendar month: bill/BillingPeriodStartDate is the first day of the month at 00:00 UTC.")));
	return period;
}

/*
 * A delivery is one billing period of one payer: AWS writes a report per
 * payer (bill/PayerAccountId is "the account that pays the bill", the
 * management account of an organization: AWS's CUR data dictionary), and
 * each delivery is one month's (its folder and manifest say which).  The
 * swap replaces exactly that (period, payer), so a row of another month or
 * payer is refused: loaded, it would replace that month's or payer's data.
 * An S3 delivery's period comes from its manifest; a local file names none,
 * so its first row sets the period, and for every source the first row sets
 * the payer.
 */
static void
check_row_belongs_to_delivery(LoadState *st, FileMap *fm, DateADT period, const char *payer)
{
	if (!st->has_period)
	{
		st->expected_period = period;
		st->has_period = true;
	}
	if (st->expected_payer == NULL)
		st->expected_payer = MemoryContextStrdup(TopTransactionContext, payer);
	st->column = fm->cols[fm->period_idx].header;
	if (period != st->expected_period)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("row of billing period %s in a delivery of billing period %s",
						DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(period))),
						DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(st->expected_period)))),
				 errdetail("A delivery replaces its own month only; a row of another month would replace that month's data."),
				 errhint("AWS delivers each billing period in a report of its own; load each month's file separately. Nothing of this delivery was loaded.")));
	st->column = fm->cols[fm->payer_idx].header;
	if (strcmp(payer, st->expected_payer) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("row of payer %.40s in a delivery of payer %s", payer, st->expected_payer),
				 errdetail("A delivery replaces its own payer's line items only; a row of another payer would replace that payer's data."),
				 errhint("AWS writes one payer (management account) per report; load each payer's report separately. Nothing of this delivery was loaded.")));
}

/*
 * CUR 2.0 map columns are JSON objects: of strings (product, resource_tags,
 * cost_category, tags), and of numbers for discount (map<string,double> in
 * AWS's data dictionary; a number written as a string is taken too).
 * FOCUS's Key-Value Format (Tags, SkuPriceDetails, AWS's x_CostCategories)
 * is a JSON object whose values are strings, numbers, booleans or null,
 * never an object or an array (FOCUS 1.2, attributes/keyvalueformat.md).
 */
typedef enum MapValues
{
	MAP_OF_STRINGS,
	MAP_OF_NUMBERS,
	MAP_OF_SCALARS
} MapValues;

static void
check_map(LoadState *st, const char *column, Datum value, MapValues values)
{
	const char *want = values == MAP_OF_STRINGS ? "strings" : values == MAP_OF_NUMBERS ? "numbers" : "scalar values";

	Jsonb	   *j = DatumGetJsonbP(value);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			depth = 0;
	const char *key = "";
	int			keylen = 0;

	if (!JB_ROOT_IS_OBJECT(j))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("a map column must hold a JSON object"),
				 errdetail("%s", st->focus ? "FOCUS's Key-Value Format is a JSON object: {\"key\": \"value\", ...}."
						   : "CUR 2.0 writes maps such as resource_tags as {\"key\": \"value\", ...}.")));
	if (!st->focus)
		resetStringInfo(&st->map_row_keys);
	it = JsonbIteratorInit(&j->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
			depth++;
		else if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
			depth--;
		else if (tok == WJB_KEY && depth == 1)
		{
			key = v.val.string.val;
			keylen = Min(v.val.string.len, 200);
			if (!st->focus)
			{
				/* the key, length first: the row's keys are compared with the previous row's at the end */
				appendBinaryStringInfo(&st->map_row_keys, (char *) &v.val.string.len, sizeof(int));
				appendBinaryStringInfo(&st->map_row_keys, v.val.string.val, v.val.string.len);
			}
		}
		else if (tok == WJB_VALUE && depth == 1 && v.type != jbvString && v.type != jbvNull &&
				 !(values != MAP_OF_STRINGS && v.type == jbvNumeric) &&
				 !(values == MAP_OF_SCALARS && v.type == jbvBool))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("a map column must hold a JSON object of %s", want),
					 errdetail("The value of key \"%.*s\" is not a %s.", keylen, key,
							   values == MAP_OF_STRINGS ? "string" : values == MAP_OF_NUMBERS ? "number" : "scalar")));
		if (depth > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("a map column must hold a JSON object of %s", want),
					 errdetail("It holds a nested object or array.")));
	}
	if (!st->focus)
		note_map_keys_of_row(st, column);
}

/* Write the map keys the delivery holds (one statement, two arrays). */
static void
record_map_keys(LoadState *st)
{
	HASH_SEQ_STATUS seq;
	MapKeyEntry *e;
	Datum	   *cols,
			   *keys;
	int			n = 0;
	Datum		a[3];
	Oid			at[3] = {INT8OID, TEXTARRAYOID, TEXTARRAYOID};

	if (st->map_keys == NULL || hash_get_num_entries(st->map_keys) == 0)
		return;
	cols = palloc(sizeof(Datum) * hash_get_num_entries(st->map_keys));
	keys = palloc(sizeof(Datum) * hash_get_num_entries(st->map_keys));
	hash_seq_init(&seq, st->map_keys);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		char	   *tab = strchr(e->key, '\t');

		cols[n] = PointerGetDatum(cstring_to_text_with_len(e->key, tab - e->key));
		keys[n] = CStringGetTextDatum(tab + 1);
		n++;
	}
	a[0] = Int64GetDatum(st->delivery_id);
	a[1] = PointerGetDatum(construct_array(cols, n, TEXTOID, -1, false, TYPALIGN_INT));
	a[2] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("INSERT INTO billops.cur_delivery_map_key (delivery_id, map_column, key) "
							  "SELECT $1, c, k FROM unnest($2, $3) AS t(c, k) ON CONFLICT DO NOTHING",
							  3, at, a, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the map keys of the delivery");
}

/*
 * A CUR 2.0 map of strings read directly (json_map.c), its keys noted; 0
 * when the text is not a plain flat object, for jsonb_in and check_map.
 */
static Datum
string_map_in(LoadState *st, const char *column, const char *text)
{
	Jsonb	   *j;

	resetStringInfo(&st->map_row_keys);
	j = billops_json_flat_string_map(text, &st->map_row_keys);
	if (j == NULL)
		return (Datum) 0;
	note_map_keys_of_row(st, column);
	return JsonbPGetDatum(j);
}

static void
load_row(LoadState *st, FileMap *fm, char **fields, Datum *values, bool *nulls)
{
	const char *payer;
	const char *period_str;
	Route	   *r;
	TupleTableSlot *slot;
	int			natts = st->ptupdesc->natts;

	/*
	 * An empty field is NULL.  So, in a FOCUS export, is the bare word NULL:
	 * AWS's FOCUS export writes it for missing values (unquoted, where every
	 * value it writes is quoted; COPY's parser does not tell us which).
	 */
	if (st->focus)
		for (int i = 0; i < fm->ncols; i++)
			if (fields[i] != NULL && strcmp(fields[i], "NULL") == 0)
				fields[i] = NULL;
	payer = fields[fm->payer_idx];
	period_str = fields[fm->period_idx];
	if (payer == NULL || payer[0] == '\0' || period_str == NULL || period_str[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("row has no %s", (payer == NULL || payer[0] == '\0')
						? (st->focus ? "BillingAccountId" : "payer account id")
						: (st->focus ? "BillingPeriodStart" : "billing period start date")),
				 errdetail("%s", st->focus
						   ? "Every FOCUS row names its billing account and period; pg_billops partitions by both."
						   : "Every CUR line item names its payer account and billing period; pg_billops partitions by both.")));

	/*
	 * Route first, from the raw strings: opening a route may flush the batch,
	 * which frees the batch memory this row's values are about to live in.
	 */
	if (st->current == NULL || strcmp(st->cur_payer_raw, payer) != 0 ||
		strcmp(st->cur_period_raw, period_str) != 0)
	{
		int64		period;
		ListCell   *lc;
		MemoryContext old;

		if (st->focus)
		{
			/* any provider's account id and period start (not necessarily midnight UTC) */
			TimestampTz start;

			st->column = fm->cols[fm->period_idx].header;
			start = DatumGetTimestampTz(utc_timestamptz_in(st, period_str, fm->cols[fm->period_idx].attnum - 1));
			period = start;
			if (st->one_route)
			{
				/* its UTC date, whatever the session's TimeZone (floor division) */
				DateADT		utc_date = (DateADT) (start / USECS_PER_DAY - (start % USECS_PER_DAY < 0));

				check_row_belongs_to_delivery(st, fm, utc_date, payer);
			}
		}
		else
		{
			st->column = fm->cols[fm->payer_idx].header;
			check_account_id(payer);
			st->column = fm->cols[fm->period_idx].header;
			period = billing_period_of(st, period_str);
			check_row_belongs_to_delivery(st, fm, (DateADT) period, payer);
		}
		st->column = NULL;
		r = NULL;
		foreach(lc, st->routes)
		{
			Route	   *x = lfirst(lc);

			if (x->period == period && strcmp(x->payer, payer) == 0)
				r = x;
		}
		if (r == NULL)
		{
			routes_flush(st);	/* SPI below must not see half-filled batches */
			r = route_open(st, period, payer);
		}
		st->current = r;
		old = MemoryContextSwitchTo(TopTransactionContext);
		if (st->cur_payer_raw)
			pfree(st->cur_payer_raw);
		if (st->cur_period_raw)
			pfree(st->cur_period_raw);
		st->cur_payer_raw = pstrdup(payer);
		st->cur_period_raw = pstrdup(period_str);
		MemoryContextSwitchTo(old);
	}
	r = st->current;
	if (st->peek)
		return;

	/* the row is built in its slot, where the staging table's attributes are the parent's */
	slot = r->slots[r->nused];
	ExecClearTuple(slot);
	if (r->same_attnos)
	{
		values = slot->tts_values;
		nulls = slot->tts_isnull;
	}
	memset(nulls, true, sizeof(bool) * natts);
	for (int t = 0; t < fm->ntargets; t++)
		fm->targets[t].any = false;

	for (int i = 0; i < fm->ncols; i++)
	{
		CurColumn  *c = &fm->cols[i];
		char	   *f = fields[i];
		int			a;

		if (f == NULL || f[0] == '\0')
			continue;
		st->column = c->header;
		a = c->attnum - 1;
		switch (c->kind)
		{
			case CUR_COL_TYPED:
			case CUR_COL_MAP_JSON:
				if (i == fm->frequency_idx)
					f = (char *) focus_charge_frequency(f);
				if (st->is_text[a])
					values[a] = PointerGetDatum(cstring_to_text(f));
				else if (fm->string_map[i] &&
						 (values[a] = string_map_in(st, c->name, f)) != (Datum) 0)
					;
				else
				{
					if (st->is_timestamptz[a])
						values[a] = utc_timestamptz_in(st, f, a);
					else
					{
						if (st->is_temporal[a])
							check_datetime_form(st, f);
						values[a] = InputFunctionCall(&st->in_funcs[a], f, st->typioparams[a], st->typmods[a]);
					}
					/* numeric_in takes NaN and Infinity: one would turn every sum of the month into it */
					if (st->is_numeric[a] && (numeric_is_nan(DatumGetNumeric(values[a])) ||
											  numeric_is_inf(DatumGetNumeric(values[a]))))
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
								 errmsg("\"%.40s\" is not a finite number", f),
								 errdetail("%s amounts and quantities are finite decimals.", st->what)));
					if (c->kind == CUR_COL_MAP_JSON)
						check_map(st, c->name, values[a],
								  st->focus ? MAP_OF_SCALARS : strcmp(c->name, "discount") == 0 ? MAP_OF_NUMBERS : MAP_OF_STRINGS);
				}
				nulls[a] = false;
				break;
			case CUR_COL_MAP_ENTRY:
			case CUR_COL_EXTRA:
				json_put(&fm->targets[fm->target_of[i]], c->key, f);
				break;
		}
	}
	st->column = NULL;
	for (int t = 0; t < fm->ntargets; t++)
	{
		JsonTarget *jt = &fm->targets[t];

		if (jt->any)
		{
			JsonbValue *res = pushJsonbValue(&jt->ps, WJB_END_OBJECT, NULL);

			values[jt->attnum - 1] = JsonbPGetDatum(JsonbValueToJsonb(res));
			nulls[jt->attnum - 1] = false;
		}
	}

	if (fm->invoice_idx >= 0 && fields[fm->invoice_idx] && fields[fm->invoice_idx][0])
		route_note_invoice(r, fields[fm->invoice_idx]);

	r->nused++;
	if (!r->same_attnos)
		for (int i = 0; i < natts; i++)
		{
			AttrNumber	ta = r->attmap[i];

			if (ta == 0)
				continue;
			slot->tts_values[ta - 1] = values[i];
			slot->tts_isnull[ta - 1] = nulls[i];
		}
	ExecStoreVirtualTuple(slot);
	r->rows++;
	st->delivery_rows++;
	if (r->nused >= MAX_BATCH_SLOTS || ++st->batch_rows >= load_batch_rows ||
		copy_bytes - st->batch_start_bytes >= BATCH_MAX_BYTES)
		routes_flush(st);
}

/* --- one file -------------------------------------------------------------- */

/*
 * The first file's header, as written, in billops.cur_delivery.columns: what
 * a delivery held, and for a FOCUS export the columns its FOCUS version is
 * told by (billops.focus_version_of).
 */
static void
record_header(LoadState *st, FileMap *fm)
{
	Datum	   *names = palloc(sizeof(Datum) * Max(fm->ncols, 1));
	Datum		a[2];
	Oid			at[2] = {INT8OID, TEXTARRAYOID};

	for (int i = 0; i < fm->ncols; i++)
		names[i] = CStringGetTextDatum(fm->cols[i].header);
	a[0] = Int64GetDatum(st->delivery_id);
	a[1] = PointerGetDatum(construct_array(names, fm->ncols, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("UPDATE billops.cur_delivery SET columns = $2 WHERE delivery_id = $1",
							  2, at, a, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the delivery's columns");
}

static List *
copy_options(void)
{
	List	   *opts = NIL;

	opts = lappend(opts, makeDefElem("format", (Node *) makeString("csv"), -1));
	/* CUR files are UTF-8 (manifest "charset"); COPY validates and converts */
	opts = lappend(opts, makeDefElem("encoding", (Node *) makeString("UTF8"), -1));
	return opts;
}

static int64
load_one_file(LoadState *st, ByteSource *src, int file_no, int file_count, int64 file_size)
{
	ParseState *pstate = make_parsestate(NULL);
	CopyFromState cstate;
	char	  **fields;
	int			nfields;
	FileMap    *fm = NULL;
	Datum	   *values = palloc(sizeof(Datum) * st->ptupdesc->natts);
	bool	   *nulls = palloc(sizeof(bool) * st->ptupdesc->natts);
	int64		rows = 0;
	int64		last_report = 0;
	uint64		last_raw = 0;
	const int	prog_idx[] = {PROG_DELIVERY_ID, PROG_FILE_NO, PROG_FILE_COUNT, PROG_FILE_SIZE,
	PROGRESS_COPY_BYTES_TOTAL};
	int64		prog_val[5];

	copy_source = src;
	copy_bytes = 0;
	copy_parallel = st->par;
	st->batch_start_bytes = 0;	/* routes_flush() at the end of the last file emptied the batch */
	st->file_name = src->name;
	st->row_no = 0;
	cstate = BeginCopyFrom(pstate, st->parent, NULL, NULL, false, copy_read_cb, NIL, copy_options());

	/* BeginCopyFrom started a fresh progress report: add ours to it */
	prog_val[0] = st->delivery_id;
	prog_val[1] = file_no;
	prog_val[2] = file_count;
	prog_val[3] = file_size;
	prog_val[4] = file_size;
	pgstat_progress_update_multi_param(5, prog_idx, prog_val);

	if (!NextCopyFromRawFields(cstate, &fields, &nfields))
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("%s file \"%s\" is empty", st->what, src->name),
				 errdetail("Even a report with no line items has a header row.")));
	st->in_row = true;
	fm = file_map_build(st, fields, nfields);
	if (file_no == 1 && !st->peek)
		record_header(st, fm);
	st->in_row = false;

	while (NextCopyFromRawFields(cstate, &fields, &nfields))
	{
		MemoryContext old;

		st->row_no++;
		st->in_row = true;
		if (nfields != fm->ncols)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("row has %d fields but the header has %d", nfields, fm->ncols),
					 errhint("The file is damaged or was cut short.")));
		old = MemoryContextSwitchTo(st->batch_cxt);
		load_row(st, fm, fields, values, nulls);
		MemoryContextSwitchTo(old);
		st->in_row = false;
		if (st->peek)
			break;				/* the first row named the route: that is all a peek wants */
		rows++;
		if (rows - last_report >= 1000)
		{
			const int	idx[] = {PROGRESS_COPY_TUPLES_PROCESSED, PROG_FILE_RAW_BYTES, PROG_DELIVERY_ROWS, PROG_DELIVERY_RAW};
			uint64		raw = byte_source_raw_bytes(src);
			int64		val[4] = {rows, (int64) raw, st->delivery_rows, (int64) (st->delivery_raw + raw)};

			if (st->par)
			{
				/* the delivery's totals are every loader's */
				uint64		total_raw;

				load_parallel_add(st->par, rows - last_report, raw - last_raw, &val[2], &total_raw);
				val[3] = (int64) total_raw;
				last_raw = raw;
			}
			pgstat_progress_update_multi_param(4, idx, val);
			last_report = rows;
		}
	}
	routes_flush(st);
	if (st->par)
	{
		int64		total_rows;
		uint64		total_raw;

		load_parallel_add(st->par, rows - last_report, byte_source_raw_bytes(src) - last_raw, &total_rows, &total_raw);
	}
	EndCopyFrom(cstate);		/* also ends the progress report for this file */
	st->file_name = NULL;
	free_parsestate(pstate);
	return rows;
}

/* --- one delivery ----------------------------------------------------------- */

/* The files of a delivery and where they are. */
typedef struct LoadFiles
{
	SPITupleTable *files;		/* object_key, expected_bytes, etag; in file order */
	int			nfiles;
	char	   *storage;
	char	   *compression;
	S3Location	loc;			/* filled for S3 sources only */
	int			prepared_routes;	/* staging tables billops._prepare_staging created */
} LoadFiles;

/*
 * Read what loading a delivery needs: its source, its files, the target's
 * input functions; and the staging table created before a parallel load, whose
 * period and payer every loader then holds its rows to.  Connects to SPI
 * (load_close disconnects).
 */
static void
load_open(LoadState *st, LoadFiles *lf, int64 delivery_id)
{
	char	   *layout;
	bool		isnull;
	Oid			parent_oid;
	Datum		arg[1] = {Int64GetDatum(delivery_id)};
	Oid			argt[1] = {INT8OID};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	memset(st, 0, sizeof(*st));
	memset(lf, 0, sizeof(*lf));
	st->delivery_id = delivery_id;
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		initStringInfo(&st->map_row_keys);
		MemoryContextSwitchTo(old);
	}

	if (SPI_execute_with_args("SELECT s.source_id, s.storage, coalesce(d.compression, 'auto'), d.billing_period, s.layout "
							  "FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) "
							  "WHERE d.delivery_id = $1", 1, argt, arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("delivery %lld does not exist", (long long) delivery_id)));
	{
		HeapTuple	t = SPI_copytuple(SPI_tuptable->vals[0]);
		TupleDesc	d = SPI_tuptable->tupdesc;
		int32		source_id = DatumGetInt32(SPI_getbinval(t, d, 1, &isnull));

		Datum		period = SPI_getbinval(t, d, 4, &isnull);

		lf->storage = SPI_getvalue(t, d, 2);
		lf->compression = SPI_getvalue(t, d, 3);
		layout = SPI_getvalue(t, d, 5);
		st->focus = strcmp(layout, "focus") == 0 || strcmp(layout, "focus_files") == 0;
		st->what = st->focus ? "FOCUS" : "CUR";
		/*
		 * A FOCUS file (local, or an object of a 'focus_files' source) may hold
		 * several providers' accounts and periods; a Data Exports FOCUS
		 * delivery is one payer's period, like the CUR's.
		 */
		st->one_route = !(st->focus && (strcmp(lf->storage, "file") == 0 || strcmp(layout, "focus_files") == 0));
		st->has_period = !isnull;
		if (!isnull)
			st->expected_period = DatumGetDateADT(period);
		if (strcmp(lf->storage, "s3") == 0)
			s3_location_for_source(source_id, &lf->loc);
	}
	if (strcmp(lf->storage, "file") == 0 &&
		!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to load %s files from the server's file system", st->what),
				 errdetail("Only superusers and members of pg_read_server_files may read server files.")));

	if (SPI_execute_with_args("SELECT object_key, expected_bytes, etag FROM billops.cur_delivery_file "
							  "WHERE delivery_id = $1 ORDER BY file_no", 1, argt, arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read delivery files");
	lf->files = SPI_tuptable;
	lf->nfiles = (int) SPI_processed;
	if (lf->nfiles == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("delivery %lld names no report files", (long long) delivery_id),
				 errhint("The manifest's reportKeys (or dataFiles) list is empty.")));

	/*
	 * A staging table created before the load (a parallel one) fixes the
	 * delivery's period and payer: its first row named them, and every loader
	 * holds its rows to them (check_row_belongs_to_delivery).
	 */
	if (SPI_execute_with_args("SELECT billing_period, payer_account_id FROM billops.cur_delivery_partition "
							  "WHERE delivery_id = $1", 1, argt, arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the delivery's staging tables");
	lf->prepared_routes = (int) SPI_processed;
	if (st->one_route && SPI_processed == 1)
	{
		st->expected_period = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		st->has_period = true;
		st->expected_payer = MemoryContextStrdup(TopTransactionContext,
												 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	}

	parent_oid = RangeVarGetRelid(makeRangeVar("billops", st->focus ? "focus_line_item" : "cur_line_item", -1),
								  AccessShareLock, false);
	st->parent = table_open(parent_oid, AccessShareLock);
	st->ptupdesc = RelationGetDescr(st->parent);
	st->in_funcs = palloc0(sizeof(FmgrInfo) * st->ptupdesc->natts);
	st->typioparams = palloc0(sizeof(Oid) * st->ptupdesc->natts);
	st->typmods = palloc0(sizeof(int32) * st->ptupdesc->natts);
	st->is_text = palloc0(sizeof(bool) * st->ptupdesc->natts);
	st->is_numeric = palloc0(sizeof(bool) * st->ptupdesc->natts);
	st->is_temporal = palloc0(sizeof(bool) * st->ptupdesc->natts);
	st->is_timestamptz = palloc0(sizeof(bool) * st->ptupdesc->natts);
	for (int i = 0; i < st->ptupdesc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(st->ptupdesc, i);
		Oid			infunc;

		if (a->attisdropped)
			continue;
		getTypeInputInfo(a->atttypid, &infunc, &st->typioparams[i]);
		st->typmods[i] = a->atttypmod;
		st->is_text[i] = (a->atttypid == TEXTOID);
		st->is_numeric[i] = (a->atttypid == NUMERICOID);
		st->is_temporal[i] = (a->atttypid == DATEOID || a->atttypid == TIMESTAMPTZOID || a->atttypid == TIMESTAMPOID);
		st->is_timestamptz[i] = (a->atttypid == TIMESTAMPTZOID);
		fmgr_info(infunc, &st->in_funcs[i]);
	}
	/*
	 * One batch of converted rows lives here until it is inserted.  The first
	 * block is kept across resets and a batch fits in it (BATCH_MAX_BYTES):
	 * resetting a context that had grown extra blocks gave them back to the
	 * kernel, and faulting them in again cost a sixth of the load time.
	 */
	st->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "billops CUR batch",
										  BATCH_KEEPER_BYTES, BATCH_KEEPER_BYTES, 8 * 1024 * 1024);
}

/* Load file f (0-based) of the delivery and record its figures; returns its rows. */
static int64
load_delivery_file(LoadState *st, LoadFiles *lf, int f)
{
	HeapTuple	t = lf->files->vals[f];
	char	   *key = SPI_getvalue(t, lf->files->tupdesc, 1);
	bool		isnull;
	Datum		sz = SPI_getbinval(t, lf->files->tupdesc, 2, &isnull);
	int64		size = isnull ? -1 : DatumGetInt64(sz);
	char	   *etag = SPI_getvalue(t, lf->files->tupdesc, 3);
	ByteSource *src;
	instr_time	start,
				dur;
	int64		rows;
	uint64		raw;
	Datum		uargs[6];
	Oid			uargt[6] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID, FLOAT8OID};
	ErrorContextCallback errcb;
	ErrorContextCallback *outer_context;

	/*
	 * The file, row and column are the whole story of a value error: the
	 * PL/pgSQL frames that called us (_load_and_swap, the statement that
	 * called it) are our internals, not the analyst's, so they are left out
	 * of the context while the file is read.  Whoever catches an error
	 * restores its own context stack (PG_TRY, PL/pgSQL's EXCEPTION blocks,
	 * PostgresMain), so the outer frames are only hidden, never lost.
	 */
	outer_context = error_context_stack;
	errcb.callback = load_error_context;
	errcb.arg = st;
	errcb.previous = NULL;
	error_context_stack = &errcb;

	INSTR_TIME_SET_CURRENT(start);
	if (strcmp(lf->storage, "file") == 0)
		/* Parquet by its magic (its rows come as CSV text), else CSV, gzip or not */
		src = parquet_file_is(key) ? byte_source_parquet_file(key)
			: byte_source_gunzip(byte_source_file(key), false);
	else if (strcmp(lf->compression, "PARQUET") == 0)
		/* read from its footer on, by ranges: never downloaded whole */
		src = byte_source_parquet_s3(&lf->loc, key, size, etag);
	else
		src = byte_source_gunzip(s3_object_source(&lf->loc, key, size, etag),
								 strcmp(lf->compression, "GZIP") == 0);
	rows = load_one_file(st, src, f + 1, lf->nfiles, size);
	raw = byte_source_raw_bytes(src);
	byte_source_close(src);
	error_context_stack = outer_context;
	copy_source = NULL;
	copy_parallel = NULL;
	if (st->peek)
		return 0;
	INSTR_TIME_SET_CURRENT(dur);
	INSTR_TIME_SUBTRACT(dur, start);
	st->delivery_raw += raw;

	uargs[0] = Int64GetDatum(st->delivery_id);
	uargs[1] = Int32GetDatum(f + 1);
	uargs[2] = Int64GetDatum((int64) raw);
	uargs[3] = Int64GetDatum((int64) copy_bytes);
	uargs[4] = Int64GetDatum(rows);
	uargs[5] = Float8GetDatum(INSTR_TIME_GET_MILLISEC(dur));
	if (SPI_execute_with_args("UPDATE billops.cur_delivery_file SET bytes_read = $3, "
							  "uncompressed_bytes = $4, rows_loaded = $5, load_ms = $6, loader_pid = pg_backend_pid() "
							  "WHERE delivery_id = $1 AND file_no = $2",
							  6, uargt, uargs, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record file figures");
	ereport(NOTICE,
			(errmsg("billops: file %d/%d %s: %lld rows, %.1f MB (%.1f MB read) in %.1f s",
					f + 1, lf->nfiles, key, (long long) rows,
					copy_bytes / 1048576.0, raw / 1048576.0, INSTR_TIME_GET_DOUBLE(dur))));
	return rows;
}

/*
 * Close the staging tables and tell the SQL side what each one holds.  The
 * figures add up: each loader of a parallel load adds its own (the session
 * last, once every worker has committed, so nobody waits on its row locks).
 */
static void
load_close(LoadState *st)
{
	ListCell   *lc;

	foreach(lc, st->routes)
	{
		Route	   *r = lfirst(lc);
		Datum		a[7];
		Oid			at[7] = {INT8OID, OIDOID, INT8OID, INT8OID, TEXTARRAYOID, INT8OID, FLOAT8OID};
		int64		daily_rows = 0;
		double		daily_ms = 0;
		Datum	   *ids = palloc(sizeof(Datum) * Max(list_length(r->invoice_ids), 1));
		int			n = 0;
		ListCell   *ic;

		foreach(ic, r->invoice_ids)
			ids[n++] = CStringGetTextDatum((char *) lfirst(ic));
		FreeBulkInsertState(r->bistate);
		table_finish_bulk_insert(r->rel, r->ti_options);
		for (int i = 0; i < MAX_BATCH_SLOTS; i++)
			ExecDropSingleTupleTableSlot(r->slots[i]);
		a[0] = Int64GetDatum(st->delivery_id);
		a[1] = ObjectIdGetDatum(RelationGetRelid(r->rel));
		a[2] = Int64GetDatum(r->rows);
		a[3] = Int64GetDatum(r->rows_with_invoice);
		a[4] = PointerGetDatum(construct_array(ids, n, TEXTOID, -1, false, TYPALIGN_INT));
		if (r->daily)
			daily_rows = daily_rollup_finish(r->daily, &daily_ms);
		a[5] = Int64GetDatum(daily_rows);
		a[6] = Float8GetDatum(daily_ms);
		table_close(r->rel, NoLock);
		if (st->peek)
			continue;
		/* the invoice ids in the order first seen, up to MAX_INVOICE_IDS */
		if (SPI_execute_with_args("UPDATE billops.cur_delivery_partition SET "
								  "rows_loaded = coalesce(rows_loaded, 0) + $3, "
								  "rows_with_invoice_id = coalesce(rows_with_invoice_id, 0) + $4, "
								  "daily_rows = coalesce(daily_rows, 0) + $6, daily_ms = coalesce(daily_ms, 0) + $7, "
								  "invoice_ids = ARRAY(SELECT i FROM unnest(coalesce(invoice_ids, '{}') || $5) WITH ORDINALITY AS u(i, n) "
								  "                    GROUP BY i ORDER BY min(n) LIMIT " CppAsString2(MAX_INVOICE_IDS) ") "
								  "WHERE delivery_id = $1 AND staging_table = $2::regclass",
								  7, at, a, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record staging table figures");
	}
	if (!st->peek)
		record_map_keys(st);
	table_close(st->parent, NoLock);
	SPI_finish();
}

/*
 * billops.max_load_workers, -1 meaning one loader per CPU core: the session
 * and cores − 1 workers, within max_worker_processes less two.  More loaders
 * than cores only share them (and a delivery's files end less evenly among
 * more loaders: 4 files among 3 loaders on 2 cores loaded slower than among 2).
 */
static int
load_workers_wanted(void)
{
	long		cores = 0;

	if (billops_max_load_workers >= 0)
		return billops_max_load_workers;
#ifdef __linux__
	{
		/* the CPUs this process may run on (a container's cpuset), as nproc counts them */
		cpu_set_t	set;

		if (sched_getaffinity(0, sizeof(set), &set) == 0)
			cores = CPU_COUNT(&set);
	}
#endif
	if (cores <= 0)
		cores = sysconf(_SC_NPROCESSORS_ONLN);
	/* and never more than the server's worker slots leave others (the BILL worker, pg_cron) */
	return (int) Max(0, Min(Min(cores - 1, max_worker_processes - 2), 64));
}

/*
 * billops._ingest_delivery(delivery_id bigint) RETURNS bigint
 *
 * Loads every file of a delivery (billops.cur_delivery_file, in order) into
 * staging tables and records per-file figures.  Returns the rows loaded.
 * When billops._prepare_staging created the staging table, the delivery has
 * several files and billops.max_load_workers allows, background workers load
 * files alongside this session (cur_load_parallel.c).
 */
Datum
billops_ingest_delivery(PG_FUNCTION_ARGS)
{
	int64		delivery_id = PG_GETARG_INT64(0);
	LoadState	st;
	LoadFiles	lf;
	int64		rows;
	int			workers;

	load_open(&st, &lf, delivery_id);

	workers = load_workers_wanted();
	if (lf.nfiles > 1 && workers > 0 && st.one_route && lf.prepared_routes == 1)
	{
		LoadParallel *lp = load_parallel_begin(delivery_id, lf.nfiles,
											   Min(workers, lf.nfiles - 1), load_batch_rows);
		int			f;

		st.par = lp;
		PG_TRY();
		{
			while ((f = load_parallel_next_file(lp)) >= 0)
				load_delivery_file(&st, &lf, f);
			load_parallel_finish(lp);
		}
		PG_CATCH();
		{
			load_parallel_abort(lp);
			PG_RE_THROW();
		}
		PG_END_TRY();
		rows = load_parallel_total_rows(lp);
		load_parallel_end(lp);
		st.par = NULL;
	}
	else
	{
		for (int f = 0; f < lf.nfiles; f++)
			load_delivery_file(&st, &lf, f);
		rows = st.delivery_rows;
	}
	load_close(&st);
	PG_RETURN_INT64(rows);
}

/* What a load worker (cur_load_parallel.c) runs: files of the delivery until none is left. */
void
cur_load_files_as_worker(int64 delivery_id, LoadParallel *lp)
{
	LoadState	st;
	LoadFiles	lf;
	int			f;

	load_open(&st, &lf, delivery_id);
	st.par = lp;
	while ((f = load_parallel_next_file(lp)) >= 0)
		load_delivery_file(&st, &lf, f);
	load_parallel_check(lp);	/* commit nothing once another loader failed */
	load_close(&st);
}

/*
 * billops._prepare_staging(delivery_id bigint) RETURNS boolean
 *
 * Before a parallel load: reads the delivery's first row (the first file
 * that has one; an S3 object is left after its first rows) and creates the
 * staging table of its period and payer, which the caller commits so that
 * background workers can insert into it.  The row is checked as a load
 * checks it (a row of another month is refused here already).  Returns
 * whether a table was created (false: the files hold no rows).
 */
Datum
billops_prepare_staging(PG_FUNCTION_ARGS)
{
	int64		delivery_id = PG_GETARG_INT64(0);
	LoadState	st;
	LoadFiles	lf;
	bool		created;

	load_open(&st, &lf, delivery_id);
	st.peek = true;
	for (int f = 0; f < lf.nfiles && st.routes == NIL; f++)
		load_delivery_file(&st, &lf, f);
	created = st.routes != NIL;
	load_close(&st);
	PG_RETURN_BOOL(created);
}
