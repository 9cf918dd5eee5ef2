/*
 * parquet_rows.c — a Parquet file's rows as CSV text, so Parquet goes
 * through the same column mapping, COPY parser, typed table and swap as
 * AWS's CSV deliveries (see billops_parquet.h).  Plain C.
 *
 * Each top-level field is one CSV column:
 *   * a leaf (max repetition 0): its value, or empty when NULL;
 *   * a MAP group (MAP / MAP_KEY_VALUE, or a repeated group of key and
 *     value, LogicalTypes.md "Maps"): a JSON object of strings, the way
 *     CUR 2.0's CSV writes `product`, `resource_tags` and the other maps.
 *     A map of numbers (the data dictionary types `discount` as
 *     map<string,double>) has its values written as strings too: how AWS's
 *     CSV writes those is not documented, and the loader keeps every map's
 *     values as text (Athena's map<string,string> does), so a month loads
 *     the same from either format;
 *   * a LIST (3-level, or the legacy repeated leaf): a JSON array.
 * Other nesting (structs) is refused, naming the field.
 *
 * Records are rebuilt from (repetition, definition) levels as the README's
 * "Nested Encoding" describes: repetition 0 starts a row; a definition
 * below the map's (or list's) own level is NULL, equal to it is empty,
 * above it is an entry.
 *
 * Values as text: integers in decimal (unsigned where the INTEGER type says
 * so); DECIMAL scaled from its two's-complement unscaled integer (any
 * width); FLOAT/DOUBLE in the fewest digits that read back to the same
 * number; TIMESTAMP (millis, micros, nanos; INT96) as
 * YYYY-MM-DDTHH:MM:SS.fffZ with the fraction digits of its unit, in UTC
 * whether or not the writer marked it adjusted to UTC (CUR's times are
 * UTC); DATE as YYYY-MM-DD; TIME as HH:MM:SS.ffffff; BOOLEAN true/false.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billops_parquet.h"

typedef struct Cursor
{
	const PqSchemaNode *leaf;
	const char *path;			/* "a.b.c", for messages */
	const PqColumnChunk *cc;
	int64_t		pos;			/* next page's offset in the file */
	int64_t		end;
	PqContext  *page_cx;		/* reset per page */
	PqContext  *chunk_cx;		/* the dictionary; reset per chunk */
	PqChunkState st;
	PqPage		page;
	bool		have_page;
	int32_t		i;				/* next level entry of the page */
	int32_t		vi;				/* next value of the page */
	int64_t		levels_read;
} Cursor;

typedef enum FieldKind
{
	FIELD_FLAT, FIELD_MAP, FIELD_LIST
} FieldKind;

typedef struct Field
{
	const PqSchemaNode *node;
	FieldKind	kind;
	Cursor	   *a;				/* the leaf, the map's key, the list's element */
	Cursor	   *b;				/* the map's value, or NULL */
} Field;

struct PqRowReader
{
	PqContext  *cx;
	const PqFile *f;
	PqReadFn	read;
	void	   *read_state;
	Cursor	   *cursors;		/* one per leaf */
	Field	   *fields;
	int			num_fields;
	PqContext  *row_cx;			/* a row's nested fields as they are built; reset per row */
	int			row_group;		/* -1 before the first */
	int64_t		rows_left;
	const char *column;			/* for messages */
};

/* --- text helpers ------------------------------------------------------------------ */

typedef struct Out
{
	PqEmitFn	emit;
	void	   *state;
} Out;

static void
put(Out *o, const char *s, size_t n)
{
	if (n)
		o->emit(o->state, s, n);
}

