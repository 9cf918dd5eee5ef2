/*
 * aws_endpoint.c — where a request to an AWS service goes, configured the
 * way AWS's SDKs configure it ("Service-specific endpoints" and
 * "Identifiers for service-specific endpoints", AWS SDKs and Tools
 * Reference Guide), so VPC endpoints, FIPS endpoints and local emulators
 * need no pg_billops-specific switch.  In order, the first that is set:
 *
 *   1. the endpoint the source names itself (cur_source.endpoint_url,
 *      aws_api_source.cost_explorer_url / invoicing_url): the SDKs' "explicit
 *      endpoint set on the client", which no other setting overrides;
 *   2. AWS_ENDPOINT_URL_<SERVICE> in the server's environment;
 *   3. AWS_ENDPOINT_URL;
 *   4. the profile's `services = <name>` section of the shared config file,
 *      "[services <name>]", key <service> with the sub-setting endpoint_url;
 *   5. the profile's own endpoint_url;
 *   6. the service's default endpoint.
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true, or the profile's
 * ignore_configured_endpoint_urls = true, skips 2 to 5.  The order is the
 * one aws-cli's published test vectors (tests/functional/
 * configured_endpoint_urls/profile-tests.json) check; our test runs them.
 *
 * The profile is the one the source's credentials reference names
 * ('profile:<name>'), else AWS_PROFILE, else "default": the SDKs read the
 * endpoint settings of the profile the client was made with.  The guide
 * lists endpoint_url, services and ignore_configured_endpoint_urls as
 * settings of the config file, so the credentials file is not read for them.
 *
 * Service identifiers: the service model's serviceId with spaces as
 * underscores, upper case for the variable, lower case for the config
 * key: "S3" → AWS_ENDPOINT_URL_S3 / s3, "Cost Explorer" →
 * AWS_ENDPOINT_URL_COST_EXPLORER / cost_explorer, "Invoicing", "STS".
 */
#include "postgres.h"

#include <ctype.h>

#include "billops.h"
#include "billops_aws_request.h"
#include "billops_credentials.h"
#include "billops_ini.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

typedef struct ProfileEndpoints
{
	char	   *endpoint_url;
	char	   *services;
	char	   *ignore;
} ProfileEndpoints;

static void
take_profile_setting(const char *key, const char *value, void *arg)
{
	ProfileEndpoints *p = arg;

	if (pg_strcasecmp(key, "endpoint_url") == 0)
		p->endpoint_url = pstrdup(value);
	else if (pg_strcasecmp(key, "services") == 0)
		p->services = pstrdup(value);
	else if (pg_strcasecmp(key, "ignore_configured_endpoint_urls") == 0)
		p->ignore = pstrdup(value);
}

typedef struct ServiceSetting
{
	const char *service_key;
	char	   *endpoint_url;
} ServiceSetting;

static void
take_service_setting(const char *parent, const char *key, const char *value, void *arg)
{
	ServiceSetting *s = arg;

	if (pg_strcasecmp(parent, s->service_key) == 0 && pg_strcasecmp(key, "endpoint_url") == 0)
		s->endpoint_url = pstrdup(value);
}

/* "Cost Explorer" → "COST_EXPLORER" (upper) or "cost_explorer" */
static char *
service_identifier(const char *service_id, bool upper)
{
	char	   *out = pstrdup(service_id);

	for (char *c = out; *c; c++)
		*c = (*c == ' ') ? '_' : (upper ? pg_toupper((unsigned char) *c) : pg_tolower((unsigned char) *c));
	return out;
}

static bool
is_true(const char *v)
{
	return v != NULL && pg_strcasecmp(v, "true") == 0;
}

