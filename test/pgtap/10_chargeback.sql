-- Chargeback: billing groups, pricing plans (markup / discount / tiering,
-- most specific wins, dated), allocation and shared-cost rules, custom line
-- items, and pro forma statements that tie back to AWS to the cent.
BEGIN;
SELECT plan(38);

CREATE FUNCTION pg_temp.load(period date) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head text := 'bill/InvoiceId,bill/InvoicingEntity,bill/BillingEntity,bill/BillType,bill/PayerAccountId,'
              || 'bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,'
              || 'lineItem/UsageType,lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/LegalEntity,product/ProductName,resourceTags/user:team';
    p text := to_char(period, 'YYYY-MM-DD') || 'T00:00:00Z';
    aws text := '"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,' || p || ',';
    path text := '/tmp/billops_tap_chargeback.csv';
BEGIN
    EXECUTE format('COPY (SELECT unnest(%L::text[])) TO %L', ARRAY[head,
        'INV-1,' || aws || '222222222222,Usage,AmazonEC2,BoxUsage:m5.large,1000.004,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud,a',
        'INV-1,' || aws || '222222222222,Usage,AmazonS3,TimedStorage-ByteHrs,200.003,USD,"Amazon Web Services, Inc.",Amazon Simple Storage Service,',
        'INV-1,' || aws || '222222222222,Usage,AmazonEC2,BoxUsage:m5.large,40.00,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud,b',
        'INV-1,' || aws || '333333333333,Usage,AmazonEC2,BoxUsage:m5.large,3000.0049,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud,',
        'INV-1,' || aws || '333333333333,Usage,AmazonEC2,BoxUsage:c5.xlarge,500.00,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud,',
        'INV-1,' || aws || '333333333333,Tax,AmazonEC2,,350.00,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud,',
        'INV-1,' || aws || '333333333333,Credit,AmazonEC2,,-100.00,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud,',
        'INV-1,' || aws || '444444444444,Usage,AmazonVPC,NatGateway-Hours,900.01,USD,"Amazon Web Services, Inc.",Amazon Virtual Private Cloud,',
        'INV-1,' || aws || '555555555555,Usage,AmazonEC2,BoxUsage:t3.micro,77.777,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud,',
        'INV-2,"Amazon Web Services, Inc.",AWS Marketplace,Anniversary,111111111111,' || p
            || ',222222222222,Usage,prod-dd,Datadog-Hosts,123.45,USD,"Datadog, Inc.",Datadog Pro,']::text[], path);
    RETURN billops.load_cur_file(path, 'tap-chargeback', 'cb-' || to_char(period, 'YYYYMM'));
END $$;
SELECT pg_temp.load('2024-03-01');
SELECT pg_temp.load('2024-04-01');

INSERT INTO billops.billing_group (name) VALUES ('team-a'), ('team-b');
INSERT INTO billops.billing_group_account (billing_group_id, account_id, effective_to)
SELECT billing_group_id, '222222222222', '2024-04-01' FROM billops.billing_group WHERE name = 'team-a';
-- account 222222222222 moves to team-b from April
INSERT INTO billops.billing_group_account (billing_group_id, account_id, effective_from)
SELECT billing_group_id, '222222222222', '2024-04-01' FROM billops.billing_group WHERE name = 'team-b';
INSERT INTO billops.billing_group_account (billing_group_id, account_id)
SELECT billing_group_id, '333333333333' FROM billops.billing_group WHERE name = 'team-b';
SELECT throws_ok($$ INSERT INTO billops.billing_group_account (billing_group_id, account_id, effective_from)
                    SELECT billing_group_id, '333333333333', '2024-06-01' FROM billops.billing_group WHERE name = 'team-a' $$,
                 '23P01', NULL, 'an account is in one group at a time');

INSERT INTO billops.pricing_plan (name) VALUES ('standard'), ('volume');
SELECT billops.set_pricing_rule('standard', 'everything +10%', '-infinity', 'MARKUP', 'GLOBAL', 10);
SELECT billops.set_pricing_rule('standard', 'storage -5%', '-infinity', 'DISCOUNT', 'SERVICE', 5, service => 'AmazonS3');
SELECT billops.set_pricing_rule('standard', 'c5 +20%', '-infinity', 'MARKUP', 'SKU', 20, service => 'AmazonEC2', usage_type => 'BoxUsage:c5.xlarge');
SELECT billops.set_pricing_rule('standard', 'marketplace at cost', '-infinity', 'MARKUP', 'BILLING_ENTITY', 0, billing_entity => 'AWS Marketplace');
SELECT throws_ok($$ SELECT billops.set_pricing_rule('standard', 'another global', '2024-01-01', 'DISCOUNT', 'GLOBAL', 1) $$,
                 '23P01', NULL, 'two GLOBAL rules of one plan cannot overlap');
