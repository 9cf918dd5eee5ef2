/*
 * parquet_thrift.c — the Thrift Compact Protocol, and the structures Parquet
 * encodes with it: FileMetaData (the footer) and PageHeader.  Plain C (see
 * billops_parquet.h); field ids and types are parquet.thrift's
 * (apache/parquet-format).
 *
 * Compact Protocol, as Parquet uses it: a struct is a sequence of fields,
 * each a header byte whose high nibble is the field id's delta from the
 * previous field (0: a zigzag varint i16 id follows) and whose low nibble is
 * the type (0 stop, 1/2 boolean true/false with no payload, 3 byte, 4 i16,
 * 5 i32, 6 i64, 7 double, 8 binary, 9 list, 10 set, 11 map, 12 struct);
 * integers are zigzag varints, binary is a varint length then bytes, a list
 * header is a byte with the size in the high nibble (15: a varint size
 * follows) and the element type in the low one, a boolean list element is
 * one byte.
 *
 * Strictness: a known field with the wrong type, a required field missing,
 * a varint longer than its type, a length past the buffer, or nesting deeper
 * than PQ_MAX_THRIFT_DEPTH are errors; unknown fields are skipped (newer
 * writers add them), with the same limits.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "billops_parquet.h"

enum
{
	T_STOP = 0, T_TRUE = 1, T_FALSE = 2, T_BYTE = 3, T_I16 = 4, T_I32 = 5, T_I64 = 6,
	T_DOUBLE = 7, T_BINARY = 8, T_LIST = 9, T_SET = 10, T_MAP = 11, T_STRUCT = 12
};

typedef struct TReader
{
	PqContext  *cx;
	const uint8_t *p;
	const uint8_t *end;
	int			depth;
	bool		truncated;		/* ran out of bytes (rather than finding garbage) */
	const char *what;			/* the structure being read, for messages */
} TReader;

bool
pq_fail(PqContext *cx, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(cx->error, sizeof(cx->error), fmt, ap);
	va_end(ap);
	return false;
}

void *
pq_alloc_uninit(PqContext *cx, size_t size)
{
	void	   *p = cx->alloc(cx->alloc_state, size ? size : 1);

	if (p == NULL)
		pq_fail(cx, "the file needs more memory than the reader allows (%zu bytes asked)", size);
	return p;
}

void *
pq_alloc(PqContext *cx, size_t size)
{
	void	   *p = pq_alloc_uninit(cx, size);

	if (p)
		memset(p, 0, size ? size : 1);
	return p;
}

static bool
t_short(TReader *r)
{
	r->truncated = true;
	return pq_fail(r->cx, "the %s ends early", r->what);
}

static bool
t_varint(TReader *r, uint64_t *out, int max_bytes)
{
	uint64_t	v = 0;

	*out = 0;
	for (int i = 0; i < max_bytes; i++)
	{
		uint8_t		b;

		if (r->p >= r->end)
			return t_short(r);
		b = *r->p++;
		v |= (uint64_t) (b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0)
		{
			*out = v;
			return true;
		}
	}
	return pq_fail(r->cx, "the %s has a varint longer than %d bytes", r->what, max_bytes);
}

static int64_t
unzigzag(uint64_t v)
{
	return (int64_t) (v >> 1) ^ -(int64_t) (v & 1);
}

static bool
t_i64(TReader *r, int64_t *out)
{
	uint64_t	v;

	if (!t_varint(r, &v, 10))
		return false;
	*out = unzigzag(v);
	return true;
}

static bool
t_i32(TReader *r, int32_t *out)
{
	uint64_t	v;
	int64_t		s;

	if (!t_varint(r, &v, 5))
		return false;
	s = unzigzag(v);
	if (s < INT32_MIN || s > INT32_MAX)
		return pq_fail(r->cx, "the %s has an i32 out of range", r->what);
	*out = (int32_t) s;
	return true;
}

static bool
t_binary(TReader *r, const uint8_t **data, uint32_t *len)
{
	uint64_t	n;

	*data = NULL;
	*len = 0;
	if (!t_varint(r, &n, 5))
		return false;
	if (n > (uint64_t) (r->end - r->p))
		return t_short(r);
	*data = r->p;
	*len = (uint32_t) n;
	r->p += n;
	return true;
}

/* A binary field as a NUL-terminated string (a NUL inside is refused: names and paths are text). */
static bool
t_string(TReader *r, char **out)
{
	const uint8_t *d;
	uint32_t	n;

	if (!t_binary(r, &d, &n))
		return false;
	if (memchr(d, '\0', n) != NULL)
		return pq_fail(r->cx, "the %s has a string with a NUL byte", r->what);
	if ((*out = pq_alloc(r->cx, (size_t) n + 1)) == NULL)
		return false;
	memcpy(*out, d, n);
	return true;
}

/* A list (or set) header: element type and size, the size checked against the bytes left (each element takes at least one). */
static bool
t_list(TReader *r, int *elem_type, uint32_t *size)
{
	uint8_t		b;
	uint64_t	n;

	if (r->p >= r->end)
		return t_short(r);
	b = *r->p++;
	*elem_type = b & 0x0f;
	n = b >> 4;
	if (n == 15 && !t_varint(r, &n, 5))
		return false;
	if (n > (uint64_t) (r->end - r->p))
		return t_short(r);
	*size = (uint32_t) n;
	return true;
}

