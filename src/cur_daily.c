/*
 * cur_daily.c — the daily rollup of a delivery, summed while it loads.
 *
 * billops.cur_daily (sql/install/22_cur_daily.sql) is the visible CUR summed
 * per day and per the attributes spend questions group by.  Rather than a
 * GROUP BY of the whole month after loading it (as long again as a good part
 * of the load), each loader sums the rows it inserts, batch by batch, and
 * writes its sums into the rollup staging table at the end; the swap attaches
 * it with the line items.
 *
 * What a column holds is defined once, in SQL (billops._cur_daily_spec():
 * the expression over a line item, such as billops._service_of(product,
 * line_item_product_code) or billops._amortized_cost(...)).  Those very
 * expressions are parsed here against the staging table, planned (which
 * inlines the SQL functions) and evaluated on each row, so the rollup and
 * the views over line items cannot disagree on what a service or an
 * amortized cost is.
 *
 * Memory is bounded (billops.daily_rollup_memory): when the groups outgrow
 * it, their sums are written out and summing starts afresh.  That only adds
 * rows of partial sums, which every reader adds up anyway (a parallel load
 * writes a row per loader and key for the same reason).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "billops_cur.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"

typedef struct DailyKey
{
	uint32		hash;
	struct DailyRollup *owner;	/* its key types, for the comparison */
	Datum	   *vals;
	bool	   *nulls;
} DailyKey;

typedef struct DailyEntry
{
	DailyKey	key;			/* first: dynahash's key */
	int64		count;
	Datum	   *sums;
	bool	   *sum_null;
} DailyEntry;

/* a copy of a numeric (varlena) value in cxt */
static Datum
copy_into(MemoryContext cxt, Datum v)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Datum		c = datumCopy(v, false, -1);

	MemoryContextSwitchTo(old);
	return c;
}

int			billops_daily_rollup_memory_kb = 65536;

struct DailyRollup
{
	MemoryContext cxt;			/* the expressions, for the whole load */
	MemoryContext group_cxt;	/* the groups and their sums, until written out */
	int64		delivery_id;
	DateADT		period;
	Datum		payer;
	int64		written;
	Relation	daily;			/* the rollup staging table */
	int			nkeys;
	int			nsums;
	ExprState **key_exprs;
	ExprState **sum_exprs;
	int16	   *key_typlen;
	bool	   *key_typbyval;
	AttrNumber *key_att;		/* attribute of the rollup table per key / sum */
	AttrNumber *sum_att;
	AttrNumber	period_att,
				payer_att,
				count_att,
				delivery_att;
	ExprContext *econtext;
	HTAB	   *groups;
	Datum	   *row_vals;		/* the row being added */
	bool	   *row_nulls;
	int64		rows;
	instr_time	elapsed;
};

static uint32
daily_key_hash(const void *key, Size keysize)
{
	return ((const DailyKey *) key)->hash;
}

static int
daily_key_match(const void *a, const void *b, Size keysize)
{
	const DailyKey *x = a;
	const DailyKey *y = b;

	if (x->hash != y->hash)
		return 1;
	for (int i = 0; i < x->owner->nkeys; i++)
	{
		if (x->nulls[i] != y->nulls[i])
			return 1;
		if (!x->nulls[i] &&
			!datumIsEqual(x->vals[i], y->vals[i], x->owner->key_typbyval[i], x->owner->key_typlen[i]))
			return 1;
	}
	return 0;
}

/* "SELECT <expression>" parsed, analysed against the staging table, planned (SQL functions inlined). */
static Expr *
parse_spec_expression(ParseState *pstate, const char *text)
{
	char	   *sql = psprintf("SELECT %s", text);
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	SelectStmt *sel;
	ResTarget  *rt;
	Node	   *e;

	if (list_length(raw) != 1 || !IsA(linitial_node(RawStmt, raw)->stmt, SelectStmt))
		elog(ERROR, "billops._cur_daily_spec: \"%s\" is not an expression", text);
	sel = (SelectStmt *) linitial_node(RawStmt, raw)->stmt;
	if (list_length(sel->targetList) != 1 || sel->fromClause != NIL)
		elog(ERROR, "billops._cur_daily_spec: \"%s\" is not one expression", text);
	rt = linitial_node(ResTarget, sel->targetList);
	e = transformExpr(pstate, rt->val, EXPR_KIND_SELECT_TARGET);
	assign_expr_collations(pstate, e);
	return expression_planner((Expr *) e);
}

static AttrNumber
daily_attnum(Relation daily, const char *name)
{
	AttrNumber	a = attnameAttNum(daily, name, false);

	if (a == InvalidAttrNumber)
		elog(ERROR, "billops.cur_daily has no column \"%s\"", name);
	return a;
}

/*
 * Ready to sum rows of `line_items` (a staging table) into `daily_relid`.
 * Runs SPI (the caller is connected).
 */
