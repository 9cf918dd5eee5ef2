/*
 * parquet_encoding.c — Parquet's value and level encodings (Encodings.md of
 * apache/parquet-format): PLAIN for every physical type, the RLE /
 * bit-packed hybrid (levels, dictionary indices, RLE booleans),
 * PLAIN_DICTIONARY / RLE_DICTIONARY, DELTA_BINARY_PACKED,
 * DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY and BYTE_STREAM_SPLIT.  Plain C
 * (billops_parquet.h).
 *
 * Every decoder is told how many values to produce and fails, with a
 * message, when the bytes do not hold them, hold garbage past what the
 * encoding allows (a bit width wider than the type, an index past the
 * dictionary, lengths that overrun), or would need more memory than the
 * allocator grants.  Integer arithmetic of the delta encodings wraps, as
 * the specification allows, in unsigned types.
 */
#include <string.h>

#include "billops_parquet.h"

int32_t
pq_value_width(PqPhysicalType type, int32_t type_length)
{
	switch (type)
	{
		case PQ_BOOLEAN:
			return 1;
		case PQ_INT32:
		case PQ_FLOAT:
			return 4;
		case PQ_INT64:
		case PQ_DOUBLE:
			return 8;
		case PQ_INT96:
			return 12;
		case PQ_FIXED_LEN_BYTE_ARRAY:
			return type_length;
		case PQ_BYTE_ARRAY:
			return 0;
	}
	return 0;
}

int
pq_bit_width(uint32_t max)
{
	int			w = 0;

	while (max)
	{
		w++;
		max >>= 1;
	}
	return w;
}

static bool
varint(PqContext *cx, const uint8_t **p, const uint8_t *end, uint64_t *out, const char *what)
{
	uint64_t	v = 0;

	*out = 0;
	for (int i = 0; i < 10; i++)
	{
		if (*p >= end)
			return pq_fail(cx, "the %s ends early", what);
		v |= (uint64_t) (**p & 0x7f) << (7 * i);
		if ((*(*p)++ & 0x80) == 0)
		{
			*out = v;
			return true;
		}
	}
	return pq_fail(cx, "the %s has a varint longer than 10 bytes", what);
}

/* bit-unpack `n` values of width w (LSB first) from p, which holds at least ceil(n*w/8) bytes */
static void
unpack(const uint8_t *p, int w, int32_t n, uint64_t *out)
{
	uint64_t	bit = 0;

	for (int32_t i = 0; i < n; i++)
	{
		uint64_t	v = 0;

		for (int b = 0; b < w;)
		{
			uint64_t	byte = bit >> 3;
			int			shift = bit & 7;
			int			take = 8 - shift < w - b ? 8 - shift : w - b;

			v |= (uint64_t) ((p[byte] >> shift) & ((1u << take) - 1)) << b;
			b += take;
			bit += take;
		}
		out[i] = v;
	}
}

