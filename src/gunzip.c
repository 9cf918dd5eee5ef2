/*
 * gunzip.c — the gunzip stage of the ingest stream, on a helper thread.
 *
 * Inflating is a quarter of the cost of loading a gzip CUR file: a backend
 * that parsed, converted and inflated in turn ran at 0.78x plain COPY.  So a
 * helper thread inflates while the backend parses.  The thread touches
 * nothing of PostgreSQL — only zlib, libc and malloc'd buffers — and blocks
 * every signal, so interrupts, errors and the network stay on the backend's
 * own thread.  The two meet in two small rings of buffers under one mutex:
 * the backend reads compressed bytes from the stage below (S3 or a file) into
 * the input ring; the thread inflates them into the output ring.
 *
 * A memory-context callback stops and joins the thread, so an error anywhere
 * (a bad row, a cancel) never leaves it running.  Non-gzip input (a plain CSV
 * file) passes straight through without a thread.
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <zlib.h>

#include "billops_byte_source.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#define GZ_CHUNK (256 * 1024)
#define GZ_SLOTS 4

typedef enum GzError
{
	GZ_OK = 0,
	GZ_TRUNCATED,
	GZ_CORRUPT,
	GZ_NOMEM
} GzError;

typedef struct GunzipSource
{
	ByteSource	base;
	bool		required;
	bool		decided;
	bool		passthrough;
	char	   *first;			/* the chunk read to look at the magic bytes */
	size_t		first_len,
				first_pos;

	/* shared with the thread: everything below is guarded by mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t	thread;
	bool		started;
	bool		stop;
	char	   *in[GZ_SLOTS];
	size_t		in_len[GZ_SLOTS];
	int			in_head,
				in_count;
	bool		in_eof;
	char	   *out[GZ_SLOTS];
	size_t		out_len[GZ_SLOTS];
	int			out_head,
				out_count;
	size_t		out_pos;		/* consumed bytes of out[out_head] */
	bool		out_eof;
	GzError		error;
	char		errmsg[128];

	MemoryContextCallback cb;
} GunzipSource;

/* --- the helper thread: zlib and memory only ----------------------------- */

static void
gz_fail(GunzipSource *g, GzError e, const char *msg)
{
	pthread_mutex_lock(&g->mu);
	g->error = e;
	strlcpy(g->errmsg, msg ? msg : "", sizeof(g->errmsg));
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static void *
gz_thread(void *arg)
{
	GunzipSource *g = arg;
	z_stream	z;
	bool		member_end = false;
	bool		holding_input = false;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK)
	{
		gz_fail(g, GZ_NOMEM, "inflateInit2 failed");
		return NULL;
	}
	for (;;)
	{
		int			slot;
		size_t		produced;
		int			rc = Z_OK;

		pthread_mutex_lock(&g->mu);
		if (z.avail_in == 0)
		{
			if (holding_input)
			{
				g->in_head = (g->in_head + 1) % GZ_SLOTS;
				g->in_count--;
				holding_input = false;
				pthread_cond_broadcast(&g->cv);
			}
			while (g->in_count == 0 && !g->in_eof && !g->stop)
				pthread_cond_wait(&g->cv, &g->mu);
			if (g->stop)
			{
				pthread_mutex_unlock(&g->mu);
				break;
			}
			if (g->in_count == 0)
			{
				/* input is over: clean only after a complete member */
				if (member_end)
					g->out_eof = true;
				else
				{
					g->error = GZ_TRUNCATED;
					g->errmsg[0] = '\0';
				}
				pthread_cond_broadcast(&g->cv);
				pthread_mutex_unlock(&g->mu);
				break;
			}
			z.next_in = (Bytef *) g->in[g->in_head];
			z.avail_in = (uInt) g->in_len[g->in_head];
			holding_input = true;
		}
		while (g->out_count == GZ_SLOTS && !g->stop)
			pthread_cond_wait(&g->cv, &g->mu);
		if (g->stop)
		{
			pthread_mutex_unlock(&g->mu);
			break;
		}
		slot = (g->out_head + g->out_count) % GZ_SLOTS;
		pthread_mutex_unlock(&g->mu);

		/* inflate without the lock: the input slot and the output slot are ours */
		z.next_out = (Bytef *) g->out[slot];
		z.avail_out = GZ_CHUNK;
		while (z.avail_out > 0 && z.avail_in > 0)
		{
			if (member_end)
			{
				/* more bytes after a member: a concatenated gzip file */
				if (inflateReset(&z) != Z_OK)
				{
					rc = Z_MEM_ERROR;
					break;
				}
				member_end = false;
			}
			rc = inflate(&z, Z_NO_FLUSH);
			if (rc == Z_STREAM_END)
			{
				member_end = true;
				rc = Z_OK;
			}
			else if (rc == Z_BUF_ERROR)
			{
				rc = Z_OK;
				break;
			}
			else if (rc != Z_OK)
				break;
		}
		if (rc != Z_OK)
		{
			gz_fail(g, rc == Z_MEM_ERROR ? GZ_NOMEM : GZ_CORRUPT, z.msg ? z.msg : "unknown zlib error");
			break;
		}
		produced = GZ_CHUNK - z.avail_out;
		if (produced > 0)
		{
			pthread_mutex_lock(&g->mu);
			g->out_len[slot] = produced;
			g->out_count++;
			pthread_cond_broadcast(&g->cv);
			pthread_mutex_unlock(&g->mu);
		}
	}
	inflateEnd(&z);
	return NULL;
}

