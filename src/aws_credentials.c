/*
 * aws_credentials.c — AWS credentials the way AWS's SDKs find them, and a
 * role on top (see billops_credentials.h).
 *
 * The reference 'default' walks the SDKs' default chain ("Understand the
 * credential provider chain", AWS SDKs and Tools Reference Guide):
 *   1. environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
 *      (/ AWS_SESSION_TOKEN);
 *   2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN (and
 *      AWS_ROLE_SESSION_NAME) → STS AssumeRoleWithWebIdentity, as EKS IRSA
 *      provides;
 *   3. the profile AWS_PROFILE (else "default") of the shared config file
 *      ($AWS_CONFIG_FILE, else ~/.aws/config; "[profile name]") and the
 *      shared credentials file (billops.aws_shared_credentials_file, else
 *      $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials; "[name]"),
 *      the credentials file winning for a setting both name: role_arn
 *      with source_profile (followed, a cycle refused), credential_source
 *      (Environment, EcsContainer, Ec2InstanceMetadata) or
 *      web_identity_token_file, with external_id, role_session_name and
 *      duration_seconds; else static keys of the credentials file; else
 *      credential_process (aws_credential_process.c); else static keys of
 *      the config file.  The guide does not order the settings within one
 *      profile; this is botocore's order (its AssumeRoleProvider, then
 *      SharedCredentialProvider, ProcessProvider, ConfigProvider).
 *   4. the container credentials endpoint, then 5. the EC2 instance
 *      profile through IMDSv2 (aws_metadata.c).
 * 'env' is step 1 alone, 'profile:<name>' step 3 for that profile.
 *
 * Temporary credentials are cached in this backend (TopMemoryContext),
 * keyed by reference, role and region, and used until they are within
 * billops.aws_credentials_refresh_margin of their expiry; then they are
 * made again.  Long-term keys a credential_process printed are kept for
 * an hour (running a program per request would be slow; botocore keeps
 * them for its session's life, but a backend or worker lives longer).  Cached secrets are wiped when replaced.  Errors name the
 * places searched and the role, never a key or a token.
 */
#include "postgres.h"

#include <ctype.h>
#include <sys/stat.h>

#include "billops.h"
#include "billops_credentials.h"
#include "billops_ini.h"
#include "billops_sts.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* settings (defined in billops_aws_credentials_init) */
static char *shared_credentials_file = NULL;
static char *shared_config_file = NULL;
static int	refresh_margin_s = 300;

