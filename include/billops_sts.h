/*
 * billops_sts.h — AWS Security Token Service, the Query protocol (API
 * version 2011-06-15) through the shared signed-request path: AssumeRole,
 * AssumeRoleWithWebIdentity, GetCallerIdentity.
 */
#ifndef BILLOPS_STS_H
#define BILLOPS_STS_H

#include "postgres.h"

#include "billops_credentials.h"

/*
 * `reference` is the credentials reference being resolved: its profile's
 * endpoint settings say where STS is (aws_endpoint.c, service "STS").
 */

/* AssumeRole, signed with `source`; the role session's keys (their origin says which role). */
extern AwsCredentials *aws_sts_assume_role(const AwsRoleSpec *role, const AwsCredentials *source,
										   const char *reference, const char *region);

/* AssumeRoleWithWebIdentity (unsigned: the token is the proof). */
extern AwsCredentials *aws_sts_assume_role_with_web_identity(const AwsRoleSpec *role, const char *token,
															 const char *reference, const char *region);

typedef struct AwsCallerIdentity
{
	char	   *account;
	char	   *arn;
	char	   *user_id;
} AwsCallerIdentity;

extern AwsCallerIdentity *aws_sts_get_caller_identity(const AwsCredentials *creds, const char *reference,
													   const char *region);

#endif							/* BILLOPS_STS_H */
