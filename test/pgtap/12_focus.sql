-- FOCUS 1.2 over ingested CUR data: on the real sample, the FOCUS view's
-- totals are the CUR's totals, and its enumerations are the specification's.
-- Ingest of FOCUS exports: the real FOCUS 1.0 sample (literal NULL, empty
-- strings, "Usage-based", an extra "Id" column) and files that must be refused.
BEGIN;
SELECT plan(64);
\getenv shared BILLOPS_SHARED
\set sample :shared '/testdata/cur/legacy-cur-2023-11-sample.csv'
SET client_min_messages = warning;
SELECT billops.load_cur_file(:'sample', 'tap-focus', 'focus-1') IS NOT NULL AS loaded;

SELECT is((SELECT count(*) FROM billops.focus_cost), (SELECT count(*) FROM billops.cur_line_item), 'one FOCUS row per CUR line item');
SELECT is((SELECT sum("BilledCost") FROM billops.focus_cost), (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item),
          'BilledCost adds up to the CUR''s unblended cost, exactly');
SELECT is((SELECT sum("EffectiveCost") FROM billops.focus_cost), (SELECT sum(amortized_cost) FROM billops.cur_spend_by_account_service),
          'EffectiveCost adds up to the amortized cost');
SELECT is((SELECT sum("BilledCost") FROM billops.focus_cost WHERE "ChargeCategory" = 'Tax'),
          (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE line_item_line_item_type = 'Tax'), 'tax is Tax');
SELECT is((SELECT count(*)::int FROM billops.focus_cost
            WHERE "ChargeCategory" NOT IN ('Usage', 'Purchase', 'Tax', 'Credit', 'Adjustment')
               OR "ChargeFrequency" NOT IN ('One-Time', 'Recurring', 'Usage-Based')
               OR coalesce("ChargeClass", 'Correction') <> 'Correction'
               OR coalesce("PricingCategory", 'Standard') NOT IN ('Standard', 'Dynamic', 'Committed', 'Other')), 0,
          'every enumeration holds a value FOCUS allows');
SELECT is((SELECT count(*)::int FROM billops.focus_cost WHERE "BillingPeriodStart" >= "BillingPeriodEnd" OR "ProviderName" <> 'AWS'), 0,
          'billing periods are well formed; the provider is AWS');
-- FOCUS's date/time columns are instants in UTC: a period means the same in every client time zone
SELECT is((SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attname) FROM pg_attribute
            WHERE attrelid = 'billops.focus_cost'::regclass AND attname IN ('BillingPeriodStart', 'BillingPeriodEnd', 'ChargePeriodStart', 'ChargePeriodEnd')),
          'BillingPeriodEnd timestamp with time zone, BillingPeriodStart timestamp with time zone, ChargePeriodEnd timestamp with time zone, ChargePeriodStart timestamp with time zone',
          'every FOCUS date/time column is timestamptz');
SET TimeZone = 'America/New_York';
SELECT is((SELECT count(*)::int FROM billops.focus_cost WHERE "ChargePeriodStart" < "BillingPeriodStart" OR "ChargePeriodEnd" > "BillingPeriodEnd"), 0,
          'under America/New_York no charge falls outside its billing period');
RESET TimeZone;
-- FOCUS 1.2's pricing rules (columns/pricingquantity.md, pricingunit.md, listcost.md)
SELECT is((SELECT count(*)::int || ' ' || count(*) FILTER (WHERE "PricingQuantity" IS NOT NULL OR "PricingUnit" IS NOT NULL)
             FROM billops.focus_cost WHERE "ChargeCategory" = 'Tax'), '12 0', 'tax (12 rows) has no PricingQuantity and no PricingUnit');
SELECT is((SELECT count(*)::int FROM billops.focus_cost WHERE ("PricingQuantity" IS NULL) <> ("PricingUnit" IS NULL)), 0,
          'a PricingUnit exactly where there is a PricingQuantity');
-- columns/regionname.md: a RegionName exactly where there is a RegionId (the sample has locations without a region code)
SELECT is((SELECT count(*)::int FROM billops.cur_line_item WHERE nullif(product_region_code, '') IS NULL AND nullif(product_location, '') IS NOT NULL), 14,
          'the sample has 14 locations without a region code');
