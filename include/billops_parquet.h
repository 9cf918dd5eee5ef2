/*
 * billops_parquet.h — the Parquet reader's core: plain C, no PostgreSQL
 * headers, so the same code runs in the server and in the standalone fuzz
 * harness (test/fuzz/).  The reference is the Parquet format specification
 * (apache/parquet-format: parquet.thrift, Encodings.md, LogicalTypes.md).
 *
 * Everything read from a file is untrusted: every length, count, offset and
 * nesting depth is checked before use, every allocation goes through the
 * caller's allocator (which enforces a budget), and no function aborts or
 * jumps: each returns false with a message in PqContext.error, which the
 * server side turns into an ereport naming the file, column and row group.
 */
#ifndef BILLOPS_PARQUET_H
#define BILLOPS_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- context: allocation and errors ------------------------------------------ */

typedef struct PqContext
{
	/* returns NULL when the budget is spent (the reader then fails cleanly) */
	void	   *(*alloc) (void *state, size_t size);
	void	   *alloc_state;
	char		error[256];		/* why the last call returned false */
	/* frees everything allocated in this context (NULL: never reset); the row reader resets a column's page context per page */
	void		(*reset) (void *state);
} PqContext;

extern bool pq_fail(PqContext *cx, const char *fmt,...) __attribute__((format(printf, 2, 3)));
extern void *pq_alloc(PqContext *cx, size_t size);	/* zeroed; NULL (and error set) when refused */
/* not zeroed: for buffers that are filled whole before they are read (pages read or decompressed to their exact size) */
extern void *pq_alloc_uninit(PqContext *cx, size_t size);

/* --- the format's enums (parquet.thrift) -------------------------------------- */

typedef enum PqPhysicalType
{
	PQ_BOOLEAN = 0, PQ_INT32 = 1, PQ_INT64 = 2, PQ_INT96 = 3, PQ_FLOAT = 4, PQ_DOUBLE = 5,
	PQ_BYTE_ARRAY = 6, PQ_FIXED_LEN_BYTE_ARRAY = 7
} PqPhysicalType;

typedef enum PqRepetition
{
	PQ_REQUIRED = 0, PQ_OPTIONAL = 1, PQ_REPEATED = 2
} PqRepetition;

typedef enum PqEncoding
{
	PQ_ENC_PLAIN = 0, PQ_ENC_PLAIN_DICTIONARY = 2, PQ_ENC_RLE = 3, PQ_ENC_BIT_PACKED = 4,
	PQ_ENC_DELTA_BINARY_PACKED = 5, PQ_ENC_DELTA_LENGTH_BYTE_ARRAY = 6, PQ_ENC_DELTA_BYTE_ARRAY = 7,
	PQ_ENC_RLE_DICTIONARY = 8, PQ_ENC_BYTE_STREAM_SPLIT = 9
} PqEncoding;

typedef enum PqCodec
{
	PQ_CODEC_UNCOMPRESSED = 0, PQ_CODEC_SNAPPY = 1, PQ_CODEC_GZIP = 2, PQ_CODEC_LZO = 3,
	PQ_CODEC_BROTLI = 4, PQ_CODEC_LZ4 = 5, PQ_CODEC_ZSTD = 6, PQ_CODEC_LZ4_RAW = 7
} PqCodec;

typedef enum PqPageType
{
	PQ_PAGE_DATA = 0, PQ_PAGE_INDEX = 1, PQ_PAGE_DICTIONARY = 2, PQ_PAGE_DATA_V2 = 3
} PqPageType;

/* What a leaf's values mean: the logical type, or the legacy converted type it implies. */
typedef enum PqLogicalKind
{
	PQ_LOGICAL_NONE = 0,
	PQ_LOGICAL_STRING,			/* STRING, UTF8, ENUM, JSON */
	PQ_LOGICAL_DECIMAL,
	PQ_LOGICAL_DATE,
	PQ_LOGICAL_TIME,
	PQ_LOGICAL_TIMESTAMP,
	PQ_LOGICAL_INTEGER,
	PQ_LOGICAL_UUID,
	PQ_LOGICAL_FLOAT16,
	PQ_LOGICAL_OTHER			/* BSON, INTERVAL, UNKNOWN, ...: read as their physical type */
} PqLogicalKind;

typedef enum PqTimeUnit
{
	PQ_UNIT_MILLIS = 1, PQ_UNIT_MICROS = 2, PQ_UNIT_NANOS = 3
} PqTimeUnit;

/* --- the schema ------------------------------------------------------------------ */