static void
puts_(Out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void
civil(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t		z = days + 719468;
	int64_t		era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t		doe = z - era * 146097;
	int64_t		yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t		doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t		mp = (5 * doy + 2) / 153;

	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/*
 * a = q * b + r with 0 <= r < b (b > 0), without overflow for any a: the
 * quotient and remainder C gives, moved down by one for negative a.
 * (q * b itself may not be representable near INT64_MIN: the fuzzer found
 * "a - floor(a / b) * b" overflowing there.)
 */
static void
floor_divmod(int64_t a, int64_t b, int64_t *q, int64_t *r)
{
	*q = a / b;
	*r = a % b;
	if (*r < 0)
	{
		*r += b;
		*q -= 1;
	}
}

/* n decimal digits of v (v >= 0), zero-padded, at p; returns the end */
static char *
put_digits(char *p, int64_t v, int n)
{
	for (int k = n - 1; k >= 0; k--)
	{
		p[k] = (char) ('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

/* extra_days days and t `per_second` units after the epoch, as ISO 8601 UTC with `digits` of fraction. */
static void
put_timestamp(Out *o, int64_t extra_days, int64_t t, int64_t per_second, int digits)
{
	char		buf[80];
	char	   *p = buf;
	int64_t		secs,
				frac,
				days,
				sod;
	int64_t		y;
	int			m,
				d;

	floor_divmod(t, per_second, &secs, &frac);
	floor_divmod(secs, 86400, &days, &sod);
	days += extra_days;
	civil(days, &y, &m, &d);
	/* digits by hand for the common years (a timestamp is in most CUR rows, several times) */
	if (y < 0 || y > 9999)
		p += snprintf(buf, sizeof(buf), "%04" PRId64, y);
	else
		p = put_digits(p, y, 4);
	*p++ = '-';
	p = put_digits(p, m, 2);
	*p++ = '-';
	p = put_digits(p, d, 2);
	*p++ = 'T';
	p = put_digits(p, sod / 3600, 2);
	*p++ = ':';
	p = put_digits(p, sod / 60 % 60, 2);
	*p++ = ':';
	p = put_digits(p, sod % 60, 2);
	if (digits)
	{
		*p++ = '.';
		p = put_digits(p, frac, digits);
	}
	*p++ = 'Z';
	put(o, buf, (size_t) (p - buf));
}

/*
 * Fewest significant digits that read back to the same double (or float).
 * The search starts at 15 digits (6 for a float): when a value's shortest
 * form has d <= 15 digits, the value lies within half an ulp (2^-53,
 * relative) of it, far inside half a step of the 15-digit grid (5e-16,
 * relative), so rounding to 15 digits gives that same form, and %g drops
 * the trailing zeros.  Only values that need 16 or 17 digits cost more
 * than one try.
 */
static void
put_float(Out *o, double v, bool is_float)
{
	char		buf[40];

	if (isnan(v))
	{
		puts_(o, "NaN");
		return;
	}
	if (isinf(v))
	{
		puts_(o, v > 0 ? "Infinity" : "-Infinity");
		return;
	}
	for (int p = is_float ? 6 : 15; p <= (is_float ? 9 : 17); p++)
	{
		snprintf(buf, sizeof(buf), "%.*g", p, v);
		if (is_float ? (float) strtod(buf, NULL) == (float) v : strtod(buf, NULL) == v)
			break;
	}
	puts_(o, buf);
}

/* A big-endian two's-complement integer of n bytes, scaled by `scale`, as decimal text. */
static void
put_decimal_bytes(Out *o, const uint8_t *b, size_t n, int scale)
{
	uint32_t	limbs[140];		/* base 10^9, little end first: 1024 bytes of input at most */
	int			nl = 0;
	bool		neg = n > 0 && (b[0] & 0x80);
	char		digits[1300];
	int			nd = 0;

	if (n > 512)
	{
		puts_(o, "NaN");		/* wider than any DECIMAL a writer emits; refused upstream */
		return;
	}
	for (size_t i = 0; i < n; i++)
	{
		uint64_t	carry = neg ? (uint8_t) ~b[i] : b[i];

		for (int k = 0; k < nl; k++)
		{
			uint64_t	v = (uint64_t) limbs[k] * 256 + carry;

			limbs[k] = (uint32_t) (v % 1000000000u);
			carry = v / 1000000000u;
		}
		while (carry)
		{
			limbs[nl++] = (uint32_t) (carry % 1000000000u);
			carry /= 1000000000u;
		}
	}
	if (neg)					/* magnitude = ~x + 1 */
	{
		uint64_t	carry = 1;

		for (int k = 0; k < nl && carry; k++)
		{
			uint64_t	v = (uint64_t) limbs[k] + carry;

			limbs[k] = (uint32_t) (v % 1000000000u);
			carry = v / 1000000000u;
		}
		if (carry)
			limbs[nl++] = (uint32_t) carry;
	}
	for (int k = 0; k < nl; k++)
		for (int j = 0; j < 9; j++)
		{
			digits[nd++] = (char) ('0' + limbs[k] % 10);
			limbs[k] /= 10;
		}
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	while (nd <= scale)
		digits[nd++] = '0';
	if (neg)
		puts_(o, "-");
	for (int k = nd - 1; k >= 0; k--)
	{
		char		c = digits[k];

		put(o, &c, 1);
		if (k == scale && scale > 0)
			puts_(o, ".");
	}
}

static void
put_decimal_int(Out *o, int64_t v, int scale)
{
	uint8_t		b[8];

	for (int k = 0; k < 8; k++)
		b[k] = (uint8_t) ((uint64_t) v >> (8 * (7 - k)));
	put_decimal_bytes(o, b, 8, scale);
}

static int64_t
le64(const uint8_t *b)
{
	uint64_t	v = 0;

	for (int k = 7; k >= 0; k--)
		v = v << 8 | b[k];
	return (int64_t) v;
}

static int32_t
le32(const uint8_t *b)
{
	return (int32_t) ((uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24);
}

/* JSON string contents (without quotes): ", \ and control characters escaped */
static void
put_json_escaped(Out *o, const uint8_t *s, size_t n)
{
	size_t		start = 0;

	for (size_t i = 0; i < n; i++)
		if (s[i] == '"' || s[i] == '\\' || s[i] < 0x20)
		{
			char		esc[8];

			put(o, (const char *) s + start, i - start);
			snprintf(esc, sizeof(esc), s[i] == '"' ? "\\\"" : s[i] == '\\' ? "\\\\" : "\\u%04x", s[i]);
			puts_(o, esc);
			start = i + 1;
		}
	put(o, (const char *) s + start, n - start);
}

/* One value as text; `json`: as a JSON value (strings quoted and escaped). */
static void
put_value(Out *o, const PqSchemaNode *leaf, const PqValues *v, int32_t i, bool json)
{
	const uint8_t *b = v->fixed ? v->fixed + (size_t) i * v->width : NULL;
	char		buf[64];
	bool		quoted = json && (leaf->type == PQ_BYTE_ARRAY || leaf->logical == PQ_LOGICAL_TIMESTAMP ||
								  leaf->logical == PQ_LOGICAL_DATE || leaf->logical == PQ_LOGICAL_TIME ||
								  leaf->type == PQ_INT96 ||
								  (leaf->type == PQ_FIXED_LEN_BYTE_ARRAY && leaf->logical != PQ_LOGICAL_DECIMAL));

	if (quoted)
		puts_(o, "\"");
	if (leaf->logical == PQ_LOGICAL_DECIMAL)
	{
		if (leaf->type == PQ_INT32)
			put_decimal_int(o, le32(b), leaf->scale);
		else if (leaf->type == PQ_INT64)
			put_decimal_int(o, le64(b), leaf->scale);
		else if (leaf->type == PQ_BYTE_ARRAY)
			put_decimal_bytes(o, v->ptr[i], v->len[i], leaf->scale);
		else
			put_decimal_bytes(o, b, (size_t) v->width, leaf->scale);
	}
	else if (leaf->type == PQ_BYTE_ARRAY)
	{
		if (json)
			put_json_escaped(o, v->ptr[i], v->len[i]);
		else
			put(o, (const char *) v->ptr[i], v->len[i]);
	}
	else if (leaf->type == PQ_INT96)
	{
		/* nanoseconds of the day, then the Julian day (2440588 is 1970-01-01); kept apart, as their sum can overflow */
		int64_t		nanos = le64(b);
		int64_t		day = (int64_t) le32(b + 8) - 2440588;

		put_timestamp(o, day, nanos, INT64_C(1000000000), 9);
	}
	else if (leaf->logical == PQ_LOGICAL_TIMESTAMP || leaf->logical == PQ_LOGICAL_TIME)
	{
		int64_t		t = leaf->type == PQ_INT32 ? le32(b) : le64(b);
		int64_t		per = leaf->time_unit == PQ_UNIT_MILLIS ? 1000 : leaf->time_unit == PQ_UNIT_MICROS ? 1000000 : 1000000000;
		int			digits = leaf->time_unit == PQ_UNIT_MILLIS ? 3 : leaf->time_unit == PQ_UNIT_MICROS ? 6 : 9;

		if (leaf->logical == PQ_LOGICAL_TIMESTAMP)
			put_timestamp(o, 0, t, per, digits);
		else
		{
			int64_t		s,
						frac;

			floor_divmod(t, per, &s, &frac);
			snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%0*" PRId64, (int) (s / 3600), (int) (s / 60 % 60), (int) (s % 60),
					 digits, frac);
			puts_(o, buf);
		}
	}
	else if (leaf->logical == PQ_LOGICAL_DATE)
	{
		int64_t		y;
		int			m,
					d;

		civil(le32(b), &y, &m, &d);
		snprintf(buf, sizeof(buf), "%04" PRId64 "-%02d-%02d", y, m, d);
		puts_(o, buf);
	}
	else
		switch (leaf->type)
		{
			case PQ_BOOLEAN:
				puts_(o, b[0] ? "true" : "false");
				break;
			case PQ_INT32:
				if (leaf->logical == PQ_LOGICAL_INTEGER && !leaf->int_signed)
					snprintf(buf, sizeof(buf), "%" PRIu32, (uint32_t) le32(b));
				else
					snprintf(buf, sizeof(buf), "%" PRId32, le32(b));
				puts_(o, buf);
				break;
			case PQ_INT64:
				if (leaf->logical == PQ_LOGICAL_INTEGER && !leaf->int_signed)
					snprintf(buf, sizeof(buf), "%" PRIu64, (uint64_t) le64(b));
				else
					snprintf(buf, sizeof(buf), "%" PRId64, le64(b));
				puts_(o, buf);
				break;
			case PQ_FLOAT:
				{
					float		x;

					memcpy(&x, b, 4);
					put_float(o, x, true);
					break;
				}
			case PQ_DOUBLE:
				{
					double		x;

					memcpy(&x, b, 8);
					put_float(o, x, false);
					break;
				}
			default:			/* FIXED_LEN_BYTE_ARRAY without a decimal type (UUID, ...): hex */
				for (int32_t k = 0; k < v->width; k++)
				{
					snprintf(buf, sizeof(buf), "%02x", b[k]);
					puts_(o, buf);
				}
				break;
		}
	if (quoted)
		puts_(o, "\"");
}

/* A CSV field: quoted (quotes doubled) when it holds a comma, quote or line break. */
typedef struct FieldBuf
{
	char	   *data;
	size_t		len,
				cap;
	PqContext  *cx;
	bool		failed;
} FieldBuf;

static void
field_emit(void *state, const char *s, size_t n)
{
	FieldBuf   *f = state;

	if (f->failed)
		return;
	if (f->len + n > f->cap)
	{
		size_t		cap = f->cap ? f->cap * 2 : 256;
		char	   *d;

		while (cap < f->len + n)
			cap *= 2;
		if (cap > (size_t) PQ_MAX_PAGE_BYTES || (d = pq_alloc(f->cx, cap)) == NULL)
		{
			f->failed = true;
			return;
		}
		if (f->len)
			memcpy(d, f->data, f->len);
		f->data = d;
		f->cap = cap;
	}
	memcpy(f->data + f->len, s, n);
	f->len += n;
}

static void
put_csv_field(Out *o, const char *s, size_t n)
{
	bool		quote = false;

	for (size_t i = 0; i < n && !quote; i++)
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
	if (!quote)
	{
		put(o, s, n);
		return;
	}
	puts_(o, "\"");
	for (size_t i = 0, start = 0; i <= n; i++)
		if (i == n || s[i] == '"')
		{
			put(o, s + start, i - start);
			if (i < n)
				puts_(o, "\"\"");
			start = i + 1;
		}
	puts_(o, "\"");
}

/* --- cursors over a column chunk's pages ----------------------------------------------- */

static bool
load_page(PqRowReader *r, Cursor *c)
{
	PqContext  *cx = c->page_cx;
	PqPageHeader h;
	size_t		want = 256;
	uint8_t    *buf;
	bool		more = true,
				is_data = false;

	while (!is_data)
	{
		if (c->pos >= c->end)
			return pq_fail(r->cx, "row group %d, column %s: the chunk ends before its %lld values",
						   r->row_group, r->column, (long long) c->cc->num_values);
		if (cx->reset)
			cx->reset(cx->alloc_state);
		c->have_page = false;
		for (;;)
		{
			if ((int64_t) want > c->end - c->pos)
				want = (size_t) (c->end - c->pos);
			if ((buf = pq_alloc_uninit(cx, want)) == NULL || !r->read(cx, r->read_state, c->pos, want, buf))
				goto fail;
			if (pq_read_page_header(cx, buf, want, &h, &more))
				break;
			if (!more || (int64_t) want >= c->end - c->pos || want >= 16 * 1024 * 1024)
				goto fail;
			want *= 4;
		}
		if ((int64_t) h.header_length + h.compressed_size > c->end - c->pos)
		{
			pq_fail(cx, "a page runs past the column chunk");
			goto fail;
		}
		{
			/* a dictionary outlives its page: read and decode it in the chunk's context */
			PqContext  *body_cx = h.type == PQ_PAGE_DICTIONARY ? c->chunk_cx : cx;
			uint8_t    *body = pq_alloc_uninit(body_cx, (size_t) h.compressed_size);

			if (body == NULL ||
				!r->read(body_cx, r->read_state, c->pos + (int64_t) h.header_length, (size_t) h.compressed_size, body) ||
				!pq_decode_page(body_cx, &c->st, &h, body, &c->page, &is_data))
			{
				if (body_cx != cx)
					memcpy(cx->error, body_cx->error, sizeof(cx->error));
				goto fail;
			}
		}
		c->pos += (int64_t) h.header_length + h.compressed_size;
	}
	c->have_page = true;
	c->i = 0;
	c->vi = 0;
	c->levels_read += c->page.num_levels;
	if (c->levels_read > c->cc->num_values)
		return pq_fail(r->cx, "row group %d, column %s: the pages hold more values than the chunk's %lld",
					   r->row_group, r->column, (long long) c->cc->num_values);
	return true;

fail:
	return pq_fail(r->cx, "row group %d, column %s: %s", r->row_group, r->column, cx->error);
}

/* The next level entry: repetition, definition, and the value's index in the page when defined. */
static bool
next_entry(PqRowReader *r, Cursor *c, uint32_t *rep, uint32_t *def, int32_t *vi)
{
	while (!c->have_page || c->i >= c->page.num_levels)
		if (!load_page(r, c))
			return false;
	*rep = c->page.rep ? c->page.rep[c->i] : 0;
	*def = c->page.def ? c->page.def[c->i] : (uint32_t) c->leaf->max_def;
	*vi = -1;
	if (*def == (uint32_t) c->leaf->max_def)
	{
		if (c->vi >= c->page.values.count)
			return pq_fail(r->cx, "row group %d, column %s: more defined levels than values", r->row_group, r->column);
		*vi = c->vi++;
	}
	c->i++;
	return true;
}

/* The next entry's repetition level without taking it; 0 at the end of the chunk (a new row, or none). */
static bool
peek_rep(PqRowReader *r, Cursor *c, uint32_t *rep)
{
	if (c->have_page && c->i < c->page.num_levels)
	{
		*rep = c->page.rep ? c->page.rep[c->i] : 0;
		return true;
	}
	if (c->levels_read >= c->cc->num_values && c->pos >= c->end)
	{
		*rep = 0;
		return true;
	}
	if (!load_page(r, c))
		return false;
	return peek_rep(r, c, rep);
}

static bool
cursor_begin_chunk(PqRowReader *r, Cursor *c, const PqColumnChunk *cc)
{
	c->cc = cc;
	c->pos = cc->start;
	c->end = cc->start + cc->total_compressed_size;
	c->have_page = false;
	c->levels_read = 0;
	if (c->chunk_cx->reset)
		c->chunk_cx->reset(c->chunk_cx->alloc_state);
	if (c->page_cx->reset)
		c->page_cx->reset(c->page_cx->alloc_state);
	pq_chunk_begin(&c->st, c->leaf, cc->codec);
	return true;
}

/* --- the reader --------------------------------------------------------------------------- */

PqRowReader *
pq_rows_begin(PqContext *cx, const PqFile *f, PqReadFn read, void *read_state, PqContextFn make_context,
			  void *context_state)
{
	PqRowReader *r = pq_alloc(cx, sizeof(PqRowReader));
	const PqSchemaNode *root = f->root;

	if (r == NULL)
		return NULL;
	r->cx = cx;
	r->f = f;
	r->read = read;
	r->read_state = read_state;
	r->row_group = -1;
	r->column = "";
	if ((r->cursors = pq_alloc(cx, sizeof(Cursor) * (size_t) f->num_columns)) == NULL ||
		(r->fields = pq_alloc(cx, sizeof(Field) * (size_t) root->num_children)) == NULL)
		return NULL;
	for (int c = 0; c < f->num_columns; c++)
	{
		r->cursors[c].leaf = f->leaves[c];
		r->cursors[c].path = pq_column_path(cx, f->leaves[c]);
		if ((r->cursors[c].page_cx = make_context(context_state)) == NULL ||
			(r->cursors[c].chunk_cx = make_context(context_state)) == NULL)
		{
			pq_fail(cx, "no memory for the column readers");
			return NULL;
		}
	}
	if ((r->row_cx = make_context(context_state)) == NULL)
	{
		pq_fail(cx, "no memory for the row reader");
		return NULL;
	}
	for (int i = 0; i < root->num_children; i++)
	{
		const PqSchemaNode *n = root->children[i];
		Field	   *fl = &r->fields[r->num_fields++];

		fl->node = n;
		if (n->num_children == 0)
		{
			if (n->repetition == PQ_REPEATED)
			{
				/* a legacy list: a repeated leaf */
				fl->kind = FIELD_LIST;
			}
			else
				fl->kind = FIELD_FLAT;
			fl->a = &r->cursors[n->column];
			continue;
		}
		if (n->num_children == 1 && n->children[0]->repetition == PQ_REPEATED)
		{
			const PqSchemaNode *kv = n->children[0];

			if (kv->num_children == 0)
			{
				fl->kind = FIELD_LIST;	/* 2-level list: repeated leaf under the group */
				fl->a = &r->cursors[kv->column];
				continue;
			}
			if ((n->is_map || kv->num_children == 2) && !n->is_list &&
				kv->num_children >= 1 && kv->num_children <= 2 &&
				kv->children[0]->num_children == 0 && (kv->num_children == 1 || kv->children[1]->num_children == 0))
			{
				fl->kind = FIELD_MAP;
				fl->a = &r->cursors[kv->children[0]->column];
				fl->b = kv->num_children == 2 ? &r->cursors[kv->children[1]->column] : NULL;
				continue;
			}
			if (kv->num_children == 1 && kv->children[0]->num_children == 0)
			{
				fl->kind = FIELD_LIST;
				fl->a = &r->cursors[kv->children[0]->column];
				continue;
			}
		}
		pq_fail(cx, "field \"%s\" is a nested structure other than a map or a list, which is not supported", n->name);
		return NULL;
	}
	return r;
}

bool
pq_rows_header(PqRowReader *r, PqEmitFn emit, void *emit_state)
{
	Out			o = {emit, emit_state};

	for (int i = 0; i < r->num_fields; i++)
	{
		if (i)
			puts_(&o, ",");
		put_csv_field(&o, r->fields[i].node->name, strlen(r->fields[i].node->name));
	}
	puts_(&o, "\n");
	return true;
}

/* A map's or list's entries for this row, as JSON. */
static bool
put_nested(PqRowReader *r, Field *fl, Out *o)
{
	uint32_t	rep,
				def,
				rep2,
				def2,
				next;
	int32_t		vi,
				vi2;
	int			own = fl->node->def_level;	/* below: NULL; equal: empty; above: an entry */
	bool		first = true;

	if (fl->node->repetition == PQ_REPEATED)
		own--;					/* a legacy repeated leaf: no level of its own for "empty" */
	r->column = fl->a->path;
	if (!next_entry(r, fl->a, &rep, &def, &vi))
		return false;
	if (fl->b && !next_entry(r, fl->b, &rep2, &def2, &vi2))
		return false;
	if (rep != 0)
		return pq_fail(r->cx, "row group %d, column %s: a row starts with repetition level %u", r->row_group, r->column, rep);
	if ((int) def < own)
		return true;			/* NULL: an empty field */
	puts_(o, fl->kind == FIELD_MAP ? "{" : "[");
	for (;;)
	{
		if ((int) def > own)
		{
			if (!first)
				puts_(o, fl->kind == FIELD_MAP ? ", " : ", ");
			first = false;
			if (fl->kind == FIELD_MAP)
			{
				if (vi < 0)
					return pq_fail(r->cx, "row group %d, column %s: a map entry without its key", r->row_group, r->column);
				puts_(o, "\"");
				if (fl->a->leaf->type == PQ_BYTE_ARRAY)
					put_json_escaped(o, fl->a->page.values.ptr[vi], fl->a->page.values.len[vi]);
				else
				{
					Out			plain = *o;

					put_value(&plain, fl->a->leaf, &fl->a->page.values, vi, false);
				}
				puts_(o, "\": ");
				/* values as JSON strings whatever their type: see the top of the file */
				if (fl->b && vi2 >= 0 && fl->b->leaf->type == PQ_BYTE_ARRAY && fl->b->leaf->logical != PQ_LOGICAL_DECIMAL)
					put_value(o, fl->b->leaf, &fl->b->page.values, vi2, true);
				else if (fl->b && vi2 >= 0)
				{
					puts_(o, "\"");
					put_value(o, fl->b->leaf, &fl->b->page.values, vi2, false);
					puts_(o, "\"");
				}
				else
					puts_(o, "null");
			}
			else if (vi >= 0)
				put_value(o, fl->a->leaf, &fl->a->page.values, vi, true);
			else
				puts_(o, "null");
		}
		if (!peek_rep(r, fl->a, &next))
			return false;
		if (next == 0)
			break;
		if (!next_entry(r, fl->a, &rep, &def, &vi))
			return false;
		if (fl->b && !next_entry(r, fl->b, &rep2, &def2, &vi2))
			return false;
		if (fl->b && rep2 != rep)
			return pq_fail(r->cx, "row group %d, column %s: the map's keys and values disagree on its entries",
						   r->row_group, r->column);
	}
	puts_(o, fl->kind == FIELD_MAP ? "}" : "]");
	return true;
}

bool
pq_rows_next(PqRowReader *r, PqEmitFn emit, void *emit_state, bool *done)
{
	Out			o = {emit, emit_state};

	*done = false;
	while (r->rows_left == 0)
	{
		/* the previous row group must be used up exactly */
		for (int c = 0; r->row_group >= 0 && c < r->f->num_columns; c++)
		{
			Cursor	   *cur = &r->cursors[c];

			if (cur->levels_read != cur->cc->num_values || (cur->have_page && cur->i < cur->page.num_levels) || cur->pos < cur->end)
				return pq_fail(r->cx, "row group %d, column %s: values left over after the row group's %lld rows",
							   r->row_group, cur->path, (long long) r->f->row_groups[r->row_group].num_rows);
		}
		if (++r->row_group >= r->f->num_row_groups)
		{
			*done = true;
			return true;
		}
		r->rows_left = r->f->row_groups[r->row_group].num_rows;
		for (int c = 0; c < r->f->num_columns; c++)
			cursor_begin_chunk(r, &r->cursors[c], &r->f->row_groups[r->row_group].columns[c]);
	}
	if (r->row_cx->reset)
		r->row_cx->reset(r->row_cx->alloc_state);
	for (int i = 0; i < r->num_fields; i++)
	{
		Field	   *fl = &r->fields[i];

		if (i)
			puts_(&o, ",");
		if (fl->kind == FIELD_FLAT)
		{
			uint32_t	rep,
						def;
			int32_t		vi;

			r->column = fl->node->name;
			if (!next_entry(r, fl->a, &rep, &def, &vi))
				return false;
			/*
			 * Strings go out as CSV fields; every other type's text (digits,
			 * signs, '.', 'e', ISO dates, "NaN", hex) never holds a comma, a
			 * quote or a line break, so it goes out as it is written.
			 */
			if (vi >= 0 && fl->a->leaf->type == PQ_BYTE_ARRAY && fl->a->leaf->logical != PQ_LOGICAL_DECIMAL)
				put_csv_field(&o, (const char *) fl->a->page.values.ptr[vi], fl->a->page.values.len[vi]);
			else if (vi >= 0)
				put_value(&o, fl->a->leaf, &fl->a->page.values, vi, false);
		}
		else
		{
			/* (in the row's context: reading the entries may move a cursor to its next page) */
			FieldBuf	fb = {NULL, 0, 0, r->row_cx, false};
			Out			fo = {field_emit, &fb};

			if (!put_nested(r, fl, &fo))
				return false;
			if (fb.failed)
				return pq_fail(r->cx, "row group %d, column %s: no memory for a value", r->row_group, r->column);
			put_csv_field(&o, fb.data, fb.len);
		}
	}
	puts_(&o, "\n");
	r->rows_left--;
	return true;
}
