/*
 * bill_credentials.c — read BILL's secrets from the credentials file.
 *
 * File format (INI), one section per profile, billops.bill_profile picks one:
 *
 *   [default]
 *   dev_key = ...
 *   username = ...
 *   password = ...
 *   organization_id = ...
 *   webhook_security_key = ...     (the securityKey BILL shows once per subscription)
 *
 * Errors name the file and the profile, never a value; secrets are wiped
 * when freed.
 */
#include "postgres.h"

#include "billops.h"
#include "billops_bill.h"
#include "billops_ini.h"
#include "utils/guc.h"

/* billops.bill_credentials_file, billops.bill_profile (defined in billops_bill_credentials_init) */
static char *bill_credentials_file = NULL;
static char *bill_profile = NULL;

bool
bill_credentials_configured(void)
{
	return bill_credentials_file != NULL && bill_credentials_file[0] != '\0';
}

void
billops_bill_credentials_init(void)
{
	DefineCustomStringVariable("billops.bill_credentials_file",
							   "File with BILL's devKey, API user, password, organization and webhook security key.",
							   "INI sections named by billops.bill_profile. Readable by the server account only.",
							   &bill_credentials_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("billops.bill_profile",
							   "Section of billops.bill_credentials_file to use.",
							   NULL, &bill_profile, "default",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
}

static void
take_bill_value(const char *key, const char *val, void *arg)
{
	BillCredentials *c = arg;
	char	  **slot = NULL;

	if (pg_strcasecmp(key, "dev_key") == 0)
		slot = &c->dev_key;
	else if (pg_strcasecmp(key, "username") == 0)
		slot = &c->username;
	else if (pg_strcasecmp(key, "password") == 0)
		slot = &c->password;
	else if (pg_strcasecmp(key, "organization_id") == 0)
		slot = &c->organization_id;
	else if (pg_strcasecmp(key, "webhook_security_key") == 0)
		slot = &c->webhook_security_key;
	if (slot != NULL && val[0] != '\0')
		*slot = pstrdup(val);
}

BillCredentials *
bill_credentials_load(bool need_api_login)
{
	BillCredentials *c = palloc0(sizeof(BillCredentials));
	const char *path = bill_credentials_file;
	const char *profile = (bill_profile && bill_profile[0]) ? bill_profile : "default";

	if (path == NULL || path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no BILL credentials file is configured"),
				 errhint("Set billops.bill_credentials_file (postgresql.conf, superuser only) to a file readable only by the server account.")));
	if (!billops_ini_read_section(path, profile, "BILL credentials file", take_bill_value, c))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no BILL credentials for profile \"%s\"", profile),
				 errdetail("Searched: profile \"%s\" in \"%s\" (not found).", profile, path),
				 errhint("Add a [%s] section with dev_key, username, password and organization_id.", profile)));
	if (need_api_login && (c->dev_key == NULL || c->username == NULL || c->password == NULL ||
						   c->organization_id == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("BILL profile \"%s\" in \"%s\" is incomplete", profile, path),
				 errdetail("A profile needs dev_key, username, password and organization_id.")));
	c->origin = psprintf("profile \"%s\" in \"%s\"", profile, path);
	return c;
}

void
bill_credentials_free(BillCredentials *c)
{
	if (c == NULL)
		return;
	billops_wipe_free(c->dev_key);
	billops_wipe_free(c->username);
	billops_wipe_free(c->password);
	billops_wipe_free(c->organization_id);
	billops_wipe_free(c->webhook_security_key);
	if (c->origin)
		pfree(c->origin);
	pfree(c);
}