/* --- the backend side ------------------------------------------------------ */

static void
gz_stop(void *arg)
{
	GunzipSource *g = arg;

	if (g->started)
	{
		pthread_mutex_lock(&g->mu);
		g->stop = true;
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->thread, NULL);
		g->started = false;
	}
	for (int i = 0; i < GZ_SLOTS; i++)
	{
		free(g->in[i]);
		free(g->out[i]);
		g->in[i] = g->out[i] = NULL;
	}
	free(g->first);
	g->first = NULL;
}

static void
gz_start(GunzipSource *g)
{
	sigset_t	all,
				old;
	int			rc;

	for (int i = 0; i < GZ_SLOTS; i++)
	{
		g->in[i] = malloc(GZ_CHUNK);
		g->out[i] = malloc(GZ_CHUNK);
		if (g->in[i] == NULL || g->out[i] == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for gunzip buffers")));
	}
	/* the first chunk becomes the first input */
	memcpy(g->in[0], g->first, g->first_len);
	g->in_len[0] = g->first_len;
	g->in_count = 1;

	/* every signal stays with the backend's own thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&g->thread, NULL, gz_thread, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start the gunzip thread: %s", strerror(rc))));
	g->started = true;
}

static size_t
gunzip_read(ByteSource *self, char *buf, size_t len)
{
	GunzipSource *g = (GunzipSource *) self;

	if (!g->decided)
	{
		g->first = malloc(GZ_CHUNK);
		if (g->first == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for gunzip buffers")));
		g->first_len = self->inner->read(self->inner, g->first, GZ_CHUNK);
		g->decided = true;
		if (g->first_len == 0)
			return 0;			/* empty input: an empty CSV, caught later */
		g->passthrough = !(g->first_len >= 2 && (unsigned char) g->first[0] == 0x1f &&
						   (unsigned char) g->first[1] == 0x8b);
		if (g->passthrough && g->required)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("\"%s\" is not gzip-compressed", self->name),
					 errdetail("The manifest declares GZIP compression but the object does not start with the gzip magic bytes.")));
		if (!g->passthrough)
			gz_start(g);
	}
	if (g->passthrough)
	{
		if (g->first_pos < g->first_len)
		{
			size_t		n = Min(len, g->first_len - g->first_pos);

			memcpy(buf, g->first + g->first_pos, n);
			g->first_pos += n;
			return n;
		}
		return self->inner->read(self->inner, buf, len);
	}

	for (;;)
	{
		int			feed_slot = -1;

		CHECK_FOR_INTERRUPTS();
		pthread_mutex_lock(&g->mu);
		if (g->out_count > 0)
		{
			size_t		n = Min(len, g->out_len[g->out_head] - g->out_pos);

			memcpy(buf, g->out[g->out_head] + g->out_pos, n);
			g->out_pos += n;
			if (g->out_pos == g->out_len[g->out_head])
			{
				g->out_head = (g->out_head + 1) % GZ_SLOTS;
				g->out_count--;
				g->out_pos = 0;
				pthread_cond_broadcast(&g->cv);
			}
			pthread_mutex_unlock(&g->mu);
			return n;
		}
		if (g->error != GZ_OK)
		{
			GzError		e = g->error;
			char		msg[128];

			strlcpy(msg, g->errmsg, sizeof(msg));
			pthread_mutex_unlock(&g->mu);
			if (e == GZ_TRUNCATED)
				ereport(ERROR,
						(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
						 errmsg("truncated gzip stream in \"%s\"", self->name),
						 errdetail("The compressed data ended after %llu bytes, in the middle of a gzip member.",
								   (unsigned long long) byte_source_raw_bytes(self)),
						 errhint("The object is incomplete; ask for a new delivery or re-upload the file.")));
			ereport(ERROR,
					(errcode(e == GZ_NOMEM ? ERRCODE_OUT_OF_MEMORY : ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("corrupt gzip data in \"%s\": %s", self->name, msg),
					 errdetail("Decompression failed within the first %llu compressed bytes.",
							   (unsigned long long) byte_source_raw_bytes(self))));
		}
		if (g->out_eof)
		{
			pthread_mutex_unlock(&g->mu);
			return 0;
		}
		if (g->in_count < GZ_SLOTS && !g->in_eof)
			feed_slot = (g->in_head + g->in_count) % GZ_SLOTS;	/* free, and stays free */
		else
		{
			/* nothing to do but wait for the thread; wake up to check for interrupts */
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 20 * 1000 * 1000;
			if (until.tv_nsec >= 1000000000L)
				until.tv_sec++, until.tv_nsec -= 1000000000L;
			pthread_cond_timedwait(&g->cv, &g->mu, &until);
		}
		pthread_mutex_unlock(&g->mu);

		if (feed_slot >= 0)
		{
			/* the network or the disk, on the backend's thread (may raise errors) */
			size_t		n = self->inner->read(self->inner, g->in[feed_slot], GZ_CHUNK);

			pthread_mutex_lock(&g->mu);
			if (n == 0)
				g->in_eof = true;
			else
			{
				g->in_len[feed_slot] = n;
				g->in_count++;
			}
			pthread_cond_broadcast(&g->cv);
			pthread_mutex_unlock(&g->mu);
		}
	}
}

static void
gunzip_close(ByteSource *self)
{
	gz_stop(self);
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
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->cb.func = gz_stop;
	g->cb.arg = g;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &g->cb);
	return &g->base;
}