SELECT throws_ok($$ SELECT billops.set_pricing_rule('volume', 'bad tiers', '2024-01-01', 'TIERING', 'GLOBAL', NULL,
                                                    '[{"up_to": 100, "percentage": 0}, {"up_to": 50, "percentage": -5}]') $$,
                 '22023', 'invalid tiers for pricing rule "bad tiers"', 'tiers must ascend and end open');
SELECT billops.set_pricing_rule('volume', 'volume tiers', '-infinity', 'TIERING', 'GLOBAL', NULL,
                                '[{"up_to": 1000, "percentage": 0}, {"up_to": 3000, "percentage": -10}, {"percentage": -20}]');
INSERT INTO billops.billing_group_pricing_plan (billing_group_id, pricing_plan_id)
SELECT g.billing_group_id, p.pricing_plan_id FROM billops.billing_group g, billops.pricing_plan p
 WHERE g.name IN ('team-a', 'team-b') AND p.name = 'standard';
-- team-b gets volume pricing from April
UPDATE billops.billing_group_pricing_plan SET effective_to = '2024-04-01'
 WHERE billing_group_id = (SELECT billing_group_id FROM billops.billing_group WHERE name = 'team-b');
INSERT INTO billops.billing_group_pricing_plan (billing_group_id, pricing_plan_id, effective_from)
SELECT g.billing_group_id, p.pricing_plan_id, '2024-04-01' FROM billops.billing_group g, billops.pricing_plan p
 WHERE g.name = 'team-b' AND p.name = 'volume';

-- team b's tagged resources in team a's account are team b's; the network account is shared
INSERT INTO billops.allocation_rule (billing_group_id, tag_key, tag_value)
SELECT billing_group_id, 'user:team', 'b' FROM billops.billing_group WHERE name = 'team-b';
INSERT INTO billops.shared_cost_rule (name, method, usage_account_id) VALUES ('network', 'PROPORTIONAL', '444444444444');
INSERT INTO billops.shared_cost_target (shared_cost_rule_id, billing_group_id)
SELECT r.shared_cost_rule_id, g.billing_group_id FROM billops.shared_cost_rule r, billops.billing_group g WHERE g.name IN ('team-a', 'team-b');
-- a recurring platform fee for team a, a one-off 2 % credit on team b's EC2 in March
INSERT INTO billops.custom_line_item (billing_group_id, name, item_type, flat_amount, first_period)
SELECT billing_group_id, 'platform fee', 'FEE', 50, '2024-01-01' FROM billops.billing_group WHERE name = 'team-a';
INSERT INTO billops.custom_line_item (billing_group_id, name, item_type, percentage, services, first_period, last_period)
SELECT billing_group_id, 'EC2 goodwill', 'CREDIT', 2, '{AmazonEC2}', '2024-03-01', '2024-03-01' FROM billops.billing_group WHERE name = 'team-b';

CREATE TEMP TABLE march AS SELECT * FROM billops.build_statements('2024-03-01');
CREATE FUNCTION pg_temp.line(grp text, period date, kind text, acct text, svc text) RETURNS billops.statement_line LANGUAGE sql AS $$
    SELECT l FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
     WHERE s.group_name = grp AND s.billing_period = period AND l.kind = kind
       AND l.usage_account_id IS NOT DISTINCT FROM acct AND l.service = svc
$$;
CREATE FUNCTION pg_temp.rule_of(grp text, period date, acct text, svc text) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(DISTINCT r.name, ',') FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
      JOIN billops.pricing_rule r ON r.pricing_rule_id = l.pricing_rule_id
     WHERE s.group_name = grp AND s.billing_period = period AND l.kind = 'aws' AND l.usage_account_id = acct AND l.service = svc
$$;

