/*
 * parquet_copy.c — a local Parquet file into a table through COPY's own CSV
 * parser, for the loaders written in SQL (billops.load_focus_file): they
 * read a CSV with COPY ... FROM a path, and a Parquet file takes the same
 * road, its rows coming as CSV text from parquet_source.c.  Reading server
 * files needs what COPY FROM a file needs: superuser or pg_read_server_files.
 */
#include "postgres.h"

#include "access/table.h"
#include "billops_byte_source.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(billops_parquet_fields);
PG_FUNCTION_INFO_V1(billops_copy_parquet_file);

static void
check_may_read_server_files(void)
{
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read Parquet files from the server's file system"),
				 errdetail("Only superusers and members of pg_read_server_files may read server files.")));
}

/* billops._parquet_fields(path) → text[]: the file's top-level field names, in order. */
Datum
billops_parquet_fields(PG_FUNCTION_ARGS)
{
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ByteSource *src;
	List	   *names;
	Datum	   *items;
	ListCell   *lc;
	int			i = 0;

	check_may_read_server_files();
	src = byte_source_parquet_file(path);
	names = parquet_source_fields(src);
	items = palloc(sizeof(Datum) * Max(list_length(names), 1));
	foreach(lc, names)
		items[i++] = CStringGetTextDatum(lfirst(lc));
	byte_source_close(src);
	PG_RETURN_ARRAYTYPE_P(construct_array(items, i, TEXTOID, -1, false, TYPALIGN_INT));
}

/* COPY's data-source callback has no argument: the source being read. */
static ByteSource *copying = NULL;

static int
copy_read(void *outbuf, int minread, int maxread)
{
	return (int) byte_source_read_at_least(copying, outbuf, minread, maxread);
}

/*
 * billops._copy_parquet_file(path, target regclass, target_columns text[]) → bigint:
 * the file's rows into target's columns, in file order, as COPY (FORMAT csv,
 * HEADER true) would load the same rows written as CSV: NULL and '' both
 * arrive as NULL (the CSV text cannot tell them apart, nor can AWS's CSV).
 */
Datum
billops_copy_parquet_file(PG_FUNCTION_ARGS)
{
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			target = PG_GETARG_OID(1);
	ArrayType  *columns = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *names;
	bool	   *nulls;
	int			n;
	List	   *attnames = NIL;
	Relation	rel;
	ParseState *pstate;
	CopyFromState cstate;
	uint64		rows = 0;

	check_may_read_server_files();
	deconstruct_array(columns, TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a target column name is NULL")));
		attnames = lappend(attnames, makeString(TextDatumGetCString(names[i])));
	}
	rel = table_open(target, RowExclusiveLock);
	if (pg_class_aclcheck(target, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", RelationGetRelationName(rel))));
	pstate = make_parsestate(NULL);
	/* CopyFrom opens its result relation as range table entry 1, as DoCopy sets it up */
	addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false)->p_rte->requiredPerms = ACL_INSERT;
	PG_TRY();
	{
		copying = byte_source_parquet_file(path);
		cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, copy_read, attnames,
							   list_make2(makeDefElem("format", (Node *) makeString("csv"), -1),
										  makeDefElem("header", (Node *) makeString("true"), -1)));
		rows = CopyFrom(cstate);
		EndCopyFrom(cstate);
		byte_source_close(copying);
	}
	PG_FINALLY();
	{
		copying = NULL;
	}
	PG_END_TRY();
	table_close(rel, NoLock);
	PG_RETURN_INT64((int64) rows);
}