void
billops_aws_credentials_init(void)
{
	DefineCustomStringVariable("billops.aws_shared_credentials_file",
							   "AWS shared credentials file used for 'default' and 'profile:<name>' references.",
							   "Empty means $AWS_SHARED_CREDENTIALS_FILE, then $HOME/.aws/credentials of the server account.",
							   &shared_credentials_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("billops.aws_config_file",
							   "AWS shared config file used for 'default' and 'profile:<name>' references.",
							   "Empty means $AWS_CONFIG_FILE, then $HOME/.aws/config of the server account.",
							   &shared_config_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("billops.aws_credentials_refresh_margin",
							"Temporary AWS credentials are made again when they expire within this time.",
							NULL, &refresh_margin_s, 300, 0, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

static char *
file_path(const char *setting, const char *env, const char *home_relative)
{
	char	   *home;

	if (setting && setting[0])
		return pstrdup(setting);
	if (billops_getenv(env))
		return pstrdup(getenv(env));
	home = billops_getenv("HOME");
	return home ? psprintf("%s/%s", home, home_relative) : NULL;
}

char *
aws_shared_config_path(void)
{
	return file_path(shared_config_file, "AWS_CONFIG_FILE", ".aws/config");
}

char *
aws_profile_of_reference(const char *reference)
{
	char	   *profile = billops_getenv("AWS_PROFILE");

	if (reference && strncmp(reference, "profile:", 8) == 0)
		return pstrdup(reference + 8);
	return pstrdup(profile ? profile : "default");
}

/* --- a profile's settings --------------------------------------------------- */

typedef struct Profile
{
	char	   *name;
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;
	char	   *role_arn;
	char	   *source_profile;
	char	   *credential_source;
	char	   *external_id;
	char	   *role_session_name;
	char	   *duration_seconds;
	char	   *web_identity_token_file;
	char	   *credential_process;
	char	   *region;
	char	   *found_in;		/* where it was found, for messages */
	bool		keys_in_credentials_file;	/* aws_access_key_id came from the credentials file */
} Profile;

static void
set_value(char **slot, const char *val)
{
	if (*slot)
		billops_wipe_free(*slot);
	*slot = pstrdup(val);
}

static void
take_value(const char *key, const char *val, void *arg)
{
	Profile    *p = arg;
	static const struct
	{
		const char *key;
		size_t		offset;
	}			known[] = {
		{"aws_access_key_id", offsetof(Profile, access_key_id)},
		{"aws_secret_access_key", offsetof(Profile, secret_access_key)},
		{"aws_session_token", offsetof(Profile, session_token)},
		{"aws_security_token", offsetof(Profile, session_token)},
		{"role_arn", offsetof(Profile, role_arn)},
		{"source_profile", offsetof(Profile, source_profile)},
		{"credential_source", offsetof(Profile, credential_source)},
		{"external_id", offsetof(Profile, external_id)},
		{"role_session_name", offsetof(Profile, role_session_name)},
		{"duration_seconds", offsetof(Profile, duration_seconds)},
		{"web_identity_token_file", offsetof(Profile, web_identity_token_file)},
		{"credential_process", offsetof(Profile, credential_process)},
		{"region", offsetof(Profile, region)},
	};

	for (int i = 0; i < lengthof(known); i++)
		if (pg_strcasecmp(key, known[i].key) == 0)
			set_value((char **) ((char *) p + known[i].offset), val);
}

/*
 * A profile from the config file, then the credentials file (whose values
 * win).  false when neither has it; `searched` says where we looked.
 */
static bool
read_profile(const char *name, Profile *p, StringInfo searched)
{
	char	   *config = aws_shared_config_path();
	char	   *creds = file_path(shared_credentials_file, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
	bool		in_config = false,
				in_creds = false;

	memset(p, 0, sizeof(*p));
	p->name = pstrdup(name);
	/* the config file spells it [profile name], except [default] (billops_ini reads both) */
	if (config)
		in_config = billops_ini_read_section(config, name, "AWS shared config file", take_value, p);
	if (creds)
	{
		char	   *config_key = p->access_key_id;

		in_creds = billops_ini_read_section(creds, name, "AWS shared credentials file", take_value, p);
		p->keys_in_credentials_file = p->access_key_id != config_key;
	}
	if (!in_config && !in_creds)
	{
		appendStringInfo(searched, "%sprofile \"%s\" in %s and %s (not found)", searched->len ? "; " : "", name,
						 config ? psprintf("\"%s\"", config) : "(no config file: HOME is not set)",
						 creds ? psprintf("\"%s\"", creds) : "(no credentials file)");
		return false;
	}
	p->found_in = psprintf("profile \"%s\" in \"%s\"", name, in_creds ? creds : config);
	return true;
}

static void
profile_wipe(Profile *p)
{
	if (p->secret_access_key)
		billops_wipe_free(p->secret_access_key);
	if (p->session_token)
		billops_wipe_free(p->session_token);
	p->secret_access_key = p->session_token = NULL;
}

/* --- the chain's steps ------------------------------------------------------- */

static bool
from_environment(AwsCredentials *c)
{
	char	   *id = billops_getenv("AWS_ACCESS_KEY_ID");
	char	   *secret = billops_getenv("AWS_SECRET_ACCESS_KEY");
	char	   *token = billops_getenv("AWS_SESSION_TOKEN");

	if (id == NULL || secret == NULL)
		return false;
	c->access_key_id = pstrdup(id);
	c->secret_access_key = pstrdup(secret);
	c->session_token = token ? pstrdup(token) : NULL;
	c->origin = pstrdup("environment variables of the PostgreSQL server");
	return true;
}

/*
 * A token kept in a file (a web identity token, a container authorization
 * token): read anew each time, since its issuer rotates it; trailing
 * newlines and spaces dropped.  `what` names the file in errors.
 */
char *
aws_read_token_file(const char *path, const char *what)
{
	FILE	   *f = AllocateFile(path, "r");
	StringInfoData s;
	char		buf[4096];
	size_t		n;

	if (f == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("could not read the %s \"%s\": %m", what, path),
				 errhint("The file must be readable by the server account.")));
	initStringInfo(&s);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
	{
		if (s.len + n > 64 * 1024)
		{
			FreeFile(f);
			billops_wipe(buf, sizeof(buf));
			billops_wipe(s.data, s.len);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("the %s \"%s\" is larger than 64 kB", what, path)));
		}
		appendBinaryStringInfo(&s, buf, n);
	}
	billops_wipe(buf, sizeof(buf));
	FreeFile(f);
	while (s.len > 0 && (s.data[s.len - 1] == '\n' || s.data[s.len - 1] == '\r' || s.data[s.len - 1] == ' '))
		s.data[--s.len] = '\0';
	if (s.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the %s \"%s\" is empty", what, path)));
	return s.data;
}

