/*
 * billops_byte_source.h — a pull-based byte stream: local file, S3 object,
 * or a gunzip stage on top of either.  COPY's data-source callback reads from
 * one of these, so the whole path S3 → gunzip → COPY streams through fixed
 * buffers and never holds a file in memory.
 */
#ifndef BILLOPS_BYTE_SOURCE_H
#define BILLOPS_BYTE_SOURCE_H

#include "postgres.h"

#include "nodes/pg_list.h"

typedef struct ByteSource ByteSource;

struct ByteSource
{
	/* Returns bytes copied, 0 at the end; raises an error on failure. */
	size_t		(*read) (ByteSource *self, char *buf, size_t len);
	void		(*close) (ByteSource *self);
	char	   *name;			/* "s3://bucket/key" or a path: for messages */
	uint64		raw_bytes;		/* bytes taken from storage so far */
	ByteSource *inner;			/* the stage below, if any */
};

extern ByteSource *byte_source_file(const char *path);

/*
 * Gunzip `inner`.  With `required`, input that is not gzip is an error; else
 * non-gzip input passes through unchanged (plain CSV files).  Concatenated
 * gzip members are handled; a stream that ends early is an error.
 */
extern ByteSource *byte_source_gunzip(ByteSource *inner, bool required);

/*
 * A Parquet file as CSV text (parquet_source.c): a header row of its
 * top-level field names, then its rows.  parquet_file_is says whether a
 * local file starts with Parquet's magic.
 */
extern ByteSource *byte_source_parquet_file(const char *path);
extern bool parquet_file_is(const char *path);
/* A Parquet source's top-level field names (its CSV header), as a List of char * */
extern List *parquet_source_fields(ByteSource *src);
/* defines billops.parquet_max_memory (from _PG_init) */
extern void billops_parquet_source_init(void);

/* Reads until at least min bytes (at most max) are in buf, or the end: as COPY's data-source callbacks want. */
extern size_t byte_source_read_at_least(ByteSource *s, char *buf, size_t min, size_t max);

/* Bytes read from the bottom of the chain (compressed bytes for gzip). */
extern uint64 byte_source_raw_bytes(ByteSource *s);
extern void byte_source_close(ByteSource *s);

#endif							/* BILLOPS_BYTE_SOURCE_H */
