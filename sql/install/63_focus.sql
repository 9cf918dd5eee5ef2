-- ---------------------------------------------------------------------------
-- FOCUS (FinOps Open Cost and Usage Specification) 1.2 over ingested CUR
-- data, so FOCUS-speaking tools can read pg_billops.  Column names are the
-- specification's, quoted ("BilledCost").
--
-- The CUR -> FOCUS mapping follows the meaning of the columns (aws-billing.md
-- and the FOCUS specification).  Where no primary source settles a mapping
-- the comment says so; those columns are the ones to check against AWS's
-- own FOCUS export before relying on them:
--   * ChargeCategory for discounts and Savings Plan negation (here: Credit / Usage)
--   * ChargeFrequency for RI fees (here: Recurring)
--   * ContractedCost (here: net unblended cost when present, else unblended)
--   * ServiceCategory: not derived (NULL); the CUR has no such column
-- BilledCost is the unblended cost, so the view's BilledCost adds up to the
-- CUR's line_item_unblended_cost exactly (tested on the real sample).
-- ---------------------------------------------------------------------------
CREATE VIEW billops.focus_cost WITH (security_invoker = true) AS
SELECT li.line_item_availability_zone AS "AvailabilityZone",
       li.line_item_unblended_cost AS "BilledCost",
       li.bill_payer_account_id AS "BillingAccountId",
       li.bill_payer_account_name AS "BillingAccountName",
       'Organization'::text AS "BillingAccountType",          -- 1.2: an AWS payer is an organization's management account
       li.line_item_currency_code AS "BillingCurrency",
       (li.bill_billing_period_start_date)::timestamp AS "BillingPeriodStart",
       coalesce(li.bill_billing_period_end_date, (li.bill_billing_period_start_date + interval '1 month')::date)::timestamp AS "BillingPeriodEnd",
       NULL::text AS "CapacityReservationId",
       NULL::text AS "CapacityReservationStatus",
       CASE li.line_item_line_item_type
            WHEN 'Tax' THEN 'Tax'
            WHEN 'Credit' THEN 'Credit'
            WHEN 'Refund' THEN 'Credit'
            WHEN 'EdpDiscount' THEN 'Credit'          -- unverified
            WHEN 'BundledDiscount' THEN 'Credit'      -- unverified
            WHEN 'PrivateRateDiscount' THEN 'Credit'  -- unverified
            WHEN 'Discount' THEN 'Credit'             -- unverified
            WHEN 'Fee' THEN 'Purchase'
            WHEN 'RIFee' THEN 'Purchase'
            WHEN 'SavingsPlanUpfrontFee' THEN 'Purchase'
            WHEN 'SavingsPlanRecurringFee' THEN 'Purchase'
            ELSE 'Usage' END AS "ChargeCategory",       -- Usage, DiscountedUsage, SavingsPlanCoveredUsage, SavingsPlanNegation (unverified)
       CASE WHEN li.bill_bill_type = 'Refund' THEN 'Correction' END AS "ChargeClass",
       li.line_item_line_item_description AS "ChargeDescription",
       CASE WHEN li.line_item_line_item_type IN ('Fee', 'SavingsPlanUpfrontFee') THEN 'One-Time'
            WHEN li.line_item_line_item_type IN ('RIFee', 'SavingsPlanRecurringFee') THEN 'Recurring'   -- unverified for RIFee
            ELSE 'Usage-Based' END AS "ChargeFrequency",
       li.line_item_usage_start_date AS "ChargePeriodStart",
       li.line_item_usage_end_date AS "ChargePeriodEnd",
       CASE WHEN li.savings_plan_savings_plan_a_r_n <> '' THEN 'Spend'
            WHEN li.reservation_reservation_a_r_n <> '' THEN 'Usage' END AS "CommitmentDiscountCategory",
       coalesce(nullif(li.savings_plan_savings_plan_a_r_n, ''), nullif(li.reservation_reservation_a_r_n, '')) AS "CommitmentDiscountId",
       NULL::text AS "CommitmentDiscountName",
       NULL::numeric AS "CommitmentDiscountQuantity",
       CASE WHEN li.line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'DiscountedUsage') THEN 'Used'
            WHEN li.line_item_line_item_type IN ('SavingsPlanRecurringFee', 'RIFee')
                 AND coalesce(nullif(li.savings_plan_savings_plan_a_r_n, ''), nullif(li.reservation_reservation_a_r_n, '')) IS NOT NULL
                 THEN 'Unused' END AS "CommitmentDiscountStatus",     -- unverified for fees
       CASE WHEN li.savings_plan_savings_plan_a_r_n <> '' THEN 'Savings Plan'
            WHEN li.reservation_reservation_a_r_n <> '' THEN 'Reservation' END AS "CommitmentDiscountType",
       NULL::text AS "CommitmentDiscountUnit",
       CASE WHEN li.line_item_line_item_type IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
            THEN li.line_item_usage_amount END AS "ConsumedQuantity",
       CASE WHEN li.line_item_line_item_type IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
            THEN li.pricing_unit END AS "ConsumedUnit",
       coalesce(li.line_item_net_unblended_cost, li.line_item_unblended_cost) AS "ContractedCost",   -- unverified
       coalesce(li.line_item_net_unblended_rate, li.line_item_unblended_rate) AS "ContractedUnitPrice",
       CASE li.line_item_line_item_type
            WHEN 'SavingsPlanCoveredUsage' THEN li.savings_plan_savings_plan_effective_cost
            WHEN 'SavingsPlanRecurringFee' THEN li.savings_plan_total_commitment_to_date - li.savings_plan_used_commitment
            WHEN 'SavingsPlanNegation' THEN 0
            WHEN 'SavingsPlanUpfrontFee' THEN 0
            WHEN 'DiscountedUsage' THEN li.reservation_effective_cost
            ELSE li.line_item_unblended_cost END AS "EffectiveCost",
       nullif(li.bill_invoice_id, '') AS "InvoiceId",
       li.bill_invoicing_entity AS "InvoiceIssuerName",
       li.pricing_public_on_demand_cost AS "ListCost",
       li.pricing_public_on_demand_rate AS "ListUnitPrice",
       CASE li.pricing_term WHEN 'OnDemand' THEN 'Standard' WHEN 'Reserved' THEN 'Committed' WHEN 'Spot' THEN 'Dynamic'
            ELSE CASE WHEN li.line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'DiscountedUsage') THEN 'Committed' END
       END AS "PricingCategory",
       li.pricing_currency AS "PricingCurrency",
       NULL::numeric AS "PricingCurrencyContractedUnitPrice",
       NULL::numeric AS "PricingCurrencyEffectiveCost",
       NULL::numeric AS "PricingCurrencyListUnitPrice",
       li.line_item_usage_amount AS "PricingQuantity",
       li.pricing_unit AS "PricingUnit",
       'AWS'::text AS "ProviderName",
       coalesce(li.line_item_legal_entity, li.bill_invoicing_entity) AS "PublisherName",
       li.product_region_code AS "RegionId",
       li.product_location AS "RegionName",
       nullif(li.line_item_resource_id, '') AS "ResourceId",
       NULL::text AS "ResourceName",
       NULL::text AS "ResourceType",
       NULL::text AS "ServiceCategory",
       billops._service_of(li.product_product_name, li.product, li.line_item_product_code) AS "ServiceName",
       NULL::text AS "ServiceSubcategory",
       li.product_sku AS "SkuId",
       NULL::text AS "SkuMeter",
       NULL::jsonb AS "SkuPriceDetails",
       li.pricing_rate_id AS "SkuPriceId",
       li.line_item_usage_account_id AS "SubAccountId",
       li.line_item_usage_account_name AS "SubAccountName",
       'Account'::text AS "SubAccountType",
       li.resource_tags AS "Tags",
       -- AWS's own extensions, as its FOCUS export names them
       li.cost_category AS "x_CostCategories",
       li.line_item_operation AS "x_Operation",
       li.line_item_product_code AS "x_ServiceCode",
       li.line_item_usage_type AS "x_UsageType"
  FROM billops.cur_line_item li;
COMMENT ON VIEW billops.focus_cost IS
  'FOCUS 1.2 columns over the visible CUR deliveries (BilledCost = unblended cost; see 63_focus.sql for unverified mappings).';