int64_t
pq_rle_decode(PqContext *cx, const uint8_t *buf, size_t len, int bit_width, int32_t count, uint32_t max, uint32_t *out)
{
	const uint8_t *p = buf;
	const uint8_t *end = buf + len;
	int32_t		done = 0;
	int			value_bytes = (bit_width + 7) / 8;

	if (bit_width < 0 || bit_width > 32)
		return pq_fail(cx, "an RLE run has bit width %d", bit_width) ? 0 : -1;
	while (done < count)
	{
		uint64_t	header;

		if (!varint(cx, &p, end, &header, "RLE data"))
			return -1;
		if ((header & 1) == 0)
		{
			uint64_t	run = header >> 1;
			uint32_t	v = 0;

			if (run == 0 || run > (uint64_t) (count - done))
			{
				if (run == 0)
					return pq_fail(cx, "an RLE run of length 0") ? 0 : -1;
				run = count - done;		/* a run may say more than is needed: the rest is not read */
			}
			if (end - p < value_bytes)
				return pq_fail(cx, "the RLE data ends early") ? 0 : -1;
			for (int b = 0; b < value_bytes; b++)
				v |= (uint32_t) p[b] << (8 * b);
			p += value_bytes;
			if (v > max)
				return pq_fail(cx, "an RLE run holds %u, above the largest allowed %u", v, max) ? 0 : -1;
			for (uint64_t i = 0; i < run; i++)
				out[done++] = v;
		}
		else
		{
			uint64_t	groups = header >> 1;
			uint64_t	values,
						bytes;
			uint64_t	tmp[8];

			if (groups == 0 || groups > ((uint64_t) 1 << 28))
				return pq_fail(cx, "a bit-packed run of %llu groups", (unsigned long long) groups) ? 0 : -1;
			values = groups * 8;
			bytes = groups * (uint64_t) bit_width;
			if (bytes > (uint64_t) (end - p))
			{
				/*
				 * The last run may be cut at the last byte holding a needed
				 * value (writers differ; the values past `count` are padding).
				 */
				uint64_t	needed = (uint64_t) (count - done) * bit_width;

				if ((needed + 7) / 8 > (uint64_t) (end - p))
					return pq_fail(cx, "the RLE data ends early") ? 0 : -1;
			}
			for (uint64_t g = 0; g < groups && done < count; g++)
			{
				int32_t		n = count - done < 8 ? count - done : 8;
				uint64_t	avail = (uint64_t) (end - p) - g * bit_width;

				if (avail < (uint64_t) ((n * bit_width + 7) / 8))
					return pq_fail(cx, "the RLE data ends early") ? 0 : -1;
				unpack(p + g * bit_width, bit_width, n, tmp);
				for (int32_t i = 0; i < n; i++)
				{
					if (tmp[i] > max)
						return pq_fail(cx, "a bit-packed run holds %llu, above the largest allowed %u",
									   (unsigned long long) tmp[i], max) ? 0 : -1;
					out[done++] = (uint32_t) tmp[i];
				}
			}
			p += bytes < (uint64_t) (end - p) ? bytes : (uint64_t) (end - p);
			(void) values;
		}
	}
	return p - buf;
}

/* --- allocation of a page's values -------------------------------------------------- */

static bool
alloc_values(PqContext *cx, PqPhysicalType type, int32_t type_length, int32_t count, PqValues *out)
{
	memset(out, 0, sizeof(*out));
	out->count = count;
	out->width = pq_value_width(type, type_length);
	if (count < 0)
		return pq_fail(cx, "a page has %d values", count);
	if (type == PQ_BYTE_ARRAY)
	{
		if ((out->ptr = pq_alloc(cx, sizeof(*out->ptr) * (size_t) count)) == NULL ||
			(out->len = pq_alloc(cx, sizeof(*out->len) * (size_t) count)) == NULL)
			return false;
		return true;
	}
	return (out->fixed = pq_alloc(cx, (size_t) out->width * (size_t) count)) != NULL;
}

/* --- PLAIN ------------------------------------------------------------------------------ */

static bool
decode_plain(PqContext *cx, PqPhysicalType type, const uint8_t *buf, size_t len, PqValues *out)
{
	int32_t		n = out->count;

	if (type == PQ_BOOLEAN)
	{
		if ((size_t) (n + 7) / 8 > len)
			return pq_fail(cx, "PLAIN booleans: %d values need %d bytes, the page has %zu", n, (n + 7) / 8, len);
		for (int32_t i = 0; i < n; i++)
			out->fixed[i] = (buf[i / 8] >> (i % 8)) & 1;
		return true;
	}
	if (type == PQ_BYTE_ARRAY)
	{
		const uint8_t *p = buf,
				   *end = buf + len;

		for (int32_t i = 0; i < n; i++)
		{
			uint32_t	l;

			if (end - p < 4)
				return pq_fail(cx, "PLAIN byte arrays end early (value %d of %d)", i + 1, n);
			l = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
			p += 4;
			if (l > (size_t) (end - p))
				return pq_fail(cx, "a PLAIN byte array says %u bytes, %zu are left", l, (size_t) (end - p));
			out->ptr[i] = p;
			out->len[i] = l;
			p += l;
		}
		return true;
	}
	if ((size_t) out->width * (size_t) n > len)
		return pq_fail(cx, "PLAIN %s: %d values need %zu bytes, the page has %zu", pq_type_name(type), n,
					   (size_t) out->width * (size_t) n, len);
	memcpy(out->fixed, buf, (size_t) out->width * (size_t) n);
	return true;
}

/* --- DELTA_BINARY_PACKED ---------------------------------------------------------------- */