/* The next field's id and type; type T_STOP ends the struct. */
static bool
t_field(TReader *r, int16_t *last_id, int16_t *id, int *type)
{
	uint8_t		b;
	int			delta;

	if (r->p >= r->end)
		return t_short(r);
	b = *r->p++;
	*type = b & 0x0f;
	if (*type == T_STOP)
		return true;
	delta = b >> 4;
	if (delta != 0)
		*id = (int16_t) (*last_id + delta);
	else
	{
		int32_t		v;

		if (!t_i32(r, &v))
			return false;
		if (v < INT16_MIN || v > INT16_MAX)
			return pq_fail(r->cx, "the %s has a field id out of range", r->what);
		*id = (int16_t) v;
	}
	*last_id = *id;
	if (*type > T_STRUCT)
		return pq_fail(r->cx, "the %s has a field of unknown type %d", r->what, *type);
	return true;
}

static bool t_skip(TReader *r, int type);

static bool
t_skip_struct(TReader *r)
{
	int16_t		last = 0,
				id = 0;
	int			type;

	if (++r->depth > PQ_MAX_THRIFT_DEPTH)
		return pq_fail(r->cx, "the %s nests deeper than %d", r->what, PQ_MAX_THRIFT_DEPTH);
	for (;;)
	{
		if (!t_field(r, &last, &id, &type))
			return false;
		if (type == T_STOP)
			break;
		if (!t_skip(r, type))
			return false;
	}
	r->depth--;
	return true;
}

/* Skips a value of `type` (an unknown field, or one this reader does not need). */
static bool
t_skip(TReader *r, int type)
{
	uint64_t	v;
	const uint8_t *d;
	uint32_t	n;
	int			et;

	switch (type)
	{
		case T_TRUE:
		case T_FALSE:
			return true;
		case T_BYTE:
			if (r->p >= r->end)
				return t_short(r);
			r->p++;
			return true;
		case T_I16:
		case T_I32:
			return t_varint(r, &v, 5);
		case T_I64:
			return t_varint(r, &v, 10);
		case T_DOUBLE:
			if (r->end - r->p < 8)
				return t_short(r);
			r->p += 8;
			return true;
		case T_BINARY:
			return t_binary(r, &d, &n);
		case T_LIST:
		case T_SET:
			if (!t_list(r, &et, &n))
				return false;
			if (++r->depth > PQ_MAX_THRIFT_DEPTH)
				return pq_fail(r->cx, "the %s nests deeper than %d", r->what, PQ_MAX_THRIFT_DEPTH);
			for (uint32_t i = 0; i < n; i++)
				if (!t_skip(r, et == T_TRUE || et == T_FALSE ? T_BYTE : et))
					return false;
			r->depth--;
			return true;
		case T_MAP:
			{
				uint64_t	size;
				uint8_t		kv = 0;

				if (!t_varint(r, &size, 5))
					return false;
				if (size > (uint64_t) (r->end - r->p))
					return t_short(r);
				if (size > 0)
				{
					if (r->p >= r->end)
						return t_short(r);
					kv = *r->p++;
				}
				if (++r->depth > PQ_MAX_THRIFT_DEPTH)
					return pq_fail(r->cx, "the %s nests deeper than %d", r->what, PQ_MAX_THRIFT_DEPTH);
				for (uint64_t i = 0; i < size; i++)
				{
					int			kt = kv >> 4,
								vt = kv & 0x0f;

					if (!t_skip(r, kt == T_TRUE || kt == T_FALSE ? T_BYTE : kt) ||
						!t_skip(r, vt == T_TRUE || vt == T_FALSE ? T_BYTE : vt))
						return false;
				}
				r->depth--;
				return true;
			}
		case T_STRUCT:
			return t_skip_struct(r);
		default:
			return pq_fail(r->cx, "the %s has a value of unknown type %d", r->what, type);
	}
}

/*
 * A struct's fields: STRUCT_BEGIN, a FIELD(id, name, type, statement) per
 * field this reader takes, STRUCT_END (which skips the others).  The block
 * declares last_, id_ and type_ (a boolean field's value is its type).
 */

/* A known field must have the type parquet.thrift gives it. */
static bool
t_expect(TReader *r, const char *field, int type, int want)
{
	bool		ok = (want == T_TRUE) ? (type == T_TRUE || type == T_FALSE) : type == want;

	if (!ok)
		return pq_fail(r->cx, "the %s's field %s has type %d, not %d", r->what, field, type, want);
	return true;
}

#define STRUCT_BEGIN(r) \
	{ int16_t	last_ = 0, id_ = 0; int type_; \
	if (++(r)->depth > PQ_MAX_THRIFT_DEPTH) \
		return pq_fail((r)->cx, "the %s nests deeper than %d", (r)->what, PQ_MAX_THRIFT_DEPTH); \
	for (;;) { \
		if (!t_field((r), &last_, &id_, &type_)) return false; \
		if (type_ == T_STOP) break; \
		switch (id_) {
#define FIELD(n, name, t, stmt) \
		case n: if (!t_expect(r, name, type_, t)) return false; { stmt; } break;
#define STRUCT_END(r) \
		default: if (!t_skip((r), type_)) return false; } } \
	(r)->depth--; }

