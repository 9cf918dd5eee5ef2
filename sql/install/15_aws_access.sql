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

CREATE FUNCTION billops.credentials_check(reference text, region text DEFAULT NULL, ask_aws boolean DEFAULT false,
                                           role_arn text DEFAULT NULL, role_external_id text DEFAULT NULL,
                                           role_session_name text DEFAULT NULL)
    RETURNS TABLE (origin text, access_key_id text, session_token boolean, role_arn text, expires_at timestamptz,
                   caller_arn text)
    AS 'MODULE_PATHNAME', 'billops_credentials_check'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billops.credentials_check(text, text, boolean, text, text, text) IS
  'Where a credentials reference (and a role assumed on top of it) resolves to (the chain step, the role, when the keys expire), with the access key id masked; with ask_aws, who AWS says they are (STS GetCallerIdentity). Never shows a secret or a token.';

CREATE FUNCTION billops.aws_endpoint(service text, credentials text DEFAULT 'default', region text DEFAULT 'us-east-1',
                                      source_endpoint_url text DEFAULT NULL)
    RETURNS TABLE (endpoint_url text, configured_by text)
    AS 'MODULE_PATHNAME', 'billops_aws_endpoint'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION billops.aws_endpoint(text, text, text, text) IS
  'Where pg_billops sends requests to an AWS service (s3, ce, invoicing, sts) for a credentials reference and region, and which setting said so: the source''s own endpoint_url, AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the config file''s services section or endpoint_url of the profile, or the default.';

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


-- A role a source assumes on top of its credentials reference (AWS STS
-- AssumeRole), so one server reads several payer accounts, each through its
-- own least-privilege role.  The external id is not a secret (AWS: it is
-- shared with the third party that assumes the role) but is checked for form.
-- true, or an error saying what is wrong (a CHECK constraint and the functions that register sources use it).
CREATE FUNCTION billops._check_role(role_arn text, external_id text, session_name text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF role_arn IS NULL AND (external_id IS NOT NULL OR session_name IS NOT NULL) THEN
        RAISE EXCEPTION 'an external id or session name needs a role' USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Give role_arn too, or leave all three NULL.';
    END IF;
    IF role_arn IS NOT NULL AND (role_arn !~ '^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$' OR length(role_arn) > 2048) THEN
        RAISE EXCEPTION 'invalid IAM role ARN "%"', role_arn USING ERRCODE = 'invalid_parameter_value',
              HINT = 'A role ARN looks like arn:aws:iam::111122223333:role/billops-cur-reader.';
    END IF;
    -- (botocore's sts model: externalIdType 2-1224 of [\w+=,.@:/-], roleSessionNameType 2-64 of [\w+=,.@-])
    IF external_id IS NOT NULL AND (external_id !~ '^[A-Za-z0-9_+=,.@:/-]+$' OR length(external_id) NOT BETWEEN 2 AND 1224) THEN
        RAISE EXCEPTION 'invalid external id' USING ERRCODE = 'invalid_parameter_value',
              HINT = 'An external id is 2 to 1224 characters of letters, digits and +=,.@:/-_.';
    END IF;
    IF session_name IS NOT NULL AND session_name !~ '^[A-Za-z0-9_+=,.@-]{2,64}$' THEN
        RAISE EXCEPTION 'invalid role session name "%"', session_name USING ERRCODE = 'invalid_parameter_value',
              HINT = 'A session name is 2 to 64 characters of letters, digits and +=,.@-_.';
    END IF;
    RETURN true;
END $$;
