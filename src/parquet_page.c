/*
 * parquet_page.c — one page of a column chunk into levels and values (the
 * README's "Data Pages" and Encodings.md of apache/parquet-format).  Plain C
 * (billops_parquet.h).
 *
 *   data page v1: the whole body is compressed; inside, the repetition
 *     levels then the definition levels (each a 4-byte length and RLE, or
 *     the deprecated BIT_PACKED; absent when the level's maximum is 0), then
 *     the values;
 *   data page v2: the levels first, uncompressed and without length
 *     prefixes (their lengths are in the header), then the values,
 *     compressed unless is_compressed is false;
 *   dictionary page: PLAIN values, the dictionary of the pages after it.
 *
 * Checks beyond each decoder's own: the number of non-null values is the
 * count of definition levels at their maximum (and, in v2, what num_nulls
 * says); a v2 page starts a row; a second dictionary page is refused.
 */
#include <string.h>

#include "billops_parquet.h"

void
pq_chunk_begin(PqChunkState *st, const PqSchemaNode *leaf, PqCodec codec)
{
	memset(st, 0, sizeof(*st));
	st->leaf = leaf;
	st->codec = codec;
}

/* the deprecated BIT_PACKED level encoding: MSB first, no length prefix */
static int64_t
bit_packed_levels(PqContext *cx, const uint8_t *buf, size_t len, int w, int32_t count, uint32_t max, uint32_t *out)
{
	uint64_t	bytes = ((uint64_t) count * w + 7) / 8;
	uint64_t	bit = 0;

	if (bytes > len)
		return pq_fail(cx, "BIT_PACKED levels end early") ? 0 : -1;
	for (int32_t i = 0; i < count; i++)
	{
		uint32_t	v = 0;

		for (int b = 0; b < w; b++, bit++)
			v = (v << 1) | ((buf[bit >> 3] >> (7 - (bit & 7))) & 1);
		if (v > max)
			return pq_fail(cx, "a level of %u above the column's maximum %u", v, max) ? 0 : -1;
		out[i] = v;
	}
	return (int64_t) bytes;
}

/* Levels of a v1 page (length-prefixed RLE, or BIT_PACKED); *used is how many bytes they took. */
static bool
v1_levels(PqContext *cx, PqEncoding enc, const uint8_t *buf, size_t len, int32_t count, uint32_t max,
		  uint32_t *out, size_t *used, const char *which)
{
	int			w = pq_bit_width(max);

	if (enc == PQ_ENC_RLE)
	{
		uint32_t	l;

		if (len < 4)
			return pq_fail(cx, "the page's %s levels have no length", which);
		l = (uint32_t) buf[0] | (uint32_t) buf[1] << 8 | (uint32_t) buf[2] << 16 | (uint32_t) buf[3] << 24;
		if (l > len - 4)
			return pq_fail(cx, "the page's %s levels say %u bytes, %zu follow", which, l, len - 4);
		if (pq_rle_decode(cx, buf + 4, l, w, count, max, out) < 0)
			return false;
		*used = 4 + (size_t) l;
		return true;
	}
	if (enc == PQ_ENC_BIT_PACKED)
	{
		int64_t		n = bit_packed_levels(cx, buf, len, w, count, max, out);

		if (n < 0)
			return false;
		*used = (size_t) n;
		return true;
	}
	return pq_fail(cx, "the page's %s levels are encoded %s", which, pq_encoding_name(enc));
}

/* how many of the levels reach the leaf, i.e. have a value */
static int32_t
present(const uint32_t *def, int32_t n, uint32_t max_def)
{
	int32_t		k = 0;

	if (def == NULL)
		return n;
	for (int32_t i = 0; i < n; i++)
		k += def[i] == max_def;
	return k;
}

