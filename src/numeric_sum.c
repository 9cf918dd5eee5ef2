/*
 * numeric_sum.c — exact sums of numeric values without an allocation per value.
 *
 * The daily rollup adds four amounts per line item into ~130,000 groups a
 * million rows; numeric_add allocates its result and the digit buffers of
 * its work on every call, which made those additions a third of the
 * rollup's cost.  CUR amounts are small decimals (AWS writes at most a few
 * dozen significant digits), so a sum is kept as a 128-bit integer in units
 * of 10^-NUMERIC_SUM_SCALE, exactly, and turned back into a numeric once,
 * when the group is written out.  A value that does not fit (more than
 * NUMERIC_SUM_SCALE decimals, 10^16 or more, or a sum that would overflow)
 * moves that sum to numeric_add for good: never rounded, only slower.
 *
 * Reading a numeric's digits.  PostgreSQL keeps the layout of a numeric
 * private to numeric.c ("The actual contents of Numeric are private");
 * what we rely on is its stored form, which cannot change without breaking
 * pg_upgrade of every table holding a numeric: a varlena of a 16-bit header
 * (sign, display scale and, in the short form, the weight), a 16-bit weight
 * in the long form, then base-10000 digits (numeric.c's header comment,
 * "NumericShort"/"NumericLong").  Not trusting even that, the reader checks
 * itself against numeric_in on values covering both forms, both signs, zero
 * and the limits the first time it is used; if any disagrees, every sum
 * goes through numeric_add.
 */
#include "postgres.h"

#include "billops_numeric_sum.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#define NBASE_DIGITS 4			/* decimal digits per numeric digit */
#define MAX_WEIGHT 3			/* values below 10000^4 = 10^16 */

/* the stored header: numeric.c's NUMERIC_* bits */
#define HDR_SIGN_MASK 0xC000
#define HDR_NEG 0x4000
#define HDR_SHORT 0x8000
#define HDR_SPECIAL 0xC000
#define HDR_SHORT_SIGN 0x2000
#define HDR_SHORT_DSCALE_MASK 0x1F80
#define HDR_SHORT_DSCALE_SHIFT 7
#define HDR_SHORT_WEIGHT_SIGN 0x0040
#define HDR_SHORT_WEIGHT_MASK 0x003F
#define HDR_DSCALE_MASK 0x3FFF

static int128 pow10_128[39];	/* 10^0 … 10^38, all an int128 holds */

typedef enum ReaderState
{
	READER_UNCHECKED,
	READER_OK,
	READER_OFF
} ReaderState;

static ReaderState reader_state = READER_UNCHECKED;

/*
 * The numeric as a multiple of 10^-NUMERIC_SUM_SCALE, and its display
 * scale; false if it is NaN or infinite, or does not fit.
 */
static bool
numeric_to_fixed(Numeric num, int128 *out, int *dscale)
{
	const char *p = VARDATA_ANY(num);
	int			len = VARSIZE_ANY_EXHDR(num);
	uint16		header;
	int16		weight;
	bool		negative;
	int			ndigits;
	int128		n = 0;
	int			exp10;

	if (len < (int) sizeof(uint16))
		return false;
	memcpy(&header, p, sizeof(header));
	if ((header & HDR_SIGN_MASK) == HDR_SPECIAL)
		return false;
	if (header & HDR_SHORT)
	{
		negative = (header & HDR_SHORT_SIGN) != 0;
		*dscale = (header & HDR_SHORT_DSCALE_MASK) >> HDR_SHORT_DSCALE_SHIFT;
		weight = (header & HDR_SHORT_WEIGHT_MASK) - ((header & HDR_SHORT_WEIGHT_SIGN) ? 64 : 0);
		p += sizeof(uint16);
		len -= sizeof(uint16);
	}
	else
	{
		if (len < 2 * (int) sizeof(uint16))
			return false;
		negative = (header & HDR_SIGN_MASK) == HDR_NEG;
		*dscale = header & HDR_DSCALE_MASK;
		memcpy(&weight, p + sizeof(uint16), sizeof(weight));
		p += 2 * sizeof(uint16);
		len -= 2 * sizeof(uint16);
	}
	ndigits = len / (int) sizeof(int16);
	if (*dscale > NUMERIC_SUM_SCALE)
		return false;
	if (ndigits == 0)
	{
		*out = 0;
		return true;
	}
	if (weight > MAX_WEIGHT || ndigits > MAX_WEIGHT + 1 + (NUMERIC_SUM_SCALE + NBASE_DIGITS - 1) / NBASE_DIGITS)
		return false;
	for (int i = 0; i < ndigits; i++)
	{
		int16		d;

		memcpy(&d, p + i * sizeof(int16), sizeof(d));
		if (d < 0 || d > 9999)
			return false;
		n = n * 10000 + d;
	}
	/* n × 10000^(weight - ndigits + 1), in units of 10^-SCALE */
	exp10 = NBASE_DIGITS * (weight - ndigits + 1) + NUMERIC_SUM_SCALE;
	if (exp10 < 0)
	{
		int128		div;

		if (-exp10 >= (int) lengthof(pow10_128))
			return false;
		div = pow10_128[-exp10];
		if (n % div != 0)
			return false;
		n /= div;
	}
	else if (exp10 > 0)
	{
		if (exp10 >= (int) lengthof(pow10_128) || __builtin_mul_overflow(n, pow10_128[exp10], &n))
			return false;
	}
	*out = negative ? -n : n;
	return true;
}

