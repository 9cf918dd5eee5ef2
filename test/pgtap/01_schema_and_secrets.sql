-- Invariants of the schema: typed money, partitioning, keys, and secrets that
-- cannot be read or leaked.
BEGIN;
SELECT plan(26);

SELECT has_schema('billops');
SELECT has_table('billops', t, 'table ' || t) FROM unnest(ARRAY['cur_source', 'cur_delivery',
    'cur_delivery_file', 'cur_delivery_partition', 'cur_partition', 'cur_line_item']) t;

-- AWS's CUR 2.0 data dictionary (../shared/docs/cur2-data-dictionary.tsv, from AWS's Data Exports
-- user guide): every column, optional groups included, is a column of cur_line_item, with its type
\getenv shared BILLOPS_SHARED
\set dictionary :shared '/docs/cur2-data-dictionary.tsv'
CREATE TEMP TABLE cur2_dictionary (grp text, name text, type text, needs text, description text);
COPY cur2_dictionary FROM :'dictionary' WITH (FORMAT csv, DELIMITER E'\t', HEADER true, QUOTE E'\x01');
SELECT cmp_ok((SELECT count(*)::int FROM cur2_dictionary), '>', 100, 'the dictionary is read');
SELECT is((SELECT string_agg(d.name, ', ' ORDER BY d.name) FROM cur2_dictionary d
            WHERE NOT EXISTS (SELECT FROM information_schema.columns c
                               WHERE c.table_schema = 'billops' AND c.table_name = 'cur_line_item'
                                 AND c.column_name = left(lower(d.name), 63))),
          NULL, 'every column of AWS''s CUR 2.0 data dictionary is a column of cur_line_item (names cut at 63 bytes, as PostgreSQL cuts identifiers)');
SELECT is((SELECT string_agg(d.name || ' ' || d.type || ' is ' || c.data_type, ', ' ORDER BY d.name)
             FROM cur2_dictionary d JOIN information_schema.columns c
               ON c.table_schema = 'billops' AND c.table_name = 'cur_line_item' AND c.column_name = left(lower(d.name), 63)
            WHERE (d.type = 'double' AND c.data_type <> 'numeric')
               OR (d.type LIKE 'map%' AND c.data_type <> 'jsonb')
               -- AWS types rates as strings; they are numbers, kept exact (numeric) here
               OR (d.type = 'string' AND c.data_type NOT IN ('text', 'date', 'timestamp with time zone')
                   AND NOT (d.name ~ '_rate$' AND c.data_type = 'numeric'))),
          NULL, 'doubles are exact numerics, maps are jsonb, strings text (dates, times and rates typed)');

-- money is numeric, never float; times are timestamptz
SELECT is((SELECT count(*)::int FROM information_schema.columns
            WHERE table_schema = 'billops' AND table_name = 'cur_line_item'
              AND (column_name ~ '_(cost|amount|rate|fee.*|commitment.*)$') AND column_name !~ '^product_'
              AND data_type <> 'numeric'),
          0, 'every cost, amount and rate column of cur_line_item is numeric (product_fee_code is a product attribute)');
SELECT is((SELECT count(*)::int FROM information_schema.columns
            WHERE table_schema = 'billops' AND data_type IN ('real', 'double precision')
              AND table_name = 'cur_line_item'),
          0, 'no floating-point column holds line-item data');
SELECT col_type_is('billops', 'cur_line_item', 'line_item_usage_start_date', 'timestamp with time zone', 'usage dates are timestamptz');

-- partitioned by billing period, then payer
SELECT is((SELECT partstrat::text || ':' || pg_get_partkeydef(partrelid)
             FROM pg_partitioned_table WHERE partrelid = 'billops.cur_line_item'::regclass),
          'l:LIST (bill_billing_period_start_date)', 'line items are list-partitioned by billing period');
SELECT col_is_pk('billops', 'cur_partition', ARRAY['billing_period', 'payer_account_id'],
                 'one visible delivery per billing period and payer');

-- secrets: no column can hold one; the credentials-file setting is superuser-only
SELECT is((SELECT count(*)::int FROM information_schema.columns
            WHERE table_schema = 'billops' AND column_name ~* '(secret|password|access_key|token)'),
          0, 'no billops column is named like a secret');
SELECT throws_ok($$ INSERT INTO billops.cur_source (name, storage, layout, credentials)
                    VALUES ('k', 'file', 'auto', 'AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI') $$,
                 '23514', NULL, 'a key pasted as a credentials reference is rejected by a CHECK constraint');
SELECT is((SELECT string_agg(proname, ', ') FROM pg_proc
            WHERE pronamespace = 'billops'::regnamespace AND prosecdef
              AND NOT coalesce(proconfig::text[] && ARRAY['search_path=pg_catalog, pg_temp'], false)),
          NULL, 'every SECURITY DEFINER function has a fixed search_path (pg_catalog, then pg_temp last)');
SELECT is((SELECT string_agg(c.relname || '.' || a.attname, ', ')
             FROM pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) cfg(oid)
             JOIN pg_class c ON c.oid = cfg.oid
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attidentity <> ''
            WHERE e.extname = 'pg_billops'
              AND NOT pg_get_serial_sequence('billops.' || c.relname, a.attname)::regclass = ANY (e.extconfig)),
          NULL, 'pg_dump keeps the identity sequence of every table it keeps');
SELECT is((SELECT string_agg(proname, ', ') FROM pg_proc p
            WHERE pronamespace = 'billops'::regnamespace AND prosecdef AND has_function_privilege('public', p.oid, 'EXECUTE')),
          NULL, 'no SECURITY DEFINER function is executable by PUBLIC');
SELECT is((SELECT count(*)::int FROM pg_proc p
            WHERE pronamespace = 'billops'::regnamespace
              AND p.proname IN ('load_cur_file', 'sync_cur_source', 'credentials_check', 'sigv4_sign', '_s3_list', '_s3_get_text', '_ingest_delivery')
              AND has_function_privilege('public', p.oid, 'EXECUTE')),
          0, 'PUBLIC cannot execute anything that reads files or calls AWS');

CREATE ROLE billops_tap_analyst;
SET LOCAL ROLE billops_tap_analyst;
SELECT throws_ok($$ SELECT current_setting('billops.aws_shared_credentials_file') $$,
                 '42501', NULL, 'a non-superuser cannot read where the credentials file is');
SELECT throws_ok($$ SET billops.aws_shared_credentials_file = '/tmp/mine' $$,
                 '55P02', NULL, 'nor point it elsewhere from a session (only postgresql.conf can)');
RESET ROLE;

-- an unresolvable reference names the places searched, and never a key
CREATE FUNCTION pg_temp.error_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', SQLSTATE, m, d, h);
END $$;
SELECT matches(pg_temp.error_of($$ SELECT * FROM billops.credentials_check('profile:nope') $$),
               '^28000 \| no AWS credentials found .* \| Searched: profile "nope" in ".*" and ".*aws-credentials" \(not found\)\.',
               'missing credentials: SQLSTATE 28000 and where pg_billops looked');
SELECT unalike(pg_temp.error_of($$ SELECT * FROM billops.credentials_check('profile:nope') $$),
              '%billops-test-secret%', 'the error does not contain a secret from the file');
SELECT unalike((SELECT string_agg(t::text, ' ') FROM billops.credentials_check('profile:session') t),
              '%secret%', 'credentials_check shows where keys come from, not the keys');

SELECT * FROM finish();
ROLLBACK;
