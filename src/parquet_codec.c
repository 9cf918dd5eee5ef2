/*
 * parquet_codec.c — the page compression codecs Parquet names
 * (Compression.md of apache/parquet-format), through Debian's libraries
 * rather than our own: SNAPPY (a raw Snappy block, no framing), GZIP (gzip
 * members, RFC 1952), ZSTD (zstd frames), LZ4_RAW (a raw LZ4 block).  The
 * deprecated LZ4 (Hadoop's framing), LZO and BROTLI are refused.  Plain C
 * (billops_parquet.h).
 *
 * The output buffer is exactly the page header's uncompressed size, and
 * each decompressor is held to it: a stream that would produce more (a
 * decompression bomb, or a header that lies) or less fails, so memory never
 * exceeds what the header declared (itself capped at PQ_MAX_PAGE_BYTES).
 */
#include <string.h>

#include <lz4.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "billops_parquet.h"

static bool
gunzip(PqContext *cx, const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len)
{
	z_stream	z;
	int			rc = Z_OK;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return pq_fail(cx, "GZIP: could not start inflate");
	z.next_in = (Bytef *) src;
	z.avail_in = (uInt) src_len;
	z.next_out = dst;
	z.avail_out = (uInt) dst_len;
	while (z.avail_in > 0)
	{
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END)
		{
			/* another gzip member may follow */
			if (z.avail_in == 0)
				break;
			if (inflateReset(&z) != Z_OK)
				break;
			continue;
		}
		if (rc != Z_OK || (z.avail_out == 0 && z.avail_in > 0))
			break;
	}
	inflateEnd(&z);
	if (rc != Z_STREAM_END && rc != Z_OK)
		return pq_fail(cx, "GZIP: the page does not inflate (%s)", z.msg ? z.msg : "corrupt data");
	if (rc != Z_STREAM_END || z.avail_in != 0)
		return pq_fail(cx, "GZIP: the page inflates to more than the %zu bytes its header says, or ends early", dst_len);
	if (z.avail_out != 0)
		return pq_fail(cx, "GZIP: the page inflates to %zu bytes, its header says %zu", dst_len - z.avail_out, dst_len);
	return true;
}

bool
pq_decompress(PqContext *cx, PqCodec codec, const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len)
{
	switch (codec)
	{
		case PQ_CODEC_UNCOMPRESSED:
			if (src_len != dst_len)
				return pq_fail(cx, "an uncompressed page of %zu bytes says it is %zu", src_len, dst_len);
			memcpy(dst, src, src_len);
			return true;
		case PQ_CODEC_SNAPPY:
			{
				size_t		n;

				if (snappy_uncompressed_length((const char *) src, src_len, &n) != SNAPPY_OK)
					return pq_fail(cx, "SNAPPY: the page is not a Snappy block");
				if (n != dst_len)
					return pq_fail(cx, "SNAPPY: the page uncompresses to %zu bytes, its header says %zu", n, dst_len);
				if (snappy_uncompress((const char *) src, src_len, (char *) dst, &n) != SNAPPY_OK || n != dst_len)
					return pq_fail(cx, "SNAPPY: the page does not uncompress (corrupt data)");
				return true;
			}
		case PQ_CODEC_GZIP:
			return gunzip(cx, src, src_len, dst, dst_len);
		case PQ_CODEC_ZSTD:
			{
				unsigned long long declared = ZSTD_getFrameContentSize(src, src_len);
				size_t		n;

				if (declared == ZSTD_CONTENTSIZE_ERROR)
					return pq_fail(cx, "ZSTD: the page is not a zstd frame");
				if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != dst_len)
					return pq_fail(cx, "ZSTD: the page says it holds %llu bytes, its header %zu", declared, dst_len);
				n = ZSTD_decompress(dst, dst_len, src, src_len);
				if (ZSTD_isError(n))
					return pq_fail(cx, "ZSTD: the page does not decompress (%s)", ZSTD_getErrorName(n));
				if (n != dst_len)
					return pq_fail(cx, "ZSTD: the page decompresses to %zu bytes, its header says %zu", n, dst_len);
				return true;
			}
		case PQ_CODEC_LZ4_RAW:
			{
				int			n;

				if (src_len > INT32_MAX || dst_len > INT32_MAX)
					return pq_fail(cx, "LZ4_RAW: a page of more than 2 GB");
				n = LZ4_decompress_safe((const char *) src, (char *) dst, (int) src_len, (int) dst_len);
				if (n < 0)
					return pq_fail(cx, "LZ4_RAW: the page does not decompress (corrupt data, or more than its header says)");
				if ((size_t) n != dst_len)
					return pq_fail(cx, "LZ4_RAW: the page decompresses to %d bytes, its header says %zu", n, dst_len);
				return true;
			}
		case PQ_CODEC_LZ4:
			return pq_fail(cx, "compression LZ4 (Hadoop's framing, deprecated by the format) is not supported; write LZ4_RAW");
		default:
			return pq_fail(cx, "compression %s is not supported (UNCOMPRESSED, SNAPPY, GZIP, ZSTD and LZ4_RAW are)",
						   pq_codec_name(codec));
	}
}