SELECT is((SELECT count(*)::int FROM billops.focus_cost WHERE ("RegionId" IS NULL) <> ("RegionName" IS NULL)), 0,
          'a RegionName exactly where there is a RegionId');
-- columns/skupriceid.md: none on tax; one parent SkuId
SELECT is((SELECT count("SkuPriceId")::int || ' ' || (SELECT count(*) FROM (SELECT FROM billops.focus_cost WHERE "SkuPriceId" IS NOT NULL
                                                                        GROUP BY "SkuPriceId" HAVING count(DISTINCT "SkuId") > 1) x)
             FROM billops.focus_cost), '1269 0', 'every usage row has a SkuPriceId, and each SkuPriceId one parent SkuId');
SELECT is((SELECT count("SkuPriceId")::int FROM billops.focus_cost WHERE "ChargeCategory" = 'Tax'), 0, 'tax has no SkuPriceId');
COPY (SELECT 'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,pricing/publicOnDemandCost,bill/BillType,lineItem/UsageStartDate,lineItem/UsageAmount,pricing/unit,pricing/term,savingsPlan/SavingsPlanARN'
      UNION ALL SELECT '999988887777,2024-02-01T00:00:00Z,999988887777,Credit,-12.5,,Anniversary,2024-02-03T00:00:00Z,,,,'
      UNION ALL SELECT '999988887777,2024-02-01T00:00:00Z,999988887777,Usage,3.25,4.00,Anniversary,2024-02-03T00:00:00Z,2,Hrs,OnDemand,'
      UNION ALL SELECT '999988887777,2024-02-01T00:00:00Z,999988887777,Refund,-1.00,,Refund,2024-02-10T00:00:00Z,,,,'
      UNION ALL SELECT '999988887777,2024-02-01T00:00:00Z,999988887777,Refund,-2.00,,Refund,2024-01-10T00:00:00Z,,,,'
      UNION ALL SELECT '999988887777,2024-02-01T00:00:00Z,999988887777,SavingsPlanCoveredUsage,0.50,0.80,Anniversary,2024-02-04T00:00:00Z,1,Hrs,OnDemand,arn:aws:savingsplans::999988887777:savingsplan/sp-1'
      UNION ALL SELECT '999988887777,2024-02-01T00:00:00Z,999988887777,SavingsPlanNegation,-0.50,,Anniversary,2024-02-04T00:00:00Z,1,Hrs,,arn:aws:savingsplans::999988887777:savingsplan/sp-1'
      UNION ALL SELECT '999988887777,2024-02-01T00:00:00Z,999988887777,Usage,0.00,0.00,Anniversary,2024-02-05T00:00:00Z,10,GB,,') TO '/tmp/billops_tap_focus_credit.csv';
SELECT billops.load_cur_file('/tmp/billops_tap_focus_credit.csv', 'tap-focus-credit') IS NOT NULL AS loaded;
SELECT is((SELECT "ListCost" FROM billops.focus_cost WHERE "BillingAccountId" = '999988887777' AND "BilledCost" = -12.5), -12.5,
          'a credit lists at its BilledCost');
SELECT is((SELECT "ListCost" FROM billops.focus_cost WHERE "BillingAccountId" = '999988887777' AND "BilledCost" = 3.25), 4.00,
          'usage lists at its public on-demand cost');
-- columns/chargeclass.md: "Correction" for a correction of a previous period only
SELECT is((SELECT string_agg("BilledCost" || ':' || coalesce("ChargeClass", '-'), ' ' ORDER BY "BilledCost") FROM billops.focus_cost
            WHERE "BillingAccountId" = '999988887777' AND "BilledCost" IN (-1.00, -2.00)), '-2.00:Correction -1.00:-',
          'a refund of January in February is a Correction, a refund of February is not');
