/*
 * billops_numeric_sum.h — exact sums of numerics, kept as fixed point while they fit.
 */
#ifndef BILLOPS_NUMERIC_SUM_H
#define BILLOPS_NUMERIC_SUM_H

#include "postgres.h"

#include "utils/numeric.h"

#ifndef HAVE_INT128
#error "pg_billops needs a 128-bit integer type (every platform Debian builds PostgreSQL 15 for has one)"
#endif

/* decimals a sum keeps as fixed point; more and it becomes a numeric */
#define NUMERIC_SUM_SCALE 20

typedef struct NumericSum
{
	union
	{
		int128		fixed;		/* the sum in units of 10^-NUMERIC_SUM_SCALE, until is_slow */
		Numeric		slow;		/* the sum as a numeric, once a value did not fit */
	}			v;
	int16		dscale;			/* the largest display scale added (numeric_add's rule) */
	bool		any;			/* a non-null value was added */
	bool		is_slow;
} NumericSum;					/* 24 bytes: the rollup keeps four per group */

extern void numeric_sum_init(NumericSum *s);
extern void numeric_sum_add(NumericSum *s, Datum value, MemoryContext cxt);
extern Datum numeric_sum_result(NumericSum *s, bool *isnull);

#endif