/*
 * An expiry as AWS's credential sources write it, ISO 8601 with a zone
 * ("2026-12-07T01:00:00Z", fractions and "+00:00" allowed); anything else
 * is a 28000 naming `what` (the value is not a secret).
 */
TimestampTz
aws_expiration_parse(const char *s, const char *what)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t		i;
	const char *rest;

	for (i = 0; i < sizeof(shape) - 1; i++)
		if (s[i] == '\0' || (shape[i] == 'd' ? !isdigit((unsigned char) s[i]) : s[i] != shape[i]))
			break;
	rest = s + i;
	if (i == sizeof(shape) - 1 && *rest == '.')
		for (rest++; isdigit((unsigned char) *rest); rest++)
			;
	if (i < sizeof(shape) - 1 ||
		!(strcmp(rest, "Z") == 0 ||
		  ((rest[0] == '+' || rest[0] == '-') && strlen(rest) == 6 && isdigit((unsigned char) rest[1]) &&
		   isdigit((unsigned char) rest[2]) && rest[3] == ':' && isdigit((unsigned char) rest[4]) &&
		   isdigit((unsigned char) rest[5]))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the expiry \"%s\" given by %s is not an ISO 8601 time with a zone", s, what),
				 errhint("Write it as 2026-12-07T01:00:00Z.")));
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

static AwsCredentials *
web_identity(const char *token_file, const char *role_arn, const char *session_name, int duration,
			 const char *reference, const char *region)
{
	AwsRoleSpec role = {role_arn, NULL, session_name, duration};
	char	   *token = aws_read_token_file(token_file, "web identity token file");
	AwsCredentials *c = aws_sts_assume_role_with_web_identity(&role, token, reference, region);

	billops_wipe_free(token);
	c->origin = psprintf("role %s assumed with the web identity token in \"%s\"", role_arn, token_file);
	return c;
}

static int
duration_of(const Profile *p)
{
	char	   *end;
	long		v;

	if (p->duration_seconds == NULL)
		return 0;
	v = strtol(p->duration_seconds, &end, 10);
	if (*end != '\0' || v < 900 || v > 43200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("duration_seconds of %s is \"%s\"", p->found_in, p->duration_seconds),
				 errhint("A role session lasts 900 to 43200 seconds (at most the role's maximum).")));
	return (int) v;
}

static AwsCredentials *from_profile(const char *name, const char *reference, const char *region,
									StringInfo searched, int depth);

/* credential_source = EcsContainer or Ec2InstanceMetadata: that step of the chain, which must answer. */
static AwsCredentials *
metadata_source(const Profile *p, bool container)
{
	StringInfoData searched;
	AwsCredentials *c;

	initStringInfo(&searched);
	c = container ? aws_container_credentials(&searched) : aws_imds_credentials(&searched);
	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("%s takes its source credentials from %s, which gave none", p->found_in,
						container ? "the container credentials endpoint" : "the EC2 instance metadata service"),
				 errdetail("Searched: %s.", searched.data)));
	return c;
}

