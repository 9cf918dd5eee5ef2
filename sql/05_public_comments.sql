-- Every public object of pg_billops (name not starting with "_") has a comment,
-- so that \df+, \dv+, \dt+ and \dT+ explain it.
--
-- Checked: routines, tables (ordinary and partitioned), views, materialized
-- views, and composite (not a table's row type), enum and domain types that
-- belong to the extension in schema billops.  Membership of the extension
-- (pg_depend deptype 'e') leaves out what is created at run time: the
-- partitions and staging tables of the CUR loader (cur_line_item_YYYYMM...,
-- ..._d<delivery>), and anything a test creates.
CREATE TEMP VIEW billops_public_object AS
WITH member AS (
    SELECT d.classid, d.objid
      FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'pg_billops'
), object AS (
    SELECT 'pg_proc'::regclass AS catalog, p.oid, p.proname AS name
      FROM pg_proc p
     WHERE p.pronamespace = 'billops'::regnamespace
    UNION ALL
    SELECT 'pg_class'::regclass, c.oid, c.relname
      FROM pg_class c
     WHERE c.relnamespace = 'billops'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
    UNION ALL
    SELECT 'pg_type'::regclass, t.oid, t.typname
      FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
     WHERE t.typnamespace = 'billops'::regnamespace
       AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND c.relkind = 'c'))
)
SELECT o.catalog, o.oid, pg_describe_object(o.catalog, o.oid, 0) AS object,
       obj_description(o.oid, o.catalog::text) AS comment
  FROM object o JOIN member m ON m.classid = o.catalog AND m.objid = o.oid
 WHERE o.name NOT LIKE '\_%';

-- the check looks at something: routines, relations and types are found
SELECT catalog, count(*) > 0 AS found FROM billops_public_object GROUP BY catalog ORDER BY catalog::text;

-- public objects without a comment: none
SELECT object AS public_object_without_comment FROM billops_public_object WHERE comment IS NULL ORDER BY 1;

DROP VIEW billops_public_object;