#define READ(call) do { if (!(call)) return false; } while (0)

/* --- LogicalType (a union: one field set) ---------------------------------------- */

static bool
read_time_unit(TReader *r, PqTimeUnit *unit)
{
	STRUCT_BEGIN(r)
	FIELD(1, "MILLIS", T_STRUCT, *unit = PQ_UNIT_MILLIS; READ(t_skip_struct(r)))
	FIELD(2, "MICROS", T_STRUCT, *unit = PQ_UNIT_MICROS; READ(t_skip_struct(r)))
	FIELD(3, "NANOS", T_STRUCT, *unit = PQ_UNIT_NANOS; READ(t_skip_struct(r)))
	STRUCT_END(r)
	return true;
}

static bool
read_time_type(TReader *r, PqSchemaNode *n)
{
	n->time_unit = 0;
	STRUCT_BEGIN(r)
	FIELD(1, "isAdjustedToUTC", T_TRUE, n->adjusted_to_utc = (type_ == T_TRUE))
	FIELD(2, "unit", T_STRUCT, READ(read_time_unit(r, &n->time_unit)))
	STRUCT_END(r)
	if (n->time_unit == 0)
		return pq_fail(r->cx, "column \"%s\": a TIME or TIMESTAMP type without its unit", n->name);
	return true;
}

static bool
read_logical_type(TReader *r, PqSchemaNode *n)
{
	STRUCT_BEGIN(r)
	FIELD(1, "STRING", T_STRUCT, n->logical = PQ_LOGICAL_STRING; READ(t_skip_struct(r)))
	FIELD(2, "MAP", T_STRUCT, n->is_map = true; READ(t_skip_struct(r)))
	FIELD(3, "LIST", T_STRUCT, n->is_list = true; READ(t_skip_struct(r)))
	FIELD(4, "ENUM", T_STRUCT, n->logical = PQ_LOGICAL_STRING; READ(t_skip_struct(r)))
	FIELD(5, "DECIMAL", T_STRUCT,
		  {
			  n->logical = PQ_LOGICAL_DECIMAL;
			  {
				  STRUCT_BEGIN(r)
				  FIELD(1, "scale", T_I32, READ(t_i32(r, &n->scale)))
				  FIELD(2, "precision", T_I32, READ(t_i32(r, &n->precision)))
				  STRUCT_END(r)
			  }
		  })
	FIELD(6, "DATE", T_STRUCT, n->logical = PQ_LOGICAL_DATE; READ(t_skip_struct(r)))
	FIELD(7, "TIME", T_STRUCT, n->logical = PQ_LOGICAL_TIME; READ(read_time_type(r, n)))
	FIELD(8, "TIMESTAMP", T_STRUCT, n->logical = PQ_LOGICAL_TIMESTAMP; READ(read_time_type(r, n)))
	FIELD(10, "INTEGER", T_STRUCT,
		  {
			  n->logical = PQ_LOGICAL_INTEGER;
			  {
				  STRUCT_BEGIN(r)
				  FIELD(1, "bitWidth", T_BYTE, if (r->p >= r->end) return t_short(r); n->int_bit_width = (int8_t) *r->p++)
				  FIELD(2, "isSigned", T_TRUE, n->int_signed = (type_ == T_TRUE))
				  STRUCT_END(r)
			  }
		  })
	FIELD(12, "JSON", T_STRUCT, n->logical = PQ_LOGICAL_STRING; READ(t_skip_struct(r)))
	FIELD(14, "UUID", T_STRUCT, n->logical = PQ_LOGICAL_UUID; READ(t_skip_struct(r)))
	FIELD(15, "FLOAT16", T_STRUCT, n->logical = PQ_LOGICAL_FLOAT16; READ(t_skip_struct(r)))
	STRUCT_END(r)
	return true;
}

/* --- SchemaElement ------------------------------------------------------------------ */

static bool
read_schema_element(TReader *r, PqSchemaNode *n)
{
	bool		has_name = false;
	int32_t		v;

	n->converted_type = -1;
	n->repetition = PQ_REQUIRED;
	STRUCT_BEGIN(r)
	FIELD(1, "type", T_I32,
		  READ(t_i32(r, &v));
		  if (v < PQ_BOOLEAN || v > PQ_FIXED_LEN_BYTE_ARRAY)
			  return pq_fail(r->cx, "a schema element has unknown physical type %d", v);
		  n->type = (PqPhysicalType) v; n->has_type = true)
	FIELD(2, "type_length", T_I32, READ(t_i32(r, &n->type_length)))
	FIELD(3, "repetition_type", T_I32,
		  READ(t_i32(r, &v));
		  if (v < PQ_REQUIRED || v > PQ_REPEATED)
			  return pq_fail(r->cx, "a schema element has unknown repetition %d", v);
		  n->repetition = (PqRepetition) v)
	FIELD(4, "name", T_BINARY, READ(t_string(r, &n->name)); has_name = true)
	FIELD(5, "num_children", T_I32, READ(t_i32(r, &n->num_children)))
	FIELD(6, "converted_type", T_I32, READ(t_i32(r, &n->converted_type)))
	FIELD(7, "scale", T_I32, READ(t_i32(r, &n->scale)))
	FIELD(8, "precision", T_I32, READ(t_i32(r, &n->precision)))
	FIELD(10, "logicalType", T_STRUCT, READ(read_logical_type(r, n)))
	STRUCT_END(r)
	if (!has_name)
		return pq_fail(r->cx, "a schema element has no name");
	if (n->num_children < 0)
		return pq_fail(r->cx, "schema element \"%s\" has %d children", n->name, n->num_children);
	return true;
}

