/*
 * billops_cur.h — CUR column mapping and the streaming loader.
 */
#ifndef BILLOPS_CUR_H
#define BILLOPS_CUR_H

#include "postgres.h"

#include "access/tupdesc.h"
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

/* defines billops.load_batch_rows, swap_lock_timeout, analyze_after_load (from _PG_init) */
extern void billops_cur_load_init(void);

#endif							/* BILLOPS_CUR_H */
