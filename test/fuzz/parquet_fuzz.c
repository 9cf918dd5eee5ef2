/*
 * parquet_fuzz.c — the Parquet reader's core (src/parquet_*.c) outside the
 * server, for fuzzing and for checking it against an independent reader.
 *
 *   make -C test/fuzz fuzz        libFuzzer + ASan + UBSan (clang): ./parquet_fuzz corpus/
 *   make -C test/fuzz check       gcc + ASan + UBSan: every corpus file once (the CI smoke)
 *   ./parquet_check --dump FILE   the footer and page headers as JSON lines (tests compare
 *                                 them with DuckDB's parquet_metadata of the same file)
 *   ./parquet_check --values FILE every data page's levels and values as JSON lines (tests
 *                                 compare them with DuckDB's reading of the same file)
 *   ./parquet_check --csv FILE    the rows as the server loads them (src/parquet_rows.c)
 *
 * The input is a whole file: footer, metadata, then every page of every
 * column chunk, each checked to lie inside its chunk, decompressed and
 * decoded into levels and values.  Memory comes
 * from a budgeted allocator freed after each input, as the server's memory
 * context is after each file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billops_parquet.h"

#define BUDGET (256u * 1024 * 1024)

typedef struct Arena
{
	void	  **blocks;
	size_t		n,
				cap,
				used;
} Arena;

static void *
arena_alloc(void *state, size_t size)
{
	Arena	   *a = state;
	void	   *p;

	if (size > BUDGET - a->used)
		return NULL;
	if (a->n == a->cap)
	{
		size_t		cap = a->cap ? a->cap * 2 : 64;
		void	  **b = realloc(a->blocks, cap * sizeof(void *));

		if (b == NULL)
			return NULL;
		a->blocks = b;
		a->cap = cap;
	}
	if ((p = malloc(size)) == NULL)
		return NULL;
	a->used += size;
	a->blocks[a->n++] = p;
	return p;
}

static void
arena_free(Arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->blocks[i]);
	free(a->blocks);
	memset(a, 0, sizeof(*a));
}

static void
arena_reset(void *state)
{
	arena_free(state);
}

/* the row reader's per-column contexts: arenas that are reset per page, all freed after the file */
typedef struct Contexts
{
	PqContext  *list[2 * 10000 + 8];
	int			n;
} Contexts;

static PqContext *
make_context(void *state)
{
	Contexts   *cs = state;
	PqContext  *cx;

	if (cs->n >= (int) (sizeof(cs->list) / sizeof(cs->list[0])) || (cx = calloc(1, sizeof(PqContext))) == NULL)
		return NULL;
	cx->alloc = arena_alloc;
	cx->alloc_state = calloc(1, sizeof(Arena));
	cx->reset = arena_reset;
	cs->list[cs->n++] = cx;
	return cx;
}

static void
contexts_free(Contexts *cs)
{
	for (int i = 0; i < cs->n; i++)
	{
		arena_free(cs->list[i]->alloc_state);
		free(cs->list[i]->alloc_state);
		free(cs->list[i]);
	}
	cs->n = 0;
}

static bool
read_memory(PqContext *cx, void *state, int64_t offset, size_t len, uint8_t *dst)
{
	const uint8_t *data = ((const uint8_t **) state)[0];
	size_t		size = (size_t) ((const uint8_t **) state)[1];

	if (offset < 0 || (size_t) offset > size || len > size - (size_t) offset)
		return pq_fail(cx, "a read past the end of the file");
	memcpy(dst, data + offset, len);
	return true;
}

static void
emit_file(void *state, const char *s, size_t len)
{
	if (state)
		fwrite(s, 1, len, state);
}

/* The footer and metadata of a file held in memory, through the reader's own entry point. */
static bool
open_file(PqContext *cx, const uint8_t *data, size_t size, PqFile *f)
{
	const void *src[2] = {data, (const void *) size};

	return pq_open(cx, read_memory, src, (int64_t) size, f);
}

/* The rows as CSV (to `csv`, or nowhere when fuzzing): the row reader over the whole file. */
static bool
read_rows(PqContext *cx, const uint8_t *data, size_t size, const PqFile *f, FILE *csv)
{
	const void *src[2] = {data, (const void *) size};
	static Contexts cs;
	PqRowReader *r;
	bool		done = false,
				ok = true;

	if ((r = pq_rows_begin(cx, f, read_memory, src, make_context, &cs)) == NULL)
		ok = false;
	else
	{
		pq_rows_header(r, emit_file, csv);
		while (ok && !done)
			ok = pq_rows_next(r, emit_file, csv, &done);
	}
	contexts_free(&cs);
	return ok;
}

