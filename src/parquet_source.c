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
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* billops.parquet_max_memory: what one file's reader may hold at once */
static int	parquet_max_memory_kb = 1024 * 1024;

void
billops_parquet_source_init(void)
{
	DefineCustomIntVariable("billops.parquet_max_memory",
							"Most memory the Parquet reader holds for one file (its decoded pages, dictionaries and metadata).",
							"A file whose pages would need more is refused (54000) rather than risking the server's memory.",
							&parquet_max_memory_kb, 1024 * 1024, 16 * 1024, MAX_KILOBYTES,
							PGC_SUSET, GUC_UNIT_KB, NULL, NULL, NULL);
}

typedef struct MemState
{
	MemoryContext mcxt;
	MemoryContext root;			/* the file's context: the budget is measured there */
	bool	   *over_budget;
} MemState;

typedef struct ParquetSource
{
	ByteSource	base;
	int			fd;
	int64		size;
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
raise_reader_error(ParquetSource *ps, PqContext *cx)
{
	/* the reader's own wording says which: features it leaves out say "not supported" */
	bool		unsupported = strstr(cx->error, "not supported") != NULL;

	if (ps->over_budget)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("Parquet file \"%s\" needs more memory than billops.parquet_max_memory (%d kB) allows", ps->base.name,
						parquet_max_memory_kb),
				 errdetail("%s", cx->error),
				 errhint("Raise billops.parquet_max_memory, or have the file written with smaller pages or row groups.")));

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
			if (!pq_rows_next(ps->rows, emit_pending, ps, &ps->done))
				raise_reader_error(ps, ps->cx);
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
	if (ps->mcxt)
		MemoryContextDelete(ps->mcxt);
	ps->mcxt = NULL;
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

ByteSource *
byte_source_parquet_file(const char *path)
{
	ParquetSource *ps = palloc0(sizeof(ParquetSource));
	struct stat st;

	ps->base.read = parquet_read;
	ps->base.close = parquet_close;
	ps->base.name = pstrdup(path);
	ps->fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (ps->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path)));
	if (fstat(ps->fd, &st) < 0)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not stat file \"%s\": %m", path)));
	ps->size = st.st_size;
	ps->mcxt = AllocSetContextCreate(CurrentMemoryContext, "billops parquet file", ALLOCSET_DEFAULT_SIZES);
	ps->cx = new_context(ps);
	initStringInfo(&ps->pending);
	if (!pq_open(ps->cx, file_pread, ps, ps->size, &ps->file) ||
		(ps->rows = pq_rows_begin(ps->cx, &ps->file, file_pread, ps, make_column_context, ps)) == NULL)
		raise_reader_error(ps, ps->cx);
	return &ps->base;
}
