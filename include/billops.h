/*
 * billops.h — settings and small helpers shared by every pg_billops C file.
 *
 * Each C file owns one concern (signing, credentials, HTTP, S3, CUR loading);
 * this header holds only what they all need: the GUC variables and the
 * error-reporting conventions.
 */
#ifndef BILLOPS_H
#define BILLOPS_H

#include "postgres.h"

#include "fmgr.h"

/* GUCs (defined in pg_billops.c) */
extern char *billops_aws_shared_credentials_file;
extern char *billops_ca_bundle;
extern char *billops_bill_credentials_file;
extern char *billops_bill_profile;
extern char *billops_bill_base_url;
extern char *billops_bill_database;
extern int	billops_bill_poll_interval_s;
extern int	billops_bill_max_concurrent_requests;

extern void billops_bill_worker_register(void);
extern int	billops_http_connect_timeout_ms;
extern int	billops_http_stall_timeout_ms;
extern int	billops_http_request_timeout_ms;
extern int	billops_s3_max_retries;
extern int	billops_s3_retry_base_ms;
extern int	billops_aws_api_max_retries;
extern int	billops_aws_api_retry_base_ms;
extern int	billops_load_batch_rows;
extern int	billops_swap_lock_timeout_ms;
extern bool billops_analyze_after_load;

typedef enum BillopsInternalContext
{
	BILLOPS_CONTEXT_NONE,
	BILLOPS_CONTEXT_SYSTEM,
	BILLOPS_CONTEXT_APPROVAL,
	BILLOPS_CONTEXT_ADJUSTMENT,
	BILLOPS_CONTEXT_MAINTENANCE
} BillopsInternalContext;
extern int	billops_internal_context;

/* pg_billops.c */
extern bool billops_is_loopback_host(const char *host);

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

/* Wipe memory that held a secret, in a way the compiler may not elide. */
static inline void
billops_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		explicit_bzero(p, len);
}

#endif							/* BILLOPS_H */