/* A profile with role_arn: its source, then AssumeRole. */
static AwsCredentials *
profile_role(Profile *p, const char *reference, const char *region, StringInfo searched, int depth)
{
	AwsCredentials *source = NULL;
	AwsCredentials *c;
	AwsRoleSpec role = {p->role_arn, p->external_id, p->role_session_name, duration_of(p)};
	const char *sts_region = p->region ? p->region : region;

	if (p->web_identity_token_file)
		return web_identity(p->web_identity_token_file, p->role_arn, p->role_session_name, role.duration_seconds,
							reference, sts_region);
	if (p->source_profile && p->credential_source)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s names both source_profile and credential_source", p->found_in),
				 errhint("A role profile takes its source credentials from one of them.")));
	if (p->source_profile)
	{
		/* the source profile's own keys, even if it also names a role (AWS's rule for a profile that sources itself) */
		if (strcmp(p->source_profile, p->name) == 0 && p->access_key_id && p->secret_access_key)
		{
			source = palloc0(sizeof(AwsCredentials));
			source->access_key_id = pstrdup(p->access_key_id);
			source->secret_access_key = pstrdup(p->secret_access_key);
			source->session_token = p->session_token ? pstrdup(p->session_token) : NULL;
			source->origin = pstrdup(p->found_in);
		}
		else
			source = from_profile(p->source_profile, reference, region, searched, depth + 1);
		if (source == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("the source_profile \"%s\" of %s was not found", p->source_profile, p->found_in),
					 errdetail("Searched: %s.", searched->data)));
	}
	else if (p->credential_source)
	{
		if (pg_strcasecmp(p->credential_source, "Environment") == 0)
		{
			source = palloc0(sizeof(AwsCredentials));
			if (!from_environment(source))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
						 errmsg("%s takes its source credentials from the environment, which has none", p->found_in),
						 errhint("Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the server's environment.")));
		}
		else if (pg_strcasecmp(p->credential_source, "EcsContainer") == 0)
			source = metadata_source(p, true);
		else if (pg_strcasecmp(p->credential_source, "Ec2InstanceMetadata") == 0)
			source = metadata_source(p, false);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("credential_source \"%s\" of %s is not one AWS defines", p->credential_source, p->found_in),
					 errhint("Use Environment, EcsContainer or Ec2InstanceMetadata.")));
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s names role_arn without a source", p->found_in),
				 errhint("Add source_profile, credential_source or web_identity_token_file to the profile.")));
	c = aws_sts_assume_role(&role, source, reference, sts_region);
	aws_credentials_free(source);
	return c;
}

/* A profile's credentials; NULL when there is no such profile. */
static AwsCredentials *
from_profile(const char *name, const char *reference, const char *region, StringInfo searched, int depth)
{
	Profile		p;
	AwsCredentials *c;

	if (depth > 5)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("AWS profile \"%s\" is part of a source_profile cycle, or a chain longer than 5 roles", name)));
	if (!read_profile(name, &p, searched))
		return NULL;
	if (p.role_arn)
	{
		c = profile_role(&p, reference, region, searched, depth);
		profile_wipe(&p);
		return c;
	}
	if (p.credential_process && !p.keys_in_credentials_file)
	{
		profile_wipe(&p);
		return aws_credential_process(p.credential_process, p.found_in);
	}
	if (p.access_key_id == NULL || p.secret_access_key == NULL)
	{
		profile_wipe(&p);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("AWS %s is incomplete", p.found_in),
				 errdetail("A profile needs aws_access_key_id and aws_secret_access_key, or role_arn with a source.")));
	}
	c = palloc0(sizeof(AwsCredentials));
	c->access_key_id = p.access_key_id;
	c->secret_access_key = p.secret_access_key;
	c->session_token = p.session_token;
	c->origin = p.found_in;
	return c;
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

/* The chain for a reference, without the cache. */
static AwsCredentials *
resolve_chain(const char *reference, const char *region)
{
	AwsCredentials *c = palloc0(sizeof(AwsCredentials));
	StringInfoData searched;

	if (!aws_credentials_reference_valid(reference))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid AWS credentials reference \"%s\"", reference ? reference : ""),
				 errhint("Use 'default', 'env' or 'profile:<name>'.")));

	initStringInfo(&searched);
	if (strncmp(reference, "profile:", 8) != 0)
	{
		if (from_environment(c))
			return c;
		appendStringInfoString(&searched, "environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (not set)");
	}
	if (strcmp(reference, "env") == 0)
		;
	else if (strcmp(reference, "default") == 0)
	{
		char	   *profile = billops_getenv("AWS_PROFILE");
		AwsCredentials *p;

		if (billops_getenv("AWS_WEB_IDENTITY_TOKEN_FILE") && billops_getenv("AWS_ROLE_ARN"))
			return web_identity(getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), getenv("AWS_ROLE_ARN"),
								billops_getenv("AWS_ROLE_SESSION_NAME"), 0, reference, region);
		appendStringInfoString(&searched, "; web identity AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (not set)");
		p = from_profile(profile ? profile : "default", reference, region, &searched, 0);
		if (p)
			return p;
		/* then the container credentials endpoint, then the EC2 instance profile */
		if ((p = aws_container_credentials(&searched)) != NULL)
			return p;
		if ((p = aws_imds_credentials(&searched)) != NULL)
			return p;
	}
	else
	{
		AwsCredentials *p = from_profile(reference + 8, reference, region, &searched, 0);

		if (p)
			return p;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("no AWS credentials found for reference \"%s\"", reference),
			 errdetail("Searched: %s.", searched.data),
			 errhint("Set the AWS_* variables in the server's environment, or add the profile to the shared config or credentials file (billops.aws_config_file, billops.aws_shared_credentials_file).")));
	return NULL;				/* not reached */
}