bool
pq_decode_page(PqContext *cx, PqChunkState *st, const PqPageHeader *h, const uint8_t *body,
			   PqPage *out, bool *is_data)
{
	const PqSchemaNode *leaf = st->leaf;
	uint32_t	max_def = (uint32_t) leaf->max_def;
	uint32_t	max_rep = (uint32_t) leaf->max_rep;
	uint8_t    *buf;
	const uint8_t *values;
	size_t		values_len;
	int32_t		n = h->num_values;

	*is_data = false;
	st->pages++;
	if (h->type == PQ_PAGE_INDEX)
		return true;
	if (h->type == PQ_PAGE_DICTIONARY)
	{
		if (st->has_dictionary)
			return pq_fail(cx, "a second dictionary page in the column chunk");
		if (st->pages != 1)
			return pq_fail(cx, "a dictionary page after the chunk's first page");
		if (h->encoding != PQ_ENC_PLAIN && h->encoding != PQ_ENC_PLAIN_DICTIONARY)
			return pq_fail(cx, "a dictionary page encoded %s", pq_encoding_name(h->encoding));
		if ((buf = pq_alloc_uninit(cx, (size_t) h->uncompressed_size)) == NULL)
			return false;
		if (h->uncompressed_size > 0 &&
			!pq_decompress(cx, st->codec, body, (size_t) h->compressed_size, buf, (size_t) h->uncompressed_size))
			return false;
		if (!pq_decode_values(cx, PQ_ENC_PLAIN, leaf->type, leaf->type_length, buf, (size_t) h->uncompressed_size,
							  n, NULL, &st->dictionary))
			return false;
		st->has_dictionary = true;
		return true;
	}

	memset(out, 0, sizeof(*out));
	out->num_levels = n;
	if ((max_rep > 0 && (out->rep = pq_alloc(cx, sizeof(uint32_t) * (size_t) (n ? n : 1))) == NULL) ||
		(max_def > 0 && (out->def = pq_alloc(cx, sizeof(uint32_t) * (size_t) (n ? n : 1))) == NULL))
		return false;

	if (h->type == PQ_PAGE_DATA)
	{
		size_t		pos = 0,
					used;

		if ((buf = pq_alloc_uninit(cx, (size_t) h->uncompressed_size)) == NULL)
			return false;
		if (h->uncompressed_size > 0 || h->compressed_size > 0)
			if (!pq_decompress(cx, st->codec, body, (size_t) h->compressed_size, buf, (size_t) h->uncompressed_size))
				return false;
		if (max_rep > 0)
		{
			if (!v1_levels(cx, h->rep_encoding, buf, (size_t) h->uncompressed_size, n, max_rep, out->rep, &used, "repetition"))
				return false;
			pos += used;
		}
		if (max_def > 0)
		{
			if (!v1_levels(cx, h->def_encoding, buf + pos, (size_t) h->uncompressed_size - pos, n, max_def, out->def, &used,
						   "definition"))
				return false;
			pos += used;
		}
		values = buf + pos;
		values_len = (size_t) h->uncompressed_size - pos;
	}
	else
	{
		size_t		levels = (size_t) h->rep_levels_length + (size_t) h->def_levels_length;
		size_t		stored = (size_t) h->compressed_size - levels;

		if ((size_t) h->uncompressed_size < levels)
			return pq_fail(cx, "a v2 page's levels are longer than the page");
		if (max_rep > 0 && pq_rle_decode(cx, body, (size_t) h->rep_levels_length, pq_bit_width(max_rep), n, max_rep, out->rep) < 0)
			return false;
		if (max_def > 0 && pq_rle_decode(cx, body + h->rep_levels_length, (size_t) h->def_levels_length,
										 pq_bit_width(max_def), n, max_def, out->def) < 0)
			return false;
		values_len = (size_t) h->uncompressed_size - levels;
		if (h->is_compressed && st->codec != PQ_CODEC_UNCOMPRESSED && values_len > 0)
		{
			if ((buf = pq_alloc(cx, values_len)) == NULL)
				return false;
			if (!pq_decompress(cx, st->codec, body + levels, stored, buf, values_len))
				return false;
			values = buf;
		}
		else
		{
			if (stored != values_len)
				return pq_fail(cx, "a v2 page stores %zu bytes of values uncompressed, its header says %zu", stored, values_len);
			values = body + levels;
		}
		if (out->rep && n > 0 && out->rep[0] != 0)
			return pq_fail(cx, "a v2 data page that does not start a row");
	}

	{
		int32_t		k = present(out->def, n, max_def);

		if (h->type == PQ_PAGE_DATA_V2 && n - k != h->num_nulls)
			return pq_fail(cx, "a v2 page says %d NULLs, its levels %d", h->num_nulls, n - k);
		if (!pq_decode_values(cx, h->encoding, leaf->type, leaf->type_length, values, values_len, k,
							  st->has_dictionary ? &st->dictionary : NULL, &out->values))
			return false;
	}
	if (out->rep)
		for (int32_t i = 0; i < n; i++)
			out->num_rows += out->rep[i] == 0;
	else
		out->num_rows = n;
	*is_data = true;
	return true;
}