/* --- ColumnChunk, RowGroup -------------------------------------------------------- */

typedef struct RawChunk
{
	PqColumnChunk c;
	bool		has_meta;
	bool		has_type,
				has_codec,
				has_num_values,
				has_sizes,
				has_data_offset;
	char	  **path;
	uint32_t	path_len;
} RawChunk;

static bool
read_column_meta(TReader *r, RawChunk *rc)
{
	int32_t		v;
	int			et;
	uint32_t	n;

	rc->c.dictionary_page_offset = -1;
	STRUCT_BEGIN(r)
	FIELD(1, "type", T_I32,
		  READ(t_i32(r, &v));
		  if (v < PQ_BOOLEAN || v > PQ_FIXED_LEN_BYTE_ARRAY)
			  return pq_fail(r->cx, "a column chunk has unknown physical type %d", v);
		  rc->c.type = (PqPhysicalType) v; rc->has_type = true)
	FIELD(2, "encodings", T_LIST,
		  READ(t_list(r, &et, &n));
		  if (et != T_I32) return pq_fail(r->cx, "a column chunk's encodings are not a list of i32");
		  for (uint32_t i = 0; i < n; i++) READ(t_i32(r, &v));
		  rc->c.num_encodings = (int) n)
	FIELD(3, "path_in_schema", T_LIST,
		  READ(t_list(r, &et, &n));
		  if (et != T_BINARY) return pq_fail(r->cx, "a column chunk's path is not a list of strings");
		  if ((rc->path = pq_alloc(r->cx, sizeof(char *) * (n + 1))) == NULL) return false;
		  for (uint32_t i = 0; i < n; i++) READ(t_string(r, &rc->path[i]));
		  rc->path_len = n)
	FIELD(4, "codec", T_I32,
		  READ(t_i32(r, &v));
		  if (v < PQ_CODEC_UNCOMPRESSED || v > PQ_CODEC_LZ4_RAW)
			  return pq_fail(r->cx, "a column chunk has unknown compression codec %d", v);
		  rc->c.codec = (PqCodec) v; rc->has_codec = true)
	FIELD(5, "num_values", T_I64, READ(t_i64(r, &rc->c.num_values)); rc->has_num_values = true)
	FIELD(6, "total_uncompressed_size", T_I64, READ(t_i64(r, &rc->c.total_uncompressed_size)))
	FIELD(7, "total_compressed_size", T_I64, READ(t_i64(r, &rc->c.total_compressed_size)); rc->has_sizes = true)
	FIELD(9, "data_page_offset", T_I64, READ(t_i64(r, &rc->c.data_page_offset)); rc->has_data_offset = true)
	FIELD(11, "dictionary_page_offset", T_I64, READ(t_i64(r, &rc->c.dictionary_page_offset)))
	STRUCT_END(r)
	if (!(rc->has_type && rc->has_codec && rc->has_num_values && rc->has_sizes && rc->has_data_offset && rc->path))
		return pq_fail(r->cx, "a column chunk's metadata lacks a required field");
	rc->has_meta = true;
	return true;
}

static bool
read_column_chunk(TReader *r, RawChunk *rc)
{
	char	   *file_path = NULL;
	int64_t		file_offset;

	STRUCT_BEGIN(r)
	FIELD(1, "file_path", T_BINARY, READ(t_string(r, &file_path)))
	FIELD(2, "file_offset", T_I64, READ(t_i64(r, &file_offset)))
	FIELD(3, "meta_data", T_STRUCT, READ(read_column_meta(r, rc)))
	STRUCT_END(r)
	rc->c.external = file_path != NULL && file_path[0] != '\0';
	if (!rc->has_meta && !rc->c.external)
		return pq_fail(r->cx, "a column chunk has no metadata");
	return true;
}

typedef struct RawRowGroup
{
	int64_t		num_rows;
	bool		has_num_rows;
	RawChunk   *chunks;
	uint32_t	num_chunks;
} RawRowGroup;

static bool
read_row_group(TReader *r, RawRowGroup *g)
{
	int			et;
	uint32_t	n;
	int64_t		ignored;

	STRUCT_BEGIN(r)
	FIELD(1, "columns", T_LIST,
		  READ(t_list(r, &et, &n));
		  if (et != T_STRUCT) return pq_fail(r->cx, "a row group's columns are not structs");
		  if (n > PQ_MAX_COLUMNS) return pq_fail(r->cx, "a row group has %u columns (at most %d are read)", n, PQ_MAX_COLUMNS);
		  if ((g->chunks = pq_alloc(r->cx, sizeof(RawChunk) * (n ? n : 1))) == NULL) return false;
		  for (uint32_t i = 0; i < n; i++) READ(read_column_chunk(r, &g->chunks[i]));
		  g->num_chunks = n)
	FIELD(2, "total_byte_size", T_I64, READ(t_i64(r, &ignored)))
	FIELD(3, "num_rows", T_I64, READ(t_i64(r, &g->num_rows)); g->has_num_rows = true)
	STRUCT_END(r)
	if (g->chunks == NULL || !g->has_num_rows)
		return pq_fail(r->cx, "a row group lacks its columns or its row count");
	if (g->num_rows < 0)
		return pq_fail(r->cx, "a row group has %lld rows", (long long) g->num_rows);
	return true;
}