typedef struct PqSchemaNode
{
	char	   *name;
	int			num_children;	/* 0: a leaf (a column) */
	struct PqSchemaNode **children;
	struct PqSchemaNode *parent;
	PqRepetition repetition;
	bool		has_type;		/* leaves have a physical type */
	PqPhysicalType type;
	int32_t		type_length;	/* FIXED_LEN_BYTE_ARRAY */
	int32_t		converted_type; /* -1: none */
	bool		is_map;			/* MAP (or MAP_KEY_VALUE) annotation */
	bool		is_list;		/* LIST annotation */
	PqLogicalKind logical;
	int32_t		scale;			/* DECIMAL */
	int32_t		precision;
	PqTimeUnit	time_unit;		/* TIME, TIMESTAMP */
	bool		adjusted_to_utc;
	int32_t		int_bit_width;	/* INTEGER */
	bool		int_signed;
	/* for a leaf: its column index, and the levels reaching it */
	int			column;
	int			max_def;
	int			max_rep;
	int			def_level;		/* OPTIONAL and REPEATED nodes from the root's child down to this one */
} PqSchemaNode;

/* --- row groups and column chunks ------------------------------------------------ */

typedef struct PqColumnChunk
{
	PqPhysicalType type;
	PqCodec		codec;
	int64_t		num_values;		/* levels in the chunk, nulls included */
	int64_t		total_compressed_size;
	int64_t		total_uncompressed_size;
	int64_t		data_page_offset;
	int64_t		dictionary_page_offset; /* -1: none */
	int64_t		start;			/* where the chunk's first page is */
	int			num_encodings;
	bool		external;		/* file_path set: the data is in another file */
} PqColumnChunk;

typedef struct PqRowGroup
{
	int64_t		num_rows;
	PqColumnChunk *columns;		/* num_columns of the file */
} PqRowGroup;

typedef struct PqFile
{
	int32_t		version;
	int64_t		num_rows;
	char	   *created_by;		/* NULL: not given */
	PqSchemaNode *root;
	int			num_columns;	/* leaves */
	PqSchemaNode **leaves;		/* in column order */
	int			num_row_groups;
	PqRowGroup *row_groups;
} PqFile;

/* Limits a strict reader holds files to (far above anything AWS writes). */
#define PQ_MAX_FOOTER_BYTES		(64 * 1024 * 1024)
#define PQ_MAX_THRIFT_DEPTH		32
#define PQ_MAX_SCHEMA_DEPTH		16
#define PQ_MAX_COLUMNS			10000
#define PQ_MAX_ROW_GROUPS		1000000
#define PQ_MAX_PAGE_BYTES		(256 * 1024 * 1024)

/* Reads `len` bytes at `offset` of the file into dst; false with cx->error set on failure. */
typedef bool (*PqReadFn) (PqContext *cx, void *state, int64_t offset, size_t len, uint8_t *dst);

/*
 * Opens a file of `file_size` bytes read through `read`: the leading magic
 * "PAR1", the footer (the metadata's length, little endian, and "PAR1"),
 * then FileMetaData, decoded and checked against the file's size.
 */
extern bool pq_open(PqContext *cx, PqReadFn read, void *read_state, int64_t file_size, PqFile *out);

/* --- pages ---------------------------------------------------------------------- */

typedef struct PqPageHeader
{
	PqPageType	type;
	int32_t		uncompressed_size;
	int32_t		compressed_size;
	int32_t		num_values;
	PqEncoding	encoding;
	/* data page v1 */
	PqEncoding	def_encoding;
	PqEncoding	rep_encoding;
	/* data page v2 */
	int32_t		num_nulls;
	int32_t		num_rows;
	int32_t		def_levels_length;
	int32_t		rep_levels_length;
	bool		is_compressed;
	size_t		header_length;	/* bytes of the Thrift header itself */
} PqPageHeader;

/*
 * Decodes a page header from the first `len` bytes of buf.  When the header
 * may be longer than `len`, returns false with *need_more set (read more and
 * call again); a header that is malformed returns false with an error.
 */
extern bool pq_read_page_header(PqContext *cx, const uint8_t *buf, size_t len, PqPageHeader *out, bool *need_more);

/* --- encodings (parquet_encoding.c) ------------------------------------------------ */

/* A page's non-null values, decoded. */
typedef struct PqValues
{
	int32_t		count;
	int32_t		width;			/* bytes per value of a fixed-width type (BOOLEAN: 1, as 0/1); 0 for BYTE_ARRAY */
	uint8_t    *fixed;			/* count * width bytes, each value as the file stores it (little endian) */
	const uint8_t **ptr;		/* BYTE_ARRAY: each value's bytes (into the page, or a buffer of its own) */
	uint32_t   *len;
} PqValues;

