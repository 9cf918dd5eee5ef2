/*
 * byte_source.c — the byte-stream plumbing, and local files.
 *
 * The S3 stage is in s3.c and the gunzip stage in gunzip.c; errors of every
 * stage name the object, because "unexpected end of file" without a file
 * name is useless to whoever has to re-request a delivery.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "billops_byte_source.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"


uint64
byte_source_raw_bytes(ByteSource *s)
{
	while (s->inner)
		s = s->inner;
	return s->raw_bytes;
}

size_t
byte_source_read_at_least(ByteSource *s, char *buf, size_t min, size_t max)
{
	size_t		got = 0;

	while (got < min)
	{
		size_t		n = s->read(s, buf + got, max - got);

		if (n == 0)
			break;
		got += n;
	}
	return got;
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

