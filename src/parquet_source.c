/*
 * parquet_source.c — a Parquet file as a ByteSource of CSV text, so it goes
 * through the loader's one path (column mapping, COPY's parser, the typed
 * table, staging and the swap) exactly as a CSV delivery does.  This is the
 * server's side of the plain-C reader (billops_parquet.h): memory contexts
 * for its allocations, pread for its reads, ereport for its errors.
 *
 * Memory: the footer's metadata, then per column one decoded page (its
 * context reset when the next page is read) and the chunk's dictionary
 * (reset per row group), and the CSV text not yet handed to COPY.
 * Every allocation asks with MCXT_ALLOC_NO_OOM, so a file that would need
 * more memory than the server has fails with the reader's message rather
 * than an out-of-memory error in the middle of a page.
 *
 * From S3 (byte_source_parquet_s3) nothing is downloaded whole: the tail
 * (footer and metadata) first, then each column's bytes through ranged GETs
 * of at most billops.parquet_s3_read_size ahead, one window per column, so
 * what the backend holds is one window and one decoded page per column
 * whatever the file's or row group's size.  A column chunk is contiguous in
 * the file (parquet-format, README "File Format"), but rows need every
 * column at once, so the columns of a row group are read side by side,
 * each from its own position; a page larger than the window is read
 * straight into the reader's page buffer.
 *
 * Errors name the file and where in it: "Parquet file "x": row group 2,
 * column line_item_unblended_cost: ...".  Corrupt or lying files are 22P04
 * (bad_copy_file_format, as a bad CSV is); features the reader does not
 * implement (encryption, structs, LZO) are 0A000.
 */
#include "postgres.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "billops_byte_source.h"
#include "billops_parquet.h"
#include "billops_s3.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* billops.parquet_max_memory: what one file's reader may hold at once */
static int	parquet_max_memory_kb = 1024 * 1024;
/* billops.parquet_s3_read_size: how far ahead one ranged GET reads a column */
static int	parquet_s3_read_size_kb = 256;

/* the footer is looked for in one GET of the object's last bytes: at least this many */
#define PARQUET_TAIL_BYTES (64 * 1024)

