/*
 * sigv4.c — AWS Signature Version 4 signing with OpenSSL HMAC-SHA256.
 *
 * Follows the published algorithm step by step (canonical request, string to
 * sign, signing key, signature) and is checked against AWS's official test
 * suite (test/integration/sigv4-suite.test.mjs).  Nothing here talks to the
 * network or reads credentials: callers hand in the request and the keys, and
 * every buffer that held key material is wiped before it is freed.
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "billops.h"
#include "billops_sigv4.h"
#include "nodes/pg_list.h"

static const char hexdigits[] = "0123456789abcdef";
static const char hexupper[] = "0123456789ABCDEF";

static void
to_hex(const unsigned char *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
	{
		out[2 * i] = hexdigits[in[i] >> 4];
		out[2 * i + 1] = hexdigits[in[i] & 0xF];
	}
	out[2 * len] = '\0';
}

void
sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("OpenSSL SHA-256 failed")));
	to_hex(md, 32, out);
}

static void
hmac_sha256(const void *key, size_t keylen, const char *data, unsigned char out[32])
{
	unsigned int outlen = 0;

	if (HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) data,
			 strlen(data), out, &outlen) == NULL || outlen != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("OpenSSL HMAC-SHA256 failed")));
}

void
sigv4_format_amz_date(pg_time_t t, char out[17])
{
	struct pg_tm *tm = pg_gmtime(&t);

	snprintf(out, 17, "%04d%02d%02dT%02d%02d%02dZ",
			 tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
			 tm->tm_hour, tm->tm_min, tm->tm_sec);
}

void
sigv4_uri_encode(StringInfo out, const char *s, bool keep_slash)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		unsigned char c = *p;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			c == '~' || (keep_slash && c == '/'))
			appendStringInfoChar(out, (char) c);
		else
		{
			appendStringInfoChar(out, '%');
			appendStringInfoChar(out, hexupper[c >> 4]);
			appendStringInfoChar(out, hexupper[c & 0xF]);
		}
	}
}

/*
 * Remove "." and ".." segments and empty segments ("//"), keeping a trailing
 * slash, as the generic SigV4 rules require.  S3 must never get this: its keys
 * may legitimately contain "//" or "..".
 */