-- tie-out
SELECT is((SELECT sum(aws_cost) FROM billops.statement WHERE billing_period = '2024-03-01'),
          (SELECT round(sum(line_item_unblended_cost), 2) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-03-01'),
          'the statements (unallocated included) add up to the AWS total to the cent');
SELECT ok((SELECT bool_and(proforma_cost = aws_cost + margin) FROM billops.statement), 'pro forma = AWS + margin on every statement');
SELECT is((SELECT count(*)::int FROM billops.statement s
            WHERE (s.aws_cost, s.proforma_cost) <> (SELECT sum(l.aws_cost), sum(l.proforma_cost) FROM billops.statement_line l
                                                     WHERE l.statement_id = s.statement_id)), 0,
          'every statement is the sum of its lines');
SELECT is((SELECT aws_cost FROM billops.statement WHERE billing_period = '2024-03-01' AND billing_group_id IS NULL), 77.78,
          'cost of an account in no group is shown as unallocated, not dropped');

-- precedence: SKU > SERVICE > BILLING_ENTITY > GLOBAL; tax passes through
SELECT is(pg_temp.rule_of('team-b', '2024-03-01', '333333333333', 'Amazon Elastic Compute Cloud'), 'c5 +20%,everything +10%',
          'c5.xlarge takes its SKU rule, m5.large the global one');
SELECT is(pg_temp.rule_of('team-a', '2024-03-01', '222222222222', 'Amazon Simple Storage Service'), 'storage -5%', 'S3 takes its SERVICE rule');
SELECT is(pg_temp.rule_of('team-a', '2024-03-01', '222222222222', 'Datadog Pro'), 'marketplace at cost', 'Marketplace takes its BILLING_ENTITY rule');
-- (amounts checked by hand are exact before rounding; each line is rounded so its statement adds up, so ±1 cent)
CREATE FUNCTION pg_temp.near(a numeric, b numeric) RETURNS boolean LANGUAGE sql AS $$ SELECT abs(a - b) <= 0.01 $$;
SELECT ok(pg_temp.near((SELECT sum(l.proforma_cost) FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
                         WHERE s.group_name = 'team-a' AND s.billing_period = '2024-03-01' AND l.kind = 'aws'),
                       1000.004 * 1.10 + 200.003 * 0.95 + 123.45), 'team a: EC2 +10 %, S3 -5 %, Marketplace at cost');
SELECT ok(pg_temp.near((SELECT sum(l.proforma_cost) FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
                         WHERE s.group_name = 'team-b' AND s.billing_period = '2024-03-01' AND l.kind = 'aws'),
                       3000.0049 * 1.10 + 500.00 * 1.20 + 350.00 + (-100.00) * 1.10 + 40.00 * 1.10),
          'team b: m5 +10 %, c5 +20 %, tax as is, the credit marked up like the usage it offsets');

SELECT is((pg_temp.line('team-a', '2024-03-01', 'aws', '222222222222', 'Datadog Pro')).margin, 0.00,
          'a line priced at cost shows no margin (margins are rounded, not pro forma amounts)');

-- allocation and sharing
SELECT is((pg_temp.line('team-b', '2024-03-01', 'aws', '222222222222', 'Amazon Elastic Compute Cloud')).aws_cost, 40.00,
          'team b''s tagged resources in team a''s account are on team b''s statement');
SELECT is((SELECT sum(l.aws_cost) FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
            WHERE s.billing_period = '2024-03-01' AND l.kind = 'shared'), 900.01, 'the network account is shared out completely');
SELECT ok(pg_temp.near((pg_temp.line('team-a', '2024-03-01', 'shared', '444444444444', 'Amazon Virtual Private Cloud')).aws_cost,
                       900.01 * (1000.004 + 200.003 + 123.45) / (1000.004 + 200.003 + 123.45 + 3000.0049 + 500 + 350 - 100 + 40)),
          'in proportion to each group''s own cost');
SELECT ok(NOT EXISTS (SELECT FROM billops.statement s WHERE s.billing_period = '2024-03-01' AND s.group_name = '(unallocated)'
                        AND EXISTS (SELECT FROM billops.statement_line l WHERE l.statement_id = s.statement_id AND l.usage_account_id = '444444444444')),
          'nothing of the shared account is left unallocated');

-- custom line items
SELECT is((pg_temp.line('team-a', '2024-03-01', 'fee', NULL, 'platform fee')).proforma_cost, 50.00, 'a flat fee');
SELECT is((pg_temp.line('team-a', '2024-03-01', 'fee', NULL, 'platform fee')).aws_cost, 0.00, 'costs AWS nothing: it is all margin');
SELECT ok(pg_temp.near((pg_temp.line('team-b', '2024-03-01', 'credit', NULL, 'EC2 goodwill')).proforma_cost,
                       -0.02 * (3000.0049 * 1.10 + 500.00 * 1.20 + 350.00 + (-100.00) * 1.10 + 40.00 * 1.10)),
          'a 2 % credit on the group''s EC2 pro forma cost (not on its share of the network: that is VPC)');

-- effective dates: April
SELECT billops.set_pricing_rule('standard', 'everything +10%', '2024-04-01', 'MARKUP', 'GLOBAL', 15);
CREATE TEMP TABLE april AS SELECT * FROM billops.build_statements('2024-04-01');
CREATE TEMP TABLE march_again AS SELECT * FROM billops.build_statements('2024-03-01');
SELECT set_eq('SELECT * FROM march_again', 'SELECT * FROM march', 'a rule changed from April leaves March as it was');
SELECT is((SELECT count(*)::int FROM billops.pricing_rule WHERE name = 'everything +10%'), 2, 'the rule now has two versions');
SELECT is(pg_temp.rule_of('team-a', '2024-04-01', '222222222222', 'Amazon Simple Storage Service'), NULL,
          'in April account 222222222222 is no longer team a''s ...');
SELECT is((pg_temp.line('team-b', '2024-04-01', 'aws', '222222222222', 'Amazon Simple Storage Service')).aws_cost, 200.00,
          '... but team b''s (a move does not rewrite March)');
SELECT is((pg_temp.line('team-a', '2024-03-01', 'aws', '222222222222', 'Amazon Simple Storage Service')).aws_cost, 200.00,
          'March still shows it in team a');
SELECT is((SELECT proforma_cost FROM billops.statement WHERE group_name = 'team-a' AND billing_period = '2024-04-01'), 50.00,
          'in April team a has no cost of its own, so no share of the network; its recurring fee stays');

-- tiering: team b's April under the volume plan
SELECT ok(pg_temp.near((SELECT sum(l.proforma_cost) - sum(l.aws_cost) FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
            WHERE s.group_name = 'team-b' AND s.billing_period = '2024-04-01' AND l.kind IN ('aws', 'shared')),
          billops._tier_adjustment((SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item
                                           WHERE bill_billing_period_start_date = '2024-04-01' AND line_item_line_item_type <> 'Tax'
                                             AND line_item_usage_account_id IN ('222222222222', '333333333333', '444444444444')),
                                         '[{"up_to": 1000, "percentage": 0}, {"up_to": 3000, "percentage": -10}, {"percentage": -20}]')),
          'tiers: 0 % of the first 1,000, -10 % of the next 2,000, -20 % above');
SELECT is(billops._tier_adjustment(5000, '[{"up_to": 1000, "percentage": 0}, {"up_to": 3000, "percentage": -10}, {"percentage": -20}]'),
          -600.00::numeric, 'graduated: 0 + 2,000 x -10 % + 2,000 x -20 %');
SELECT is((SELECT sum(aws_cost) FROM billops.statement WHERE billing_period = '2024-04-01'),
          (SELECT round(sum(line_item_unblended_cost), 2) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-04-01'),
          'April ties out too');
SELECT is((SELECT count(*)::int FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
            WHERE s.billing_period = '2024-04-01' AND l.description = 'EC2 goodwill'), 0, 'the one-off credit is not in April');

-- bad input
SELECT throws_ok($$ SELECT * FROM billops.build_statements('2024-03-15') $$, '22023', NULL, 'a period is the first of a month');
SELECT ok(has_table_privilege('billops_analyst', 'billops.statement', 'SELECT')
          AND has_table_privilege('billops_analyst', 'billops.statement_by_service', 'SELECT'), 'analysts and BI tools read statements');

-- the statement a BU owner opens
CREATE TEMP TABLE page AS SELECT billops.statement_html('team-b', '2024-04-01') AS html;
SELECT ok((SELECT html LIKE '<!DOCTYPE html>%</html>%' AND html NOT LIKE '%<script%' AND html NOT LIKE '%http://%' AND html NOT LIKE '%https://%' FROM page),
          'a self-contained HTML page: no scripts, nothing fetched');
SELECT ok((SELECT html LIKE '%<svg%March 2024%' OR html LIKE '%<svg%2024-03: pro forma%' FROM page), 'with a month-over-month chart (March and April)');
SELECT ok((SELECT html LIKE '%' || billops._money((SELECT proforma_cost FROM billops.statement WHERE group_name = 'team-b' AND billing_period = '2024-04-01')) || '%' FROM page),
          'showing the pro forma total');
SELECT throws_ok($$ SELECT billops.statement_html('team-z', '2024-04-01') $$, 'P0002', NULL, 'a missing statement is a clear error');

-- an admin configures and builds; an analyst cannot
SET ROLE billops_admin;
SELECT lives_ok($$ SELECT billops.set_pricing_rule('standard', 'storage -5%', '2024-05-01', 'DISCOUNT', 'SERVICE', 6, service => 'AmazonS3');
                   SELECT count(*) FROM billops.build_statements('2024-04-01') $$, 'an admin changes a rule and rebuilds');
RESET ROLE;
SET ROLE billops_analyst;
SELECT throws_ok($$ SELECT count(*) FROM billops.build_statements('2024-04-01') $$, '42501', NULL, 'an analyst cannot build statements');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
