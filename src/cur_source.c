/*
 * cur_source.c — a billops.cur_source row as the C side needs it.
 *
 * The S3 client (s3.c) takes an S3Location and knows nothing of tables; the
 * loader and the SQL-callable S3 functions get one here.
 */
#include "postgres.h"

#include "billops_cur.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"

/* Read an S3 source's settings from billops.cur_source (strings palloc'd in the caller's context). */
void
s3_location_for_source(int32 source_id, S3Location *loc)
{
	Datum		arg[1] = {Int32GetDatum(source_id)};
	Oid			argt[1] = {INT4OID};
	bool		isnull;
	MemoryContext caller = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT bucket, endpoint_url, region, path_style, credentials, "
							  "role_arn, role_external_id, role_session_name "
							  "FROM billops.cur_source WHERE source_id = $1 AND storage = 's3'",
							  1, argt, arg, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("S3 source %d does not exist", source_id)));
	{
		HeapTuple	t = SPI_tuptable->vals[0];
		TupleDesc	d = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(caller);

		loc->bucket = SPI_getvalue(t, d, 1);
		loc->endpoint = SPI_getvalue(t, d, 2);
		loc->region = SPI_getvalue(t, d, 3);
		loc->path_style = DatumGetBool(SPI_getbinval(t, d, 4, &isnull));
		loc->credentials = SPI_getvalue(t, d, 5);
		loc->role_arn = SPI_getvalue(t, d, 6);
		loc->role_external_id = SPI_getvalue(t, d, 7);
		loc->role_session_name = SPI_getvalue(t, d, 8);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
}
