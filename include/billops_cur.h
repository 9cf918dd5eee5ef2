/*
 * billops_cur.h — CUR column mapping and the streaming loader.
 */
#ifndef BILLOPS_CUR_H
#define BILLOPS_CUR_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "utils/date.h"
#include "utils/relcache.h"
#include "billops_s3.h"

typedef enum CurColumnKind
{
	CUR_COL_TYPED,				/* a typed column of billops.cur_line_item */
	CUR_COL_MAP_JSON,			/* CUR 2.0 map column given as JSON text */
	CUR_COL_MAP_ENTRY,			/* legacy "resourceTags/user:x": a key in a jsonb column */
	CUR_COL_EXTRA				/* anything else: kept in "extras" under its header */
} CurColumnKind;

typedef struct CurColumn
{
	char	   *header;			/* as written in the file */
	char	   *name;			/* CUR 2.0 snake-case name */
	CurColumnKind kind;
	AttrNumber	attnum;			/* target column (typed, or the jsonb holding it) */
	char	   *key;			/* jsonb key for MAP_ENTRY / EXTRA */
} CurColumn;

/* "lineItem/UnblendedCost" → "line_item_unblended_cost"; snake names pass through lower-cased. */
extern char *cur_snake_name(const char *header);

/*
 * Map a header row onto the line-item table.  Raises 22P04 if a required
 * column is missing or two headers land on one column.
 */
extern CurColumn *cur_map_header(char **fields, int nfields, TupleDesc tupdesc,
								 const char *file_name, AttrNumber *extras_attnum);

/*
 * The same for a FOCUS export and billops.focus_line_item: columns by their
 * exact FOCUS names, any other in extras.
 */
extern CurColumn *focus_map_header(char **fields, int nfields, TupleDesc tupdesc,
								   const char *file_name, AttrNumber *extras_attnum);

/* cur_source.c: the S3 settings of a billops.cur_source row (errors if it is not an S3 source) */
extern void s3_location_for_source(int32 source_id, S3Location *loc);

/* defines billops.load_batch_rows, max_load_workers, swap_lock_timeout, analyze_after_load (from _PG_init) */
extern void billops_cur_load_init(void);
/* TABLE_INSERT_FROZEN for a staging table created in this subtransaction, else 0 (cur_load.c) */
extern int	billops_frozen_insert_option(Relation rel);

/*
 * cur_load_parallel.c: the files of one delivery loaded by the session and
 * background workers at once (see there for how the single stream's
 * guarantees hold).
 */
typedef struct LoadParallel LoadParallel;

extern int	billops_max_load_workers;

/* the session: start up to nworkers workers for a delivery of nfiles files */
extern LoadParallel *load_parallel_begin(int64 delivery_id, int nfiles, int nworkers, int batch_rows);
/* any participant: the next file to load (0-based), or -1 */
extern int	load_parallel_next_file(LoadParallel *lp);
/* any participant: add rows and bytes read; returns the delivery's totals so far */
extern void load_parallel_add(LoadParallel *lp, int64 rows, uint64 raw_bytes, int64 *total_rows, uint64 *total_raw);
extern int64 load_parallel_total_rows(LoadParallel *lp);
/* any participant, between batches: stop if another failed (the session raises its error) */
extern void load_parallel_check(LoadParallel *lp);
/* the session: wait for the workers' commits; raises the first failure */
extern void load_parallel_finish(LoadParallel *lp);
/* the session, on error or cancel: terminate the workers */
extern void load_parallel_abort(LoadParallel *lp);
extern void load_parallel_end(LoadParallel *lp);

/*
 * cur_daily.c: the daily rollup of a delivery (billops.cur_daily), summed
 * batch by batch as a loader inserts rows into a staging table, and written
 * into the rollup staging table at the end.
 */
typedef struct DailyRollup DailyRollup;

extern int	billops_daily_rollup_memory_kb;
extern DailyRollup *daily_rollup_begin(Relation line_items, Oid daily_relid, int64 delivery_id, DateADT period, const char *payer);
extern void daily_rollup_add(DailyRollup *d, TupleTableSlot **slots, int n);
extern int64 daily_rollup_finish(DailyRollup *d, double *ms);

/* cur_load.c: what a load worker runs inside its transaction */
extern void cur_load_files_as_worker(int64 delivery_id, LoadParallel *lp);

#endif							/* BILLOPS_CUR_H */