char *
aws_service_endpoint(const char *service_id, const char *explicit_url, const char *reference,
					 const char *default_url, char **configured_by)
{
	char	   *env_name = psprintf("AWS_ENDPOINT_URL_%s", service_identifier(service_id, true));
	char	   *config = aws_shared_config_path();
	char	   *profile = aws_profile_of_reference(reference);
	ProfileEndpoints p = {0};
	bool		in_config = false;
	char	   *by = NULL;
	char	   *url = NULL;

	if (explicit_url && explicit_url[0])
	{
		url = pstrdup(explicit_url);
		by = pstrdup("the source's own endpoint");
		goto done;
	}
	if (config)
		in_config = billops_ini_read_section(config, profile, "AWS shared config file", take_profile_setting, &p);
	if (!is_true(billops_getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) && !is_true(p.ignore))
	{
		if (billops_getenv(env_name))
		{
			url = pstrdup(getenv(env_name));
			by = env_name;
		}
		else if (billops_getenv("AWS_ENDPOINT_URL"))
		{
			url = pstrdup(getenv("AWS_ENDPOINT_URL"));
			by = pstrdup("AWS_ENDPOINT_URL");
		}
		else if (in_config && p.services && p.services[0])
		{
			ServiceSetting s = {service_identifier(service_id, false), NULL};

			(void) billops_ini_read_nested_section(config, psprintf("services %s", p.services),
												   "AWS shared config file", take_service_setting, &s);
			if (s.endpoint_url && s.endpoint_url[0])
			{
				url = s.endpoint_url;
				by = psprintf("%s endpoint_url of [services %s] in \"%s\"", s.service_key, p.services, config);
			}
		}
		if (url == NULL && in_config && p.endpoint_url && p.endpoint_url[0])
		{
			url = p.endpoint_url;
			by = psprintf("endpoint_url of profile \"%s\" in \"%s\"", profile, config);
		}
	}
	if (url == NULL)
	{
		url = default_url ? pstrdup(default_url) : NULL;
		by = pstrdup("the service's default endpoint");
	}
done:
	/* "https://host/" and "https://host" are one endpoint */
	if (url)
	{
		size_t		n = strlen(url);

		while (n > 0 && url[n - 1] == '/')
			url[--n] = '\0';
	}
	if (configured_by)
		*configured_by = by;
	return url;
}

/* The services pg_billops calls, as its SQL names them, with their default endpoints. */
static const struct
{
	const char *name;			/* as SQL names it: aws_api_call.service, ... */
	const char *service_id;		/* the model's serviceId */
	const char *default_format; /* %s: the region */
}			known_services[] = {
	{"s3", "S3", "https://s3.%s.amazonaws.com"},
	/* Cost Explorer and Invoicing have one endpoint in the aws partition, signed for us-east-1 */
	{"ce", "Cost Explorer", "https://ce.us-east-1.amazonaws.com"},
	{"invoicing", "Invoicing", "https://invoicing.us-east-1.api.aws"},
	{"sts", "STS", "https://sts.%s.amazonaws.com"},
};

char *
aws_known_service_endpoint(const char *service, const char *explicit_url, const char *reference,
						   const char *region, char **configured_by)
{
	for (int i = 0; i < lengthof(known_services); i++)
		if (strcmp(known_services[i].name, service) == 0)
			return aws_service_endpoint(known_services[i].service_id, explicit_url, reference,
										psprintf(known_services[i].default_format,
												 region && region[0] ? region : "us-east-1"),
										configured_by);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown AWS service \"%s\"", service),
			 errhint("pg_billops calls s3, ce, invoicing and sts.")));
	return NULL;				/* not reached */
}

/*
 * billops.aws_endpoint(service text, credentials text, region text, source_endpoint_url text)
 *   RETURNS TABLE (endpoint_url text, configured_by text)
 */
PG_FUNCTION_INFO_V1(billops_aws_endpoint);
Datum
billops_aws_endpoint(PG_FUNCTION_ARGS)
{
	static const char *const required[] = {"service", "credentials", "region"};
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	char	   *reference;
	char	   *by = NULL;
	char	   *url;

	billops_require_args(fcinfo, "billops.aws_endpoint", required, lengthof(required));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	reference = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!aws_credentials_reference_valid(reference))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid AWS credentials reference \"%s\"", reference),
				 errhint("Use 'default', 'env' or 'profile:<name>'.")));
	url = aws_known_service_endpoint(text_to_cstring(PG_GETARG_TEXT_PP(0)),
									 PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
									 reference, text_to_cstring(PG_GETARG_TEXT_PP(2)), &by);
	values[0] = CStringGetTextDatum(url);
	values[1] = CStringGetTextDatum(by);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
