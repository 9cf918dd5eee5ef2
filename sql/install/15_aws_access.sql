-- ---------------------------------------------------------------------------
-- AWS access: credentials references, the endpoint policy, and SigV4 as a
-- diagnostic.  Every AWS source (CUR in S3, the billing APIs) names a
-- credentials reference ('default', 'env', 'profile:<name>'), never a key;
-- the C side resolves it when it signs (src/aws_credentials.c, src/sigv4.c,
-- src/aws_request.c), and every endpoint passes billops._check_url.
-- ---------------------------------------------------------------------------

CREATE FUNCTION billops.credentials_reference_valid(reference text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'billops_credentials_reference_valid'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION billops.credentials_reference_valid(text) IS
  'True for ''default'', ''env'' and ''profile:<name>''.';

CREATE FUNCTION billops.credentials_check(reference text, region text DEFAULT NULL, ask_aws boolean DEFAULT false)
    RETURNS TABLE (origin text, access_key_id text, session_token boolean, role_arn text, expires_at timestamptz,
                   caller_arn text)
    AS 'MODULE_PATHNAME', 'billops_credentials_check'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billops.credentials_check(text, text, boolean) IS
  'Where a credentials reference resolves to (the chain step, the role, when the keys expire), with the access key id masked; with ask_aws, who AWS says they are (STS GetCallerIdentity). Never shows a secret or a token.';

CREATE FUNCTION billops.sigv4_sign(method text, path text, query text[], headers text[],
                                   payload bytea, region text, service text, amz_date text,
                                   credentials text, normalize_path boolean DEFAULT true)
    RETURNS TABLE (canonical_request text, string_to_sign text, "authorization" text)
    AS 'MODULE_PATHNAME', 'billops_sigv4_sign'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billops.sigv4_sign(text, text, text[], text[], bytea, text, text, text, text, boolean) IS
  'Diagnostics: how pg_billops signs a request (SigV4). query and headers are flat name/value arrays; keys come from a credentials reference.';

-- HTTPS with verified certificates; plain http to loopback only (emulators).
CREATE FUNCTION billops._check_url(url text, what text) RETURNS void
    AS 'MODULE_PATHNAME', 'billops_check_url'
    LANGUAGE C STABLE STRICT;