/* `count` integers (as uint64, wrapping) from buf; *used is where the encoded stream ended. */
static bool
decode_delta_binary(PqContext *cx, const uint8_t *buf, size_t len, bool is64, int32_t count, uint64_t *out, size_t *used)
{
	const uint8_t *p = buf,
			   *end = buf + len;
	uint64_t	block_size,
				miniblocks,
				total,
				zz;
	uint64_t	per_mb;
	uint64_t	value;
	int32_t		done = 0;
	uint64_t	mask = is64 ? ~(uint64_t) 0 : 0xffffffffu;
	uint64_t	deltas[64];

	if (!varint(cx, &p, end, &block_size, "DELTA_BINARY_PACKED header") ||
		!varint(cx, &p, end, &miniblocks, "DELTA_BINARY_PACKED header") ||
		!varint(cx, &p, end, &total, "DELTA_BINARY_PACKED header") ||
		!varint(cx, &p, end, &zz, "DELTA_BINARY_PACKED header"))
		return false;
	if (block_size == 0 || block_size % 128 != 0 || block_size > 65536 || miniblocks == 0 ||
		block_size % miniblocks != 0 || (block_size / miniblocks) % 32 != 0)
		return pq_fail(cx, "DELTA_BINARY_PACKED: block size %llu with %llu miniblocks", (unsigned long long) block_size,
					   (unsigned long long) miniblocks);
	if (total != (uint64_t) count)
		return pq_fail(cx, "DELTA_BINARY_PACKED holds %llu values where %d are expected", (unsigned long long) total, count);
	per_mb = block_size / miniblocks;
	value = ((zz >> 1) ^ -(zz & 1)) & mask;
	if (count > 0)
		out[done++] = value;
	while (done < count)
	{
		uint64_t	min_delta;
		const uint8_t *widths;

		if (!varint(cx, &p, end, &zz, "DELTA_BINARY_PACKED block"))
			return false;
		min_delta = (zz >> 1) ^ -(zz & 1);
		if ((uint64_t) (end - p) < miniblocks)
			return pq_fail(cx, "DELTA_BINARY_PACKED: a block's bit widths end early");
		widths = p;
		p += miniblocks;
		for (uint64_t m = 0; m < miniblocks && done < count; m++)
		{
			int			w = widths[m];
			uint64_t	body = per_mb * w / 8;

			if (w > (is64 ? 64 : 32))
				return pq_fail(cx, "DELTA_BINARY_PACKED: a miniblock of bit width %d for %d-bit values", w, is64 ? 64 : 32);
			if (body > (uint64_t) (end - p))
				return pq_fail(cx, "DELTA_BINARY_PACKED: a miniblock ends early");
			for (uint64_t off = 0; off < per_mb && done < count; off += 64)
			{
				int32_t		n = (int32_t) (per_mb - off < 64 ? per_mb - off : 64);

				if (n > count - done)
					n = count - done;
				unpack(p + off * w / 8, w, n, deltas);
				for (int32_t i = 0; i < n; i++)
				{
					value = (value + min_delta + deltas[i]) & mask;
					out[done++] = value;
				}
			}
			p += body;
		}
	}
	*used = (size_t) (p - buf);
	return true;
}

static bool
decode_delta_int(PqContext *cx, PqPhysicalType type, const uint8_t *buf, size_t len, PqValues *out)
{
	uint64_t   *v;
	size_t		used;

	if ((v = pq_alloc(cx, sizeof(uint64_t) * (size_t) (out->count ? out->count : 1))) == NULL)
		return false;
	if (!decode_delta_binary(cx, buf, len, type == PQ_INT64, out->count, v, &used))
		return false;
	for (int32_t i = 0; i < out->count; i++)
	{
		if (type == PQ_INT64)
			for (int b = 0; b < 8; b++)
				out->fixed[i * 8 + b] = (uint8_t) (v[i] >> (8 * b));
		else
			for (int b = 0; b < 4; b++)
				out->fixed[i * 4 + b] = (uint8_t) (v[i] >> (8 * b));
	}
	return true;
}

/* lengths as DELTA_BINARY_PACKED int32s, each checked; *used past them */
static bool
decode_lengths(PqContext *cx, const uint8_t *buf, size_t len, int32_t count, uint32_t *lengths, uint64_t *sum, size_t *used)
{
	uint64_t   *v;

	if ((v = pq_alloc(cx, sizeof(uint64_t) * (size_t) (count ? count : 1))) == NULL)
		return false;
	if (!decode_delta_binary(cx, buf, len, false, count, v, used))
		return false;
	*sum = 0;
	for (int32_t i = 0; i < count; i++)
	{
		if ((int32_t) (uint32_t) v[i] < 0)
			return pq_fail(cx, "a delta-encoded length is negative");
		lengths[i] = (uint32_t) v[i];
		*sum += lengths[i];
	}
	return true;
}