/* --- FileMetaData ------------------------------------------------------------------- */

typedef struct RawFile
{
	PqSchemaNode *elements;
	uint32_t	num_elements;
	RawRowGroup *groups;
	uint32_t	num_groups;
	bool		has_version,
				has_num_rows;
} RawFile;

static bool
read_file_meta(TReader *r, PqFile *f, RawFile *raw)
{
	int			et;
	uint32_t	n;

	STRUCT_BEGIN(r)
	FIELD(1, "version", T_I32, READ(t_i32(r, &f->version)); raw->has_version = true)
	FIELD(2, "schema", T_LIST,
		  READ(t_list(r, &et, &n));
		  if (et != T_STRUCT) return pq_fail(r->cx, "the schema is not a list of structs");
		  if (n > PQ_MAX_COLUMNS * 2) return pq_fail(r->cx, "the schema has %u elements", n);
		  if ((raw->elements = pq_alloc(r->cx, sizeof(PqSchemaNode) * (n ? n : 1))) == NULL) return false;
		  for (uint32_t i = 0; i < n; i++) READ(read_schema_element(r, &raw->elements[i]));
		  raw->num_elements = n)
	FIELD(3, "num_rows", T_I64, READ(t_i64(r, &f->num_rows)); raw->has_num_rows = true)
	FIELD(4, "row_groups", T_LIST,
		  READ(t_list(r, &et, &n));
		  if (et != T_STRUCT) return pq_fail(r->cx, "the row groups are not a list of structs");
		  if (n > PQ_MAX_ROW_GROUPS) return pq_fail(r->cx, "the file has %u row groups", n);
		  if ((raw->groups = pq_alloc(r->cx, sizeof(RawRowGroup) * (n ? n : 1))) == NULL) return false;
		  for (uint32_t i = 0; i < n; i++) READ(read_row_group(r, &raw->groups[i]));
		  raw->num_groups = n)
	FIELD(6, "created_by", T_BINARY, READ(t_string(r, &f->created_by)))
	STRUCT_END(r)
	if (!raw->has_version || raw->elements == NULL || !raw->has_num_rows || raw->groups == NULL)
		return pq_fail(r->cx, "the file metadata lacks a required field (version, schema, num_rows or row_groups)");
	return true;
}

/* --- the schema tree -------------------------------------------------------------------- */

typedef struct SchemaBuild
{
	PqContext  *cx;
	RawFile    *raw;
	uint32_t	next;			/* next flat element */
	PqFile	   *f;
	int			num_leaves;
} SchemaBuild;

static void
apply_converted_type(PqSchemaNode *n)
{
	if (n->logical != PQ_LOGICAL_NONE || n->converted_type < 0)
	{
		if (n->converted_type == 1 || n->converted_type == 2)
			n->is_map = true;
		if (n->converted_type == 3)
			n->is_list = true;
		return;
	}
	/* LogicalTypes.md, backward compatibility: what each converted type means */
	switch (n->converted_type)
	{
		case 0:					/* UTF8 */
		case 4:					/* ENUM */
		case 19:				/* JSON */
			n->logical = PQ_LOGICAL_STRING;
			break;
		case 1:					/* MAP */
		case 2:					/* MAP_KEY_VALUE */
			n->is_map = true;
			break;
		case 3:
			n->is_list = true;
			break;
		case 5:
			n->logical = PQ_LOGICAL_DECIMAL;
			break;
		case 6:
			n->logical = PQ_LOGICAL_DATE;
			break;
		case 7:
		case 8:
			n->logical = PQ_LOGICAL_TIME;
			n->time_unit = n->converted_type == 7 ? PQ_UNIT_MILLIS : PQ_UNIT_MICROS;
			n->adjusted_to_utc = true;
			break;
		case 9:
		case 10:
			n->logical = PQ_LOGICAL_TIMESTAMP;
			n->time_unit = n->converted_type == 9 ? PQ_UNIT_MILLIS : PQ_UNIT_MICROS;
			n->adjusted_to_utc = true;
			break;
		case 11: case 12: case 13: case 14: case 15: case 16: case 17: case 18:
			n->logical = PQ_LOGICAL_INTEGER;
			n->int_signed = n->converted_type >= 15;
			n->int_bit_width = 8 << ((n->converted_type - 11) % 4);
			break;
		default:
			n->logical = PQ_LOGICAL_OTHER;
			break;
	}
}

