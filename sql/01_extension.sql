-- The extension's SQL surface: schema, objects, settings, privileges.
-- (pg_regress loads the extension with --load-extension=pg_billops.)
SELECT extname, extversion, extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_billops';
SELECT nspname FROM pg_namespace WHERE nspname = 'billops';

-- every table, view and routine lives in billops and has a comment where public
SELECT c.relname, c.relkind, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
  FROM pg_class c WHERE c.relnamespace = 'billops'::regnamespace AND c.relkind IN ('r', 'p', 'v')
 ORDER BY 1;
SELECT p.proname, p.prokind
  FROM pg_proc p WHERE p.pronamespace = 'billops'::regnamespace AND p.proname NOT LIKE '\_%'
 ORDER BY 1;

-- the settings exist; the credentials file setting is hidden from SHOW ALL
SELECT name, boot_val AS default_value, unit, context FROM pg_settings WHERE name LIKE 'billops.%' ORDER BY 1;
SELECT count(*) AS shown_in_show_all FROM pg_settings WHERE name = 'billops.aws_shared_credentials_file';

-- a role without grants can read nothing and run nothing
CREATE ROLE billops_regress_nobody;
SET ROLE billops_regress_nobody;
SELECT * FROM billops.cur_source;
SELECT billops.load_cur_file('/etc/passwd');
SHOW billops.aws_shared_credentials_file;
RESET ROLE;
-- even with the schema granted, the loaders stay superuser-only
GRANT USAGE ON SCHEMA billops TO billops_regress_nobody;
SET ROLE billops_regress_nobody;
SELECT billops.load_cur_file('/etc/passwd');
CALL billops.sync_cur_source('x');
SELECT * FROM billops.credentials_check('default');
RESET ROLE;
REVOKE USAGE ON SCHEMA billops FROM billops_regress_nobody;
DROP ROLE billops_regress_nobody;

-- credentials references: names of places, never keys
SELECT billops.credentials_reference_valid(r) FROM unnest(ARRAY['default', 'env', 'profile:x', 'profile:', 'AKIAXXXX', '']) r;
