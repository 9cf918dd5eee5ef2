/*
 * pg_billops.c — module entry point: settings.
 *
 * Settings that decide where secrets come from are superuser-only and hidden
 * from SHOW ALL, so an analyst can neither read nor redirect them.
 */
#include "postgres.h"

#include <limits.h>

#include "billops.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

char	   *billops_aws_shared_credentials_file = NULL;
char	   *billops_ca_bundle = NULL;
char	   *billops_bill_credentials_file = NULL;
char	   *billops_bill_profile = NULL;
char	   *billops_bill_base_url = NULL;
char	   *billops_bill_database = NULL;
int			billops_bill_poll_interval_s = 300;
int			billops_bill_max_concurrent_requests = 3;
int			billops_http_connect_timeout_ms = 10000;
int			billops_http_stall_timeout_ms = 60000;
int			billops_http_request_timeout_ms = 120000;
int			billops_s3_max_retries = 4;
int			billops_s3_retry_base_ms = 200;
int			billops_aws_api_max_retries = 4;
int			billops_aws_api_retry_base_ms = 500;
int			billops_load_batch_rows = 1000;
int			billops_swap_lock_timeout_ms = 60000;
bool		billops_analyze_after_load = true;
int			billops_internal_context = BILLOPS_CONTEXT_NONE;

/*
 * Who is changing governed rows.  Only the extension's own SECURITY DEFINER
 * functions switch this (with a SET clause, applied after the switch to the
 * superuser owner), so table triggers can tell a human's direct UPDATE from
 * the build (system), an approval decision, the adjustment path or maintenance.  PGC_SUSET: nobody else can
 * set it, and a superuser who does could disable the triggers anyway.
 */
static const struct config_enum_entry internal_context_options[] = {
	{"none", BILLOPS_CONTEXT_NONE, false},
	{"system", BILLOPS_CONTEXT_SYSTEM, false},
	{"approval", BILLOPS_CONTEXT_APPROVAL, false},
	{"adjustment", BILLOPS_CONTEXT_ADJUSTMENT, false},
	{"maintenance", BILLOPS_CONTEXT_MAINTENANCE, false},
	{NULL, 0, false}
};

void		_PG_init(void);

bool
billops_is_loopback_host(const char *host)
{
	if (host == NULL)
		return false;
	if (pg_strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
		strcmp(host, "[::1]") == 0 || strncmp(host, "127.", 4) == 0)
		return true;
	/* RFC 6761: *.localhost always resolves to loopback (curl enforces it too) */
	{
		size_t		n = strlen(host);

		return n > 10 && pg_strcasecmp(host + n - 10, ".localhost") == 0;
	}
}

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	DefineCustomStringVariable("billops.aws_shared_credentials_file",
							   "AWS shared credentials file used for 'default' and 'profile:<name>' references.",
							   "Empty means $AWS_SHARED_CREDENTIALS_FILE, then $HOME/.aws/credentials of the server account.",
							   &billops_aws_shared_credentials_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("billops.bill_credentials_file",
							   "File with BILL's devKey, API user, password, organization and webhook security key.",
							   "INI sections named by billops.bill_profile. Readable by the server account only.",
							   &billops_bill_credentials_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("billops.bill_profile",
							   "Section of billops.bill_credentials_file to use.",
							   NULL, &billops_bill_profile, "default",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("billops.bill_base_url",
							   "BILL API base URL, e.g. https://gateway.prod.bill.com/connect (empty: the worker does not call BILL).",
							   NULL, &billops_bill_base_url, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("billops.bill_database",
							   "Database whose BILL outbox the background worker delivers (empty: the worker waits).",
							   NULL, &billops_bill_database, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.bill_poll_interval",
							"How often the BILL worker asks BILL for bills changed since the last poll (0: never; webhooks only).",
							NULL, &billops_bill_poll_interval_s, 300, 0, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	/*
	 * BILL allows 3 concurrent requests per devKey per organization.  Lower
	 * it when other integrations share the devKey and organization.
	 */
	DefineCustomIntVariable("billops.bill_max_concurrent_requests",
							"Requests the BILL worker keeps in flight at once (BILL allows 3 per devKey and organization).",
							NULL, &billops_bill_max_concurrent_requests, 3, 1, 3,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("billops.ca_bundle",
							   "CA certificate bundle for HTTPS peers (empty: the system default).",
							   NULL, &billops_ca_bundle, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.http_connect_timeout",
							"Time allowed to connect to AWS or BILL.",
							NULL, &billops_http_connect_timeout_ms, 10000, 100, 600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.http_stall_timeout",
							"A response body that delivers nothing for this long is treated as failed (and resumed).",
							NULL, &billops_http_stall_timeout_ms, 60000, 1000, 3600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.http_request_timeout",
							"Total time allowed for a small API request (listings, manifests).",
							NULL, &billops_http_request_timeout_ms, 120000, 1000, 3600000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.s3_max_retries",
							"Retries for S3 5xx/throttling/transport failures, and resumes of a cut-off body.",
							NULL, &billops_s3_max_retries, 4, 0, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.s3_retry_base",
							"Base of the exponential backoff (with full jitter) between S3 retries.",
							NULL, &billops_s3_retry_base_ms, 200, 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.aws_api_max_retries",
							"Retries of a Cost Explorer or Invoicing call that was throttled, failed with 5xx or lost its connection.",
							NULL, &billops_aws_api_max_retries, 4, 0, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.aws_api_retry_base",
							"Base of the exponential backoff (with full jitter) between Cost Explorer / Invoicing retries.",
							NULL, &billops_aws_api_retry_base_ms, 500, 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billops.load_batch_rows",
							"Rows buffered per multi-insert while loading CUR files.",
							NULL, &billops_load_batch_rows, 1000, 1, 1000,
							PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("billops.swap_lock_timeout",
							"How long the swap of a new delivery waits for readers of the old one.",
							"0 waits forever. On timeout the load fails, the old delivery stays, and the next sync retries.",
							&billops_swap_lock_timeout_ms, 60000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("billops.analyze_after_load",
							 "ANALYZE each new partition before it is swapped in, so BI queries plan well at once.",
							 NULL, &billops_analyze_after_load, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomEnumVariable("billops.internal_context",
							 "Set only by pg_billops' own functions: marks system-generated changes and the adjustment path.",
							 NULL, &billops_internal_context, BILLOPS_CONTEXT_NONE,
							 internal_context_options, PGC_SUSET,
							 GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							 NULL, NULL, NULL);

	/* the BILL worker and its wake-on-commit need shared memory: preload only */
	if (process_shared_preload_libraries_in_progress)
		billops_bill_worker_register();

	/* after every module defined its settings: a misspelt billops.* is an error, not a placeholder */
	MarkGUCPrefixReserved("billops");
}
