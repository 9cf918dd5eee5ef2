/*
 * billops_bill.h — BILL (Bill.com) secrets.
 *
 * The devKey, the API user's password and the webhook security key live in a
 * file only the server account can read (billops.bill_credentials_file, a
 * superuser-only setting hidden from SHOW ALL), never in a table.
 */
#ifndef BILLOPS_BILL_H
#define BILLOPS_BILL_H

#include "postgres.h"

typedef struct BillCredentials
{
	char	   *dev_key;
	char	   *username;
	char	   *password;
	char	   *organization_id;
	char	   *webhook_security_key;	/* NULL if not configured */
	char	   *origin;			/* where they came from, safe to show */
} BillCredentials;

/* Reads the configured profile; errors name the file and profile, never a value. */
/* defines billops.bill_credentials_file and billops.bill_profile (from _PG_init) */
extern void billops_bill_credentials_init(void);
/* is billops.bill_credentials_file set? */
extern bool bill_credentials_configured(void);

extern BillCredentials *bill_credentials_load(bool need_api_login);
extern void bill_credentials_free(BillCredentials *creds);

#endif							/* BILLOPS_BILL_H */
