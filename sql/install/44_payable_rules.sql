-- ---------------------------------------------------------------------------
-- Rule evaluation: one function per question, used both by the build (on
-- groups of line items) and by the drill-down (on single line items), so the
-- two can never disagree.
-- ---------------------------------------------------------------------------

-- (_service_of, in 20_cur.sql, and _fact_key run per line item or group: no SET clause,
-- so the planner can inline them; they only call built-ins of pg_catalog,
-- which is always searched first.)

-- Only the tag / cost category keys some rule looks at take part in grouping;
-- grouping by whole tag maps would split a month into one group per resource.
-- This writes the SQL expression for "the keys of <col> among <keys>" (NULL
-- when none is present), so the build and the drill-down run the very same
-- expression inline, without a function call per line item.
--
-- Keys are AWS's normalized spelling (billops.tag_key_canonical): a rule on
-- user:CostCenter and one on user_cost_center are one rule, and each reads
-- every spelling the loaded deliveries hold (legacy CUR keeps user:CostCenter,
-- CUR 2.0 writes user_cost_center), so a month reads the same whichever
-- layout delivered it.  The spellings come from billops.cur_delivery_map_key.
-- The keys of <col> among <keys>, each by its canonical name, with the SQL
-- that reads its value from a line item (every spelling, first present wins).
CREATE FUNCTION billops._jsonb_subset_keys(col text, keys text[])
RETURNS TABLE (canonical text, value_sql text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH wanted AS (
        SELECT DISTINCT billops.tag_key_canonical(k) AS canonical FROM unnest(keys) k WHERE k IS NOT NULL
    ), spelled AS (
        SELECT w.canonical,
               ARRAY(SELECT DISTINCT s FROM (
                         SELECT w.canonical AS s
                         UNION ALL
                         SELECT mk.key FROM billops.cur_delivery_map_key mk
                          WHERE mk.map_column = regexp_replace(col, '^.*\.', '')
                            AND billops.tag_key_canonical(mk.key) = w.canonical) x
                     ORDER BY s) AS spellings
          FROM wanted w
    )
    SELECT canonical,
           CASE WHEN cardinality(spellings) = 1 THEN format('%s -> %L', col, spellings[1])
                ELSE format('coalesce(%s)', (SELECT string_agg(format('%s -> %L', col, sp), ', ') FROM unnest(spellings) sp)) END
      FROM spelled ORDER BY canonical
$$;

-- The object of those keys from their values (SQL expressions, in the
-- order of _jsonb_subset_keys): NULL when none is present.
CREATE FUNCTION billops._jsonb_subset_build_sql(canonicals text[], values_sql text[]) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN cardinality(canonicals) = 0 THEN 'NULL::jsonb'
                ELSE format('nullif(%s, ''{}''::jsonb)',
                            (SELECT string_agg(format('CASE WHEN %2$s IS NULL THEN ''{}''::jsonb ELSE jsonb_build_object(%1$L, %2$s) END', c, v),
                                               ' || ' ORDER BY n)
                               FROM unnest(canonicals, values_sql) WITH ORDINALITY AS u(c, v, n))) END
$$;

CREATE FUNCTION billops._jsonb_subset_sql(col text, keys text[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT billops._jsonb_subset_build_sql(coalesce(array_agg(canonical), '{}'), coalesce(array_agg(value_sql), '{}'))
      FROM billops._jsonb_subset_keys(col, keys)
$$;

-- The same subset for a GROUP BY that groups by the keys' values (cheap to
-- read and hash) and builds the object once per group, not once per line
-- item: {select list of the values AS <prefix>_n (each with a leading comma),
-- GROUP BY list of those names (likewise), the object from them}.
CREATE FUNCTION billops._jsonb_subset_grouped_sql(col text, keys text[], prefix text) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT ARRAY[coalesce(string_agg(format(', %s AS %I', k.value_sql, prefix || '_' || k.n), '' ORDER BY k.n), ''),
                 coalesce(string_agg(format(', %I', prefix || '_' || k.n), '' ORDER BY k.n), ''),
                 billops._jsonb_subset_build_sql(coalesce(array_agg(k.canonical ORDER BY k.n), '{}'),
                                                 coalesce(array_agg(quote_ident(prefix || '_' || k.n) ORDER BY k.n), '{}'))]
      FROM (SELECT x.canonical, x.value_sql, row_number() OVER () AS n FROM billops._jsonb_subset_keys(col, keys) x) k
$$;

-- Identity of a group of line items that every rule treats alike.  Payable
-- lines store the keys of their groups; the drill-down recomputes the key per
-- line item and matches.
CREATE FUNCTION billops._fact_key(billing_entity text, invoicing_entity text, legal_entity text, line_item_type text,
                                  bill_type text, product_code text, service text, usage_account_id text,
                                  currency text, tags jsonb, cost_categories jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT md5(row(billing_entity, invoicing_entity, legal_entity, line_item_type, bill_type, product_code, service,
                   usage_account_id, currency, tags, cost_categories)::text)
$$;

-- Charge category and entity of a line item (first matching billops.charge_rule).
CREATE FUNCTION billops.charge_source_of(billing_entity text, invoicing_entity text, legal_entity text,
                                         line_item_type text, bill_type text, product_code text,
                                         OUT category text, OUT entity text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(r.category, 'unclassified'),
           coalesce(nullif(btrim(CASE r.entity_from WHEN 'legal_entity' THEN charge_source_of.legal_entity
                                                    WHEN 'billing_entity' THEN charge_source_of.billing_entity
                                                    ELSE charge_source_of.invoicing_entity END), ''),
                    nullif(btrim(charge_source_of.invoicing_entity), ''), nullif(btrim(charge_source_of.legal_entity), ''),
                    nullif(btrim(charge_source_of.billing_entity), ''), 'AWS')
      FROM (SELECT 1) one
      LEFT JOIN LATERAL (
            SELECT cr.category, cr.entity_from FROM billops.charge_rule cr
             WHERE cr.enabled
               AND (cr.billing_entity IS NULL OR cr.billing_entity = charge_source_of.billing_entity)
               AND (cr.line_item_types IS NULL OR charge_source_of.line_item_type = ANY (cr.line_item_types))
               AND (cr.bill_types IS NULL OR charge_source_of.bill_type = ANY (cr.bill_types))
               AND (cr.legal_entity_pattern IS NULL OR coalesce(charge_source_of.legal_entity, '') ~* cr.legal_entity_pattern)
               AND (cr.legal_entity_not_pattern IS NULL OR coalesce(charge_source_of.legal_entity, '') !~* cr.legal_entity_not_pattern)
               AND (cr.product_code_pattern IS NULL OR coalesce(charge_source_of.product_code, '') ~* cr.product_code_pattern)
             ORDER BY cr.priority, cr.rule_id LIMIT 1) r ON true
$$;
COMMENT ON FUNCTION billops.charge_source_of(text, text, text, text, text, text) IS
  'Charge category and entity of a line item: the first matching billops.charge_rule ("unclassified" if none).';

CREATE FUNCTION billops.treatment_of(category text, entity text, payer_account_id text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT tr.treatment FROM billops.treatment_rule tr
                      WHERE tr.enabled
                        AND (tr.category IS NULL OR tr.category = treatment_of.category)
                        AND (tr.entity_pattern IS NULL OR treatment_of.entity ~* tr.entity_pattern)
                        AND (tr.payer_account_id IS NULL OR tr.payer_account_id = treatment_of.payer_account_id)
                      ORDER BY tr.priority, tr.rule_id LIMIT 1), 'usage_summary')
$$;
COMMENT ON FUNCTION billops.treatment_of(text, text, text) IS
  'Treatment of a charge source (category, entity) for a payer: invoice_like or usage_summary, from the first matching enabled billops.treatment_rule (usage_summary if none).';

-- Vendor of a descriptor: exact aliases first, then the longest prefix, then
-- patterns by priority.  Two vendors tied at the winning level is ambiguous,
-- never a coin toss.
CREATE FUNCTION billops.vendor_match(descriptor text, OUT vendor_id integer, OUT match text, OUT detail text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH n AS (SELECT billops.normalize_vendor_name(descriptor) AS d),
    candidates AS (
        SELECT a.vendor_id, a.alias_id,
               CASE a.match_kind WHEN 'exact' THEN 1 WHEN 'prefix' THEN 2 ELSE 3 END AS tier,
               CASE a.match_kind WHEN 'prefix' THEN -length(billops.normalize_vendor_name(a.pattern)) ELSE 0 END AS len,
               CASE a.match_kind WHEN 'pattern' THEN a.priority ELSE 0 END AS prio
          FROM billops.vendor_alias a JOIN billops.vendor v USING (vendor_id), n
         WHERE v.active AND CASE a.match_kind
                 WHEN 'exact' THEN billops.normalize_vendor_name(a.pattern) = n.d
                 WHEN 'prefix' THEN n.d = billops.normalize_vendor_name(a.pattern)
                                 OR starts_with(n.d, billops.normalize_vendor_name(a.pattern) || ' ')
                 ELSE descriptor ~* a.pattern END),
    best AS (SELECT tier, len, prio FROM candidates ORDER BY tier, len, prio LIMIT 1),
    winners AS (SELECT c.* FROM candidates c JOIN best USING (tier, len, prio))
    SELECT CASE WHEN count(DISTINCT w.vendor_id) = 1 THEN min(w.vendor_id) END,
           CASE count(DISTINCT w.vendor_id) WHEN 0 THEN 'unknown' WHEN 1 THEN 'matched' ELSE 'ambiguous' END,
           CASE WHEN count(DISTINCT w.vendor_id) > 1
                THEN 'aliases ' || string_agg(w.alias_id::text, ', ' ORDER BY w.alias_id) || ' name different vendors' END
      FROM winners w
$$;
COMMENT ON FUNCTION billops.vendor_match(text) IS
  'Canonical vendor for an AWS invoicing entity or Marketplace seller descriptor: matched, unknown or ambiguous.';

-- Owner role of one account's share of a payable (first matching routing rule).
CREATE FUNCTION billops.owner_role_of(payer_account_id text, usage_account_id text, billing_period date,
                                      charge_category text, vendor_id integer) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.approver_role FROM billops.routing_rule r
     WHERE r.enabled
       AND (r.payer_account_id IS NULL OR r.payer_account_id = owner_role_of.payer_account_id)
       AND (r.usage_account_id IS NULL OR r.usage_account_id = owner_role_of.usage_account_id)
       AND (r.billing_group_id IS NULL OR r.billing_group_id = billops.billing_group_of(owner_role_of.usage_account_id, owner_role_of.billing_period))
       AND (r.business_unit IS NULL OR r.business_unit = billops.business_unit_of(owner_role_of.usage_account_id, owner_role_of.billing_period))
       AND (r.charge_category IS NULL OR r.charge_category = owner_role_of.charge_category)
       AND (r.vendor_id IS NULL OR r.vendor_id = owner_role_of.vendor_id)
     ORDER BY r.priority, r.rule_id LIMIT 1
$$;
COMMENT ON FUNCTION billops.owner_role_of(text, text, date, text, integer) IS
  'The approver role owning one usage account''s share of a payable: the first enabled billops.routing_rule matching payer, account, its billing group and business unit in that period, charge category and vendor; NULL if none matches.';

-- Membership without the superuser shortcut of pg_has_role: approving is a
-- duty assigned to people, and a superuser is not everybody's approver.
CREATE FUNCTION billops._is_member(member name, role_name text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE r(oid) AS (
        SELECT oid FROM pg_roles WHERE rolname = _is_member.member
        UNION
        SELECT m.roleid FROM pg_auth_members m JOIN r ON m.member = r.oid)
    SELECT EXISTS (SELECT FROM r JOIN pg_roles g USING (oid) WHERE g.rolname = _is_member.role_name)
$$;