static void
create_groups(DailyRollup *d)
{
	HASHCTL		ctl = {0};

	ctl.keysize = sizeof(DailyKey);
	ctl.entrysize = sizeof(DailyEntry);
	ctl.hash = daily_key_hash;
	ctl.match = daily_key_match;
	ctl.hcxt = d->group_cxt;
	d->groups = hash_create("billops daily rollup groups", 4096, &ctl,
							HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* Write the groups' sums into the rollup staging table, and forget them. */
static void
write_groups(DailyRollup *d)
{
	TupleDesc	desc = RelationGetDescr(d->daily);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	HASH_SEQ_STATUS seq;
	DailyEntry *e;

	hash_seq_init(&seq, d->groups);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		ExecClearTuple(slot);
		memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
		slot->tts_values[d->period_att - 1] = DateADTGetDatum(d->period);
		slot->tts_isnull[d->period_att - 1] = false;
		slot->tts_values[d->payer_att - 1] = d->payer;
		slot->tts_isnull[d->payer_att - 1] = false;
		slot->tts_values[d->count_att - 1] = Int64GetDatum(e->count);
		slot->tts_isnull[d->count_att - 1] = false;
		slot->tts_values[d->delivery_att - 1] = Int64GetDatum(d->delivery_id);
		slot->tts_isnull[d->delivery_att - 1] = false;
		for (int i = 0; i < d->nkeys; i++)
		{
			slot->tts_values[d->key_att[i] - 1] = e->key.vals[i];
			slot->tts_isnull[d->key_att[i] - 1] = e->key.nulls[i];
		}
		for (int j = 0; j < d->nsums; j++)
		{
			slot->tts_values[d->sum_att[j] - 1] = e->sums[j];
			slot->tts_isnull[d->sum_att[j] - 1] = e->sum_null[j];
		}
		ExecStoreVirtualTuple(slot);
		simple_table_tuple_insert(d->daily, slot);
		d->written++;
	}
	ExecDropSingleTupleTableSlot(slot);
	hash_destroy(d->groups);
	MemoryContextReset(d->group_cxt);
	create_groups(d);
}

DailyRollup *
daily_rollup_begin(Relation line_items, Oid daily_relid, int64 delivery_id, DateADT period, const char *payer)
{
	DailyRollup *d;
	MemoryContext old;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	TupleDesc	ddesc;
	uint64		n;
	int			guc_level;
	SPITupleTable *spec;

	if (SPI_execute("SELECT column_name, role, expression FROM billops._cur_daily_spec()", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read billops._cur_daily_spec()");
	spec = SPI_tuptable;
	n = SPI_processed;

	d = MemoryContextAllocZero(TopTransactionContext, sizeof(DailyRollup));
	d->cxt = AllocSetContextCreate(TopTransactionContext, "billops daily rollup", ALLOCSET_DEFAULT_SIZES);
	d->group_cxt = AllocSetContextCreate(d->cxt, "billops daily rollup groups", ALLOCSET_DEFAULT_SIZES);
	d->delivery_id = delivery_id;
	d->period = period;
	old = MemoryContextSwitchTo(d->cxt);
	d->payer = CStringGetTextDatum(payer);
	d->daily = table_open(daily_relid, RowExclusiveLock);
	ddesc = RelationGetDescr(d->daily);
	d->key_exprs = palloc0(sizeof(ExprState *) * n);
	d->sum_exprs = palloc0(sizeof(ExprState *) * n);
	d->key_typlen = palloc0(sizeof(int16) * n);
	d->key_typbyval = palloc0(sizeof(bool) * n);
	d->key_att = palloc0(sizeof(AttrNumber) * n);
	d->sum_att = palloc0(sizeof(AttrNumber) * n);
	d->row_vals = palloc0(sizeof(Datum) * n);
	d->row_nulls = palloc0(sizeof(bool) * n);

	/*
	 * The expressions are ours: parsed with pg_catalog's functions,
	 * operators and types only (once parsed, they hold OIDs).  The SQL entry
	 * points already run with that search_path; a load worker runs with the
	 * database's, which a DBA may have changed.
	 */
	guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	pstate = make_parsestate(NULL);
	nsitem = addRangeTableEntryForRelation(pstate, line_items, AccessShareLock, NULL, false, false);
	addNSItemToQuery(pstate, nsitem, false, true, true);
	for (uint64 i = 0; i < n; i++)
	{
		char	   *name = SPI_getvalue(spec->vals[i], spec->tupdesc, 1);
		char	   *role = SPI_getvalue(spec->vals[i], spec->tupdesc, 2);
		char	   *text = SPI_getvalue(spec->vals[i], spec->tupdesc, 3);
		Expr	   *e = parse_spec_expression(pstate, text);
		AttrNumber	a = daily_attnum(d->daily, name);
		Oid			want = TupleDescAttr(ddesc, a - 1)->atttypid;

		if (exprType((Node *) e) != want)
			elog(ERROR, "billops._cur_daily_spec: %s is %s, but billops.cur_daily.%s is %s",
				 text, format_type_be(exprType((Node *) e)), name, format_type_be(want));
		if (strcmp(role, "key") == 0)
		{
			get_typlenbyval(want, &d->key_typlen[d->nkeys], &d->key_typbyval[d->nkeys]);
			d->key_att[d->nkeys] = a;
			d->key_exprs[d->nkeys++] = ExecInitExpr(e, NULL);
		}
		else if (strcmp(role, "sum") == 0 && want == NUMERICOID)
		{
			d->sum_att[d->nsums] = a;
			d->sum_exprs[d->nsums++] = ExecInitExpr(e, NULL);
		}
		else
			elog(ERROR, "billops._cur_daily_spec: %s is neither a key nor a numeric sum", name);
	}
	free_parsestate(pstate);
	AtEOXact_GUC(true, guc_level);
	d->period_att = daily_attnum(d->daily, "billing_period");
	d->payer_att = daily_attnum(d->daily, "payer_account_id");
	d->count_att = daily_attnum(d->daily, "line_items");
	d->delivery_att = daily_attnum(d->daily, "delivery_id");
	d->econtext = CreateStandaloneExprContext();

	create_groups(d);
	INSTR_TIME_SET_ZERO(d->elapsed);
	MemoryContextSwitchTo(old);
	return d;
}

/* Sum a batch of the staging table's slots (filled, not yet inserted). */
void
daily_rollup_add(DailyRollup *d, TupleTableSlot **slots, int n)
{
	instr_time	start,
				end;
	ExprContext *ec = d->econtext;

	INSTR_TIME_SET_CURRENT(start);
	ResetExprContext(ec);
	for (int r = 0; r < n; r++)
	{
		DailyKey	k;
		DailyEntry *e;
		bool		found;
		MemoryContext old;

		ec->ecxt_scantuple = slots[r];
		k.hash = 0;
		k.owner = d;
		k.vals = d->row_vals;
		k.nulls = d->row_nulls;
		for (int i = 0; i < d->nkeys; i++)
		{
			uint32		h = 0;

			k.vals[i] = ExecEvalExprSwitchContext(d->key_exprs[i], ec, &k.nulls[i]);
			if (!k.nulls[i])
			{
				if (d->key_typbyval[i])
					h = hash_bytes((const unsigned char *) &k.vals[i], sizeof(Datum));
				else if (d->key_typlen[i] == -1)
				{
					struct varlena *v = PG_DETOAST_DATUM_PACKED(k.vals[i]);

					k.vals[i] = PointerGetDatum(v);
					h = hash_bytes((const unsigned char *) VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
				}
				else
					h = hash_bytes((const unsigned char *) DatumGetPointer(k.vals[i]), d->key_typlen[i]);
			}
			k.hash = hash_combine(k.hash, h ^ (uint32) k.nulls[i]);
		}
		e = hash_search(d->groups, &k, HASH_ENTER, &found);
		old = MemoryContextSwitchTo(d->group_cxt);
		if (!found)
		{
			e->key.owner = d;
			e->key.vals = palloc(sizeof(Datum) * d->nkeys);
			e->key.nulls = palloc(sizeof(bool) * d->nkeys);
			for (int i = 0; i < d->nkeys; i++)
			{
				e->key.nulls[i] = k.nulls[i];
				e->key.vals[i] = k.nulls[i] ? (Datum) 0 : datumCopy(k.vals[i], d->key_typbyval[i], d->key_typlen[i]);
			}
			e->count = 0;
			e->sums = palloc0(sizeof(Datum) * Max(d->nsums, 1));
			e->sum_null = palloc(sizeof(bool) * Max(d->nsums, 1));
			for (int j = 0; j < d->nsums; j++)
				e->sum_null[j] = true;
		}
		MemoryContextSwitchTo(old);
		e->count++;
		for (int j = 0; j < d->nsums; j++)
		{
			bool		isnull;
			Datum		v = ExecEvalExprSwitchContext(d->sum_exprs[j], ec, &isnull);

			if (isnull)
				continue;
			if (e->sum_null[j])
			{
				e->sums[j] = copy_into(d->group_cxt, v);
				e->sum_null[j] = false;
			}
			else
			{
				Datum		s;

				old = MemoryContextSwitchTo(ec->ecxt_per_tuple_memory);
				s = DirectFunctionCall2(numeric_add, e->sums[j], v);
				MemoryContextSwitchTo(old);
				pfree(DatumGetPointer(e->sums[j]));
				e->sums[j] = copy_into(d->group_cxt, s);
			}
		}
	}
	d->rows += n;
	/* bounded: past the limit, the partial sums are written out (a batch at most past it) */
	if (MemoryContextMemAllocated(d->group_cxt, true) > (Size) billops_daily_rollup_memory_kb * 1024)
		write_groups(d);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_ACCUM_DIFF(d->elapsed, end, start);
}

/*
 * Write the sums into the rollup staging table and close it.  Returns the
 * rows written; *ms is the time the rollup took (summing and writing).
 */
int64
daily_rollup_finish(DailyRollup *d, double *ms)
{
	instr_time	start,
				end;
	int64		written;

	INSTR_TIME_SET_CURRENT(start);
	write_groups(d);
	FreeExprContext(d->econtext, true);
	table_close(d->daily, NoLock);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_ACCUM_DIFF(d->elapsed, end, start);
	*ms = INSTR_TIME_GET_MILLISEC(d->elapsed);
	written = d->written;
	MemoryContextDelete(d->cxt);
	return written;
}
