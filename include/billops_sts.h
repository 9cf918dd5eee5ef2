/*
 * billops_sts.h — AWS Security Token Service, the Query protocol (API
 * version 2011-06-15) through the shared signed-request path: AssumeRole,
 * AssumeRoleWithWebIdentity, GetCallerIdentity.
 */
#ifndef BILLOPS_STS_H
#define BILLOPS_STS_H

#include "postgres.h"

#include "billops_credentials.h"

/* The endpoint STS is asked at for a region: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, else the regional one. */
extern char *aws_sts_endpoint(const char *region);

/* AssumeRole, signed with `source`; the role session's keys (their origin says which role). */
extern AwsCredentials *aws_sts_assume_role(const AwsRoleSpec *role, const AwsCredentials *source, const char *region);

/* AssumeRoleWithWebIdentity (unsigned: the token is the proof). */
extern AwsCredentials *aws_sts_assume_role_with_web_identity(const AwsRoleSpec *role, const char *token,
															 const char *region);

typedef struct AwsCallerIdentity
{
	char	   *account;
	char	   *arn;
	char	   *user_id;
} AwsCallerIdentity;

extern AwsCallerIdentity *aws_sts_get_caller_identity(const AwsCredentials *creds, const char *region);

#endif							/* BILLOPS_STS_H */
