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
 * Per row: the key's fields serialized into one byte string, hashed once
 * and looked up in a simplehash table (open addressing: a group is found
 * with a memcmp and few cache misses), and the sums added as 128-bit fixed
 * point (numeric_sum.c), not numeric_add's allocations.  Keys and sums that
 * are columns are read from the slot; only the others are evaluated.
 *
 * Memory is bounded (billops.daily_rollup_memory): when the groups outgrow
 * it, their sums are written out and summing starts afresh.  That only adds
 * rows of partial sums, which every reader adds up anyway (a parallel load
 * writes a row per loader and key for the same reason).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "billops_cur.h"
#include "billops_numeric_sum.h"
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

/*
 * A group: its hash, count and key, serialized (serialize_key), then its
 * sums (group_sums).  The key is one byte string, so finding a row's group
 * costs one hash of it and one memcmp, and a group is one piece of memory
 * (few cache misses per row).
 */
typedef struct DailyGroup
{
	uint32		hash;
	uint32		keylen;
	int64		count;
	char		key[FLEXIBLE_ARRAY_MEMBER];
	/* then, MAXALIGNed, the group's NumericSum per sum column */
} DailyGroup;

typedef struct DailyEntry
{
	DailyGroup *group;
	uint32		hash;
	char		status;
} DailyEntry;

#define GROUP_BLOCK (256 * 1024)

typedef struct GroupBlock
{
	char	   *start;
	char	   *end;			/* past its last group */
} GroupBlock;

#define SH_PREFIX dailyhash
#define SH_ELEMENT_TYPE DailyEntry
#define SH_KEY_TYPE DailyGroup *
#define SH_KEY group
#define SH_HASH_KEY(tb, key) ((key)->hash)
#define SH_EQUAL(tb, a, b) ((a)->keylen == (b)->keylen && memcmp((a)->key, (b)->key, (a)->keylen) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* a key's field: a length byte, or one of these, then its bytes */
#define KEY_NULL 0xFF
#define KEY_LONG 0xFE			/* a 4-byte length follows */

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
	ExprState **key_exprs;		/* NULL where the key is a column: read from the slot */
	ExprState **sum_exprs;
	AttrNumber *key_var;		/* the line item's attribute, where the key is one */
	AttrNumber *sum_var;
	int16	   *key_typlen;
	bool	   *key_typbyval;
	AttrNumber *key_att;		/* attribute of the rollup table per key / sum */
	AttrNumber *sum_att;
	AttrNumber	period_att,
				payer_att,
				count_att,
				delivery_att;
	ExprContext *econtext;
	dailyhash_hash *groups;
	char	   *block_free;		/* the groups are carved from blocks: no per-chunk header or */
	Size		block_left;		/* power-of-two rounding, and groups made together lie together */
	List	   *blocks;			/* each block's start and end, to read the groups back in order */
	char	   *keys;			/* a batch's rows' keys, each a DailyGroup header and key */
	Size		keys_size;
	Size	   *key_at;			/* offset of each row's in keys */
	int			key_at_len;
	int64		rows;
	instr_time	elapsed;
};

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

static void
create_groups(DailyRollup *d)
{
	d->groups = dailyhash_create(d->group_cxt, 4096, NULL);
}

/* where a group's sums start: past its key */
static inline Size
group_key_end(DailyGroup *g)
{
	return MAXALIGN(offsetof(DailyGroup, key) + g->keylen);
}

static inline NumericSum *
group_sums(DailyGroup *g)
{
	return (NumericSum *) ((char *) g + group_key_end(g));
}

static inline Size
group_size(DailyRollup *d, DailyGroup *g)
{
	return group_key_end(g) + sizeof(NumericSum) * d->nsums;
}

/* The key's fields, read back from its bytes into datums of the slot. */
static void
deserialize_key(DailyRollup *d, DailyGroup *g, TupleTableSlot *slot)
{
	const unsigned char *p = (const unsigned char *) g->key;

	for (int i = 0; i < d->nkeys; i++)
	{
		AttrNumber	a = d->key_att[i] - 1;
		uint32		len = *p++;

		if (len == KEY_NULL)
		{
			slot->tts_values[a] = (Datum) 0;
			slot->tts_isnull[a] = true;
			continue;
		}
		if (len == KEY_LONG)
		{
			memcpy(&len, p, sizeof(uint32));
			p += sizeof(uint32);
		}
		slot->tts_isnull[a] = false;
		if (d->key_typbyval[i])
		{
			Datum		byval = 0;	/* aligned, for fetch_att: serialize_key's store_att_byval in reverse */

			memcpy(&byval, p, len);
			slot->tts_values[a] = fetch_att(&byval, true, len);
		}
		else if (d->key_typlen[i] == -1)
		{
			struct varlena *v = palloc(VARHDRSZ + len);

			SET_VARSIZE(v, VARHDRSZ + len);
			memcpy(VARDATA(v), p, len);
			slot->tts_values[a] = PointerGetDatum(v);
		}
		else
		{
			char	   *v = palloc(len);

			memcpy(v, p, len);
			slot->tts_values[a] = PointerGetDatum(v);
		}
		p += len;
	}
}

