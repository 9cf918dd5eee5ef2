-- pg_billops install script, generated from sql/install/*.sql (one domain per file).
\echo Use "CREATE EXTENSION pg_billops" to load this file. \quit

CREATE SCHEMA billops;
COMMENT ON SCHEMA billops IS
  'pg_billops: AWS billing data (CUR, invoices, spend) turned into governed payables for BILL';
