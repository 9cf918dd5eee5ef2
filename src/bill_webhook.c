/*
 * bill_webhook.c — verify that a webhook really comes from BILL.
 *
 * BILL signs each notification: header x-bill-sha-signature =
 * base64(HMAC-SHA256(securityKey, body)).  Whether "body" means the raw bytes
 * as sent is not stated by BILL (bill-api.md marks it unverified); we sign the
 * bytes we are handed, so whatever relays the webhook must pass the body
 * unchanged.  The key never enters SQL: it is read here from the credentials
 * file and wiped after use; the comparison is constant-time.
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "billops.h"
#include "billops_bill.h"
#include "common/base64.h"
#include "fmgr.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(billops_bill_webhook_verify);

Datum
billops_bill_webhook_verify(PG_FUNCTION_ARGS)
{
	text	   *body = PG_GETARG_TEXT_PP(0);
	text	   *signature = PG_GETARG_TEXT_PP(1);
	BillCredentials *creds = bill_credentials_load(false);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char		expected[128];
	int			expected_len;
	bool		ok;

	/*
	 * Not 28000 like a bad signature: a relay should answer BILL "try again
	 * later" for our configuration problem, and "refused" only for a bad
	 * signature.
	 */
	if (creds->webhook_security_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no BILL webhook security key is configured"),
				 errdetail("Searched: %s.", creds->origin),
				 errhint("Add webhook_security_key (the securityKey BILL returned when the subscription was created).")));
	if (HMAC(EVP_sha256(), creds->webhook_security_key, (int) strlen(creds->webhook_security_key),
			 (const unsigned char *) VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), mac, &mac_len) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the webhook signature")));
	bill_credentials_free(creds);
	expected_len = pg_b64_encode((const char *) mac, (int) mac_len, expected, sizeof(expected));
	billops_wipe(mac, sizeof(mac));
	ok = expected_len > 0 && VARSIZE_ANY_EXHDR(signature) == (size_t) expected_len &&
		CRYPTO_memcmp(VARDATA_ANY(signature), expected, expected_len) == 0;
	PG_RETURN_BOOL(ok);
}
