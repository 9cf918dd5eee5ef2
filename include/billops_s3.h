/*
 * billops_s3.h — the S3 client: ListObjectsV2, GetObject (streamed), small GETs.
 */
#ifndef BILLOPS_S3_H
#define BILLOPS_S3_H

#include "postgres.h"

#include "billops_byte_source.h"
#include "nodes/pg_list.h"

typedef struct S3Location
{
	char	   *endpoint;		/* NULL: https://s3.<region>.amazonaws.com */
	char	   *region;
	char	   *bucket;
	bool		path_style;		/* /bucket/key instead of bucket.host/key */
	char	   *credentials;	/* a credentials reference, never a key */
	char	   *role_arn;		/* a role assumed on top of it (STS AssumeRole), or NULL */
	char	   *role_external_id;
	char	   *role_session_name;
} S3Location;

typedef struct S3Object
{
	char	   *key;			/* or the common prefix when is_prefix */
	int64		size;
	char	   *etag;
	char	   *last_modified;
	bool		is_prefix;
} S3Object;

/* defines billops.s3_max_retries and billops.s3_retry_base (from _PG_init) */
extern void billops_s3_init(void);


/* "s3://bucket/key", for messages */
extern const char *s3_display(const S3Location *loc, const char *key);

/* All objects (and common prefixes, with a delimiter) under prefix, paging through. */
extern List *s3_list(const S3Location *loc, const char *prefix, const char *delimiter);

/* GET a small object whole (manifests); errors past max_bytes. */
extern char *s3_get_small(const S3Location *loc, const char *key, size_t max_bytes, size_t *len);

/*
 * A streamed GetObject.  expected_size (-1: unknown) and etag come from the
 * listing; a body cut short is resumed with Range + If-Match, and a body that
 * ends at the wrong length is an error, never silently accepted.
 */
extern ByteSource *s3_object_source(const S3Location *loc, const char *key,
									int64 expected_size, const char *etag);

/*
 * Exactly len bytes of the object at offset, into dst: one ranged GetObject
 * (with If-Match when *etag is set, so every range comes from one version
 * of the object; when it is NULL it is set from the response), resumed like
 * a streamed body when cut short.
 */
extern void s3_read_range(const S3Location *loc, const char *key, char **etag,
						  int64 offset, size_t len, char *dst);

/*
 * A Parquet object as CSV text, like byte_source_parquet_file: the footer
 * first, then each column chunk of a row group through ranged reads of at
 * most billops.parquet_s3_read_size ahead (parquet_source.c).
 */
extern ByteSource *byte_source_parquet_s3(const S3Location *loc, const char *key, int64 size, const char *etag);

#endif							/* BILLOPS_S3_H */
