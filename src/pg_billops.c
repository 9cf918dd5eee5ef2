/*
 * pg_billops.c — module entry point.
 *
 * Each module defines and owns its settings (its *_init function, called
 * here); settings that decide where secrets come from are superuser-only and
 * hidden from SHOW ALL, so an analyst can neither read nor redirect them.
 */
#include "postgres.h"

#include "billops_aws_api.h"
#include "billops_bill.h"
#include "billops_bill_client.h"
#include "billops_bill_worker.h"
#include "billops_byte_source.h"
#include "billops_credentials.h"
#include "billops_cur.h"
#include "billops_governance.h"
#include "billops_http.h"
#include "billops_s3.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	billops_http_init();
	billops_aws_credentials_init();
	billops_aws_metadata_init();
	billops_aws_credential_process_init();
	billops_parquet_source_init();
	billops_s3_init();
	billops_aws_api_init();
	billops_cur_load_init();
	billops_bill_credentials_init();
	billops_bill_client_init();
	billops_bill_worker_init();
	billops_governance_init();

	/* the BILL worker and its wake-on-commit need shared memory: preload only */
	if (process_shared_preload_libraries_in_progress)
		billops_bill_worker_register();

	/*
	 * After every module defined its settings (the worker's postmaster
	 * setting too): a misspelt billops.* is an error, not a placeholder.
	 * Reserving the prefix drops the placeholders of settings not defined by
	 * then, with their values from postgresql.conf.
	 */
	MarkGUCPrefixReserved("billops");

	if (!process_shared_preload_libraries_in_progress)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_billops is not in shared_preload_libraries: its BILL worker cannot run"),
				 errdetail("CUR loading, payables and every other function work; what is queued for BILL waits in billops.bill_outbox until the worker runs."),
				 errhint(BILL_PRELOAD_HINT)));
}