/* A fixed value back as a numeric of the given display scale. */
static Numeric
fixed_to_numeric(int128 v, int dscale)
{
	int128		scaled = v / pow10_128[NUMERIC_SUM_SCALE - dscale];	/* exact: no input had more decimals */
	char		buf[64];
	char	   *p = buf + sizeof(buf);
	bool		negative = scaled < 0;
	uint128		u = negative ? -(uint128) scaled : (uint128) scaled;
	int			written = 0;

	if (scaled >= PG_INT64_MIN && scaled <= PG_INT64_MAX)
		return int64_div_fast_to_numeric((int64) scaled, dscale);
	*--p = '\0';
	do
	{
		*--p = '0' + (int) (u % 10);
		u /= 10;
		if (++written == dscale)
			*--p = '.';
	} while (u != 0 || written < dscale);
	if (written == dscale && dscale > 0)
		*--p = '0';
	if (negative)
		*--p = '-';
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(p),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* The reader agrees with numeric_in on values of both stored forms, or it is not used. */
static void
check_reader(void)
{
	static const struct
	{
		const char *text;
		int128		units;		/* × 10^-20 */
		int			dscale;
		bool		fits;
	}			cases[] = {
		{"0", 0, 0, true},
		{"0.00", 0, 2, true},
		{"1", (int128) 100000000000000000LL * 1000, 0, true},
		{"-1.5", -(int128) 150000000000000000LL * 1000, 1, true},
		{"12345.6789", (int128) 123456789000000000LL * 10000000, 4, true},
		{"0.00000000000000000001", 1, 20, true},
		{"-0.00000000000000000123", -123, 20, true},
		{"9999999999999999.99999999999999999999", 0, 20, true},	/* units checked below */
		{"10000000000000000", 0, 0, false},
		{"0.000000000000000000001", 0, 21, false},
		/* a display scale past 63 is the long form */
		{"1.0000000000000000000000000000000000000000000000000000000000000000", 0, 64, false},
		{"NaN", 0, 0, false},
	};

	pow10_128[0] = 1;
	for (int i = 1; i < (int) lengthof(pow10_128); i++)
		pow10_128[i] = pow10_128[i - 1] * 10;
	reader_state = READER_OK;
	for (int i = 0; i < (int) lengthof(cases); i++)
	{
		Numeric		num = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(cases[i].text),
															  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		int128		v = 0;
		int			dscale = -1;
		bool		fits = numeric_to_fixed(num, &v, &dscale);
		int128		want = cases[i].units;

		if (i == 7)
			want = pow10_128[36] - 1;
		if (fits != cases[i].fits || (fits && (v != want || dscale != cases[i].dscale)) ||
			(fits && strcmp(DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(fixed_to_numeric(v, dscale)))),
							cases[i].text) != 0))
		{
			elog(DEBUG1, "pg_billops: numeric sums go through numeric_add (the stored form of %s was not as expected)",
				 cases[i].text);
			reader_state = READER_OFF;
			return;
		}
	}
}

void
numeric_sum_init(NumericSum *s)
{
	if (reader_state == READER_UNCHECKED)
		check_reader();
	s->v.fixed = 0;
	s->dscale = 0;
	s->any = false;
	s->is_slow = false;
}

void
numeric_sum_add(NumericSum *s, Datum value, MemoryContext cxt)
{
	Numeric		num = DatumGetNumeric(value);	/* detoasted */
	int128		v;
	int128		total;
	int			dscale;
	MemoryContext old;
	Numeric		sum;

	if (!s->is_slow && reader_state == READER_OK &&
		numeric_to_fixed(num, &v, &dscale) &&
		!__builtin_add_overflow(s->v.fixed, v, &total))
	{
		s->v.fixed = total;
		s->dscale = Max(s->dscale, dscale);
		s->any = true;
		return;
	}
	/* from here on this sum is a numeric */
	old = MemoryContextSwitchTo(cxt);
	if (!s->is_slow)
	{
		Numeric		so_far = s->any ? fixed_to_numeric(s->v.fixed, s->dscale) : NULL;

		s->v.slow = so_far;
		s->is_slow = true;
	}
	sum = s->v.slow ? numeric_add_opt_error(s->v.slow, num, NULL) : DatumGetNumericCopy(NumericGetDatum(num));
	if (s->v.slow)
		pfree(s->v.slow);
	s->v.slow = sum;
	s->any = true;
	MemoryContextSwitchTo(old);
}

Datum
numeric_sum_result(NumericSum *s, bool *isnull)
{
	*isnull = !s->any;
	if (!s->any)
		return (Datum) 0;
	if (s->is_slow)
		return NumericGetDatum(s->v.slow);
	return NumericGetDatum(fixed_to_numeric(s->v.fixed, s->dscale));
}