#define WRITE_BATCH 1000

/*
 * Write the groups' sums into the rollup staging table, and forget them.
 * In batches of table_multi_insert, as COPY does: a WAL record per page,
 * not per row.
 */
static void
write_groups(DailyRollup *d)
{
	TupleDesc	desc = RelationGetDescr(d->daily);
	TupleTableSlot **slots = palloc(sizeof(TupleTableSlot *) * WRITE_BATCH);
	MemoryContext batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "billops daily rollup rows", ALLOCSET_DEFAULT_SIZES);
	BulkInsertState bistate = GetBulkInsertState();
	CommandId	cid = GetCurrentCommandId(true);
	int			ti_options = TABLE_INSERT_SKIP_FSM | billops_frozen_insert_option(d->daily);
	int			bi = 0;
	GroupBlock *block = d->blocks != NIL ? linitial(d->blocks) : NULL;
	char	   *at = block ? block->start : NULL;
	int			nused = 0;

	for (int i = 0; i < WRITE_BATCH; i++)
		slots[i] = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	do
	{
		/* the groups in the order they were made, block by block: memory read in sequence */
		DailyGroup *g = NULL;

		while (block != NULL && at >= block->end)
		{
			bi++;
			block = bi < list_length(d->blocks) ? list_nth(d->blocks, bi) : NULL;
			at = block ? block->start : NULL;
		}
		if (block != NULL)
		{
			g = (DailyGroup *) at;
			at += group_size(d, g);
		}
		if (g != NULL)
		{
			NumericSum *sums = group_sums(g);
			TupleTableSlot *slot = slots[nused++];
			MemoryContext old = MemoryContextSwitchTo(batch_cxt);

			ExecClearTuple(slot);
			memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
			slot->tts_values[d->period_att - 1] = DateADTGetDatum(d->period);
			slot->tts_isnull[d->period_att - 1] = false;
			slot->tts_values[d->payer_att - 1] = d->payer;
			slot->tts_isnull[d->payer_att - 1] = false;
			slot->tts_values[d->count_att - 1] = Int64GetDatum(g->count);
			slot->tts_isnull[d->count_att - 1] = false;
			slot->tts_values[d->delivery_att - 1] = Int64GetDatum(d->delivery_id);
			slot->tts_isnull[d->delivery_att - 1] = false;
			deserialize_key(d, g, slot);
			for (int j = 0; j < d->nsums; j++)
				slot->tts_values[d->sum_att[j] - 1] = numeric_sum_result(&sums[j], &slot->tts_isnull[d->sum_att[j] - 1]);
			ExecStoreVirtualTuple(slot);
			MemoryContextSwitchTo(old);
			d->written++;
		}
		if (nused == WRITE_BATCH || (g == NULL && nused > 0))
		{
			table_multi_insert(d->daily, slots, nused, cid, ti_options, bistate);
			for (int i = 0; i < nused; i++)
				ExecClearTuple(slots[i]);
			nused = 0;
			MemoryContextReset(batch_cxt);
		}
	} while (block != NULL);
	FreeBulkInsertState(bistate);
	for (int i = 0; i < WRITE_BATCH; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	pfree(slots);
	MemoryContextDelete(batch_cxt);
	MemoryContextReset(d->group_cxt);
	d->block_free = NULL;
	d->block_left = 0;
	d->blocks = NIL;
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
	d->key_var = palloc0(sizeof(AttrNumber) * n);
	d->sum_var = palloc0(sizeof(AttrNumber) * n);

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
			if (d->key_typbyval[d->nkeys] && d->key_typlen[d->nkeys] != 1 && d->key_typlen[d->nkeys] != 2 &&
				d->key_typlen[d->nkeys] != 4 && d->key_typlen[d->nkeys] != sizeof(Datum))
				elog(ERROR, "billops._cur_daily_spec: %s has an unexpected length", name);
			d->key_att[d->nkeys] = a;
			if (IsA(e, Var))
				d->key_var[d->nkeys] = ((Var *) e)->varattno;
			else
				d->key_exprs[d->nkeys] = ExecInitExpr(e, NULL);
			d->nkeys++;
		}
		else if (strcmp(role, "sum") == 0 && want == NUMERICOID)
		{
			d->sum_att[d->nsums] = a;
			if (IsA(e, Var))
				d->sum_var[d->nsums] = ((Var *) e)->varattno;
			else
				d->sum_exprs[d->nsums] = ExecInitExpr(e, NULL);
			d->nsums++;
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
	d->keys_size = 64 * 1024;
	d->keys = palloc(d->keys_size);

	create_groups(d);
	INSTR_TIME_SET_ZERO(d->elapsed);
	MemoryContextSwitchTo(old);
	return d;
}

