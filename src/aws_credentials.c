/*
 * aws_credentials.c — resolve AWS credentials the way AWS users expect.
 *
 * Supported: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in
 * the server's environment, and the shared credentials file (INI profiles with
 * aws_access_key_id, aws_secret_access_key, aws_session_token).  The file is
 * billops.aws_shared_credentials_file, else $AWS_SHARED_CREDENTIALS_FILE, else
 * $HOME/.aws/credentials of the server account.
 *
 * Not supported (yet): credential_process, SSO and STS AssumeRole.  Errors name
 * the places searched and never a key; buffers holding keys are wiped on free.
 */
#include "postgres.h"

#include <sys/stat.h>

#include "billops.h"
#include "billops_credentials.h"
#include "billops_ini.h"
#include "lib/stringinfo.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* billops.aws_shared_credentials_file (defined in billops_aws_credentials_init) */
static char *shared_credentials_file = NULL;

void
billops_aws_credentials_init(void)
{
	DefineCustomStringVariable("billops.aws_shared_credentials_file",
							   "AWS shared credentials file used for 'default' and 'profile:<name>' references.",
							   "Empty means $AWS_SHARED_CREDENTIALS_FILE, then $HOME/.aws/credentials of the server account.",
							   &shared_credentials_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
}

static char *
nonempty_env(const char *name)
{
	char	   *v = getenv(name);

	return (v != NULL && v[0] != '\0') ? v : NULL;
}

static char *
credentials_file_path(void)
{
	char	   *home;

	if (shared_credentials_file && shared_credentials_file[0])
		return pstrdup(shared_credentials_file);
	if (nonempty_env("AWS_SHARED_CREDENTIALS_FILE"))
		return pstrdup(getenv("AWS_SHARED_CREDENTIALS_FILE"));
	home = nonempty_env("HOME");
	return home ? psprintf("%s/.aws/credentials", home) : NULL;
}

static void
take_aws_value(const char *key, const char *val, void *arg)
{
	AwsCredentials *out = arg;

	if (pg_strcasecmp(key, "aws_access_key_id") == 0)
		out->access_key_id = pstrdup(val);
	else if (pg_strcasecmp(key, "aws_secret_access_key") == 0)
		out->secret_access_key = pstrdup(val);
	else if (pg_strcasecmp(key, "aws_session_token") == 0 ||
			 pg_strcasecmp(key, "aws_security_token") == 0)
		out->session_token = pstrdup(val);
}

/* One profile of the shared credentials file; false if file or profile is missing. */
static bool
read_profile(const char *path, const char *profile, AwsCredentials *out)
{
	return billops_ini_read_section(path, profile, "AWS shared credentials file", take_aws_value, out);
}

static bool
from_environment(AwsCredentials *c)
{
	char	   *id = nonempty_env("AWS_ACCESS_KEY_ID");
	char	   *secret = nonempty_env("AWS_SECRET_ACCESS_KEY");
	char	   *token = nonempty_env("AWS_SESSION_TOKEN");

	if (id == NULL || secret == NULL)
		return false;
	c->access_key_id = pstrdup(id);
	c->secret_access_key = pstrdup(secret);
	c->session_token = token ? pstrdup(token) : NULL;
	c->origin = pstrdup("environment variables of the PostgreSQL server");
	return true;
}

static bool
from_profile(AwsCredentials *c, const char *profile, StringInfo searched)
{
	char	   *path = credentials_file_path();

	if (path == NULL)
	{
		appendStringInfo(searched, "%sprofile \"%s\" (no credentials file: HOME is not set)", searched->len ? "; " : "", profile);
		return false;
	}
	if (!read_profile(path, profile, c))
	{
		appendStringInfo(searched, "%sprofile \"%s\" in \"%s\" (not found)", searched->len ? "; " : "", profile, path);
		return false;
	}
	if (c->access_key_id == NULL || c->secret_access_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("AWS profile \"%s\" in \"%s\" is incomplete", profile, path),
				 errdetail("A profile needs both aws_access_key_id and aws_secret_access_key.")));
	c->origin = psprintf("profile \"%s\" in \"%s\"", profile, path);
	return true;
}

bool
aws_credentials_reference_valid(const char *reference)
{
	if (reference == NULL)
		return false;
	if (strcmp(reference, "default") == 0 || strcmp(reference, "env") == 0)
		return true;
	return strncmp(reference, "profile:", 8) == 0 && reference[8] != '\0' &&
		strpbrk(reference + 8, "[]\n\r") == NULL;
}

AwsCredentials *
aws_credentials_resolve(const char *reference)
{
	AwsCredentials *c = palloc0(sizeof(AwsCredentials));
	StringInfoData searched;
	bool		ok = false;

	if (!aws_credentials_reference_valid(reference))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid AWS credentials reference \"%s\"", reference ? reference : ""),
				 errhint("Use 'default', 'env' or 'profile:<name>'.")));

	initStringInfo(&searched);
	if (strcmp(reference, "env") == 0)
	{
		ok = from_environment(c);
		appendStringInfoString(&searched, "environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (not set)");
	}
	else if (strcmp(reference, "default") == 0)
	{
		char	   *profile = nonempty_env("AWS_PROFILE");

		ok = from_environment(c);
		appendStringInfoString(&searched, "environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (not set)");
		if (!ok)
			ok = from_profile(c, profile ? profile : "default", &searched);
	}
	else
		ok = from_profile(c, reference + 8, &searched);

	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no AWS credentials found for reference \"%s\"", reference),
				 errdetail("Searched: %s.", searched.data),
				 errhint("Set the AWS_* variables in the server's environment or add the profile to a credentials file named by billops.aws_shared_credentials_file.")));
	return c;
}

void
aws_credentials_free(AwsCredentials *c)
{
	if (c == NULL)
		return;
	if (c->secret_access_key)
	{
		billops_wipe(c->secret_access_key, strlen(c->secret_access_key));
		pfree(c->secret_access_key);
	}
	if (c->session_token)
	{
		billops_wipe(c->session_token, strlen(c->session_token));
		pfree(c->session_token);
	}
	if (c->access_key_id)
		pfree(c->access_key_id);
	if (c->origin)
		pfree(c->origin);
	pfree(c);
}
