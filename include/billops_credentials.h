/*
 * billops_credentials.h — where AWS keys come from.
 *
 * A source names a credentials *reference*, never a key: 'default' (the AWS
 * chain: environment, then the shared credentials file's AWS_PROFILE or
 * "default" profile), 'env', or 'profile:<name>'.  Keys live in the server's
 * environment or in a file only the server account can read, so no table an
 * analyst can SELECT from ever holds a secret.
 */
#ifndef BILLOPS_CREDENTIALS_H
#define BILLOPS_CREDENTIALS_H

#include "postgres.h"

typedef struct AwsCredentials
{
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;	/* NULL when the keys are long-term */
	char	   *origin;			/* where they came from, safe to show */
} AwsCredentials;

/* defines billops.aws_shared_credentials_file (from _PG_init) */
extern void billops_aws_credentials_init(void);

/* Resolves a reference or raises an error that names where it looked. */
extern AwsCredentials *aws_credentials_resolve(const char *reference);
extern void aws_credentials_free(AwsCredentials *creds);
/* Validates the syntax of a reference (used by a CHECK-like SQL function). */
extern bool aws_credentials_reference_valid(const char *reference);

#endif							/* BILLOPS_CREDENTIALS_H */