/* A key or sum of a row: the column itself, or its expression evaluated. */
static inline Datum
row_value(DailyRollup *d, TupleTableSlot *slot, AttrNumber var, ExprState *expr, bool *isnull)
{
	if (var != InvalidAttrNumber)
		return slot_getattr(slot, var, isnull);
	return ExecEvalExprSwitchContext(expr, d->econtext, isnull);
}

/*
 * A hash of a key's bytes, eight at a time (multiply-rotate, as in rustc's
 * FxHash), finished by MurmurHash3's 64-bit mix so the low bits the table
 * indexes by depend on every byte.  hash_bytes (lookup3) took twice as long
 * on keys of ~250 bytes, and nothing here needs its strength: a collision
 * costs one memcmp.
 */
static inline uint32
key_hash(const char *p, Size len)
{
	uint64		h = len;

	for (; len >= 8; p += 8, len -= 8)
	{
		uint64		w;

		memcpy(&w, p, 8);
		h = (((h << 5) | (h >> 59)) ^ w) * UINT64CONST(0x517cc1b727220a95);
	}
	if (len > 0)
	{
		uint64		w = 0;

		memcpy(&w, p, len);
		h = (((h << 5) | (h >> 59)) ^ w) * UINT64CONST(0x517cc1b727220a95);
	}
	h ^= h >> 33;
	h *= UINT64CONST(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64CONST(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return (uint32) h;
}

/* room for `more` bytes past `used` in the batch's keys */
static inline void
reserve_keys(DailyRollup *d, Size used, Size more)
{
	if (used + more > d->keys_size)
	{
		d->keys_size = Max(d->keys_size * 2, used + more);
		d->keys = repalloc_huge(d->keys, d->keys_size);
	}
}

/*
 * The row's key, serialized at d->keys + at as a DailyGroup's header and
 * key: per key a length byte (KEY_NULL for null, KEY_LONG then four bytes
 * past 253) and the value's bytes, a varlena's without its header.  Equal
 * keys are equal bytes: text equality under a deterministic collation is
 * byte equality, as is a date's.  Returns where the next one goes.
 */
static Size
serialize_key(DailyRollup *d, TupleTableSlot *slot, Size at)
{
	Size		used = at + offsetof(DailyGroup, key);
	DailyGroup *g;

	for (int i = 0; i < d->nkeys; i++)
	{
		bool		isnull;
		Datum		v = row_value(d, slot, d->key_var[i], d->key_exprs[i], &isnull);
		const char *bytes;
		Datum		byval;		/* aligned, for store_att_byval */
		uint32		len;
		unsigned char *p;

		if (isnull)
		{
			reserve_keys(d, used, 1);
			d->keys[used++] = (char) KEY_NULL;
			continue;
		}
		if (d->key_typbyval[i])
		{
			len = d->key_typlen[i];
			store_att_byval(&byval, v, len);
			bytes = (const char *) &byval;
		}
		else if (d->key_typlen[i] == -1)
		{
			struct varlena *x = (struct varlena *) DatumGetPointer(v);

			if (VARATT_IS_EXTERNAL(x) || VARATT_IS_COMPRESSED(x))
				x = PG_DETOAST_DATUM_PACKED(v);
			bytes = VARDATA_ANY(x);
			len = VARSIZE_ANY_EXHDR(x);
		}
		else
		{
			bytes = DatumGetPointer(v);
			len = d->key_typlen[i];
		}
		reserve_keys(d, used, 1 + sizeof(uint32) + len);
		p = (unsigned char *) d->keys + used;
		if (len < KEY_LONG)
			*p++ = (unsigned char) len;
		else
		{
			*p++ = KEY_LONG;
			memcpy(p, &len, sizeof(uint32));
			p += sizeof(uint32);
		}
		memcpy(p, bytes, len);
		used = (char *) p + len - d->keys;
	}
	g = (DailyGroup *) (d->keys + at);
	g->keylen = used - at - offsetof(DailyGroup, key);
	g->hash = key_hash(g->key, g->keylen);
	return MAXALIGN(used);
}

static inline DailyGroup *
alloc_group(DailyRollup *d, Size size)
{
	DailyGroup *g;

	size = MAXALIGN(size);
	if (size > d->block_left)
	{
		Size		block = Max(GROUP_BLOCK, size);

		MemoryContext old = MemoryContextSwitchTo(d->group_cxt);
		GroupBlock *b = palloc(sizeof(GroupBlock));

		b->start = b->end = palloc(block);
		d->blocks = lappend(d->blocks, b);
		MemoryContextSwitchTo(old);
		d->block_free = b->start;
		d->block_left = block;
	}
	g = (DailyGroup *) d->block_free;
	d->block_free += size;
	d->block_left -= size;
	((GroupBlock *) llast(d->blocks))->end = d->block_free;
	return g;
}

/* the bucket a hash starts at, and what it points to, brought into the cache ahead of use */
#if defined(__GNUC__) || defined(__clang__)
#define prefetch(p) __builtin_prefetch(p)
#else
#define prefetch(p) ((void) 0)
#endif

#define PREFETCH_AHEAD 8		/* rows: a few cache misses' worth of work */

/*
 * Sum a batch of the staging table's slots (filled, not yet inserted).
 *
 * Each row's group is somewhere in tens of megabytes: finding it is two
 * cache misses (its bucket, then the group), which were 80% of the
 * rollup's time.  So the batch goes in two passes: first every row's key,
 * then the lookups, each prefetching the bucket 2 × PREFETCH_AHEAD rows
 * ahead and the group (found in the bucket fetched meanwhile)
 * PREFETCH_AHEAD rows ahead, so the misses overlap.
 */
void
daily_rollup_add(DailyRollup *d, TupleTableSlot **slots, int n)
{
	instr_time	start,
				end;
	ExprContext *ec = d->econtext;
	Size		used = 0;

	INSTR_TIME_SET_CURRENT(start);
	ResetExprContext(ec);
	if (n > d->key_at_len)
	{
		d->key_at = d->key_at ? repalloc(d->key_at, sizeof(Size) * n) : MemoryContextAlloc(d->cxt, sizeof(Size) * n);
		d->key_at_len = n;
	}
	for (int r = 0; r < n; r++)
	{
		ec->ecxt_scantuple = slots[r];
		d->key_at[r] = used;
		used = serialize_key(d, slots[r], used);
	}
	for (int r = 0; r < n; r++)
	{
		DailyGroup *probe = (DailyGroup *) (d->keys + d->key_at[r]);
		DailyEntry *e;
		DailyGroup *g;
		NumericSum *sums;
		bool		found;

		if (r + 2 * PREFETCH_AHEAD < n)
		{
			DailyGroup *ahead = (DailyGroup *) (d->keys + d->key_at[r + 2 * PREFETCH_AHEAD]);

			prefetch(&d->groups->data[ahead->hash & d->groups->sizemask]);
		}
		if (r + PREFETCH_AHEAD < n)
		{
			DailyGroup *ahead = (DailyGroup *) (d->keys + d->key_at[r + PREFETCH_AHEAD]);
			DailyEntry *b = &d->groups->data[ahead->hash & d->groups->sizemask];

			/*
			 * Its first line only: prefetching all of a group (four lines)
			 * for 8 rows ahead filled the core's miss buffers and cost more
			 * than it saved.
			 */
			if (b->status == dailyhash_SH_IN_USE)
				prefetch(b->group);
		}
		ec->ecxt_scantuple = slots[r];
		e = dailyhash_insert_hash(d->groups, probe, probe->hash, &found);
		if (!found)
		{
			g = alloc_group(d, group_size(d, probe));
			memcpy(g, probe, offsetof(DailyGroup, key) + probe->keylen);
			g->count = 0;
			sums = group_sums(g);
			for (int j = 0; j < d->nsums; j++)
				numeric_sum_init(&sums[j]);
			e->group = g;
		}
		g = e->group;
		sums = group_sums(g);
		g->count++;
		for (int j = 0; j < d->nsums; j++)
		{
			bool		isnull;
			Datum		v = row_value(d, slots[r], d->sum_var[j], d->sum_exprs[j], &isnull);

			if (!isnull)
				numeric_sum_add(&sums[j], v, d->group_cxt);
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