static bool
build_node(SchemaBuild *b, PqSchemaNode *n, PqSchemaNode *parent, int depth, int def, int rep)
{
	PqContext  *cx = b->cx;

	if (depth > PQ_MAX_SCHEMA_DEPTH)
		return pq_fail(cx, "the schema nests deeper than %d", PQ_MAX_SCHEMA_DEPTH);
	n->parent = parent;
	apply_converted_type(n);
	if (parent != NULL)
	{
		def += n->repetition != PQ_REQUIRED;
		rep += n->repetition == PQ_REPEATED;
	}
	n->def_level = def;
	if (n->num_children == 0)
	{
		if (parent == NULL)
			return pq_fail(cx, "the schema has no columns");
		if (!n->has_type)
			return pq_fail(cx, "column \"%s\" has no physical type", n->name);
		if (n->type == PQ_FIXED_LEN_BYTE_ARRAY && (n->type_length <= 0 || n->type_length > 1024 * 1024))
			return pq_fail(cx, "column \"%s\" is FIXED_LEN_BYTE_ARRAY of length %d", n->name, n->type_length);
		if (n->logical == PQ_LOGICAL_DECIMAL && (n->precision <= 0 || n->scale < 0 || n->scale > n->precision))
			return pq_fail(cx, "column \"%s\" is DECIMAL(%d, %d)", n->name, n->precision, n->scale);
		if (b->num_leaves >= PQ_MAX_COLUMNS)
			return pq_fail(cx, "the file has more than %d columns", PQ_MAX_COLUMNS);
		n->column = b->num_leaves;
		n->max_def = def;
		n->max_rep = rep;
		b->f->leaves[b->num_leaves++] = n;
		return true;
	}
	if ((uint32_t) n->num_children > b->raw->num_elements - b->next)
		return pq_fail(cx, "schema element \"%s\" claims %d children, more than the schema holds", n->name, n->num_children);
	if ((n->children = pq_alloc(cx, sizeof(PqSchemaNode *) * n->num_children)) == NULL)
		return false;
	for (int i = 0; i < n->num_children; i++)
	{
		/* (checked per child too: a child's own children use up elements its siblings were counted on) */
		if (b->next >= b->raw->num_elements)
			return pq_fail(cx, "schema element \"%s\" claims %d children, more than the schema holds", n->name, n->num_children);
		n->children[i] = &b->raw->elements[b->next++];
		if (!build_node(b, n->children[i], n, depth + 1, def, rep))
			return false;
	}
	return true;
}

const char *
pq_column_path(PqContext *cx, const PqSchemaNode *leaf)
{
	size_t		len = 0;
	char	   *out;
	const PqSchemaNode *n;

	for (n = leaf; n && n->parent; n = n->parent)
		len += strlen(n->name) + (n == leaf ? 0 : 1);	/* names joined by dots */
	if ((out = cx->alloc(cx->alloc_state, len + 1)) == NULL)
		return leaf->name;
	out[len] = '\0';
	for (n = leaf; n && n->parent; n = n->parent)
	{
		size_t		l = strlen(n->name);

		len -= l;
		memcpy(out + len, n->name, l);
		if (len > 0)
			out[--len] = '.';
	}
	return out;
}

static bool
path_matches(const PqSchemaNode *leaf, char **path, uint32_t path_len)
{
	const PqSchemaNode *n = leaf;

	for (uint32_t i = path_len; i > 0; i--, n = n->parent)
		if (n == NULL || n->parent == NULL || strcmp(n->name, path[i - 1]) != 0)
			return false;
	return n != NULL && n->parent == NULL;
}

/* --- entry points --------------------------------------------------------------------- */

/* The metadata's length from the file's last 8 bytes, or -1 with an error. */
static int64_t
pq_footer_length(PqContext *cx, const uint8_t *tail8, int64_t file_size)
{
	uint32_t	len = (uint32_t) tail8[0] | (uint32_t) tail8[1] << 8 | (uint32_t) tail8[2] << 16 | (uint32_t) tail8[3] << 24;

	if (memcmp(tail8 + 4, "PARE", 4) == 0)
		pq_fail(cx, "the file is an encrypted Parquet file (footer magic PARE), which is not supported");
	else if (memcmp(tail8 + 4, "PAR1", 4) != 0)
		pq_fail(cx, "the file does not end with the Parquet magic \"PAR1\" (truncated, or not Parquet)");
	else if (len == 0 || (int64_t) len > file_size - 12)
		pq_fail(cx, "the footer says the metadata is %u bytes, but the file has %lld", len, (long long) file_size);
	else if (len > PQ_MAX_FOOTER_BYTES)
		pq_fail(cx, "the metadata is %u bytes (at most %d are read)", len, PQ_MAX_FOOTER_BYTES);
	else
		return len;
	return -1;
}

