/*
 * billops_aws_api.h — AWS's JSON-protocol billing APIs (Cost Explorer, Invoicing).
 */
#ifndef BILLOPS_AWS_API_H
#define BILLOPS_AWS_API_H

/* defines billops.aws_api_max_retries and billops.aws_api_retry_base (from _PG_init) */
extern void billops_aws_api_init(void);


#endif							/* BILLOPS_AWS_API_H */