void
billops_parquet_source_init(void)
{
	DefineCustomIntVariable("billops.parquet_max_memory",
							"Most memory the Parquet reader holds for one file (its decoded pages, dictionaries and metadata).",
							"A file whose pages would need more is refused (54000) rather than risking the server's memory.",
							&parquet_max_memory_kb, 1024 * 1024, 16 * 1024, MAX_KILOBYTES,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.parquet_s3_read_size",
							"How many bytes of a column one ranged S3 GET reads ahead when a Parquet file is read from S3.",
							"Each column of a row group keeps one such window: memory is about this times the number of columns; larger windows mean fewer requests.",
							&parquet_s3_read_size_kb, 256, 16, 64 * 1024,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
}

typedef struct MemState
{
	MemoryContext mcxt;
	MemoryContext root;			/* the file's context: the budget is measured there */
	bool	   *over_budget;
} MemState;

/* Bytes of the object held from one ranged read. */
typedef struct ReadWindow
{
	int64		start;
	size_t		len;
	size_t		cap;
	char	   *data;
} ReadWindow;

typedef struct ParquetSource
{
	ByteSource	base;
	int			fd;				/* a local file, or -1 */
	int64		size;
	/* an S3 object: a window per column, and one for the footer's tail */
	const S3Location *loc;
	char	   *key;
	char	   *etag;
	ReadWindow *windows;		/* num_columns of the file, once opened */
	ReadWindow	tail;
	ReadWindow	scratch;		/* one GET covering several small chunks, before it is shared out */
	int			row_group_hint; /* where the last read was: row groups are read in order */
	bool		opened;			/* the footer is read: chunks can be looked up */
	int64		requests;		/* ranged GETs made */
	int64		rows_read;		/* rows handed to COPY */
	Size		peak_memory;	/* the most the reader's contexts held, sampled per batch of rows */
	MemoryContext mcxt;			/* everything the reader allocates */
	PqContext  *cx;
	PqFile		file;
	PqRowReader *rows;
	bool		over_budget;	/* an allocation was refused by billops.parquet_max_memory */
	StringInfoData pending;		/* CSV text not yet read */
	size_t		pending_pos;
	bool		header_done;
	bool		done;
} ParquetSource;

static void *
mem_alloc(void *state, size_t size)
{
	MemState   *ms = state;

	/* large requests (pages, value arrays) are checked against the budget; small ones cannot add up past a page's worth */
	if (size >= 64 * 1024 &&
		MemoryContextMemAllocated(ms->root, true) + size > (Size) parquet_max_memory_kb * 1024)
	{
		*ms->over_budget = true;
		return NULL;
	}
	return MemoryContextAllocExtended(ms->mcxt, size, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static void
mem_reset(void *state)
{
	MemoryContextReset(((MemState *) state)->mcxt);
}

static PqContext *
new_context(ParquetSource *ps)
{
	MemoryContext parent = ps->mcxt;
	PqContext  *cx = MemoryContextAllocZero(parent, sizeof(PqContext));
	MemState   *ms = MemoryContextAllocZero(parent, sizeof(MemState));

	ms->mcxt = AllocSetContextCreate(parent, "billops parquet reader", ALLOCSET_DEFAULT_SIZES);
	ms->root = parent;
	ms->over_budget = &ps->over_budget;
	cx->alloc = mem_alloc;
	cx->alloc_state = ms;
	cx->reset = mem_reset;
	return cx;
}

static PqContext *
make_column_context(void *state)
{
	return new_context((ParquetSource *) state);
}

static void
raise_over_budget(ParquetSource *ps, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("Parquet file \"%s\" needs more memory than billops.parquet_max_memory (%d kB) allows", ps->base.name,
					parquet_max_memory_kb),
			 errdetail("%s", detail),
			 errhint("Raise billops.parquet_max_memory, or have the file written with smaller pages or row groups.")));
}

static void
raise_reader_error(ParquetSource *ps, PqContext *cx)
{
	/* the reader's own wording says which: features it leaves out say "not supported" */
	bool		unsupported = strstr(cx->error, "not supported") != NULL;

	if (ps->over_budget)
		raise_over_budget(ps, cx->error);

	ereport(ERROR,
			(errcode(unsupported ? ERRCODE_FEATURE_NOT_SUPPORTED : ERRCODE_BAD_COPY_FILE_FORMAT),
			 errmsg("Parquet file \"%s\": %s", ps->base.name, cx->error),
			 unsupported ? errhint("Write the file without that feature, or deliver the report as gzip CSV.")
			 : errhint("The file is damaged or not what its footer says; the previous delivery stays in place.")));
}

static bool
file_pread(PqContext *cx, void *state, int64_t offset, size_t len, uint8_t *dst)
{
	ParquetSource *ps = state;
	size_t		done = 0;

	CHECK_FOR_INTERRUPTS();
	if (offset < 0 || offset > ps->size || (int64) len > ps->size - offset)
		return pq_fail(cx, "a read at %lld of %zu bytes lies past the file's end", (long long) offset, len);
	while (done < len)
	{
		ssize_t		n = pg_pread(ps->fd, dst + done, len - done, offset + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", ps->base.name)));
		if (n == 0)
			return pq_fail(cx, "the file ended at %lld while being read (changed under the load?)", (long long) (offset + done));
		done += n;
	}
	ps->base.raw_bytes += len;
	return true;
}

/* --- S3: ranged reads through per-column windows ------------------------------------ */

/* The column whose chunk holds offset (and where that chunk ends), or -1. */
static int
column_at(ParquetSource *ps, int64 offset, int64 *chunk_end)
{
	const PqFile *f = &ps->file;

	/* the row group of the last read, then the next one, then all */
	for (int pass = 0; pass < 3; pass++)
	{
		int			from = pass == 2 ? 0 : ps->row_group_hint + pass;
		int			to = pass == 2 ? f->num_row_groups : Min(from + 1, f->num_row_groups);

		for (int rg = from; rg < to; rg++)
			for (int c = 0; c < f->num_columns; c++)
			{
				const PqColumnChunk *cc = &f->row_groups[rg].columns[c];

				if (offset >= cc->start && offset < cc->start + cc->total_compressed_size)
				{
					ps->row_group_hint = rg;
					*chunk_end = cc->start + cc->total_compressed_size;
					return c;
				}
			}
	}
	return -1;
}

static void
fetch(ParquetSource *ps, int64 offset, size_t len, char *dst)
{
	s3_read_range(ps->loc, ps->key, &ps->etag, offset, len, dst);
	ps->base.raw_bytes += len;
	ps->requests++;
}

/* Room for len bytes in w (its old bytes dropped), within billops.parquet_max_memory. */
static void
window_reserve(ParquetSource *ps, ReadWindow *w, size_t len)
{
	w->len = 0;
	if (w->cap >= len && w->cap > 0)
		return;
	if (w->data)
		pfree(w->data);
	w->data = NULL;
	w->cap = 0;
	len = Max(len, 1);
	if (MemoryContextMemAllocated(ps->mcxt, true) + len > (Size) parquet_max_memory_kb * 1024)
		raise_over_budget(ps, psprintf("A read-ahead window of %zu bytes does not fit.", len));
	w->data = MemoryContextAllocExtended(ps->mcxt, len, MCXT_ALLOC_HUGE);
	w->cap = len;
}

static void
window_fill(ParquetSource *ps, ReadWindow *w, int64 offset, size_t len)
{
	window_reserve(ps, w, len);
	fetch(ps, offset, len, w->data);
	w->start = offset;
	w->len = len;
}

/*
 * Column col is about to be read from the start of its chunk.  Small chunks
 * lie back to back in a row group (a chunk per column, in column order), so
 * the whole of this one and of the chunks after it that fit in one read-ahead
 * come in one GET, each column's window getting its own chunk: a row group
 * of small chunks costs a request or two, not one per column.  Returns false
 * when the chunk alone is larger than a read-ahead (it is then read in
 * windows of its own).
 */
static bool
fill_adjacent_chunks(ParquetSource *ps, int col, size_t read_ahead)
{
	const PqRowGroup *rg = &ps->file.row_groups[ps->row_group_hint];
	int64		from = rg->columns[col].start;
	int64		to = from + rg->columns[col].total_compressed_size;
	int			last = col;

	if (to - from > (int64) read_ahead)
		return false;
	while (last + 1 < ps->file.num_columns)
	{
		const PqColumnChunk *next = &rg->columns[last + 1];

		if (next->start != to || next->start + next->total_compressed_size - from > (int64) read_ahead)
			break;
		to = next->start + next->total_compressed_size;
		last++;
	}
	if (last == col)
		return false;
	window_fill(ps, &ps->scratch, from, (size_t) (to - from));
	for (int c = col; c <= last; c++)
	{
		const PqColumnChunk *cc = &rg->columns[c];
		ReadWindow *w = &ps->windows[c];
		size_t		len = (size_t) cc->total_compressed_size;

		window_reserve(ps, w, len);
		memcpy(w->data, ps->scratch.data + (cc->start - from), len);
		w->start = cc->start;
		w->len = len;
	}
	return true;
}

static bool
s3_pread(PqContext *cx, void *state, int64_t offset, size_t len, uint8_t *dst)
{
	ParquetSource *ps = state;
	size_t		read_ahead = (size_t) parquet_s3_read_size_kb * 1024;
	int64		chunk_end = 0;
	int			col;
	ReadWindow *w;

	CHECK_FOR_INTERRUPTS();
	if (offset < 0 || offset > ps->size || (int64) len > ps->size - offset)
		return pq_fail(cx, "a read at %lld of %zu bytes lies past the file's end", (long long) offset, len);
	col = ps->opened ? column_at(ps, offset, &chunk_end) : -1;
	w = col >= 0 ? &ps->windows[col] : &ps->tail;
	while (len > 0)
	{
		size_t		want;

		if (w->len > 0 && offset >= w->start && offset < w->start + (int64) w->len)
		{
			size_t		n = Min(len, (size_t) (w->start + (int64) w->len - offset));

			memcpy(dst, w->data + (offset - w->start), n);
			offset += n;
			dst += n;
			len -= n;
			continue;
		}
		/* outside every chunk (the magic, the footer) or a page larger than a window: read it as asked */
		if (col < 0 || len >= read_ahead)
		{
			fetch(ps, offset, len, (char *) dst);
			break;
		}
		if (offset == ps->file.row_groups[ps->row_group_hint].columns[col].start &&
			fill_adjacent_chunks(ps, col, read_ahead))
			continue;
		/* read ahead within the chunk: the column's next pages come with this one */
		want = (size_t) Min((int64) read_ahead, chunk_end - offset);
		window_fill(ps, w, offset, Max(want, len));
	}
	return true;
}

static void
emit_pending(void *state, const char *s, size_t len)
{
	appendBinaryStringInfo(&((ParquetSource *) state)->pending, s, (int) len);
}

static size_t
parquet_read(ByteSource *self, char *buf, size_t len)
{
	ParquetSource *ps = (ParquetSource *) self;
	size_t		out = 0;

	while (out < len)
	{
		size_t		avail = ps->pending.len - ps->pending_pos;

		if (avail > 0)
		{
			size_t		n = Min(avail, len - out);

			memcpy(buf + out, ps->pending.data + ps->pending_pos, n);
			ps->pending_pos += n;
			out += n;
			continue;
		}
		if (ps->done)
			break;
		resetStringInfo(&ps->pending);
		ps->pending_pos = 0;
		CHECK_FOR_INTERRUPTS();
		if (!ps->header_done)
		{
			pq_rows_header(ps->rows, emit_pending, ps);
			ps->header_done = true;
			continue;
		}
		/* a batch of rows at a time: the buffer stays small, COPY's reads stay large */
		while (!ps->done && ps->pending.len < 256 * 1024)
		{
			if (!pq_rows_next(ps->rows, emit_pending, ps, &ps->done))
				raise_reader_error(ps, ps->cx);
			ps->rows_read += !ps->done;
		}
		ps->peak_memory = Max(ps->peak_memory, MemoryContextMemAllocated(ps->mcxt, true));
	}
	return out;
}

static void
parquet_close(ByteSource *self)
{
	ParquetSource *ps = (ParquetSource *) self;

	if (ps->fd >= 0)
		CloseTransientFile(ps->fd);
	ps->fd = -1;
	/* what a DBA sizing billops.parquet_max_memory and billops.parquet_s3_read_size needs */
	if (ps->mcxt && ps->opened)
		ereport(DEBUG1,
				(errmsg("Parquet file \"%s\": %lld rows in %d row groups, %llu bytes read%s, reader memory peak %zu kB",
						self->name, (long long) ps->rows_read, ps->file.num_row_groups,
						(unsigned long long) self->raw_bytes,
						ps->loc ? psprintf(" in %lld ranged GETs", (long long) ps->requests) : "",
						ps->peak_memory / 1024)));
	if (ps->mcxt)
		MemoryContextDelete(ps->mcxt);
	ps->mcxt = NULL;
}

List *
parquet_source_fields(ByteSource *src)
{
	ParquetSource *ps = (ParquetSource *) src;
	List	   *names = NIL;

	Assert(src->read == parquet_read);
	for (int i = 0; i < ps->file.root->num_children; i++)
		names = lappend(names, pstrdup(ps->file.root->children[i]->name));
	return names;
}

bool
parquet_file_is(const char *path)
{
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	char		magic[4];
	bool		is = false;

	if (fd < 0)
		return false;			/* the CSV path reports the open error */
	is = pg_pread(fd, magic, 4, 0) == 4 && memcmp(magic, "PAR1", 4) == 0;
	CloseTransientFile(fd);
	return is;
}

static ParquetSource *
parquet_source_new(const char *name)
{
	ParquetSource *ps = palloc0(sizeof(ParquetSource));

	ps->base.read = parquet_read;
	ps->base.close = parquet_close;
	ps->base.name = pstrdup(name);
	ps->fd = -1;
	ps->mcxt = AllocSetContextCreate(CurrentMemoryContext, "billops parquet file", ALLOCSET_DEFAULT_SIZES);
	ps->cx = new_context(ps);
	initStringInfo(&ps->pending);
	return ps;
}

/* The footer, then the row reader: the same for a local file and an S3 object. */
static ByteSource *
parquet_source_open(ParquetSource *ps, PqReadFn read)
{
	if (!pq_open(ps->cx, read, ps, ps->size, &ps->file))
		raise_reader_error(ps, ps->cx);
	ps->opened = true;
	if (ps->loc)
		ps->windows = MemoryContextAllocZero(ps->mcxt, sizeof(ReadWindow) * Max(ps->file.num_columns, 1));
	if ((ps->rows = pq_rows_begin(ps->cx, &ps->file, read, ps, make_column_context, ps)) == NULL)
		raise_reader_error(ps, ps->cx);
	return &ps->base;
}

ByteSource *
byte_source_parquet_file(const char *path)
{
	ParquetSource *ps = parquet_source_new(path);
	struct stat st;

	ps->fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (ps->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	if (fstat(ps->fd, &st) < 0)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not stat file \"%s\": %m", path)));
	ps->size = st.st_size;
	return parquet_source_open(ps, file_pread);
}

ByteSource *
byte_source_parquet_s3(const S3Location *loc, const char *key, int64 size, const char *etag)
{
	ParquetSource *ps = parquet_source_new(s3_display(loc, key));

	if (size < 0)
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("the size of %s is not known", ps->base.name),
				 errdetail("A Parquet file is read from its end: its size must come from the bucket listing.")));
	ps->loc = loc;
	ps->key = pstrdup(key);
	ps->etag = etag ? pstrdup(etag) : NULL;
	ps->size = size;
	/* the footer and, usually, the whole metadata in one GET of the object's last bytes */
	if (size > 0)
	{
		size_t		tail = (size_t) Min(size, (int64) Max(PARQUET_TAIL_BYTES, parquet_s3_read_size_kb * 1024));

		window_fill(ps, &ps->tail, size - (int64) tail, tail);
	}
	return parquet_source_open(ps, s3_pread);
}