/* FileMetaData (the `len` bytes before the footer), checked against the file's size. */
static bool
pq_read_metadata(PqContext *cx, const uint8_t *buf, size_t len, int64_t file_size, PqFile *out)
{
	TReader		r = {cx, buf, buf + len, 0, false, "file metadata"};
	RawFile		raw = {0};
	SchemaBuild b = {cx, &raw, 1, out, 0};
	int64_t		rows = 0;
	int64_t		data_end = file_size - 8 - (int64_t) len;

	memset(out, 0, sizeof(*out));
	if (!read_file_meta(&r, out, &raw))
		return false;
	if (raw.num_elements < 2)
		return pq_fail(cx, "the schema has no columns");
	out->root = &raw.elements[0];
	if ((out->leaves = pq_alloc(cx, sizeof(PqSchemaNode *) * raw.num_elements)) == NULL)
		return false;
	if (!build_node(&b, out->root, NULL, 0, 0, 0))
		return false;
	if (b.next != raw.num_elements)
		return pq_fail(cx, "the schema has %u elements but its tree holds %u", raw.num_elements, b.next);
	out->num_columns = b.num_leaves;
	if (out->num_rows < 0)
		return pq_fail(cx, "the file says it has %lld rows", (long long) out->num_rows);

	out->num_row_groups = (int) raw.num_groups;
	if ((out->row_groups = pq_alloc(cx, sizeof(PqRowGroup) * (raw.num_groups ? raw.num_groups : 1))) == NULL)
		return false;
	for (uint32_t g = 0; g < raw.num_groups; g++)
	{
		RawRowGroup *rg = &raw.groups[g];
		PqRowGroup *pg = &out->row_groups[g];

		if (rg->num_chunks != (uint32_t) out->num_columns)
			return pq_fail(cx, "row group %u has %u column chunks, the schema %d columns", g, rg->num_chunks, out->num_columns);
		if (rg->num_rows > INT64_MAX - rows)
			return pq_fail(cx, "the row groups' row counts overflow");
		rows += rg->num_rows;
		pg->num_rows = rg->num_rows;
		if ((pg->columns = pq_alloc(cx, sizeof(PqColumnChunk) * out->num_columns)) == NULL)
			return false;
		for (int c = 0; c < out->num_columns; c++)
		{
			RawChunk   *rc = &rg->chunks[c];
			PqColumnChunk *cc = &pg->columns[c];
			const PqSchemaNode *leaf = out->leaves[c];
			int64_t		dict = rc->c.dictionary_page_offset;

			if (rc->c.external)
				return pq_fail(cx, "row group %u, column %s: its data is in another file, which is not supported", g,
							   pq_column_path(cx, leaf));
			*cc = rc->c;
			if (cc->type != leaf->type)
				return pq_fail(cx, "row group %u, column %s: the chunk says %s, the schema %s", g, pq_column_path(cx, leaf),
							   pq_type_name(cc->type), pq_type_name(leaf->type));
			if (!path_matches(leaf, rc->path, rc->path_len))
				return pq_fail(cx, "row group %u, column %d: the chunk's path is not the schema's %s", g, c, pq_column_path(cx, leaf));
			/* some writers put 0 for "no dictionary"; a dictionary page comes before the data pages */
			if (dict <= 0 || dict >= cc->data_page_offset)
				cc->dictionary_page_offset = -1;
			cc->start = cc->dictionary_page_offset >= 0 ? cc->dictionary_page_offset : cc->data_page_offset;
			if (cc->start < 4 || cc->total_compressed_size <= 0 || cc->num_values < 0 ||
				cc->total_compressed_size > data_end - cc->start)
				return pq_fail(cx, "row group %u, column %s: the chunk's offset %lld and size %lld lie outside the file's data",
							   g, pq_column_path(cx, leaf), (long long) cc->start, (long long) cc->total_compressed_size);
			if (cc->num_values < rg->num_rows && leaf->max_rep == 0)
				return pq_fail(cx, "row group %u, column %s: %lld values for %lld rows", g, pq_column_path(cx, leaf),
							   (long long) cc->num_values, (long long) rg->num_rows);
		}
	}
	if (rows != out->num_rows)
		return pq_fail(cx, "the file says %lld rows, its row groups hold %lld", (long long) out->num_rows, (long long) rows);
	return true;
}

bool
pq_open(PqContext *cx, PqReadFn read, void *read_state, int64_t file_size, PqFile *out)
{
	uint8_t		magic[4];
	uint8_t		tail[8];
	uint8_t    *meta;
	int64_t		len;

	if (file_size < 12)
		return pq_fail(cx, "the file has %lld bytes, fewer than a Parquet file's magic and footer", (long long) file_size);
	if (!read(cx, read_state, 0, 4, magic))
		return false;
	if (memcmp(magic, "PAR1", 4) != 0)
		return pq_fail(cx, "the file does not start with the Parquet magic \"PAR1\"");
	if (!read(cx, read_state, file_size - 8, 8, tail) || (len = pq_footer_length(cx, tail, file_size)) < 0)
		return false;
	if ((meta = pq_alloc(cx, (size_t) len)) == NULL || !read(cx, read_state, file_size - 8 - len, (size_t) len, meta))
		return false;
	return pq_read_metadata(cx, meta, (size_t) len, file_size, out);
}

/* --- page headers ------------------------------------------------------------------ */

static bool
read_encoding(TReader *r, PqEncoding *out)
{
	int32_t		v;

	READ(t_i32(r, &v));
	if (v < 0)
		return pq_fail(r->cx, "a page has encoding %d", v);
	/*
	 * 1 is GROUP_VAR_INT, never written (parquet.thrift); 10 is ALP, the
	 * newest encoding of parquet.thrift (for FLOAT and DOUBLE), which this
	 * reader leaves out; above, encodings added after it.
	 */
	if (v == 10)
		return pq_fail(r->cx, "a page is encoded ALP, which is not supported");
	if (v > PQ_ENC_BYTE_STREAM_SPLIT || v == 1)
		return pq_fail(r->cx, "a page has encoding %d, which this reader does not know: not supported", v);
	*out = (PqEncoding) v;
	return true;
}

