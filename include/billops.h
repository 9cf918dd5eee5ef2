/*
 * billops.h — small helpers shared by every pg_billops C file.
 *
 * Each C file owns one concern (signing, credentials, HTTP, S3, CUR loading,
 * the BILL worker) and the settings of that concern; this header holds only
 * what they all need: argument checks, the environment and wiping secrets.
 */
#ifndef BILLOPS_H
#define BILLOPS_H

#include "postgres.h"

#include "fmgr.h"

/*
 * For a C function that is not STRICT (some arguments may be NULL): every
 * argument named in names[] (NULL entries are optional) must be given, or a
 * 22004 error names it.  Reading a NULL argument as a value would crash.
 */
static inline void
billops_require_args(FunctionCallInfo fcinfo, const char *function, const char *const *names, int nargs)
{
	for (int i = 0; i < nargs && i < PG_NARGS(); i++)
		if (names[i] != NULL && PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %s of %s must not be NULL", names[i], function)));
}

/* An environment variable of the server, or NULL when it is unset or empty. */
static inline char *
billops_getenv(const char *name)
{
	char	   *v = getenv(name);

	return (v != NULL && v[0] != '\0') ? v : NULL;
}

/* Wipe memory that held a secret, in a way the compiler may not elide. */
static inline void
billops_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		explicit_bzero(p, len);
}

/* Wipe a palloc'd string that held a secret, then free it (NULL is fine). */
static inline void
billops_wipe_free(char *s)
{
	if (s != NULL)
	{
		billops_wipe(s, strlen(s));
		pfree(s);
	}
}

#endif							/* BILLOPS_H */