static char *
normalize_path(const char *path)
{
	List	   *segs = NIL;
	char	   *copy = pstrdup(path);
	char	   *save = NULL;
	bool		trailing = false;
	size_t		len = strlen(path);
	StringInfoData out;
	ListCell   *lc;

	if (len > 0 && path[len - 1] == '/')
		trailing = true;
	for (char *tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
	{
		if (strcmp(tok, ".") == 0)
		{
			trailing = true;
			continue;
		}
		if (strcmp(tok, "..") == 0)
		{
			if (segs != NIL)
				segs = list_delete_last(segs);
			trailing = true;
			continue;
		}
		segs = lappend(segs, tok);
		trailing = false;
	}
	if (len > 0 && path[len - 1] == '/')
		trailing = true;

	initStringInfo(&out);
	foreach(lc, segs)
	{
		appendStringInfoChar(&out, '/');
		appendStringInfoString(&out, (char *) lfirst(lc));
	}
	if (out.len == 0 || trailing)
		appendStringInfoChar(&out, '/');
	return out.data;
}

typedef struct EncodedPair
{
	char	   *key;
	char	   *value;
} EncodedPair;

static int
cmp_encoded_pair(const void *a, const void *b)
{
	const EncodedPair *pa = a;
	const EncodedPair *pb = b;
	int			c = strcmp(pa->key, pb->key);

	return c != 0 ? c : strcmp(pa->value, pb->value);
}

static void
append_canonical_query(StringInfo out, const SigV4Pair *query, int nquery)
{
	EncodedPair *pairs;

	if (nquery == 0)
		return;
	pairs = palloc(sizeof(EncodedPair) * nquery);
	for (int i = 0; i < nquery; i++)
	{
		StringInfoData k,
					v;

		initStringInfo(&k);
		initStringInfo(&v);
		sigv4_uri_encode(&k, query[i].key, false);
		sigv4_uri_encode(&v, query[i].value ? query[i].value : "", false);
		pairs[i].key = k.data;
		pairs[i].value = v.data;
	}
	qsort(pairs, nquery, sizeof(EncodedPair), cmp_encoded_pair);
	for (int i = 0; i < nquery; i++)
	{
		if (i > 0)
			appendStringInfoChar(out, '&');
		appendStringInfo(out, "%s=%s", pairs[i].key, pairs[i].value);
	}
}

/* Trim, and collapse runs of whitespace (including folded lines) to one space. */
static void
append_trimmed_value(StringInfo out, const char *v)
{
	bool		pending_space = false;
	bool		any = false;

	for (const char *p = v; *p; p++)
	{
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		{
			pending_space = any;
			continue;
		}
		if (pending_space)
			appendStringInfoChar(out, ' ');
		pending_space = false;
		appendStringInfoChar(out, *p);
		any = true;
	}
}

typedef struct CanonHeader
{
	char	   *name;			/* lower case */
	int			order;			/* original position, keeps duplicate order */
	const char *value;
} CanonHeader;

static int
cmp_canon_header(const void *a, const void *b)
{
	const CanonHeader *ha = a;
	const CanonHeader *hb = b;
	int			c = strcmp(ha->name, hb->name);

	return c != 0 ? c : (ha->order - hb->order);
}

void
sigv4_sign(const SigV4Request *req, const SigV4Scope *scope,
		   const char *access_key_id, const char *secret_access_key,
		   SigV4Result *result)
{
	StringInfoData creq;
	StringInfoData signed_headers;
	StringInfoData sts;
	StringInfoData scope_str;
	CanonHeader *hdrs;
	char		date8[9];
	char		creq_hash[65];
	char	   *path;
	char	   *kseed;
	size_t		kseed_len;
	unsigned char k1[32],
				k2[32],
				k3[32],
				k4[32],
				sig[32];
	char		sighex[65];

	/* 1. canonical request */
	initStringInfo(&creq);
	appendStringInfo(&creq, "%s\n", req->method);
	path = (req->path == NULL || req->path[0] == '\0') ? "/" : (char *) req->path;
	if (scope->normalize_path)
		path = normalize_path(path);
	sigv4_uri_encode(&creq, path, true);
	appendStringInfoChar(&creq, '\n');
	append_canonical_query(&creq, req->query, req->nquery);
	appendStringInfoChar(&creq, '\n');

	hdrs = palloc(sizeof(CanonHeader) * Max(req->nheaders, 1));
	for (int i = 0; i < req->nheaders; i++)
	{
		hdrs[i].name = pstrdup(req->headers[i].key);
		for (char *p = hdrs[i].name; *p; p++)
			*p = pg_ascii_tolower((unsigned char) *p);
		hdrs[i].order = i;
		hdrs[i].value = req->headers[i].value;
	}
	qsort(hdrs, req->nheaders, sizeof(CanonHeader), cmp_canon_header);

	initStringInfo(&signed_headers);
	for (int i = 0; i < req->nheaders; i++)
	{
		bool		first_of_name = (i == 0 || strcmp(hdrs[i - 1].name, hdrs[i].name) != 0);

		if (first_of_name)
		{
			if (i > 0)
				appendStringInfoChar(&creq, '\n');
			appendStringInfo(&creq, "%s:", hdrs[i].name);
			if (signed_headers.len > 0)
				appendStringInfoChar(&signed_headers, ';');
			appendStringInfoString(&signed_headers, hdrs[i].name);
		}
		else
			appendStringInfoChar(&creq, ',');	/* duplicates join in order */
		append_trimmed_value(&creq, hdrs[i].value ? hdrs[i].value : "");
	}
	appendStringInfo(&creq, "\n\n%s\n%s", signed_headers.data, req->payload_hash);

	/* 2. string to sign */
	memcpy(date8, scope->amz_date, 8);
	date8[8] = '\0';
	initStringInfo(&scope_str);
	appendStringInfo(&scope_str, "%s/%s/%s/aws4_request", date8, scope->region, scope->service);
	sigv4_sha256_hex(creq.data, creq.len, creq_hash);
	initStringInfo(&sts);
	appendStringInfo(&sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", scope->amz_date, scope_str.data, creq_hash);

	/* 3. signing key, 4. signature */
	kseed_len = 4 + strlen(secret_access_key);
	kseed = palloc(kseed_len + 1);
	memcpy(kseed, "AWS4", 4);
	memcpy(kseed + 4, secret_access_key, kseed_len - 4 + 1);
	hmac_sha256(kseed, kseed_len, date8, k1);
	billops_wipe(kseed, kseed_len);
	pfree(kseed);
	hmac_sha256(k1, 32, scope->region, k2);
	hmac_sha256(k2, 32, scope->service, k3);
	hmac_sha256(k3, 32, "aws4_request", k4);
	hmac_sha256(k4, 32, sts.data, sig);
	billops_wipe(k1, 32);
	billops_wipe(k2, 32);
	billops_wipe(k3, 32);
	billops_wipe(k4, 32);
	to_hex(sig, 32, sighex);

	result->canonical_request = creq.data;
	result->string_to_sign = sts.data;
	result->signed_headers = signed_headers.data;
	result->authorization = psprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
									 access_key_id, scope_str.data, signed_headers.data, sighex);
}

List *
sigv4_sign_to_headers(const SigV4Request *req, const SigV4Scope *scope,
					  const char *access_key_id, const char *secret_access_key)
{
	SigV4Result res;
	List	   *wire;

	sigv4_sign(req, scope, access_key_id, secret_access_key, &res);
	wire = list_make1(psprintf("Authorization: %s", res.authorization));
	for (int i = 0; i < req->nheaders; i++)
		if (pg_strcasecmp(req->headers[i].key, "host") != 0)
			wire = lappend(wire, psprintf("%s: %s", req->headers[i].key, req->headers[i].value));
	return wire;
}