static bool
read_page_header(TReader *r, PqPageHeader *h)
{
	int32_t		v;
	bool		has_type = false,
				has_sizes = false,
				has_sub = false;

	h->is_compressed = true;	/* DataPageHeaderV2.is_compressed defaults to true */
	STRUCT_BEGIN(r)
	FIELD(1, "type", T_I32,
		  READ(t_i32(r, &v));
		  if (v < PQ_PAGE_DATA || v > PQ_PAGE_DATA_V2) return pq_fail(r->cx, "a page has unknown type %d", v);
		  h->type = (PqPageType) v; has_type = true)
	FIELD(2, "uncompressed_page_size", T_I32, READ(t_i32(r, &h->uncompressed_size)))
	FIELD(3, "compressed_page_size", T_I32, READ(t_i32(r, &h->compressed_size)); has_sizes = true)
	FIELD(5, "data_page_header", T_STRUCT,
		  {
			  STRUCT_BEGIN(r)
			  FIELD(1, "num_values", T_I32, READ(t_i32(r, &h->num_values)); has_sub = true)
			  FIELD(2, "encoding", T_I32, READ(read_encoding(r, &h->encoding)))
			  FIELD(3, "definition_level_encoding", T_I32, READ(read_encoding(r, &h->def_encoding)))
			  FIELD(4, "repetition_level_encoding", T_I32, READ(read_encoding(r, &h->rep_encoding)))
			  STRUCT_END(r)
		  })
	FIELD(7, "dictionary_page_header", T_STRUCT,
		  {
			  STRUCT_BEGIN(r)
			  FIELD(1, "num_values", T_I32, READ(t_i32(r, &h->num_values)); has_sub = true)
			  FIELD(2, "encoding", T_I32, READ(read_encoding(r, &h->encoding)))
			  STRUCT_END(r)
		  })
	FIELD(8, "data_page_header_v2", T_STRUCT,
		  {
			  STRUCT_BEGIN(r)
			  FIELD(1, "num_values", T_I32, READ(t_i32(r, &h->num_values)); has_sub = true)
			  FIELD(2, "num_nulls", T_I32, READ(t_i32(r, &h->num_nulls)))
			  FIELD(3, "num_rows", T_I32, READ(t_i32(r, &h->num_rows)))
			  FIELD(4, "encoding", T_I32, READ(read_encoding(r, &h->encoding)))
			  FIELD(5, "definition_levels_byte_length", T_I32, READ(t_i32(r, &h->def_levels_length)))
			  FIELD(6, "repetition_levels_byte_length", T_I32, READ(t_i32(r, &h->rep_levels_length)))
			  FIELD(7, "is_compressed", T_TRUE, h->is_compressed = (type_ == T_TRUE))
			  STRUCT_END(r)
		  })
	STRUCT_END(r)
	if (!has_type || !has_sizes)
		return pq_fail(r->cx, "a page header lacks its type or size");
	if (h->compressed_size < 0 || h->uncompressed_size < 0 ||
		h->compressed_size > PQ_MAX_PAGE_BYTES || h->uncompressed_size > PQ_MAX_PAGE_BYTES)
		return pq_fail(r->cx, "a page says it is %d bytes (%d uncompressed; at most %d are read)",
					   h->compressed_size, h->uncompressed_size, PQ_MAX_PAGE_BYTES);
	if (h->type != PQ_PAGE_INDEX && (!has_sub || h->num_values < 0))
		return pq_fail(r->cx, "a %s page header lacks its own header", h->type == PQ_PAGE_DICTIONARY ? "dictionary" : "data");
	if (h->type == PQ_PAGE_DATA_V2 &&
		(h->def_levels_length < 0 || h->rep_levels_length < 0 ||
		 (int64_t) h->def_levels_length + h->rep_levels_length > h->compressed_size ||
		 h->num_nulls < 0 || h->num_nulls > h->num_values || h->num_rows < 0))
		return pq_fail(r->cx, "a v2 data page's level lengths or counts do not fit the page");
	return true;
}

bool
pq_read_page_header(PqContext *cx, const uint8_t *buf, size_t len, PqPageHeader *out, bool *need_more)
{
	TReader		r = {cx, buf, buf + len, 0, false, "page header"};

	memset(out, 0, sizeof(*out));
	*need_more = false;
	if (!read_page_header(&r, out))
	{
		*need_more = r.truncated;
		return false;
	}
	out->header_length = (size_t) (r.p - buf);
	return true;
}

/* --- names ------------------------------------------------------------------------- */

const char *
pq_type_name(PqPhysicalType t)
{
	static const char *const names[] = {"BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY",
	"FIXED_LEN_BYTE_ARRAY"};

	return (unsigned) t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

const char *
pq_codec_name(PqCodec c)
{
	static const char *const names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};

	return (unsigned) c < sizeof(names) / sizeof(names[0]) ? names[c] : "unknown";
}

const char *
pq_encoding_name(PqEncoding e)
{
	static const char *const names[] = {"PLAIN", "GROUP_VAR_INT", "PLAIN_DICTIONARY", "RLE", "BIT_PACKED",
		"DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY", "RLE_DICTIONARY",
	"BYTE_STREAM_SPLIT"};

	return (unsigned) e < sizeof(names) / sizeof(names[0]) ? names[e] : "unknown";
}