static void
json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++)
	{
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if ((unsigned char) *s < 0x20)
			fprintf(out, "\\u%04x", *s);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static void
dump_value(FILE *out, const PqSchemaNode *leaf, const PqValues *v, int32_t i)
{
	const uint8_t *b = v->fixed ? v->fixed + (size_t) i * v->width : NULL;

	switch (leaf->type)
	{
		case PQ_BOOLEAN:
			fputs(b[0] ? "true" : "false", out);
			break;
		case PQ_INT32:
			{
				int32_t		x;

				memcpy(&x, b, 4);
				fprintf(out, "\"%d\"", x);
				break;
			}
		case PQ_INT64:
			{
				int64_t		x;

				memcpy(&x, b, 8);
				fprintf(out, "\"%lld\"", (long long) x);
				break;
			}
		case PQ_FLOAT:
			{
				float		x;

				memcpy(&x, b, 4);
				fprintf(out, "\"%.9g\"", x);
				break;
			}
		case PQ_DOUBLE:
			{
				double		x;

				memcpy(&x, b, 8);
				fprintf(out, "\"%.17g\"", x);
				break;
			}
		case PQ_BYTE_ARRAY:
			{
				char	   *s = malloc((size_t) v->len[i] + 1);

				memcpy(s, v->ptr[i], v->len[i]);
				s[v->len[i]] = '\0';
				json_string(out, s);
				free(s);
				break;
			}
		default:				/* INT96, FIXED_LEN_BYTE_ARRAY: hex */
			fputc('"', out);
			for (int32_t k = 0; k < v->width; k++)
				fprintf(out, "%02x", b[k]);
			fputc('"', out);
			break;
	}
}

/*
 * Every page of a chunk, each inside the chunk, decoded; the levels counted
 * against the chunk's.  With `values`, each data page as a JSON line:
 * {"values":{"row_group","column","rep":[...],"def":[...],"v":[...]}}.
 */
static bool
walk_pages(PqContext *cx, const uint8_t *data, const PqColumnChunk *cc, int g, const PqSchemaNode *leaf, FILE *dump,
		   FILE *values)
{
	int64_t		pos = cc->start;
	int64_t		end = cc->start + cc->total_compressed_size;
	int64_t		levels = 0;
	PqChunkState st;

	pq_chunk_begin(&st, leaf, cc->codec);
	while (pos < end)
	{
		PqPageHeader h;
		PqPage		page;
		bool		more,
					is_data;

		if (!pq_read_page_header(cx, data + pos, (size_t) (end - pos), &h, &more))
			return false;
		if ((int64_t) h.header_length + h.compressed_size > end - pos)
			return pq_fail(cx, "row group %d, column %s: a page runs past the chunk", g, pq_column_path(cx, leaf));
		if (dump)
			fprintf(dump, "{\"page\":{\"row_group\":%d,\"column\":%d,\"type\":%d,\"encoding\":\"%s\",\"num_values\":%d,\"compressed\":%d,\"uncompressed\":%d}}\n",
					g, leaf->column, h.type, pq_encoding_name(h.encoding), h.num_values, h.compressed_size, h.uncompressed_size);
		if (!pq_decode_page(cx, &st, &h, data + pos + h.header_length, &page, &is_data))
			return false;
		if (is_data)
		{
			levels += page.num_levels;
			if (values)
			{
				int32_t		vi = 0;

				fprintf(values, "{\"values\":{\"row_group\":%d,\"column\":%d,\"v\":[", g, leaf->column);
				for (int32_t i = 0; i < page.num_levels; i++)
				{
					if (i)
						fputc(',', values);
					if (page.def == NULL || page.def[i] == (uint32_t) leaf->max_def)
						dump_value(values, leaf, &page.values, vi++);
					else
						fputs("null", values);
				}
				fputs("],\"def\":[", values);
				for (int32_t i = 0; page.def && i < page.num_levels; i++)
					fprintf(values, "%s%u", i ? "," : "", page.def[i]);
				fputs("],\"rep\":[", values);
				for (int32_t i = 0; page.rep && i < page.num_levels; i++)
					fprintf(values, "%s%u", i ? "," : "", page.rep[i]);
				fputs("]}}\n", values);
			}
		}
		pos += h.header_length + h.compressed_size;
	}
	if (levels != cc->num_values)
		return pq_fail(cx, "row group %d, column %s: pages hold %lld values, the chunk says %lld", g,
					   pq_column_path(cx, leaf), (long long) levels, (long long) cc->num_values);
	return true;
}

/* Every page of every chunk (and, with `dump`, the footer as JSON lines first). */
static bool
read_pages(PqContext *cx, const uint8_t *data, const PqFile *f, FILE *dump, FILE *values)
{
	if (dump)
	{
		fprintf(dump, "{\"file\":{\"num_rows\":%lld,\"num_row_groups\":%d,\"num_columns\":%d,\"created_by\":",
				(long long) f->num_rows, f->num_row_groups, f->num_columns);
		json_string(dump, f->created_by);
		fprintf(dump, "}}\n");
		for (int c = 0; c < f->num_columns; c++)
		{
			const PqSchemaNode *l = f->leaves[c];

			fprintf(dump, "{\"column\":{\"index\":%d,\"path\":", c);
			json_string(dump, pq_column_path(cx, l));
			fprintf(dump, ",\"type\":\"%s\",\"logical\":%d,\"max_def\":%d,\"max_rep\":%d,\"scale\":%d,\"precision\":%d,\"unit\":%d,\"utc\":%s}}\n",
					pq_type_name(l->type), l->logical, l->max_def, l->max_rep, l->scale, l->precision, l->time_unit,
					l->adjusted_to_utc ? "true" : "false");
		}
	}
	for (int g = 0; g < f->num_row_groups; g++)
	{
		if (dump)
			fprintf(dump, "{\"row_group\":{\"index\":%d,\"num_rows\":%lld}}\n", g, (long long) f->row_groups[g].num_rows);
		for (int c = 0; c < f->num_columns; c++)
		{
			const PqColumnChunk *cc = &f->row_groups[g].columns[c];

			if (dump)
				fprintf(dump, "{\"chunk\":{\"row_group\":%d,\"column\":%d,\"codec\":\"%s\",\"num_values\":%lld,\"start\":%lld,\"compressed\":%lld,\"dictionary\":%s}}\n",
						g, c, pq_codec_name(cc->codec), (long long) cc->num_values, (long long) cc->start,
						(long long) cc->total_compressed_size, cc->dictionary_page_offset >= 0 ? "true" : "false");
			if (!walk_pages(cx, data, cc, g, f->leaves[c], dump, values))
				return false;
		}
	}
	return true;
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Arena		a = {0};
	PqContext	cx = {arena_alloc, &a, "", NULL};
	PqFile		f;

	if (open_file(&cx, data, size, &f))
	{
		(void) read_pages(&cx, data, &f, NULL, NULL);
		(void) read_rows(&cx, data, size, &f, NULL);
	}
	arena_free(&a);
	return 0;
}

#ifdef PQ_STANDALONE_MAIN
static uint8_t *
slurp(const char *path, size_t *size)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf = NULL;
	long		n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		if (f)
			fclose(f);
		return NULL;
	}
	buf = malloc(n ? n : 1);
	if (buf && fread(buf, 1, n, f) != (size_t) n)
	{
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*size = (size_t) n;
	return buf;
}

