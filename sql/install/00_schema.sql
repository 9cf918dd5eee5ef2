-- pg_billops install script, generated from sql/install/*.sql (one domain per file).
--
-- How the sources read (each file):
--   * a header saying what the domain is; then its tables, types, functions
--     and views in that order -- except that a function a table itself needs
--     (in a CHECK, DEFAULT, generated column, index or trigger) sits with
--     that table; foundations every domain uses (audit log, settings) come
--     first (05_foundation.sql), and each domain file wires its own tables
--     into the audit log at its end;
--   * public routines (no leading underscore) have a COMMENT, and name their
--     parameters for named notation (build_payables(billing_period => ...));
--     where such a name is also a column, the routine says
--     #variable_conflict use_column and refers to its parameter as
--     routine_name.parameter;
--   * private routines (leading underscore) name the row they act on
--     target_<what> (target_outbox_id, target_delivery_id), never p_<what>;
--   * queries qualify their columns with table aliases.
\echo Use "CREATE EXTENSION pg_billops CASCADE" to load this file. \quit

CREATE SCHEMA billops;
COMMENT ON SCHEMA billops IS
  'pg_billops: AWS billing data (CUR, invoices, spend) turned into governed payables for BILL';