static bool
decode_delta_length(PqContext *cx, const uint8_t *buf, size_t len, PqValues *out)
{
	uint64_t	sum;
	size_t		used;
	const uint8_t *p;

	if (!decode_lengths(cx, buf, len, out->count, out->len, &sum, &used))
		return false;
	if (sum > len - used)
		return pq_fail(cx, "DELTA_LENGTH_BYTE_ARRAY: lengths add up to %llu bytes, %zu follow",
					   (unsigned long long) sum, len - used);
	p = buf + used;
	for (int32_t i = 0; i < out->count; i++)
	{
		out->ptr[i] = p;
		p += out->len[i];
	}
	return true;
}

/* DELTA_BYTE_ARRAY: prefix lengths, then suffixes as DELTA_LENGTH_BYTE_ARRAY; each value is built anew. */
static bool
decode_delta_byte_array(PqContext *cx, PqPhysicalType type, int32_t type_length, const uint8_t *buf, size_t len,
						PqValues *out)
{
	int32_t		n = out->count;
	uint32_t   *prefix;
	uint32_t   *suffix;
	uint64_t	prefix_sum,
				suffix_sum,
				total = 0;
	size_t		used1,
				used2;
	const uint8_t *s;
	uint8_t    *dst;
	const uint8_t *prev = NULL;
	uint32_t	prev_len = 0;

	if ((prefix = pq_alloc(cx, sizeof(uint32_t) * (size_t) (n ? n : 1))) == NULL ||
		(suffix = pq_alloc(cx, sizeof(uint32_t) * (size_t) (n ? n : 1))) == NULL)
		return false;
	if (!decode_lengths(cx, buf, len, n, prefix, &prefix_sum, &used1) ||
		!decode_lengths(cx, buf + used1, len - used1, n, suffix, &suffix_sum, &used2))
		return false;
	if (suffix_sum > len - used1 - used2)
		return pq_fail(cx, "DELTA_BYTE_ARRAY: suffixes add up to %llu bytes, %zu follow",
					   (unsigned long long) suffix_sum, len - used1 - used2);
	/* (each prefix is checked against the value before it below; here only the sum is bounded) */
	for (int32_t i = 0; i < n; i++)
	{
		total += (uint64_t) prefix[i] + suffix[i];
		if (total > (uint64_t) 1 << 31)
			return pq_fail(cx, "DELTA_BYTE_ARRAY: the values add up to more than 2 GB");
	}
	if ((dst = pq_alloc(cx, (size_t) total)) == NULL)
		return false;
	s = buf + used1 + used2;
	prev_len = 0;
	for (int32_t i = 0; i < n; i++)
	{
		uint32_t	l = prefix[i] + suffix[i];

		if (prefix[i] > prev_len)
			return pq_fail(cx, "DELTA_BYTE_ARRAY: value %d shares %u bytes with a value of %u", i + 1, prefix[i], prev_len);
		if (prefix[i])
			memcpy(dst, prev, prefix[i]);
		memcpy(dst + prefix[i], s, suffix[i]);
		s += suffix[i];
		if (type == PQ_FIXED_LEN_BYTE_ARRAY)
		{
			if (l != (uint32_t) type_length)
				return pq_fail(cx, "DELTA_BYTE_ARRAY: a value of %u bytes in a column of %d-byte values", l, type_length);
			memcpy(out->fixed + (size_t) i * type_length, dst, l);
		}
		else
		{
			out->ptr[i] = dst;
			out->len[i] = l;
		}
		prev = dst;
		prev_len = l;
		dst += l;
	}
	return true;
}

/* --- BYTE_STREAM_SPLIT ------------------------------------------------------------------- */

static bool
decode_byte_stream_split(PqContext *cx, const uint8_t *buf, size_t len, PqValues *out)
{
	size_t		k = (size_t) out->width,
				n = (size_t) out->count;

	if (k * n != len)
		return pq_fail(cx, "BYTE_STREAM_SPLIT: %zu values of %zu bytes in a section of %zu", n, k, len);
	for (size_t i = 0; i < n; i++)
		for (size_t b = 0; b < k; b++)
			out->fixed[i * k + b] = buf[b * n + i];
	return true;
}

/* --- dictionaries ---------------------------------------------------------------------------- */