int
main(int argc, char **argv)
{
	bool		dump = argc > 1 && strcmp(argv[1], "--dump") == 0;
	bool		values = argc > 1 && strcmp(argv[1], "--values") == 0;
	bool		csv = argc > 1 && strcmp(argv[1], "--csv") == 0;
	int			failures = 0;

	for (int i = dump || values || csv ? 2 : 1; i < argc; i++)
	{
		size_t		size;
		uint8_t    *data = slurp(argv[i], &size);
		Arena		a = {0};
		PqContext	cx = {arena_alloc, &a, "", NULL};
		PqFile		f;

		if (data == NULL)
		{
			fprintf(stderr, "%s: cannot read\n", argv[i]);
			return 2;
		}
		if (csv)
		{
			if (!open_file(&cx, data, size, &f) || !read_rows(&cx, data, size, &f, stdout))
			{
				fprintf(stdout, "\nERROR: %s\n", cx.error);
				failures++;
			}
		}
		else if (dump || values)
		{
			if (!open_file(&cx, data, size, &f) || !read_pages(&cx, data, &f, dump ? stdout : NULL, values ? stdout : NULL))
			{
				printf("{\"error\":");
				json_string(stdout, cx.error);
				printf("}\n");
				failures++;
			}
		}
		else
			LLVMFuzzerTestOneInput(data, size);
		arena_free(&a);
		free(data);
	}
	return failures ? 1 : 0;
}
#endif