-- columns/pricingcategory.md, consumedquantity.md, consumedunit.md, commitmentdiscountstatus.md
SELECT is((SELECT string_agg("BilledCost" || ':' || "PricingCategory" || ':' || "CommitmentDiscountStatus" || ':' || "ConsumedQuantity", ' ' ORDER BY "BilledCost")
             FROM billops.focus_cost WHERE "BillingAccountId" = '999988887777' AND "CommitmentDiscountId" IS NOT NULL),
          '0:Committed:Used:1', 'Savings Plan coverage: Committed, Used, its quantity; billed 0, its negation line folded into it');
SELECT is((SELECT sum("BilledCost") FROM billops.focus_cost WHERE "BillingAccountId" = '999988887777'),
          (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE bill_payer_account_id = '999988887777'),
          'and the account''s BilledCost still adds up to the CUR''s unblended cost');
-- columns/resourcetype.md: a type wherever there is a ResourceId, from AWS's own ARN format and id prefixes
COPY (SELECT 'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/ProductCode,lineItem/ResourceId,lineItem/UsageAmount,pricing/unit'
      UNION ALL SELECT '999966665555,2024-02-01T00:00:00Z,999966665555,Usage,1.00,AmazonEC2,i-0abc123,1,Hrs'
      UNION ALL SELECT '999966665555,2024-02-01T00:00:00Z,999966665555,Usage,2.00,AmazonEC2,vol-0def456,1,Hrs'
      UNION ALL SELECT '999966665555,2024-02-01T00:00:00Z,999966665555,Usage,3.00,AmazonEC2,arn:aws:ec2:us-east-1:999966665555:natgateway/nat-0a1,1,Hrs'
      UNION ALL SELECT '999966665555,2024-02-01T00:00:00Z,999966665555,Usage,4.00,AmazonRDS,arn:aws:rds:us-west-2:999966665555:db:orders,1,Hrs'
      UNION ALL SELECT '999966665555,2024-02-01T00:00:00Z,999966665555,Usage,5.00,AmazonS3,my-bucket,1,Hrs'
      UNION ALL SELECT '999966665555,2024-02-01T00:00:00Z,999966665555,Usage,6.00,AmazonS3,arn:aws:s3:::my-bucket,1,Hrs'
      UNION ALL SELECT '999966665555,2024-02-01T00:00:00Z,999966665555,Usage,7.00,AmazonEC2,something-else,1,Hrs') TO '/tmp/billops_tap_focus_rt.csv';
SELECT billops.load_cur_file('/tmp/billops_tap_focus_rt.csv', 'tap-focus-rt') IS NOT NULL AS loaded;
SELECT is((SELECT string_agg(coalesce("ResourceType", '-'), ' ' ORDER BY "BilledCost") FROM billops.focus_cost WHERE "BillingAccountId" = '999966665555'),
          'instance volume natgateway db bucket bucket -', 'ResourceType from the ARN''s resource type and EC2''s id prefixes; an id it cannot tell stays without');
SELECT is((SELECT "PricingCategory" FROM billops.focus_cost WHERE "BillingAccountId" = '999988887777' AND "ConsumedQuantity" = 10), 'Standard',
          'free-tier usage (no pricing term) is Standard');