/* The width of a fixed-width physical type's values; 0 for BYTE_ARRAY. */
extern int32_t pq_value_width(PqPhysicalType type, int32_t type_length);

/* bits needed for values 0..max (a level's bit width) */
extern int	pq_bit_width(uint32_t max);

/*
 * The RLE / bit-packed hybrid: exactly `count` values of `bit_width` bits
 * from buf (no length prefix: the caller strips it).  Returns the bytes
 * used, or -1 with an error.  Values above `max` are refused (levels above
 * their maximum, dictionary indices past the dictionary).
 */
extern int64_t pq_rle_decode(PqContext *cx, const uint8_t *buf, size_t len, int bit_width, int32_t count,
							 uint32_t max, uint32_t *out);

/*
 * A data page's value section (or a dictionary page: PLAIN): `count`
 * non-null values of `type` in `encoding`.  Dictionary encodings gather from
 * `dict` (NULL: none seen, an error).  BYTE_ARRAY values point into buf,
 * which must outlive them (DELTA_BYTE_ARRAY builds its own).
 */
extern bool pq_decode_values(PqContext *cx, PqEncoding encoding, PqPhysicalType type, int32_t type_length,
							 const uint8_t *buf, size_t len, int32_t count, const PqValues *dict, PqValues *out);

/* --- compression (parquet_codec.c) ------------------------------------------------- */

/*
 * Decompresses src into dst, which must come out exactly dst_len bytes
 * (the page header's uncompressed size): more is a decompression bomb or a
 * lie, less a lie; both are errors.
 */
extern bool pq_decompress(PqContext *cx, PqCodec codec, const uint8_t *src, size_t src_len,
						  uint8_t *dst, size_t dst_len);

/* --- pages of a column chunk (parquet_page.c) ------------------------------------------ */

/* One data page, decoded: its levels (NULL when the level's maximum is 0) and non-null values. */
typedef struct PqPage
{
	int32_t		num_levels;		/* the header's num_values: values, NULLs and empty lists */
	uint32_t   *def;
	uint32_t   *rep;
	PqValues	values;
	int32_t		num_rows;		/* entries with repetition level 0 */
} PqPage;

/* What stays across a chunk's pages: the column and its dictionary. */
typedef struct PqChunkState
{
	const PqSchemaNode *leaf;
	PqCodec		codec;
	bool		has_dictionary;
	PqValues	dictionary;
	int			pages;
} PqChunkState;

extern void pq_chunk_begin(PqChunkState *st, const PqSchemaNode *leaf, PqCodec codec);

/*
 * A page whose header is `h` and whose compressed_size bytes are `body`.
 * A dictionary page fills st->dictionary (*out untouched, *is_data false);
 * a data page is decoded into *out.  Index pages are skipped.
 */
extern bool pq_decode_page(PqContext *cx, PqChunkState *st, const PqPageHeader *h, const uint8_t *body,
						   PqPage *out, bool *is_data);

/* --- rows as CSV text (parquet_rows.c) ----------------------------------------------- */

/* A fresh context for one column: its pages (reset per page) or its chunk (the dictionary). */
typedef PqContext *(*PqContextFn) (void *state);
/* Where the text goes. */
typedef void (*PqEmitFn) (void *state, const char *s, size_t len);

typedef struct PqRowReader PqRowReader;

/*
 * Rows of a file as CSV lines, each top-level field one column: a flat
 * column's value as text (numbers exact, decimals scaled, timestamps ISO
 * 8601 in UTC, dates, booleans), a MAP as a JSON object of strings (as
 * CUR 2.0's CSV writes its maps) and a LIST as a JSON array; NULL and ''
 * both as an empty field (AWS's CSV does not tell them apart either).
 * Memory: one decoded page per column at a time, each chunk's dictionary,
 * and the row being built.
 */
extern PqRowReader *pq_rows_begin(PqContext *cx, const PqFile *f, PqReadFn read, void *read_state,
								  PqContextFn make_context, void *context_state);
extern bool pq_rows_header(PqRowReader *r, PqEmitFn emit, void *emit_state);
/* The next row (with its newline); *done at the end of the file. */
extern bool pq_rows_next(PqRowReader *r, PqEmitFn emit, void *emit_state, bool *done);

extern const char *pq_type_name(PqPhysicalType t);
extern const char *pq_codec_name(PqCodec c);
extern const char *pq_encoding_name(PqEncoding e);
/* "a.b.c": the leaf's path for messages */
extern const char *pq_column_path(PqContext *cx, const PqSchemaNode *leaf);

#endif							/* BILLOPS_PARQUET_H */
