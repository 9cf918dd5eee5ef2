-- Registering sources: clear errors, no secrets stored.
SELECT billops.create_cur_source('demo', 'billing-bucket', 'hourly', prefix => '/cur/', endpoint_url => 'http://127.0.0.1:9/') AS source_id;
SELECT name, storage, layout, bucket, prefix, report_name, region, endpoint_url, path_style, credentials
  FROM billops.cur_source ORDER BY source_id;

-- bad input: each with its SQLSTATE, message and hint
\set VERBOSITY default
SELECT billops.create_cur_source('x', 'bkt', 'r', layout => 'parquet');
SELECT billops.create_cur_source('x', 'Not_A_Bucket', 'r');
SELECT billops.create_cur_source('x', 'bkt', 'a/b');
SELECT billops.create_cur_source('x', 'bkt', 'r', credentials => 'AKIAIOSFODNN7EXAMPLE');
SELECT billops.create_cur_source('x', 'bkt', 'r', endpoint_url => 'http://s3.example.com');
SELECT billops.create_cur_source('x', 'bkt', 'r', endpoint_url => 'not a url');
SELECT billops.create_cur_source('demo', 'bkt', 'r');
SELECT billops.create_cur_source('bad name!', 'bkt', 'r');
\set VERBOSITY terse

-- credentials resolve from the server's credentials file, masked
SELECT access_key_id, session_token, origin LIKE 'profile "default" in %' AS from_profile
  FROM billops.credentials_check('default');
SELECT access_key_id, session_token FROM billops.credentials_check('profile:session');
-- (the detail names the file searched, which differs per machine: pgTAP checks it)
SELECT * FROM billops.credentials_check('profile:does-not-exist');

-- no column anywhere in the schema can hold a key: only references
SELECT table_name, column_name FROM information_schema.columns
 WHERE table_schema = 'billops' AND column_name ~* '(secret|password|access_key|token)';

-- an unreachable endpoint is an I/O error after bounded retries, not a hang
SET billops.s3_max_retries = 1;
SET billops.s3_retry_base = 1;
SET billops.http_connect_timeout = 500;
CALL billops.sync_cur_source('demo');
RESET billops.s3_max_retries;
SELECT status, error_sqlstate FROM billops.cur_delivery;
CALL billops.sync_cur_source('nope');