SELECT is((SELECT count(*)::int FROM billops.focus_cost WHERE "ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS NULL AND "PricingCategory" IS NULL), 0,
          'every usage and purchase has a PricingCategory (the sample''s free-tier rows included)');
SELECT is((SELECT count(*)::int FROM billops.focus_cost
            WHERE ("ChargeCategory" = 'Usage' AND "ChargeClass" IS NULL AND "ConsumedQuantity" IS NULL)
               OR ("ChargeCategory" <> 'Usage' AND "ConsumedQuantity" IS NOT NULL)
               OR ("ConsumedQuantity" IS NULL) <> ("ConsumedUnit" IS NULL)), 0,
          'a ConsumedQuantity on every usage row and no other, a ConsumedUnit exactly with it');
SELECT is((SELECT count(*)::int FROM billops.focus_cost
            WHERE "CommitmentDiscountId" IS NOT NULL AND "ChargeCategory" = 'Usage' AND "CommitmentDiscountStatus" IS NULL), 0,
          'every usage row under a commitment has a CommitmentDiscountStatus');
-- columns/servicecategory.md, servicesubcategory.md: never null, an allowed value; AWS's own categories where its export has them
SELECT is((SELECT count(*)::int FROM billops.focus_cost WHERE "ServiceCategory" IS NULL OR "ServiceSubcategory" IS NULL
              OR "ServiceCategory" NOT IN ('AI and Machine Learning', 'Analytics', 'Business Applications', 'Compute', 'Databases',
                     'Developer Tools', 'Multicloud', 'Identity', 'Integration', 'Internet of Things', 'Management and Governance',
                     'Media', 'Migration', 'Mobile', 'Networking', 'Security', 'Storage', 'Web', 'Other')), 0,
          'every row has an allowed ServiceCategory and a ServiceSubcategory');
SELECT is((SELECT string_agg(DISTINCT "ServiceName" || ': ' || "ServiceCategory" || ' / ' || "ServiceSubcategory", '; ')
             FROM billops.focus_cost WHERE "ServiceName" IN ('Amazon Simple Queue Service', 'Amazon Simple Storage Service', 'AWS Glue')),
          'AWS Glue: Other / Other (Other); Amazon Simple Queue Service: Integration / Messaging; Amazon Simple Storage Service: Storage / Object Storage',
          'SQS and S3 in AWS''s FOCUS export''s categories (subcategories from FOCUS 1.2''s list); Glue, which it does not list, Other');
INSERT INTO billops.focus_service_category (service_name, service_category) VALUES ('AWS Glue', 'Analytics');
INSERT INTO billops.focus_service_category (service_name, service_category, service_subcategory) VALUES ('Amazon Simple Queue Service', 'Integration', 'Messaging');
SELECT is((SELECT string_agg(DISTINCT "ServiceName" || ': ' || "ServiceCategory" || ' / ' || "ServiceSubcategory", '; ')
             FROM billops.focus_cost WHERE "ServiceName" IN ('Amazon Simple Queue Service', 'AWS Glue')),
          'AWS Glue: Analytics / Other (Analytics); Amazon Simple Queue Service: Integration / Messaging',
          'the user''s categories win over AWS''s');
SELECT throws_ok($$ INSERT INTO billops.focus_service_category (service_name, service_category) VALUES ('x', 'Serverless') $$, '23514',
                 NULL, 'a category FOCUS does not allow is refused');
COPY (SELECT 'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/ProductCode,product/ProductName,product/productFamily'
      UNION ALL SELECT '999977776666,2024-02-01T00:00:00Z,999977776666,Usage,1.00,AmazonEC2,Amazon Elastic Compute Cloud,Storage'
      UNION ALL SELECT '999977776666,2024-02-01T00:00:00Z,999977776666,Usage,2.00,AmazonEC2,Amazon Elastic Compute Cloud,Compute Instance') TO '/tmp/billops_tap_focus_ec2.csv';
SELECT billops.load_cur_file('/tmp/billops_tap_focus_ec2.csv', 'tap-focus-ec2') IS NOT NULL AS loaded;
SELECT is((SELECT string_agg("BilledCost" || ':' || "ServiceCategory", ' ' ORDER BY "BilledCost") FROM billops.focus_cost WHERE "BillingAccountId" = '999977776666'),
          '1.00:Compute 2.00:Compute', 'EC2 has one category, its EBS storage included (FOCUS 1.2: one ServiceCategory per ServiceName)');
INSERT INTO billops.focus_service_category (service_name, product_family, service_category, service_subcategory)
VALUES ('Amazon Elastic Compute Cloud', 'Storage', 'Storage', 'Block Storage');
SELECT is((SELECT string_agg("BilledCost" || ':' || "ServiceCategory" || '/' || "ServiceSubcategory", ' ' ORDER BY "BilledCost") FROM billops.focus_cost WHERE "BillingAccountId" = '999977776666'),
          '1.00:Storage/Block Storage 2.00:Compute/Virtual Machines', 'a user may split a service by product family');
SELECT is((SELECT rows_violating FROM billops.focus_conformance('billops.focus_cost', $$"BillingAccountId" = '999977776666'$$) WHERE rule_id = 'ServiceName.5'),
          1::bigint, 'and the conformance check says what that costs');
DELETE FROM billops.focus_service_category WHERE product_family = 'Storage';
SELECT throws_ok($$ INSERT INTO billops.focus_service_category (service_name, service_category, service_subcategory) VALUES ('x', 'Compute', 'Object Storage') $$,
                 '23503', NULL, 'a subcategory under another category is refused');
SET ROLE billops_analyst;
SELECT lives_ok($$ SELECT "ServiceName", sum("EffectiveCost") FROM billops.focus_cost GROUP BY 1 $$, 'analysts (and BI tools) read it');
SELECT throws_ok($$ INSERT INTO billops.focus_service_category (service_name, service_category) VALUES ('y', 'Other') $$, '42501',
                 NULL, 'analysts cannot change the categories');
RESET ROLE;

-- FOCUS exports: the real sample (AWS FOCUS 1.0, 1,000 rows; AWS, Microsoft and Oracle accounts)
\set focus :shared '/testdata/focus/focus-1.0-sample.csv'
SELECT billops.load_focus_file(:'focus', 'tap-focus-export') AS export_id \gset
-- the sample read independently: every line as text, the fields split by COPY itself
CREATE TEMP TABLE raw (line text);
COPY raw FROM :'focus' WITH (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02');
SELECT is((SELECT rows_loaded FROM billops.cur_delivery WHERE delivery_id = :export_id), (SELECT count(*) - 1 FROM raw),
          'one row per record of the file');
SELECT is((SELECT sum("BilledCost") FROM billops.focus_line_item),
          (SELECT sum(split_part(line, ',', 2)::numeric) FROM raw WHERE line NOT LIKE '"AvailabilityZone"%'),
          'BilledCost adds up to the file''s, exactly');
SELECT is((SELECT string_agg(billing_account_id || ' ' || to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '; '
                             ORDER BY billing_account_id, period_start)
             FROM billops.focus_partition WHERE delivery_id = :export_id),
          '/providers/Microsoft.Billing/billingAccounts/8611537 2024-09-01 00:00; 1234567890123 2024-09-01 00:00; '
          '20209880 2024-09-01 00:00; 20209880 2024-10-01 00:00',
          'one partition per billing account and period of the file, whatever the provider''s account id looks like');
SELECT is((SELECT sum("BilledCost") FROM billops.focus_cost WHERE "x_BillopsSource" = 'focus:tap-focus-export'),
          (SELECT sum("BilledCost") FROM billops.focus_line_item), 'the FOCUS view shows the export next to the CUR''s rows');
SELECT is((SELECT count(*)::int FROM billops.focus_line_item WHERE "ChargeClass" IS NOT NULL OR "ChargeClass" = 'NULL'), 0,
          'the bare word NULL is SQL NULL');
SELECT is((SELECT count(*)::int FROM billops.focus_line_item WHERE "PricingCategory" = '' OR "BillingAccountName" = ''), 0,
          'empty strings are NULL');
SELECT is((SELECT array_agg(DISTINCT "ChargeFrequency" ORDER BY "ChargeFrequency") FROM billops.focus_line_item),
          ARRAY['One-Time', 'Usage-Based'], '"Usage-based" is read as the specification''s Usage-Based');
SELECT is((SELECT array_agg(DISTINCT k) FROM billops.focus_line_item, jsonb_object_keys(extras) k), ARRAY['Id'],
          'a column FOCUS does not name ("Id") is kept in extras');
SELECT is((SELECT count(*)::int FROM billops.focus_line_item WHERE extras ? 'Id'), 1000, 'on every row');
SET LOCAL TimeZone = 'America/New_York';
SELECT is((SELECT "ChargePeriodStart" FROM billops.focus_line_item WHERE extras->>'Id' = '11472'), '2024-09-18 22:00:00+00'::timestamptz,
          'zone-less times are UTC');
RESET TimeZone;
SELECT is((SELECT "Tags"->>'environment' FROM billops.focus_line_item WHERE extras->>'Id' = '19384'), 'dev',
          'Tags are JSON');

-- a second export of the same account's periods replaces the first; a bad file changes nothing
SELECT billops.load_focus_file(:'focus', 'tap-focus-export') AS export2 \gset
SELECT is((SELECT count(*)::int || ' ' || min(delivery_id) || ' ' || max(delivery_id) FROM billops.focus_partition),
          '4 ' || :export2 || ' ' || :export2, 'loading the export again replaces it, not adds to it');
SELECT is((SELECT count(*)::int FROM billops.focus_line_item), 1000, 'still 1,000 rows');
COPY (SELECT 'BilledCost,BillingAccountId,BillingPeriodStart' UNION ALL SELECT '1.5,1234567890123,2024-09-01'
      UNION ALL SELECT 'abc,1234567890123,2024-09-01') TO '/tmp/billops_tap_bad_focus.csv';
SELECT throws_ok($$ SELECT billops.load_focus_file('/tmp/billops_tap_bad_focus.csv', 'tap-focus-export') $$, '22P02',
                 'invalid input syntax for type numeric: "abc"',
                 'a bad number is refused (its file, row and column are in the error''s context)');
SELECT is((SELECT count(*)::int || ' ' || min(delivery_id) FROM billops.focus_partition), '4 ' || :export2,
          'and the export loaded before is intact');
SELECT is((SELECT count(*)::int FROM billops.focus_line_item), 1000, 'every row of it');
COPY (SELECT 'BilledCost,SubAccountId' UNION ALL SELECT '1.5,123') TO '/tmp/billops_tap_bad_focus.csv';
SELECT throws_ok($$ SELECT billops.load_focus_file('/tmp/billops_tap_bad_focus.csv') $$, '22P04',
                 'FOCUS file "/tmp/billops_tap_bad_focus.csv" lacks the required column BillingAccountId',
                 'a file without the key columns is refused');
SELECT throws_ok(format('SELECT billops.load_focus_file(%L, %L)', :'focus', 'tap-focus-other'), '55000',
                 NULL, 'another source cannot load the same billing accounts'' periods (their costs would count twice)');

-- versions side by side: each row's source and FOCUS version; the metadata of the newest view
SELECT is((SELECT string_agg(DISTINCT "x_BillopsSource" || '=' || "x_FocusVersion", ' ' ORDER BY "x_BillopsSource" || '=' || "x_FocusVersion")
             FROM billops.focus_cost),
          'cur=1.2 focus:tap-focus-export=1.0', 'the CUR''s rows are FOCUS 1.2 by our mapping; the sample''s, FOCUS 1.0 by its columns');
SELECT is((SELECT columns[1:3] || columns[cardinality(columns)] FROM billops.cur_delivery WHERE delivery_id = :export2),
          ARRAY['AvailabilityZone', 'BilledCost', 'BillingAccountId', 'Tags'], 'the delivery records the header it had');
SELECT is(ARRAY[billops.focus_version_of(ARRAY['BilledCost', 'SkuMeter']), billops.focus_version_of(ARRAY['BilledCost', 'SkuMeter', 'InvoiceId']),
                billops.focus_version_of(ARRAY['BilledCost'])],
          ARRAY['1.1', '1.2', '1.0'], 'a column a version introduced tells the version');
SELECT is((SELECT count(*) FROM billops.focus_cost), (SELECT count(*) FROM billops.focus_cost_1_2), 'focus_cost is the 1.2 view');
SELECT is((SELECT array_agg(c->>'ColumnName' ORDER BY o) FROM jsonb_array_elements(billops.focus_metadata()->'Schema'->'ColumnDefinition') WITH ORDINALITY e(c, o)),
          (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'billops.focus_cost'::regclass AND attnum > 0),
          'the metadata''s ColumnDefinition is the view''s columns, in order');
SELECT is((SELECT m->>'DataGenerator' || ' ' || (m->'Schema'->>'FocusVersion') || ' ' || (m->'Schema'->>'SchemaId' ~ '^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$')
                  || ' ' || (SELECT string_agg(c->>'ColumnName' || ':' || (c->>'DataType'), ' ') FROM jsonb_array_elements(m->'Schema'->'ColumnDefinition') c
                              WHERE c->>'ColumnName' IN ('BilledCost', 'ChargePeriodStart', 'Tags', 'ServiceName'))
             FROM billops.focus_metadata() m),
          'pg_billops 1.2 true BilledCost:DECIMAL ChargePeriodStart:DATETIME ServiceName:STRING Tags:JSON', 'FOCUS metadata: generator, version, a GUID schema id, data types');
SELECT throws_ok($$ SELECT billops.focus_metadata('1.3') $$, '22023', NULL, 'a version pg_billops does not write is refused');

-- chargeback and reconciliation from FOCUS rows: a second cloud's export, its invoice recorded by hand
COPY (SELECT 'BilledCost,BillingAccountId,BillingCurrency,BillingPeriodEnd,BillingPeriodStart,ChargeCategory,InvoiceId,InvoiceIssuerName,ProviderName,ServiceName,SubAccountId,Tags'
      UNION ALL SELECT '10.00,gcp-billing-01,USD,2024-11-01T00:00:00Z,2024-10-01T00:00:00Z,Usage,INV-77,Google LLC,Google Cloud,Compute Engine,proj-a,"{""team"": ""data""}"'
      UNION ALL SELECT '5.50,gcp-billing-01,USD,2024-11-01T00:00:00Z,2024-10-01T00:00:00Z,Usage,INV-77,Google LLC,Google Cloud,Cloud Storage,proj-b,"{""team"": ""web""}"'
      UNION ALL SELECT '1.25,gcp-billing-01,USD,2024-11-01T00:00:00Z,2024-10-01T00:00:00Z,Tax,INV-77,Google LLC,Google Cloud,Compute Engine,proj-a,') TO '/tmp/billops_tap_focus_gcp.csv';
SELECT billops.load_focus_file('/tmp/billops_tap_focus_gcp.csv', 'gcp-focus') IS NOT NULL AS loaded;
SELECT is((SELECT string_agg(check_name || ':' || subject, ' ') FROM billops.reconcile('2024-10-01', 'gcp-billing-01') WHERE check_name = 'invoice_vs_cur'),
          'invoice_vs_cur:INV-77', 'reconcile reads the FOCUS rows: their InvoiceId names an invoice not recorded yet');
INSERT INTO billops.aws_invoice (invoice_id, account_id, billing_period, invoice_type, total_amount, currency, source)
VALUES ('INV-77', 'gcp-billing-01', '2024-10-01', 'INVOICE', 16.75, 'USD', 'manual');
SELECT is((SELECT count(*)::int FROM billops.reconcile('2024-10-01', 'gcp-billing-01') WHERE check_name = 'invoice_vs_cur'), 0,
          'the rows carrying the invoice''s id add up to it (BilledCost)');
UPDATE billops.aws_invoice SET total_amount = 17.00 WHERE invoice_id = 'INV-77';
SELECT is((SELECT variance FROM billops.reconcile('2024-10-01', 'gcp-billing-01') WHERE check_name = 'invoice_vs_cur'), -0.25::numeric,
          'and a difference is a variance, to the cent');
INSERT INTO billops.billing_group (name) VALUES ('tap-data-team');
INSERT INTO billops.allocation_rule (billing_group_id, tag_key, tag_value)
SELECT billing_group_id, 'team', 'data' FROM billops.billing_group WHERE name = 'tap-data-team';
SELECT is((SELECT aws_cost FROM billops.build_statements('2024-10-01') WHERE group_name = 'tap-data-team'), 10.00::numeric,
          'the FOCUS export is charged back: its tagged row to the group the tag names');
SELECT is((SELECT sum(l.aws_cost) FROM billops.statement_line l JOIN billops.statement st USING (statement_id)
            WHERE st.billing_period = '2024-10-01' AND l.payer_account_id = 'gcp-billing-01'), 16.75::numeric,
          'every row of the export is on a statement, to the cent');
SELECT * FROM finish();
ROLLBACK;
