/*
 * governance.c — the setting that tells the governance triggers who is
 * changing governed rows (billops.internal_context).
 *
 * The triggers (43_payable_lifecycle.sql and others) read it with
 * current_setting(); C never does.  It lives in C only because a custom
 * setting with a fixed set of values and PGC_SUSET must be defined by the
 * library.
 */
#include "postgres.h"

#include "billops_governance.h"
#include "utils/guc.h"

typedef enum BillopsInternalContext
{
	BILLOPS_CONTEXT_NONE,
	BILLOPS_CONTEXT_SYSTEM,
	BILLOPS_CONTEXT_APPROVAL,
	BILLOPS_CONTEXT_ADJUSTMENT,
	BILLOPS_CONTEXT_MAINTENANCE
} BillopsInternalContext;

static int	internal_context = BILLOPS_CONTEXT_NONE;

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

void
billops_governance_init(void)
{
	DefineCustomEnumVariable("billops.internal_context",
							 "Set only by pg_billops' own functions: marks system-generated changes and the adjustment path.",
							 NULL, &internal_context, BILLOPS_CONTEXT_NONE,
							 internal_context_options, PGC_SUSET,
							 GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							 NULL, NULL, NULL);
}