/* --- the cache ---------------------------------------------------------------- */

typedef struct CacheEntry
{
	char	   *key;
	AwsCredentials *creds;
	TimestampTz made_at;
} CacheEntry;

/* how long long-term keys a program printed are kept (see the top of the file) */
#define KEEP_WITHOUT_EXPIRY_USECS ((TimestampTz) 3600 * USECS_PER_SEC)

static List *cache = NIL;

static char *
cache_key(const char *reference, const AwsRoleSpec *role, const char *region)
{
	return psprintf("%s\x1f%s\x1f%s\x1f%s\x1f%d\x1f%s", reference,
					role ? role->role_arn : "", role && role->external_id ? role->external_id : "",
					role && role->session_name ? role->session_name : "", role ? role->duration_seconds : 0,
					region ? region : "");
}

static CacheEntry *
cache_find(const char *key)
{
	ListCell   *lc;

	foreach(lc, cache)
	{
		CacheEntry *e = lfirst(lc);

		if (strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static bool
fresh(const CacheEntry *e)
{
	TimestampTz now = GetCurrentTimestamp();

	if (e->creds->expiration == 0)
		return now - e->made_at < KEEP_WITHOUT_EXPIRY_USECS;
	return e->creds->expiration - now > (TimestampTz) refresh_margin_s * USECS_PER_SEC;
}

AwsCredentials *
aws_credentials_copy(const AwsCredentials *c)
{
	AwsCredentials *out = palloc0(sizeof(AwsCredentials));

	out->access_key_id = pstrdup(c->access_key_id);
	out->secret_access_key = pstrdup(c->secret_access_key);
	out->session_token = c->session_token ? pstrdup(c->session_token) : NULL;
	out->expiration = c->expiration;
	out->origin = pstrdup(c->origin);
	out->role_arn = c->role_arn ? pstrdup(c->role_arn) : NULL;
	out->chained = c->chained;
	out->keep = c->keep;
	return out;
}

AwsCredentials *
aws_credentials_get(const char *reference, const AwsRoleSpec *role, const char *region)
{
	char	   *key = cache_key(reference, role, region);
	CacheEntry *e = cache_find(key);
	AwsCredentials *made;
	MemoryContext old;

	if (e && fresh(e))
		return aws_credentials_copy(e->creds);
	if (role && role->role_arn)
	{
		AwsCredentials *source = aws_credentials_get(reference, NULL, region);

		made = aws_sts_assume_role(role, source, reference, region);
		aws_credentials_free(source);
	}
	else
		made = resolve_chain(reference, region);
	/* only what expires, or was costly to make, is worth keeping here; long-term keys are read where they live */
	if (made->expiration != 0 || made->keep)
	{
		old = MemoryContextSwitchTo(TopMemoryContext);
		if (e == NULL)
		{
			e = palloc0(sizeof(CacheEntry));
			e->key = pstrdup(key);
			cache = lappend(cache, e);
		}
		else
			aws_credentials_free(e->creds);
		e->creds = aws_credentials_copy(made);
		e->made_at = GetCurrentTimestamp();
		MemoryContextSwitchTo(old);
	}
	return made;
}

AwsCredentials *
aws_credentials_resolve(const char *reference)
{
	return aws_credentials_get(reference, NULL, NULL);
}

void
aws_credentials_forget(const char *reference, const AwsRoleSpec *role, const char *region)
{
	char	   *key = cache_key(reference, role, region);
	CacheEntry *e = cache_find(key);

	if (e == NULL)
		return;
	cache = list_delete_ptr(cache, e);
	aws_credentials_free(e->creds);
	pfree(e->key);
	pfree(e);
}

void
aws_credentials_free(AwsCredentials *c)
{
	if (c == NULL)
		return;
	if (c->secret_access_key)
		billops_wipe_free(c->secret_access_key);
	if (c->session_token)
		billops_wipe_free(c->session_token);
	if (c->access_key_id)
		pfree(c->access_key_id);
	if (c->origin)
		pfree(c->origin);
	if (c->role_arn)
		pfree(c->role_arn);
	pfree(c);
}
