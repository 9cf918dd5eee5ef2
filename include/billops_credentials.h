/*
 * billops_credentials.h — where AWS keys come from.
 *
 * A source names a credentials *reference*, never a key: 'default' (the AWS
 * SDKs' default chain: environment variables, web identity, the shared
 * config and credentials files' profile), 'env', or 'profile:<name>'; and,
 * on top of it, optionally a role to assume (AwsRoleSpec) through STS.  Keys
 * live in the server's environment, in files only the server account can
 * read, or in this backend's memory for as long as they are valid, so no
 * table an analyst can SELECT from ever holds a secret.
 */
#ifndef BILLOPS_CREDENTIALS_H
#define BILLOPS_CREDENTIALS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

typedef struct AwsCredentials
{
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;	/* NULL when the keys are long-term */
	TimestampTz expiration;		/* 0: they do not expire */
	char	   *origin;			/* where they came from, safe to show */
	char	   *role_arn;		/* the role they are a session of, or NULL */
	bool		chained;		/* a role session made with another role's session (AWS: at most one hour) */
	bool		keep;			/* long-term, but costly to make (a program ran): cached anyway */
} AwsCredentials;

/* A role to assume on top of a reference (a source's own least-privilege role). */
typedef struct AwsRoleSpec
{
	const char *role_arn;
	const char *external_id;	/* NULL: none */
	const char *session_name;	/* NULL: "pg_billops" */
	int			duration_seconds;	/* 0: STS's default (one hour) */
} AwsRoleSpec;

/* defines billops.aws_shared_credentials_file and the credential settings (from _PG_init) */
extern void billops_aws_credentials_init(void);
/* defines billops.aws_imds_v1_allowed (from _PG_init) */
extern void billops_aws_metadata_init(void);

/* defines billops.aws_credential_process_timeout (from _PG_init) */
extern void billops_aws_credential_process_init(void);

/* credential_process (aws_credential_process.c): run the program, read its JSON; `found_in` names the profile. */
extern AwsCredentials *aws_credential_process(const char *command, const char *found_in);

/* An ISO 8601 expiry with a zone; a 28000 naming `what` otherwise. */
extern TimestampTz aws_expiration_parse(const char *s, const char *what);

/* The chain's last steps (aws_metadata.c): NULL when the step does not apply (`searched` says why). */
extern AwsCredentials *aws_container_credentials(StringInfo searched);
extern AwsCredentials *aws_imds_credentials(StringInfo searched);

/*
 * The credentials for a reference (and a role on top of it, or NULL), from
 * this backend's cache while they are valid for longer than
 * billops.aws_credentials_refresh_margin, else resolved anew.  `region` is
 * where STS is asked (its regional endpoint).  Raises an error that names
 * where it looked, never a key.  The result is a copy: aws_credentials_free it.
 */
extern AwsCredentials *aws_credentials_get(const char *reference, const AwsRoleSpec *role, const char *region);
/* The same without a role, in us-east-1 when STS is needed. */
extern AwsCredentials *aws_credentials_resolve(const char *reference);
/* Drop what the cache holds for a reference and role (AWS said the token expired). */
extern void aws_credentials_forget(const char *reference, const AwsRoleSpec *role, const char *region);
extern AwsCredentials *aws_credentials_copy(const AwsCredentials *c);
extern void aws_credentials_free(AwsCredentials *creds);
/* A token kept in a file, read anew (its issuer rotates it); `what` names the file in errors. */
extern char *aws_read_token_file(const char *path, const char *what);
/* The shared config file's path (billops.aws_config_file, $AWS_CONFIG_FILE, ~/.aws/config), or NULL. */
extern char *aws_shared_config_path(void);
/* The profile a reference reads its settings from: 'profile:<name>', else AWS_PROFILE, else "default". */
extern char *aws_profile_of_reference(const char *reference);
/* Validates the syntax of a reference (used by a CHECK-like SQL function). */
extern bool aws_credentials_reference_valid(const char *reference);

#endif							/* BILLOPS_CREDENTIALS_H */
