/*
 * gunzip.c — the gunzip stage of the ingest stream, on a helper thread.
 *
 * Inflating is a quarter of the cost of loading a gzip CUR file: a backend
 * that parsed, converted and inflated in turn ran at 0.78x plain COPY.  So a
 * helper thread inflates while the backend parses.  The thread touches
 * nothing of PostgreSQL — only the inflater, libc and malloc'd buffers — and blocks
 * every signal, so interrupts, errors and the network stay on the backend's
 * own thread.  The two meet in two small rings of buffers under one mutex:
 * the backend reads compressed bytes from the stage below (S3 or a file) into
 * the input ring; the thread inflates them into the output ring.
 *
 * A memory-context callback stops and joins the thread, so an error anywhere
 * (a bad row, a cancel) never leaves it running.  Non-gzip input (a plain CSV
 * file) passes straight through without a thread.
 *
 * The inflater is ISA-L's (Intel's Intelligent Storage Acceleration Library,
 * Debian's libisal): several times zlib's speed on the same deflate streams,
 * with the gzip header and CRC-32 checked as zlib checks them.  On a 2-core
 * machine the backend, this thread and whatever serves the bytes share two
 * cores, so the thread's CPU time is the load's too: zlib's inflate took as
 * much CPU as a third of plain COPY of the same rows.
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <isa-l/igzip_lib.h>

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

/* --- the helper thread: ISA-L and memory only ---------------------------- */

static void
gz_fail(GunzipSource *g, GzError e, const char *msg)
{
	pthread_mutex_lock(&g->mu);
	g->error = e;
	strlcpy(g->errmsg, msg ? msg : "", sizeof(g->errmsg));
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* ISA-L's errors, in words (igzip_lib.h) */
static const char *
gz_isal_error(int rc)
{
	switch (rc)
	{
		case ISAL_INVALID_BLOCK:
			return "invalid deflate block";
		case ISAL_INVALID_SYMBOL:
			return "invalid deflate symbol";
		case ISAL_INVALID_LOOKBACK:
			return "invalid lookback distance";
		case ISAL_INVALID_WRAPPER:
			return "invalid gzip header or trailer";
		case ISAL_UNSUPPORTED_METHOD:
			return "unsupported compression method";
		case ISAL_INCORRECT_CHECKSUM:
			return "incorrect CRC-32";
		default:
			return "inflate failed";
	}
}

static void *
gz_thread(void *arg)
{
	GunzipSource *g = arg;
	struct inflate_state *z = malloc(sizeof(struct inflate_state));
	bool		member_end = false;
	bool		holding_input = false;
	bool		drained = true;		/* the engine holds no output it could not write yet */

	if (z == NULL)
	{
		gz_fail(g, GZ_NOMEM, "out of memory");
		return NULL;
	}
	isal_inflate_init(z);
	z->crc_flag = ISAL_GZIP;	/* parse the gzip header, check the CRC-32 and length */
	for (;;)
	{
		int			slot;
		size_t		produced;
		int			rc = ISAL_DECOMP_OK;

		pthread_mutex_lock(&g->mu);
		if (z->avail_in == 0 && drained)
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
			z->next_in = (uint8_t *) g->in[g->in_head];
			z->avail_in = (uint32_t) g->in_len[g->in_head];
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
		z->next_out = (uint8_t *) g->out[slot];
		z->avail_out = GZ_CHUNK;
		for (;;)
		{
			uint32_t	in_before = z->avail_in,
						out_before = z->avail_out;

			if (member_end)
			{
				if (z->avail_in == 0)
					break;
				/* more bytes after a member: a concatenated gzip file */
				isal_inflate_reset(z);
				z->crc_flag = ISAL_GZIP;
				member_end = false;
			}
			rc = isal_inflate(z);
			if (rc != ISAL_DECOMP_OK)
				break;
			if (z->block_state == ISAL_BLOCK_FINISH)
				member_end = true;
			if (z->avail_out == 0)
				break;
			if (z->avail_in == in_before && z->avail_out == out_before && !member_end)
			{
				if (z->avail_in > 0)
					rc = ISAL_INVALID_BLOCK;	/* input and room, and no progress: never loop */
				break;			/* needs more input */
			}
		}
		if (rc != ISAL_DECOMP_OK)
		{
			gz_fail(g, GZ_CORRUPT, gz_isal_error(rc));
			break;
		}
		/* a full output buffer may leave output in the engine: drain before asking for input */
		drained = z->avail_out > 0;
		produced = GZ_CHUNK - z->avail_out;
		if (produced > 0)
		{
			pthread_mutex_lock(&g->mu);
			g->out_len[slot] = produced;
			g->out_count++;
			pthread_cond_broadcast(&g->cv);
			pthread_mutex_unlock(&g->mu);
		}
	}
	free(z);
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
