/*
 * byte_source.c — local files and the gunzip stage of the ingest stream.
 *
 * Gunzip errors are data errors (SQLSTATE 22P04 bad_copy_file_format) that
 * name the object and the compressed offset, because "unexpected end of file"
 * without a file name is useless to whoever has to re-request a delivery.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include "billops_byte_source.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#define GZ_INBUF 65536

uint64
byte_source_raw_bytes(ByteSource *s)
{
	while (s->inner)
		s = s->inner;
	return s->raw_bytes;
}

void
byte_source_close(ByteSource *s)
{
	if (s == NULL)
		return;
	if (s->close)
		s->close(s);
	if (s->inner)
		byte_source_close(s->inner);
}

/* --- local file ----------------------------------------------------------- */

typedef struct FileSource
{
	ByteSource	base;
	int			fd;
} FileSource;

static size_t
file_read(ByteSource *self, char *buf, size_t len)
{
	FileSource *fs = (FileSource *) self;
	ssize_t		n;

	CHECK_FOR_INTERRUPTS();
	do
		n = read(fs->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", self->name)));
	self->raw_bytes += n;
	return (size_t) n;
}

static void
file_close(ByteSource *self)
{
	FileSource *fs = (FileSource *) self;

	if (fs->fd >= 0)
		CloseTransientFile(fs->fd);
	fs->fd = -1;
}

ByteSource *
byte_source_file(const char *path)
{
	FileSource *fs = palloc0(sizeof(FileSource));

	fs->fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fs->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" for reading: %m", path),
				 errhint("The path is read by the PostgreSQL server process, so it must exist on the database server and be readable by its operating-system account.")));
	fs->base.read = file_read;
	fs->base.close = file_close;
	fs->base.name = pstrdup(path);
	return &fs->base;
}

/* --- gunzip --------------------------------------------------------------- */

typedef struct GunzipSource
{
	ByteSource	base;
	z_stream	z;
	bool		z_live;
	bool		required;
	bool		decided;		/* have we looked at the magic bytes yet? */
	bool		passthrough;
	bool		inner_eof;
	bool		member_end;		/* the last inflate() ended a gzip member */
	unsigned char *inbuf;
	MemoryContextCallback cb;
} GunzipSource;

/* zlib must not longjmp: allocate without raising, and report Z_MEM_ERROR instead */
static voidpf
gz_alloc(voidpf opaque, uInt items, uInt size)
{
	return MemoryContextAllocExtended((MemoryContext) opaque, (Size) items * size, MCXT_ALLOC_NO_OOM);
}

static void
gz_free(voidpf opaque, voidpf ptr)
{
	pfree(ptr);
}

static void
gz_cleanup(void *arg)
{
	GunzipSource *g = arg;

	if (g->z_live)
		inflateEnd(&g->z);
	g->z_live = false;
}

static bool
gz_fill(GunzipSource *g)
{
	size_t		n;

	if (g->inner_eof)
		return false;
	n = g->base.inner->read(g->base.inner, (char *) g->inbuf, GZ_INBUF);
	if (n == 0)
	{
		g->inner_eof = true;
		return false;
	}
	g->z.next_in = g->inbuf;
	g->z.avail_in = (uInt) n;
	return true;
}

static size_t
gunzip_read(ByteSource *self, char *buf, size_t len)
{
	GunzipSource *g = (GunzipSource *) self;

	if (!g->decided)
	{
		if (!gz_fill(g))
			return 0;			/* empty input: an empty CSV, caught later */
		g->decided = true;
		g->passthrough = !(g->z.avail_in >= 2 && g->inbuf[0] == 0x1f && g->inbuf[1] == 0x8b);
		if (g->passthrough && g->required)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("\"%s\" is not gzip-compressed", self->name),
					 errdetail("The manifest declares GZIP compression but the object does not start with the gzip magic bytes.")));
	}
	if (g->passthrough)
	{
		size_t		n;

		if (g->z.avail_in == 0 && !gz_fill(g))
			return 0;
		n = Min(len, g->z.avail_in);
		memcpy(buf, g->z.next_in, n);
		g->z.next_in += n;
		g->z.avail_in -= n;
		return n;
	}

	g->z.next_out = (Bytef *) buf;
	g->z.avail_out = (uInt) Min(len, (size_t) UINT_MAX);
	while (g->z.avail_out > 0)
	{
		int			rc;

		if (g->z.avail_in == 0 && !gz_fill(g))
		{
			if (g->member_end)
				break;			/* clean end after a complete member */
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("truncated gzip stream in \"%s\"", self->name),
					 errdetail("The compressed data ended after %llu bytes, in the middle of a gzip member.",
							   (unsigned long long) byte_source_raw_bytes(self)),
					 errhint("The object is incomplete; ask for a new delivery or re-upload the file.")));
		}
		if (g->member_end)
		{
			/* more bytes after a member: a concatenated gzip file */
			if (inflateReset(&g->z) != Z_OK)
				ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("zlib inflateReset failed")));
			g->member_end = false;
		}
		rc = inflate(&g->z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END)
			g->member_end = true;
		else if (rc == Z_BUF_ERROR)
			continue;			/* needs more input; loop refills */
		else if (rc != Z_OK)
			ereport(ERROR,
					(errcode(rc == Z_MEM_ERROR ? ERRCODE_OUT_OF_MEMORY : ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("corrupt gzip data in \"%s\": %s", self->name, g->z.msg ? g->z.msg : "unknown zlib error"),
					 errdetail("Decompression failed after %llu compressed bytes.",
							   (unsigned long long) byte_source_raw_bytes(self))));
		if (g->member_end && g->z.avail_in == 0 && g->z.avail_out < Min(len, (size_t) UINT_MAX))
			break;				/* hand back what we have before looking further */
	}
	return Min(len, (size_t) UINT_MAX) - g->z.avail_out;
}

static void
gunzip_close(ByteSource *self)
{
	gz_cleanup(self);
}

ByteSource *
byte_source_gunzip(ByteSource *inner, bool required)
{
	GunzipSource *g = palloc0(sizeof(GunzipSource));

	g->base.read = gunzip_read;
	g->base.close = gunzip_close;
	g->base.name = inner->name;
	g->base.inner = inner;
	g->required = required;
	g->inbuf = palloc(GZ_INBUF);
	g->z.zalloc = gz_alloc;
	g->z.zfree = gz_free;
	g->z.opaque = (voidpf) CurrentMemoryContext;
	if (inflateInit2(&g->z, 15 + 16) != Z_OK)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not initialize zlib")));
	g->z_live = true;
	g->cb.func = gz_cleanup;
	g->cb.arg = g;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &g->cb);
	return &g->base;
}