static bool
decode_dictionary_indices(PqContext *cx, const uint8_t *buf, size_t len, const PqValues *dict, PqValues *out)
{
	uint32_t   *idx;
	int			w;

	if (dict == NULL)
		return pq_fail(cx, "a dictionary-encoded page without a dictionary page before it");
	if (out->count == 0)
		return true;
	if (len < 1)
		return pq_fail(cx, "a dictionary-encoded page has no bit width");
	w = buf[0];
	if (w > 32)
		return pq_fail(cx, "dictionary indices of bit width %d", w);
	if (dict->count == 0)
		return pq_fail(cx, "a dictionary-encoded page with an empty dictionary");
	if ((idx = pq_alloc(cx, sizeof(uint32_t) * (size_t) out->count)) == NULL)
		return false;
	if (pq_rle_decode(cx, buf + 1, len - 1, w, out->count, (uint32_t) dict->count - 1, idx) < 0)
		return false;
	for (int32_t i = 0; i < out->count; i++)
	{
		if (dict->ptr)
		{
			out->ptr[i] = dict->ptr[idx[i]];
			out->len[i] = dict->len[idx[i]];
		}
		else
			memcpy(out->fixed + (size_t) i * out->width, dict->fixed + (size_t) idx[i] * dict->width, out->width);
	}
	return true;
}

bool
pq_decode_values(PqContext *cx, PqEncoding encoding, PqPhysicalType type, int32_t type_length,
				 const uint8_t *buf, size_t len, int32_t count, const PqValues *dict, PqValues *out)
{
	if (!alloc_values(cx, type, type_length, count, out))
		return false;
	switch (encoding)
	{
		case PQ_ENC_PLAIN:
			return decode_plain(cx, type, buf, len, out);
		case PQ_ENC_PLAIN_DICTIONARY:
		case PQ_ENC_RLE_DICTIONARY:
			return decode_dictionary_indices(cx, buf, len, dict, out);
		case PQ_ENC_RLE:
			if (type != PQ_BOOLEAN)
				return pq_fail(cx, "RLE values of type %s (only BOOLEAN values are RLE-encoded)", pq_type_name(type));
			{
				uint32_t	l;
				uint32_t   *bits;

				/* RLE booleans carry the 4-byte length prefix, in v1 and v2 pages alike */
				if (len < 4)
					return pq_fail(cx, "RLE booleans without their length");
				l = (uint32_t) buf[0] | (uint32_t) buf[1] << 8 | (uint32_t) buf[2] << 16 | (uint32_t) buf[3] << 24;
				if (l > len - 4)
					return pq_fail(cx, "RLE booleans say %u bytes, %zu follow", l, len - 4);
				if ((bits = pq_alloc(cx, sizeof(uint32_t) * (size_t) (count ? count : 1))) == NULL)
					return false;
				if (pq_rle_decode(cx, buf + 4, l, 1, count, 1, bits) < 0)
					return false;
				for (int32_t i = 0; i < count; i++)
					out->fixed[i] = (uint8_t) bits[i];
				return true;
			}
		case PQ_ENC_DELTA_BINARY_PACKED:
			if (type != PQ_INT32 && type != PQ_INT64)
				return pq_fail(cx, "DELTA_BINARY_PACKED values of type %s", pq_type_name(type));
			return decode_delta_int(cx, type, buf, len, out);
		case PQ_ENC_DELTA_LENGTH_BYTE_ARRAY:
			if (type != PQ_BYTE_ARRAY)
				return pq_fail(cx, "DELTA_LENGTH_BYTE_ARRAY values of type %s", pq_type_name(type));
			return decode_delta_length(cx, buf, len, out);
		case PQ_ENC_DELTA_BYTE_ARRAY:
			if (type != PQ_BYTE_ARRAY && type != PQ_FIXED_LEN_BYTE_ARRAY)
				return pq_fail(cx, "DELTA_BYTE_ARRAY values of type %s", pq_type_name(type));
			return decode_delta_byte_array(cx, type, type_length, buf, len, out);
		case PQ_ENC_BYTE_STREAM_SPLIT:
			if (type != PQ_FLOAT && type != PQ_DOUBLE && type != PQ_INT32 && type != PQ_INT64 &&
				type != PQ_FIXED_LEN_BYTE_ARRAY)
				return pq_fail(cx, "BYTE_STREAM_SPLIT values of type %s", pq_type_name(type));
			return decode_byte_stream_split(cx, buf, len, out);
		case PQ_ENC_BIT_PACKED:
		default:
			return pq_fail(cx, "values encoded %s, which is not a value encoding", pq_encoding_name(encoding));
	}
}
