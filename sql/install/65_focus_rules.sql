-- ---------------------------------------------------------------------------
-- FOCUS conformance: the normative rules of the FOCUS 1.2 specification that
-- can be evaluated on data, one row each, and billops.focus_conformance(),
-- which evaluates them on any relation with FOCUS column names (focus_cost,
-- focus_line_item, a view of your own).
--
-- Each rule restates one MUST or SHOULD of specification/columns/*.md (and of
-- the attributes it names: NullHandling, StringHandling, CurrencyFormat,
-- KeyValueFormat, UnitFormat) at tag v1.2 of FinOps-Open-Cost-and-Usage-Spec/
-- FOCUS_Spec, in our words; spec_file names the page.  Kinds:
--   presence  the column must exist (rules that say "MUST be present" without
--             a condition on the provider's features)
--   type      the column's SQL type is the FOCUS data type's (Decimal:
--             numeric, or another SQL number type; String: text; Date/Time:
--             timestamptz, an instant, UTC by construction; Key-Value: jsonb)
--   row       applies_when (NULL: every row) and must_hold are SQL conditions
--             on one row, FOCUS columns quoted: a row it applies to where
--             must_hold is not true violates it
--   one_per   columns[1] has one and only one value of columns[2]
-- Rules that depend on facts no row holds (whether a provider supports
-- capacity reservations, what an invoice says, a price list, a tag's
-- finalization, the next billing period) are not here; the README lists them.
-- ---------------------------------------------------------------------------

-- FOCUS's Key-Value Format (attributes/key_value_format.md): a JSON object
-- whose values are numbers, strings, true, false or null, never an object or
-- an array.  (jsonb already keeps one value per key.)
CREATE FUNCTION billops._focus_key_value(j jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_typeof(j) = 'object'
           AND NOT EXISTS (SELECT FROM jsonb_each(j) e WHERE jsonb_typeof(e.value) IN ('object', 'array'))
$$;

CREATE TABLE billops.focus_rule (
    rule_id       text PRIMARY KEY,           -- <column>.<n>, n in the order of the column's page
    focus_column  text NOT NULL,
    keyword       text NOT NULL CHECK (keyword IN ('MUST', 'SHOULD')),
    requirement   text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('presence', 'type', 'row', 'one_per')),
    applies_when  text,
    must_hold     text,
    columns       text[] NOT NULL,            -- the columns the rule reads
    spec_file     text NOT NULL,              -- under specification/ at tag v1.2 (columns/ or attributes/)
    focus_version text NOT NULL DEFAULT '1.2'
);
COMMENT ON TABLE billops.focus_rule IS
  'The FOCUS 1.2 MUST and SHOULD rules that can be evaluated on data, as SQL conditions (read-only reference; billops.focus_conformance evaluates them).';

INSERT INTO billops.focus_rule (rule_id, focus_column, keyword, requirement, kind, applies_when, must_hold, columns, spec_file) VALUES
    ('AvailabilityZone.1', 'AvailabilityZone', 'MUST', $r$AvailabilityZone MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['AvailabilityZone'], 'columns/availabilityzone.md'),
    ('AvailabilityZone.2', 'AvailabilityZone', 'MUST', $r$AvailabilityZone: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"AvailabilityZone" IS NULL OR (btrim("AvailabilityZone") <> '' AND lower(btrim("AvailabilityZone")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['AvailabilityZone'], 'columns/availabilityzone.md'),
    ('BilledCost.1', 'BilledCost', 'MUST', $r$BilledCost MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['BilledCost'], 'columns/billedcost.md'),
    ('BilledCost.2', 'BilledCost', 'MUST', $r$BilledCost MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['BilledCost'], 'columns/billedcost.md'),
    ('BilledCost.3', 'BilledCost', 'MUST', $r$BilledCost MUST NOT be null$r$, 'row', NULL, $r$"BilledCost" IS NOT NULL$r$, ARRAY['BilledCost'], 'columns/billedcost.md'),
    ('BillingAccountId.1', 'BillingAccountId', 'MUST', $r$BillingAccountId MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['BillingAccountId'], 'columns/billingaccountid.md'),
    ('BillingAccountId.2', 'BillingAccountId', 'MUST', $r$BillingAccountId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['BillingAccountId'], 'columns/billingaccountid.md'),
    ('BillingAccountId.3', 'BillingAccountId', 'MUST', $r$BillingAccountId MUST NOT be null$r$, 'row', NULL, $r$"BillingAccountId" IS NOT NULL$r$, ARRAY['BillingAccountId'], 'columns/billingaccountid.md'),
    ('BillingAccountId.4', 'BillingAccountId', 'SHOULD', $r$BillingAccountId: no empty string or string of spaces (StringHandling)$r$, 'row', NULL, $r$"BillingAccountId" IS NULL OR btrim("BillingAccountId") <> ''$r$, ARRAY['BillingAccountId'], 'columns/billingaccountid.md'),
    ('BillingAccountName.1', 'BillingAccountName', 'MUST', $r$BillingAccountName MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['BillingAccountName'], 'columns/billingaccountname.md'),
    ('BillingAccountName.2', 'BillingAccountName', 'MUST', $r$BillingAccountName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['BillingAccountName'], 'columns/billingaccountname.md'),
    ('BillingAccountName.3', 'BillingAccountName', 'MUST', $r$BillingAccountName: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"BillingAccountName" IS NULL OR (btrim("BillingAccountName") <> '' AND lower(btrim("BillingAccountName")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['BillingAccountName'], 'columns/billingaccountname.md'),
    ('BillingAccountType.1', 'BillingAccountType', 'MUST', $r$BillingAccountType MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['BillingAccountType'], 'columns/billingaccounttype.md'),
    ('BillingAccountType.2', 'BillingAccountType', 'MUST', $r$BillingAccountType MUST be null when BillingAccountId is null$r$, 'row', $r$"BillingAccountId" IS NULL$r$, $r$"BillingAccountType" IS NULL$r$, ARRAY['BillingAccountType', 'BillingAccountId'], 'columns/billingaccounttype.md'),
    ('BillingAccountType.3', 'BillingAccountType', 'MUST', $r$BillingAccountType MUST NOT be null when BillingAccountId is not null$r$, 'row', $r$"BillingAccountId" IS NOT NULL$r$, $r$"BillingAccountType" IS NOT NULL$r$, ARRAY['BillingAccountType', 'BillingAccountId'], 'columns/billingaccounttype.md'),
    ('BillingAccountType.4', 'BillingAccountType', 'MUST', $r$BillingAccountType: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"BillingAccountType" IS NULL OR (btrim("BillingAccountType") <> '' AND lower(btrim("BillingAccountType")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['BillingAccountType'], 'columns/billingaccounttype.md'),
    ('BillingCurrency.1', 'BillingCurrency', 'MUST', $r$BillingCurrency MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['BillingCurrency'], 'columns/billingcurrency.md'),
    ('BillingCurrency.2', 'BillingCurrency', 'MUST', $r$BillingCurrency MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['BillingCurrency'], 'columns/billingcurrency.md'),
    ('BillingCurrency.3', 'BillingCurrency', 'MUST', $r$BillingCurrency MUST NOT be null$r$, 'row', NULL, $r$"BillingCurrency" IS NOT NULL$r$, ARRAY['BillingCurrency'], 'columns/billingcurrency.md'),
    ('BillingCurrency.4', 'BillingCurrency', 'MUST', $r$BillingCurrency MUST be a three-letter ISO 4217 code when in national currency (CurrencyFormat)$r$, 'row', $r$"BillingCurrency" IS NOT NULL$r$, $r$"BillingCurrency" ~ '^[A-Z]{3}$'$r$, ARRAY['BillingCurrency'], 'columns/billingcurrency.md'),
    ('BillingPeriodEnd.1', 'BillingPeriodEnd', 'MUST', $r$BillingPeriodEnd MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['BillingPeriodEnd'], 'columns/billingperiodend.md'),
    ('BillingPeriodEnd.2', 'BillingPeriodEnd', 'MUST', $r$BillingPeriodEnd MUST be of type Date/Time$r$, 'type', NULL, $r$timestamptz$r$, ARRAY['BillingPeriodEnd'], 'columns/billingperiodend.md'),
    ('BillingPeriodEnd.3', 'BillingPeriodEnd', 'MUST', $r$BillingPeriodEnd MUST NOT be null$r$, 'row', NULL, $r$"BillingPeriodEnd" IS NOT NULL$r$, ARRAY['BillingPeriodEnd'], 'columns/billingperiodend.md'),
    ('BillingPeriodStart.1', 'BillingPeriodStart', 'MUST', $r$BillingPeriodStart MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['BillingPeriodStart'], 'columns/billingperiodstart.md'),
    ('BillingPeriodStart.2', 'BillingPeriodStart', 'MUST', $r$BillingPeriodStart MUST be of type Date/Time$r$, 'type', NULL, $r$timestamptz$r$, ARRAY['BillingPeriodStart'], 'columns/billingperiodstart.md'),
    ('BillingPeriodStart.3', 'BillingPeriodStart', 'MUST', $r$BillingPeriodStart MUST NOT be null$r$, 'row', NULL, $r$"BillingPeriodStart" IS NOT NULL$r$, ARRAY['BillingPeriodStart'], 'columns/billingperiodstart.md'),
    ('ChargePeriodEnd.1', 'ChargePeriodEnd', 'MUST', $r$ChargePeriodEnd MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ChargePeriodEnd'], 'columns/chargeperiodend.md'),
    ('ChargePeriodEnd.2', 'ChargePeriodEnd', 'MUST', $r$ChargePeriodEnd MUST be of type Date/Time$r$, 'type', NULL, $r$timestamptz$r$, ARRAY['ChargePeriodEnd'], 'columns/chargeperiodend.md'),
    ('ChargePeriodEnd.3', 'ChargePeriodEnd', 'MUST', $r$ChargePeriodEnd MUST NOT be null$r$, 'row', NULL, $r$"ChargePeriodEnd" IS NOT NULL$r$, ARRAY['ChargePeriodEnd'], 'columns/chargeperiodend.md'),
    ('ChargePeriodStart.1', 'ChargePeriodStart', 'MUST', $r$ChargePeriodStart MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ChargePeriodStart'], 'columns/chargeperiodstart.md'),
    ('ChargePeriodStart.2', 'ChargePeriodStart', 'MUST', $r$ChargePeriodStart MUST be of type Date/Time$r$, 'type', NULL, $r$timestamptz$r$, ARRAY['ChargePeriodStart'], 'columns/chargeperiodstart.md'),
    ('ChargePeriodStart.3', 'ChargePeriodStart', 'MUST', $r$ChargePeriodStart MUST NOT be null$r$, 'row', NULL, $r$"ChargePeriodStart" IS NOT NULL$r$, ARRAY['ChargePeriodStart'], 'columns/chargeperiodstart.md'),
    ('BillingPeriodEnd.4', 'BillingPeriodEnd', 'MUST', $r$BillingPeriodEnd MUST be the exclusive end of the billing period: after its start$r$, 'row', $r$"BillingPeriodEnd" IS NOT NULL AND "BillingPeriodStart" IS NOT NULL$r$, $r$"BillingPeriodEnd" > "BillingPeriodStart"$r$, ARRAY['BillingPeriodEnd', 'BillingPeriodStart'], 'columns/billingperiodend.md'),
    ('ChargePeriodEnd.4', 'ChargePeriodEnd', 'MUST', $r$ChargePeriodEnd MUST be the exclusive end of the charge period: after its start$r$, 'row', $r$"ChargePeriodEnd" IS NOT NULL AND "ChargePeriodStart" IS NOT NULL$r$, $r$"ChargePeriodEnd" > "ChargePeriodStart"$r$, ARRAY['ChargePeriodEnd', 'ChargePeriodStart'], 'columns/chargeperiodend.md'),
    ('CapacityReservationId.1', 'CapacityReservationId', 'MUST', $r$CapacityReservationId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['CapacityReservationId'], 'columns/capacityreservationid.md'),
    ('CapacityReservationId.2', 'CapacityReservationId', 'MUST', $r$CapacityReservationId: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"CapacityReservationId" IS NULL OR (btrim("CapacityReservationId") <> '' AND lower(btrim("CapacityReservationId")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['CapacityReservationId'], 'columns/capacityreservationid.md'),
    ('CapacityReservationStatus.1', 'CapacityReservationStatus', 'MUST', $r$CapacityReservationStatus MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['CapacityReservationStatus'], 'columns/capacityreservationstatus.md'),
    ('CapacityReservationStatus.2', 'CapacityReservationStatus', 'MUST', $r$CapacityReservationStatus MUST be null when CapacityReservationId is null$r$, 'row', $r$"CapacityReservationId" IS NULL$r$, $r$"CapacityReservationStatus" IS NULL$r$, ARRAY['CapacityReservationStatus', 'CapacityReservationId'], 'columns/capacityreservationstatus.md'),
    ('CapacityReservationStatus.3', 'CapacityReservationStatus', 'MUST', $r$CapacityReservationStatus MUST NOT be null when CapacityReservationId is not null and ChargeCategory is "Usage"$r$, 'row', $r$"CapacityReservationId" IS NOT NULL AND "ChargeCategory" = 'Usage'$r$, $r$"CapacityReservationStatus" IS NOT NULL$r$, ARRAY['CapacityReservationStatus', 'CapacityReservationId', 'ChargeCategory'], 'columns/capacityreservationstatus.md'),
    ('CapacityReservationStatus.4', 'CapacityReservationStatus', 'MUST', $r$CapacityReservationStatus MUST be one of the allowed values (Used, Unused)$r$, 'row', NULL, $r$"CapacityReservationStatus" IS NULL OR "CapacityReservationStatus" IN ('Used', 'Unused')$r$, ARRAY['CapacityReservationStatus'], 'columns/capacityreservationstatus.md'),
    ('ChargeCategory.1', 'ChargeCategory', 'MUST', $r$ChargeCategory MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ChargeCategory'], 'columns/chargecategory.md'),
    ('ChargeCategory.2', 'ChargeCategory', 'MUST', $r$ChargeCategory MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ChargeCategory'], 'columns/chargecategory.md'),
    ('ChargeCategory.3', 'ChargeCategory', 'MUST', $r$ChargeCategory MUST NOT be null$r$, 'row', NULL, $r$"ChargeCategory" IS NOT NULL$r$, ARRAY['ChargeCategory'], 'columns/chargecategory.md'),
    ('ChargeCategory.4', 'ChargeCategory', 'MUST', $r$ChargeCategory MUST be one of the allowed values (Usage, Purchase, Tax, Credit, Adjustment)$r$, 'row', NULL, $r$"ChargeCategory" IS NULL OR "ChargeCategory" IN ('Usage', 'Purchase', 'Tax', 'Credit', 'Adjustment')$r$, ARRAY['ChargeCategory'], 'columns/chargecategory.md'),
    ('ChargeClass.1', 'ChargeClass', 'MUST', $r$ChargeClass MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ChargeClass'], 'columns/chargeclass.md'),
    ('ChargeClass.2', 'ChargeClass', 'MUST', $r$ChargeClass MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ChargeClass'], 'columns/chargeclass.md'),
    ('ChargeClass.3', 'ChargeClass', 'MUST', $r$ChargeClass MUST be "Correction" when it is not null$r$, 'row', $r$"ChargeClass" IS NOT NULL$r$, $r$"ChargeClass" = 'Correction'$r$, ARRAY['ChargeClass'], 'columns/chargeclass.md'),
    ('ChargeClass.4', 'ChargeClass', 'MUST', $r$ChargeClass MUST be null for a row that corrects nothing or corrects the current billing period: a correction's charge period starts before its billing period$r$, 'row', $r$"ChargeClass" = 'Correction'$r$, $r$"ChargePeriodStart" < "BillingPeriodStart"$r$, ARRAY['ChargeClass', 'ChargePeriodStart', 'BillingPeriodStart'], 'columns/chargeclass.md'),
    ('ChargeDescription.1', 'ChargeDescription', 'MUST', $r$ChargeDescription MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ChargeDescription'], 'columns/chargedescription.md'),
    ('ChargeDescription.2', 'ChargeDescription', 'MUST', $r$ChargeDescription MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ChargeDescription'], 'columns/chargedescription.md'),
    ('ChargeDescription.3', 'ChargeDescription', 'SHOULD', $r$ChargeDescription SHOULD NOT be null$r$, 'row', NULL, $r$"ChargeDescription" IS NOT NULL$r$, ARRAY['ChargeDescription'], 'columns/chargedescription.md'),
    ('ChargeDescription.4', 'ChargeDescription', 'MUST', $r$ChargeDescription: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"ChargeDescription" IS NULL OR (btrim("ChargeDescription") <> '' AND lower(btrim("ChargeDescription")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['ChargeDescription'], 'columns/chargedescription.md'),
    ('ChargeFrequency.1', 'ChargeFrequency', 'MUST', $r$ChargeFrequency MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ChargeFrequency'], 'columns/chargefrequency.md'),
    ('ChargeFrequency.2', 'ChargeFrequency', 'MUST', $r$ChargeFrequency MUST NOT be null$r$, 'row', NULL, $r$"ChargeFrequency" IS NOT NULL$r$, ARRAY['ChargeFrequency'], 'columns/chargefrequency.md'),
    ('ChargeFrequency.3', 'ChargeFrequency', 'MUST', $r$ChargeFrequency MUST be one of the allowed values (One-Time, Recurring, Usage-Based)$r$, 'row', NULL, $r$"ChargeFrequency" IS NULL OR "ChargeFrequency" IN ('One-Time', 'Recurring', 'Usage-Based')$r$, ARRAY['ChargeFrequency'], 'columns/chargefrequency.md'),
    ('ChargeFrequency.4', 'ChargeFrequency', 'MUST', $r$ChargeFrequency MUST NOT be "Usage-Based" when ChargeCategory is "Purchase"$r$, 'row', $r$"ChargeCategory" = 'Purchase'$r$, $r$"ChargeFrequency" IS DISTINCT FROM 'Usage-Based'$r$, ARRAY['ChargeFrequency', 'ChargeCategory'], 'columns/chargefrequency.md'),
    ('CommitmentDiscountCategory.1', 'CommitmentDiscountCategory', 'MUST', $r$CommitmentDiscountCategory MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['CommitmentDiscountCategory'], 'columns/commitmentdiscountcategory.md'),
    ('CommitmentDiscountCategory.2', 'CommitmentDiscountCategory', 'MUST', $r$CommitmentDiscountCategory MUST be null when CommitmentDiscountId is null$r$, 'row', $r$"CommitmentDiscountId" IS NULL$r$, $r$"CommitmentDiscountCategory" IS NULL$r$, ARRAY['CommitmentDiscountCategory', 'CommitmentDiscountId'], 'columns/commitmentdiscountcategory.md'),
    ('CommitmentDiscountCategory.3', 'CommitmentDiscountCategory', 'MUST', $r$CommitmentDiscountCategory MUST NOT be null when CommitmentDiscountId is not null$r$, 'row', $r$"CommitmentDiscountId" IS NOT NULL$r$, $r$"CommitmentDiscountCategory" IS NOT NULL$r$, ARRAY['CommitmentDiscountCategory', 'CommitmentDiscountId'], 'columns/commitmentdiscountcategory.md'),
    ('CommitmentDiscountCategory.4', 'CommitmentDiscountCategory', 'MUST', $r$CommitmentDiscountCategory MUST be one of the allowed values (Spend, Usage)$r$, 'row', NULL, $r$"CommitmentDiscountCategory" IS NULL OR "CommitmentDiscountCategory" IN ('Spend', 'Usage')$r$, ARRAY['CommitmentDiscountCategory'], 'columns/commitmentdiscountcategory.md'),
    ('CommitmentDiscountId.1', 'CommitmentDiscountId', 'MUST', $r$CommitmentDiscountId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['CommitmentDiscountId'], 'columns/commitmentdiscountid.md'),
    ('CommitmentDiscountId.2', 'CommitmentDiscountId', 'MUST', $r$CommitmentDiscountId: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"CommitmentDiscountId" IS NULL OR (btrim("CommitmentDiscountId") <> '' AND lower(btrim("CommitmentDiscountId")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['CommitmentDiscountId'], 'columns/commitmentdiscountid.md'),
    ('CommitmentDiscountName.1', 'CommitmentDiscountName', 'MUST', $r$CommitmentDiscountName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['CommitmentDiscountName'], 'columns/commitmentdiscountname.md'),
    ('CommitmentDiscountName.2', 'CommitmentDiscountName', 'MUST', $r$CommitmentDiscountName MUST be null when CommitmentDiscountId is null$r$, 'row', $r$"CommitmentDiscountId" IS NULL$r$, $r$"CommitmentDiscountName" IS NULL$r$, ARRAY['CommitmentDiscountName', 'CommitmentDiscountId'], 'columns/commitmentdiscountname.md'),
    ('CommitmentDiscountQuantity.1', 'CommitmentDiscountQuantity', 'MUST', $r$CommitmentDiscountQuantity MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['CommitmentDiscountQuantity'], 'columns/commitmentdiscountquantity.md'),
    ('CommitmentDiscountQuantity.2', 'CommitmentDiscountQuantity', 'MUST', $r$CommitmentDiscountQuantity MUST NOT be null on Usage or Purchase rows with a CommitmentDiscountId that are not corrections$r$, 'row', $r$"CommitmentDiscountId" IS NOT NULL AND "ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"CommitmentDiscountQuantity" IS NOT NULL$r$, ARRAY['CommitmentDiscountQuantity', 'CommitmentDiscountId', 'ChargeCategory', 'ChargeClass'], 'columns/commitmentdiscountquantity.md'),
    ('CommitmentDiscountQuantity.3', 'CommitmentDiscountQuantity', 'MUST', $r$CommitmentDiscountQuantity MUST be null unless ChargeCategory is "Usage" or "Purchase" and CommitmentDiscountId is not null$r$, 'row', $r$NOT ("ChargeCategory" IN ('Usage', 'Purchase') AND "CommitmentDiscountId" IS NOT NULL)$r$, $r$"CommitmentDiscountQuantity" IS NULL$r$, ARRAY['CommitmentDiscountQuantity', 'CommitmentDiscountId', 'ChargeCategory'], 'columns/commitmentdiscountquantity.md'),
    ('CommitmentDiscountStatus.1', 'CommitmentDiscountStatus', 'MUST', $r$CommitmentDiscountStatus MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['CommitmentDiscountStatus'], 'columns/commitmentdiscountstatus.md'),
    ('CommitmentDiscountStatus.2', 'CommitmentDiscountStatus', 'MUST', $r$CommitmentDiscountStatus MUST be null when CommitmentDiscountId is null$r$, 'row', $r$"CommitmentDiscountId" IS NULL$r$, $r$"CommitmentDiscountStatus" IS NULL$r$, ARRAY['CommitmentDiscountStatus', 'CommitmentDiscountId'], 'columns/commitmentdiscountstatus.md'),
    ('CommitmentDiscountStatus.3', 'CommitmentDiscountStatus', 'MUST', $r$CommitmentDiscountStatus MUST NOT be null when CommitmentDiscountId is not null and ChargeCategory is "Usage"$r$, 'row', $r$"CommitmentDiscountId" IS NOT NULL AND "ChargeCategory" = 'Usage'$r$, $r$"CommitmentDiscountStatus" IS NOT NULL$r$, ARRAY['CommitmentDiscountStatus', 'CommitmentDiscountId', 'ChargeCategory'], 'columns/commitmentdiscountstatus.md'),
    ('CommitmentDiscountStatus.4', 'CommitmentDiscountStatus', 'MUST', $r$CommitmentDiscountStatus MUST be one of the allowed values (Used, Unused)$r$, 'row', NULL, $r$"CommitmentDiscountStatus" IS NULL OR "CommitmentDiscountStatus" IN ('Used', 'Unused')$r$, ARRAY['CommitmentDiscountStatus'], 'columns/commitmentdiscountstatus.md'),
    ('CommitmentDiscountType.1', 'CommitmentDiscountType', 'MUST', $r$CommitmentDiscountType MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['CommitmentDiscountType'], 'columns/commitmentdiscounttype.md'),
    ('CommitmentDiscountType.2', 'CommitmentDiscountType', 'MUST', $r$CommitmentDiscountType MUST be null when CommitmentDiscountId is null$r$, 'row', $r$"CommitmentDiscountId" IS NULL$r$, $r$"CommitmentDiscountType" IS NULL$r$, ARRAY['CommitmentDiscountType', 'CommitmentDiscountId'], 'columns/commitmentdiscounttype.md'),
    ('CommitmentDiscountType.3', 'CommitmentDiscountType', 'MUST', $r$CommitmentDiscountType MUST NOT be null when CommitmentDiscountId is not null$r$, 'row', $r$"CommitmentDiscountId" IS NOT NULL$r$, $r$"CommitmentDiscountType" IS NOT NULL$r$, ARRAY['CommitmentDiscountType', 'CommitmentDiscountId'], 'columns/commitmentdiscounttype.md'),
    ('CommitmentDiscountType.4', 'CommitmentDiscountType', 'MUST', $r$CommitmentDiscountType: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"CommitmentDiscountType" IS NULL OR (btrim("CommitmentDiscountType") <> '' AND lower(btrim("CommitmentDiscountType")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['CommitmentDiscountType'], 'columns/commitmentdiscounttype.md'),
    ('CommitmentDiscountUnit.1', 'CommitmentDiscountUnit', 'MUST', $r$CommitmentDiscountUnit MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['CommitmentDiscountUnit'], 'columns/commitmentdiscountunit.md'),
    ('CommitmentDiscountUnit.2', 'CommitmentDiscountUnit', 'MUST', $r$CommitmentDiscountUnit MUST be null when CommitmentDiscountQuantity is null$r$, 'row', $r$"CommitmentDiscountQuantity" IS NULL$r$, $r$"CommitmentDiscountUnit" IS NULL$r$, ARRAY['CommitmentDiscountUnit', 'CommitmentDiscountQuantity'], 'columns/commitmentdiscountunit.md'),
    ('CommitmentDiscountUnit.3', 'CommitmentDiscountUnit', 'MUST', $r$CommitmentDiscountUnit MUST NOT be null when CommitmentDiscountQuantity is not null$r$, 'row', $r$"CommitmentDiscountQuantity" IS NOT NULL$r$, $r$"CommitmentDiscountUnit" IS NOT NULL$r$, ARRAY['CommitmentDiscountUnit', 'CommitmentDiscountQuantity'], 'columns/commitmentdiscountunit.md'),
    ('CommitmentDiscountUnit.4', 'CommitmentDiscountUnit', 'SHOULD', $r$CommitmentDiscountUnit SHOULD be in one of UnitFormat's forms: "GB", "GB-Hours", "GB/Hour", "1000 Tokens", "Units/3 Months"$r$, 'row', $r$"CommitmentDiscountUnit" IS NOT NULL$r$, $r$"CommitmentDiscountUnit" ~ '^([A-Za-z][A-Za-z0-9]*|[A-Za-z][A-Za-z0-9]*-(Year|Month|Day|Hour|Minute|Second)s|[A-Za-z][A-Za-z0-9]*/(Year|Month|Day|Hour|Minute|Second)|[0-9]+ [A-Za-z][A-Za-z0-9]*|[A-Za-z][A-Za-z0-9]*/[0-9]+ (Year|Month|Day|Hour|Minute|Second)s)$'$r$, ARRAY['CommitmentDiscountUnit'], 'columns/commitmentdiscountunit.md'),
    ('ConsumedQuantity.1', 'ConsumedQuantity', 'MUST', $r$ConsumedQuantity MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['ConsumedQuantity'], 'columns/consumedquantity.md'),
    ('ConsumedQuantity.2', 'ConsumedQuantity', 'MUST', $r$ConsumedQuantity MUST be null when ChargeCategory is not "Usage", or is "Usage" with CommitmentDiscountStatus "Unused"$r$, 'row', $r$"ChargeCategory" IS DISTINCT FROM 'Usage' OR "CommitmentDiscountStatus" = 'Unused'$r$, $r$"ConsumedQuantity" IS NULL$r$, ARRAY['ConsumedQuantity', 'ChargeCategory', 'CommitmentDiscountStatus'], 'columns/consumedquantity.md'),
    ('ConsumedQuantity.3', 'ConsumedQuantity', 'MUST', $r$ConsumedQuantity MUST NOT be null on Usage rows not "Unused" that are not corrections$r$, 'row', $r$"ChargeCategory" = 'Usage' AND "CommitmentDiscountStatus" IS DISTINCT FROM 'Unused' AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"ConsumedQuantity" IS NOT NULL$r$, ARRAY['ConsumedQuantity', 'ChargeCategory', 'CommitmentDiscountStatus', 'ChargeClass'], 'columns/consumedquantity.md'),
    ('ConsumedUnit.1', 'ConsumedUnit', 'MUST', $r$ConsumedUnit MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ConsumedUnit'], 'columns/consumedunit.md'),
    ('ConsumedUnit.2', 'ConsumedUnit', 'MUST', $r$ConsumedUnit MUST be null when ConsumedQuantity is null$r$, 'row', $r$"ConsumedQuantity" IS NULL$r$, $r$"ConsumedUnit" IS NULL$r$, ARRAY['ConsumedUnit', 'ConsumedQuantity'], 'columns/consumedunit.md'),
    ('ConsumedUnit.3', 'ConsumedUnit', 'MUST', $r$ConsumedUnit MUST NOT be null when ConsumedQuantity is not null$r$, 'row', $r$"ConsumedQuantity" IS NOT NULL$r$, $r$"ConsumedUnit" IS NOT NULL$r$, ARRAY['ConsumedUnit', 'ConsumedQuantity'], 'columns/consumedunit.md'),
    ('ConsumedUnit.4', 'ConsumedUnit', 'SHOULD', $r$ConsumedUnit SHOULD be in one of UnitFormat's forms: "GB", "GB-Hours", "GB/Hour", "1000 Tokens", "Units/3 Months"$r$, 'row', $r$"ConsumedUnit" IS NOT NULL$r$, $r$"ConsumedUnit" ~ '^([A-Za-z][A-Za-z0-9]*|[A-Za-z][A-Za-z0-9]*-(Year|Month|Day|Hour|Minute|Second)s|[A-Za-z][A-Za-z0-9]*/(Year|Month|Day|Hour|Minute|Second)|[0-9]+ [A-Za-z][A-Za-z0-9]*|[A-Za-z][A-Za-z0-9]*/[0-9]+ (Year|Month|Day|Hour|Minute|Second)s)$'$r$, ARRAY['ConsumedUnit'], 'columns/consumedunit.md'),
    ('ContractedCost.1', 'ContractedCost', 'MUST', $r$ContractedCost MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ContractedCost'], 'columns/contractedcost.md'),
    ('ContractedCost.2', 'ContractedCost', 'MUST', $r$ContractedCost MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['ContractedCost'], 'columns/contractedcost.md'),
    ('ContractedCost.3', 'ContractedCost', 'MUST', $r$ContractedCost MUST NOT be null$r$, 'row', NULL, $r$"ContractedCost" IS NOT NULL$r$, ARRAY['ContractedCost'], 'columns/contractedcost.md'),
    ('ContractedCost.4', 'ContractedCost', 'MUST', $r$ContractedCost of a charge unrelated to other charges (a credit) MUST match its BilledCost$r$, 'row', $r$"ChargeCategory" = 'Credit'$r$, $r$"ContractedCost" = "BilledCost"$r$, ARRAY['ContractedCost', 'BilledCost', 'ChargeCategory'], 'columns/contractedcost.md'),
    ('ContractedCost.5', 'ContractedCost', 'MUST', $r$ContractedUnitPrice × PricingQuantity MUST match ContractedCost when both are not null and the row is not a correction$r$, 'row', $r$"ContractedUnitPrice" IS NOT NULL AND "PricingQuantity" IS NOT NULL AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$round("ContractedUnitPrice" * "PricingQuantity" - "ContractedCost", 6) = 0$r$, ARRAY['ContractedCost', 'ContractedUnitPrice', 'PricingQuantity', 'ChargeClass'], 'columns/contractedcost.md'),
    ('ContractedUnitPrice.1', 'ContractedUnitPrice', 'MUST', $r$ContractedUnitPrice MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['ContractedUnitPrice'], 'columns/contractedunitprice.md'),
    ('ContractedUnitPrice.2', 'ContractedUnitPrice', 'MUST', $r$ContractedUnitPrice MUST be null when ChargeCategory is "Tax"$r$, 'row', $r$"ChargeCategory" = 'Tax'$r$, $r$"ContractedUnitPrice" IS NULL$r$, ARRAY['ContractedUnitPrice', 'ChargeCategory'], 'columns/contractedunitprice.md'),
    ('ContractedUnitPrice.3', 'ContractedUnitPrice', 'MUST', $r$ContractedUnitPrice MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and ChargeClass is not "Correction"$r$, 'row', $r$"ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"ContractedUnitPrice" IS NOT NULL$r$, ARRAY['ContractedUnitPrice', 'ChargeCategory', 'ChargeClass'], 'columns/contractedunitprice.md'),
    ('ContractedUnitPrice.4', 'ContractedUnitPrice', 'MUST', $r$ContractedUnitPrice MUST be a non-negative decimal value$r$, 'row', $r$"ContractedUnitPrice" IS NOT NULL$r$, $r$"ContractedUnitPrice" >= 0$r$, ARRAY['ContractedUnitPrice'], 'columns/contractedunitprice.md'),
    ('BilledCost.4', 'BilledCost', 'MUST', $r$BilledCost MUST be 0 on a row the commitment covers entirely: usage at a commitment, Used, priced as Committed (DiscountHandling)$r$, 'row', $r$"ChargeCategory" = 'Usage' AND "CommitmentDiscountStatus" = 'Used' AND "PricingCategory" = 'Committed' AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"BilledCost" = 0$r$, ARRAY['BilledCost', 'ChargeCategory', 'CommitmentDiscountStatus', 'PricingCategory', 'ChargeClass'], 'attributes/discount_handling.md'),
    ('EffectiveCost.1', 'EffectiveCost', 'MUST', $r$EffectiveCost MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['EffectiveCost'], 'columns/effectivecost.md'),
    ('EffectiveCost.2', 'EffectiveCost', 'MUST', $r$EffectiveCost MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['EffectiveCost'], 'columns/effectivecost.md'),
    ('EffectiveCost.3', 'EffectiveCost', 'MUST', $r$EffectiveCost MUST NOT be null$r$, 'row', NULL, $r$"EffectiveCost" IS NOT NULL$r$, ARRAY['EffectiveCost'], 'columns/effectivecost.md'),
    ('EffectiveCost.4', 'EffectiveCost', 'MUST', $r$EffectiveCost MUST be 0 for the purchase of a commitment discount (it covers future charges)$r$, 'row', $r$"ChargeCategory" = 'Purchase' AND "CommitmentDiscountId" IS NOT NULL AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"EffectiveCost" = 0$r$, ARRAY['EffectiveCost', 'ChargeCategory', 'CommitmentDiscountId', 'ChargeClass'], 'columns/effectivecost.md'),
    ('EffectiveCost.5', 'EffectiveCost', 'MUST', $r$EffectiveCost of a charge unrelated to other charges (a credit) MUST match its BilledCost$r$, 'row', $r$"ChargeCategory" = 'Credit'$r$, $r$"EffectiveCost" = "BilledCost"$r$, ARRAY['EffectiveCost', 'BilledCost', 'ChargeCategory'], 'columns/effectivecost.md'),
    ('InvoiceId.1', 'InvoiceId', 'MUST', $r$InvoiceId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['InvoiceId'], 'columns/invoiceid.md'),
    ('InvoiceId.2', 'InvoiceId', 'MUST', $r$InvoiceId: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"InvoiceId" IS NULL OR (btrim("InvoiceId") <> '' AND lower(btrim("InvoiceId")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['InvoiceId'], 'columns/invoiceid.md'),
    ('InvoiceIssuerName.1', 'InvoiceIssuerName', 'MUST', $r$InvoiceIssuerName MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['InvoiceIssuerName'], 'columns/invoiceissuer.md'),
    ('InvoiceIssuerName.2', 'InvoiceIssuerName', 'MUST', $r$InvoiceIssuerName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['InvoiceIssuerName'], 'columns/invoiceissuer.md'),
    ('InvoiceIssuerName.3', 'InvoiceIssuerName', 'MUST', $r$InvoiceIssuerName MUST NOT be null$r$, 'row', NULL, $r$"InvoiceIssuerName" IS NOT NULL$r$, ARRAY['InvoiceIssuerName'], 'columns/invoiceissuer.md'),
    ('InvoiceIssuerName.4', 'InvoiceIssuerName', 'SHOULD', $r$InvoiceIssuerName: no empty string or string of spaces (StringHandling)$r$, 'row', NULL, $r$"InvoiceIssuerName" IS NULL OR btrim("InvoiceIssuerName") <> ''$r$, ARRAY['InvoiceIssuerName'], 'columns/invoiceissuer.md'),
    ('ListCost.1', 'ListCost', 'MUST', $r$ListCost MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ListCost'], 'columns/listcost.md'),
    ('ListCost.2', 'ListCost', 'MUST', $r$ListCost MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['ListCost'], 'columns/listcost.md'),
    ('ListCost.3', 'ListCost', 'MUST', $r$ListCost MUST NOT be null$r$, 'row', NULL, $r$"ListCost" IS NOT NULL$r$, ARRAY['ListCost'], 'columns/listcost.md'),
    ('ListCost.4', 'ListCost', 'MUST', $r$ListCost of a charge unrelated to other charges (a credit) MUST match its BilledCost$r$, 'row', $r$"ChargeCategory" = 'Credit'$r$, $r$"ListCost" = "BilledCost"$r$, ARRAY['ListCost', 'BilledCost', 'ChargeCategory'], 'columns/listcost.md'),
    ('ListCost.5', 'ListCost', 'MUST', $r$ListUnitPrice × PricingQuantity MUST match ListCost when both are not null and the row is not a correction$r$, 'row', $r$"ListUnitPrice" IS NOT NULL AND "PricingQuantity" IS NOT NULL AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$round("ListUnitPrice" * "PricingQuantity" - "ListCost", 6) = 0$r$, ARRAY['ListCost', 'ListUnitPrice', 'PricingQuantity', 'ChargeClass'], 'columns/listcost.md'),
    ('ListUnitPrice.1', 'ListUnitPrice', 'MUST', $r$ListUnitPrice MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['ListUnitPrice'], 'columns/listunitprice.md'),
    ('ListUnitPrice.2', 'ListUnitPrice', 'MUST', $r$ListUnitPrice MUST be null when ChargeCategory is "Tax"$r$, 'row', $r$"ChargeCategory" = 'Tax'$r$, $r$"ListUnitPrice" IS NULL$r$, ARRAY['ListUnitPrice', 'ChargeCategory'], 'columns/listunitprice.md'),
    ('ListUnitPrice.3', 'ListUnitPrice', 'MUST', $r$ListUnitPrice MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and ChargeClass is not "Correction"$r$, 'row', $r$"ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"ListUnitPrice" IS NOT NULL$r$, ARRAY['ListUnitPrice', 'ChargeCategory', 'ChargeClass'], 'columns/listunitprice.md'),
    ('ListUnitPrice.4', 'ListUnitPrice', 'MUST', $r$ListUnitPrice MUST be a non-negative decimal value$r$, 'row', $r$"ListUnitPrice" IS NOT NULL$r$, $r$"ListUnitPrice" >= 0$r$, ARRAY['ListUnitPrice'], 'columns/listunitprice.md'),
    ('PricingCategory.1', 'PricingCategory', 'MUST', $r$PricingCategory MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['PricingCategory'], 'columns/pricingcategory.md'),
    ('PricingCategory.2', 'PricingCategory', 'MUST', $r$PricingCategory MUST be null when ChargeCategory is "Tax"$r$, 'row', $r$"ChargeCategory" = 'Tax'$r$, $r$"PricingCategory" IS NULL$r$, ARRAY['PricingCategory', 'ChargeCategory'], 'columns/pricingcategory.md'),
    ('PricingCategory.3', 'PricingCategory', 'MUST', $r$PricingCategory MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and ChargeClass is not "Correction"$r$, 'row', $r$"ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"PricingCategory" IS NOT NULL$r$, ARRAY['PricingCategory', 'ChargeCategory', 'ChargeClass'], 'columns/pricingcategory.md'),
    ('PricingCategory.4', 'PricingCategory', 'MUST', $r$PricingCategory MUST be one of the allowed values (Standard, Dynamic, Committed, Other)$r$, 'row', NULL, $r$"PricingCategory" IS NULL OR "PricingCategory" IN ('Standard', 'Dynamic', 'Committed', 'Other')$r$, ARRAY['PricingCategory'], 'columns/pricingcategory.md'),
    ('PricingCategory.5', 'PricingCategory', 'MUST', $r$PricingCategory MUST be "Committed" for a charge under an existing commitment discount that is not its purchase$r$, 'row', $r$"CommitmentDiscountId" IS NOT NULL AND "ChargeCategory" = 'Usage' AND "CommitmentDiscountStatus" = 'Used'$r$, $r$"PricingCategory" = 'Committed'$r$, ARRAY['PricingCategory', 'CommitmentDiscountId', 'ChargeCategory', 'CommitmentDiscountStatus'], 'columns/pricingcategory.md'),
    ('PricingCurrency.1', 'PricingCurrency', 'MUST', $r$PricingCurrency MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['PricingCurrency'], 'columns/pricingcurrency.md'),
    ('PricingCurrency.2', 'PricingCurrency', 'MUST', $r$PricingCurrency MUST NOT be null$r$, 'row', NULL, $r$"PricingCurrency" IS NOT NULL$r$, ARRAY['PricingCurrency'], 'columns/pricingcurrency.md'),
    ('PricingCurrency.3', 'PricingCurrency', 'MUST', $r$PricingCurrency MUST be a three-letter ISO 4217 code when in national currency (CurrencyFormat)$r$, 'row', $r$"PricingCurrency" IS NOT NULL$r$, $r$"PricingCurrency" ~ '^[A-Z]{3}$'$r$, ARRAY['PricingCurrency'], 'columns/pricingcurrency.md'),
    ('PricingCurrencyContractedUnitPrice.1', 'PricingCurrencyContractedUnitPrice', 'MUST', $r$PricingCurrencyContractedUnitPrice MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['PricingCurrencyContractedUnitPrice'], 'columns/pricingcurrencycontractedunitprice.md'),
    ('PricingCurrencyContractedUnitPrice.2', 'PricingCurrencyContractedUnitPrice', 'MUST', $r$PricingCurrencyContractedUnitPrice MUST be null when ChargeCategory is "Tax"$r$, 'row', $r$"ChargeCategory" = 'Tax'$r$, $r$"PricingCurrencyContractedUnitPrice" IS NULL$r$, ARRAY['PricingCurrencyContractedUnitPrice', 'ChargeCategory'], 'columns/pricingcurrencycontractedunitprice.md'),
    ('PricingCurrencyContractedUnitPrice.3', 'PricingCurrencyContractedUnitPrice', 'MUST', $r$PricingCurrencyContractedUnitPrice MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and ChargeClass is not "Correction"$r$, 'row', $r$"ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"PricingCurrencyContractedUnitPrice" IS NOT NULL$r$, ARRAY['PricingCurrencyContractedUnitPrice', 'ChargeCategory', 'ChargeClass'], 'columns/pricingcurrencycontractedunitprice.md'),
    ('PricingCurrencyContractedUnitPrice.4', 'PricingCurrencyContractedUnitPrice', 'MUST', $r$PricingCurrencyContractedUnitPrice MUST be a non-negative decimal value$r$, 'row', $r$"PricingCurrencyContractedUnitPrice" IS NOT NULL$r$, $r$"PricingCurrencyContractedUnitPrice" >= 0$r$, ARRAY['PricingCurrencyContractedUnitPrice'], 'columns/pricingcurrencycontractedunitprice.md'),
    ('PricingCurrencyListUnitPrice.1', 'PricingCurrencyListUnitPrice', 'MUST', $r$PricingCurrencyListUnitPrice MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['PricingCurrencyListUnitPrice'], 'columns/pricingcurrencylistunitprice.md'),
    ('PricingCurrencyListUnitPrice.2', 'PricingCurrencyListUnitPrice', 'MUST', $r$PricingCurrencyListUnitPrice MUST be null when ChargeCategory is "Tax"$r$, 'row', $r$"ChargeCategory" = 'Tax'$r$, $r$"PricingCurrencyListUnitPrice" IS NULL$r$, ARRAY['PricingCurrencyListUnitPrice', 'ChargeCategory'], 'columns/pricingcurrencylistunitprice.md'),
    ('PricingCurrencyListUnitPrice.3', 'PricingCurrencyListUnitPrice', 'MUST', $r$PricingCurrencyListUnitPrice MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and ChargeClass is not "Correction"$r$, 'row', $r$"ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"PricingCurrencyListUnitPrice" IS NOT NULL$r$, ARRAY['PricingCurrencyListUnitPrice', 'ChargeCategory', 'ChargeClass'], 'columns/pricingcurrencylistunitprice.md'),
    ('PricingCurrencyListUnitPrice.4', 'PricingCurrencyListUnitPrice', 'MUST', $r$PricingCurrencyListUnitPrice MUST be a non-negative decimal value$r$, 'row', $r$"PricingCurrencyListUnitPrice" IS NOT NULL$r$, $r$"PricingCurrencyListUnitPrice" >= 0$r$, ARRAY['PricingCurrencyListUnitPrice'], 'columns/pricingcurrencylistunitprice.md'),
    ('PricingCurrencyEffectiveCost.1', 'PricingCurrencyEffectiveCost', 'MUST', $r$PricingCurrencyEffectiveCost MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['PricingCurrencyEffectiveCost'], 'columns/pricingcurrencyeffectivecost.md'),
    ('PricingCurrencyEffectiveCost.2', 'PricingCurrencyEffectiveCost', 'MUST', $r$PricingCurrencyEffectiveCost MUST NOT be null$r$, 'row', NULL, $r$"PricingCurrencyEffectiveCost" IS NOT NULL$r$, ARRAY['PricingCurrencyEffectiveCost'], 'columns/pricingcurrencyeffectivecost.md'),
    ('PricingQuantity.1', 'PricingQuantity', 'MUST', $r$PricingQuantity MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['PricingQuantity'], 'columns/pricingquantity.md'),
    ('PricingQuantity.2', 'PricingQuantity', 'MUST', $r$PricingQuantity MUST be of type Decimal$r$, 'type', NULL, $r$numeric$r$, ARRAY['PricingQuantity'], 'columns/pricingquantity.md'),
    ('PricingQuantity.3', 'PricingQuantity', 'MUST', $r$PricingQuantity MUST be null when ChargeCategory is "Tax"$r$, 'row', $r$"ChargeCategory" = 'Tax'$r$, $r$"PricingQuantity" IS NULL$r$, ARRAY['PricingQuantity', 'ChargeCategory'], 'columns/pricingquantity.md'),
    ('PricingQuantity.4', 'PricingQuantity', 'MUST', $r$PricingQuantity MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and ChargeClass is not "Correction"$r$, 'row', $r$"ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"PricingQuantity" IS NOT NULL$r$, ARRAY['PricingQuantity', 'ChargeCategory', 'ChargeClass'], 'columns/pricingquantity.md'),
    ('PricingUnit.1', 'PricingUnit', 'MUST', $r$PricingUnit MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['PricingUnit'], 'columns/pricingunit.md'),
    ('PricingUnit.2', 'PricingUnit', 'MUST', $r$PricingUnit MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['PricingUnit'], 'columns/pricingunit.md'),
    ('PricingUnit.3', 'PricingUnit', 'MUST', $r$PricingUnit MUST be null when PricingQuantity is null$r$, 'row', $r$"PricingQuantity" IS NULL$r$, $r$"PricingUnit" IS NULL$r$, ARRAY['PricingUnit', 'PricingQuantity'], 'columns/pricingunit.md'),
    ('PricingUnit.4', 'PricingUnit', 'MUST', $r$PricingUnit MUST NOT be null when PricingQuantity is not null$r$, 'row', $r$"PricingQuantity" IS NOT NULL$r$, $r$"PricingUnit" IS NOT NULL$r$, ARRAY['PricingUnit', 'PricingQuantity'], 'columns/pricingunit.md'),
    ('PricingUnit.5', 'PricingUnit', 'SHOULD', $r$PricingUnit SHOULD be in one of UnitFormat's forms: "GB", "GB-Hours", "GB/Hour", "1000 Tokens", "Units/3 Months"$r$, 'row', $r$"PricingUnit" IS NOT NULL$r$, $r$"PricingUnit" ~ '^([A-Za-z][A-Za-z0-9]*|[A-Za-z][A-Za-z0-9]*-(Year|Month|Day|Hour|Minute|Second)s|[A-Za-z][A-Za-z0-9]*/(Year|Month|Day|Hour|Minute|Second)|[0-9]+ [A-Za-z][A-Za-z0-9]*|[A-Za-z][A-Za-z0-9]*/[0-9]+ (Year|Month|Day|Hour|Minute|Second)s)$'$r$, ARRAY['PricingUnit'], 'columns/pricingunit.md'),
    ('ProviderName.1', 'ProviderName', 'MUST', $r$ProviderName MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ProviderName'], 'columns/provider.md'),
    ('ProviderName.2', 'ProviderName', 'MUST', $r$ProviderName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ProviderName'], 'columns/provider.md'),
    ('ProviderName.3', 'ProviderName', 'MUST', $r$ProviderName MUST NOT be null$r$, 'row', NULL, $r$"ProviderName" IS NOT NULL$r$, ARRAY['ProviderName'], 'columns/provider.md'),
    ('ProviderName.4', 'ProviderName', 'SHOULD', $r$ProviderName: no empty string or string of spaces (StringHandling)$r$, 'row', NULL, $r$"ProviderName" IS NULL OR btrim("ProviderName") <> ''$r$, ARRAY['ProviderName'], 'columns/provider.md'),
    ('PublisherName.1', 'PublisherName', 'MUST', $r$PublisherName MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['PublisherName'], 'columns/publisher.md'),
    ('PublisherName.2', 'PublisherName', 'MUST', $r$PublisherName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['PublisherName'], 'columns/publisher.md'),
    ('PublisherName.3', 'PublisherName', 'MUST', $r$PublisherName MUST NOT be null$r$, 'row', NULL, $r$"PublisherName" IS NOT NULL$r$, ARRAY['PublisherName'], 'columns/publisher.md'),
    ('PublisherName.4', 'PublisherName', 'SHOULD', $r$PublisherName: no empty string or string of spaces (StringHandling)$r$, 'row', NULL, $r$"PublisherName" IS NULL OR btrim("PublisherName") <> ''$r$, ARRAY['PublisherName'], 'columns/publisher.md'),
    ('RegionId.1', 'RegionId', 'MUST', $r$RegionId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['RegionId'], 'columns/regionid.md'),
    ('RegionId.2', 'RegionId', 'MUST', $r$RegionId: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"RegionId" IS NULL OR (btrim("RegionId") <> '' AND lower(btrim("RegionId")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['RegionId'], 'columns/regionid.md'),
    ('RegionName.1', 'RegionName', 'MUST', $r$RegionName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['RegionName'], 'columns/regionname.md'),
    ('RegionName.2', 'RegionName', 'MUST', $r$RegionName MUST be null when RegionId is null$r$, 'row', $r$"RegionId" IS NULL$r$, $r$"RegionName" IS NULL$r$, ARRAY['RegionName', 'RegionId'], 'columns/regionname.md'),
    ('RegionName.3', 'RegionName', 'MUST', $r$RegionName MUST NOT be null when RegionId is not null$r$, 'row', $r$"RegionId" IS NOT NULL$r$, $r$"RegionName" IS NOT NULL$r$, ARRAY['RegionName', 'RegionId'], 'columns/regionname.md'),
    ('ResourceId.1', 'ResourceId', 'MUST', $r$ResourceId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ResourceId'], 'columns/resourceid.md'),
    ('ResourceId.2', 'ResourceId', 'MUST', $r$ResourceId: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"ResourceId" IS NULL OR (btrim("ResourceId") <> '' AND lower(btrim("ResourceId")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['ResourceId'], 'columns/resourceid.md'),
    ('ResourceName.1', 'ResourceName', 'MUST', $r$ResourceName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ResourceName'], 'columns/resourcename.md'),
    ('ResourceName.2', 'ResourceName', 'MUST', $r$ResourceName MUST be null when ResourceId is null$r$, 'row', $r$"ResourceId" IS NULL$r$, $r$"ResourceName" IS NULL$r$, ARRAY['ResourceName', 'ResourceId'], 'columns/resourcename.md'),
    ('ResourceType.1', 'ResourceType', 'MUST', $r$ResourceType MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ResourceType'], 'columns/resourcetype.md'),
    ('ResourceType.2', 'ResourceType', 'MUST', $r$ResourceType MUST be null when ResourceId is null$r$, 'row', $r$"ResourceId" IS NULL$r$, $r$"ResourceType" IS NULL$r$, ARRAY['ResourceType', 'ResourceId'], 'columns/resourcetype.md'),
    ('ResourceType.3', 'ResourceType', 'MUST', $r$ResourceType MUST NOT be null when ResourceId is not null$r$, 'row', $r$"ResourceId" IS NOT NULL$r$, $r$"ResourceType" IS NOT NULL$r$, ARRAY['ResourceType', 'ResourceId'], 'columns/resourcetype.md'),
    ('ServiceCategory.1', 'ServiceCategory', 'MUST', $r$ServiceCategory MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ServiceCategory'], 'columns/servicecategory.md'),
    ('ServiceCategory.2', 'ServiceCategory', 'MUST', $r$ServiceCategory MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ServiceCategory'], 'columns/servicecategory.md'),
    ('ServiceCategory.3', 'ServiceCategory', 'MUST', $r$ServiceCategory MUST NOT be null$r$, 'row', NULL, $r$"ServiceCategory" IS NOT NULL$r$, ARRAY['ServiceCategory'], 'columns/servicecategory.md'),
    ('ServiceCategory.4', 'ServiceCategory', 'MUST', $r$ServiceCategory MUST be one of the allowed values (AI and Machine Learning, Analytics, Business Applications, Compute, Databases, Developer Tools, Multicloud, Identity, Integration, Internet of Things, Management and Governance, Media, Migration, Mobile, Networking, Security, Storage, Web, Other)$r$, 'row', NULL, $r$"ServiceCategory" IS NULL OR "ServiceCategory" IN ('AI and Machine Learning', 'Analytics', 'Business Applications', 'Compute', 'Databases', 'Developer Tools', 'Multicloud', 'Identity', 'Integration', 'Internet of Things', 'Management and Governance', 'Media', 'Migration', 'Mobile', 'Networking', 'Security', 'Storage', 'Web', 'Other')$r$, ARRAY['ServiceCategory'], 'columns/servicecategory.md'),
    ('ServiceName.1', 'ServiceName', 'MUST', $r$ServiceName MUST be present in a FOCUS dataset$r$, 'presence', NULL, NULL, ARRAY['ServiceName'], 'columns/servicename.md'),
    ('ServiceName.2', 'ServiceName', 'MUST', $r$ServiceName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ServiceName'], 'columns/servicename.md'),
    ('ServiceName.3', 'ServiceName', 'MUST', $r$ServiceName MUST NOT be null$r$, 'row', NULL, $r$"ServiceName" IS NOT NULL$r$, ARRAY['ServiceName'], 'columns/servicename.md'),
    ('ServiceName.4', 'ServiceName', 'SHOULD', $r$ServiceName: no empty string or string of spaces (StringHandling)$r$, 'row', NULL, $r$"ServiceName" IS NULL OR btrim("ServiceName") <> ''$r$, ARRAY['ServiceName'], 'columns/servicename.md'),
    ('ServiceName.5', 'ServiceName', 'MUST', $r$ServiceName MUST have one and only one ServiceCategory$r$, 'one_per', NULL, NULL, ARRAY['ServiceName', 'ServiceCategory'], 'columns/servicename.md'),
    ('ServiceSubcategory.1', 'ServiceSubcategory', 'MUST', $r$ServiceSubcategory MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['ServiceSubcategory'], 'columns/servicesubcategory.md'),
    ('ServiceSubcategory.2', 'ServiceSubcategory', 'MUST', $r$ServiceSubcategory MUST NOT be null$r$, 'row', NULL, $r$"ServiceSubcategory" IS NOT NULL$r$, ARRAY['ServiceSubcategory'], 'columns/servicesubcategory.md'),
    ('ServiceSubcategory.3', 'ServiceSubcategory', 'MUST', $r$ServiceSubcategory MUST be one of the allowed values, under its one parent ServiceCategory$r$, 'row', $r$"ServiceSubcategory" IS NOT NULL$r$, $r$EXISTS (SELECT FROM billops.focus_service_subcategory s WHERE s.service_category = "ServiceCategory" AND s.service_subcategory = "ServiceSubcategory")$r$, ARRAY['ServiceSubcategory', 'ServiceCategory'], 'columns/servicesubcategory.md'),
    ('ServiceName.6', 'ServiceName', 'SHOULD', $r$ServiceName SHOULD have one and only one ServiceSubcategory$r$, 'one_per', NULL, NULL, ARRAY['ServiceName', 'ServiceSubcategory'], 'columns/servicename.md'),
    ('SkuId.1', 'SkuId', 'MUST', $r$SkuId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['SkuId'], 'columns/skuid.md'),
    ('SkuId.2', 'SkuId', 'MUST', $r$SkuId MUST be null when ChargeCategory is "Tax"$r$, 'row', $r$"ChargeCategory" = 'Tax'$r$, $r$"SkuId" IS NULL$r$, ARRAY['SkuId', 'ChargeCategory'], 'columns/skuid.md'),
    ('SkuId.3', 'SkuId', 'MUST', $r$SkuId MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and ChargeClass is not "Correction"$r$, 'row', $r$"ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"SkuId" IS NOT NULL$r$, ARRAY['SkuId', 'ChargeCategory', 'ChargeClass'], 'columns/skuid.md'),
    ('SkuMeter.1', 'SkuMeter', 'MUST', $r$SkuMeter MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['SkuMeter'], 'columns/skumeter.md'),
    ('SkuMeter.2', 'SkuMeter', 'MUST', $r$SkuMeter MUST be null when SkuId is null$r$, 'row', $r$"SkuId" IS NULL$r$, $r$"SkuMeter" IS NULL$r$, ARRAY['SkuMeter', 'SkuId'], 'columns/skumeter.md'),
    ('SkuMeter.3', 'SkuMeter', 'SHOULD', $r$SkuMeter SHOULD NOT be null when SkuId is not null$r$, 'row', $r$"SkuId" IS NOT NULL$r$, $r$"SkuMeter" IS NOT NULL$r$, ARRAY['SkuMeter', 'SkuId'], 'columns/skumeter.md'),
    ('SkuPriceDetails.1', 'SkuPriceDetails', 'MUST', $r$SkuPriceDetails MUST be a JSON object whose values are numbers, strings, true, false or null (KeyValueFormat)$r$, 'row', $r$"SkuPriceDetails" IS NOT NULL$r$, $r$billops._focus_key_value("SkuPriceDetails")$r$, ARRAY['SkuPriceDetails'], 'columns/skupricedetails.md'),
    ('SkuPriceDetails.2', 'SkuPriceDetails', 'MUST', $r$SkuPriceDetails MUST be null when SkuPriceId is null$r$, 'row', $r$"SkuPriceId" IS NULL$r$, $r$"SkuPriceDetails" IS NULL$r$, ARRAY['SkuPriceDetails', 'SkuPriceId'], 'columns/skupricedetails.md'),
    ('SkuPriceId.1', 'SkuPriceId', 'MUST', $r$SkuPriceId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['SkuPriceId'], 'columns/skupriceid.md'),
    ('SkuPriceId.2', 'SkuPriceId', 'MUST', $r$SkuPriceId MUST be null when ChargeCategory is "Tax"$r$, 'row', $r$"ChargeCategory" = 'Tax'$r$, $r$"SkuPriceId" IS NULL$r$, ARRAY['SkuPriceId', 'ChargeCategory'], 'columns/skupriceid.md'),
    ('SkuPriceId.3', 'SkuPriceId', 'MUST', $r$SkuPriceId MUST NOT be null when ChargeCategory is "Usage" or "Purchase" and ChargeClass is not "Correction"$r$, 'row', $r$"ChargeCategory" IN ('Usage', 'Purchase') AND "ChargeClass" IS DISTINCT FROM 'Correction'$r$, $r$"SkuPriceId" IS NOT NULL$r$, ARRAY['SkuPriceId', 'ChargeCategory', 'ChargeClass'], 'columns/skupriceid.md'),
    ('SkuPriceId.4', 'SkuPriceId', 'MUST', $r$SkuPriceId MUST have one and only one parent SkuId$r$, 'one_per', NULL, NULL, ARRAY['SkuPriceId', 'SkuId'], 'columns/skupriceid.md'),
    ('SubAccountId.1', 'SubAccountId', 'MUST', $r$SubAccountId MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['SubAccountId'], 'columns/subaccountid.md'),
    ('SubAccountId.2', 'SubAccountId', 'MUST', $r$SubAccountId: NULL, never an empty string or a placeholder such as "Not Applicable", when there is no value (NullHandling)$r$, 'row', NULL, $r$"SubAccountId" IS NULL OR (btrim("SubAccountId") <> '' AND lower(btrim("SubAccountId")) NOT IN ('not applicable', 'n/a', 'null', 'none'))$r$, ARRAY['SubAccountId'], 'columns/subaccountid.md'),
    ('SubAccountName.1', 'SubAccountName', 'MUST', $r$SubAccountName MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['SubAccountName'], 'columns/subaccountname.md'),
    ('SubAccountName.2', 'SubAccountName', 'MUST', $r$SubAccountName MUST be null when SubAccountId is null$r$, 'row', $r$"SubAccountId" IS NULL$r$, $r$"SubAccountName" IS NULL$r$, ARRAY['SubAccountName', 'SubAccountId'], 'columns/subaccountname.md'),
    ('SubAccountName.3', 'SubAccountName', 'MUST', $r$SubAccountName MUST NOT be null when SubAccountId is not null$r$, 'row', $r$"SubAccountId" IS NOT NULL$r$, $r$"SubAccountName" IS NOT NULL$r$, ARRAY['SubAccountName', 'SubAccountId'], 'columns/subaccountname.md'),
    ('SubAccountType.1', 'SubAccountType', 'MUST', $r$SubAccountType MUST be of type String$r$, 'type', NULL, $r$text$r$, ARRAY['SubAccountType'], 'columns/subaccounttype.md'),
    ('SubAccountType.2', 'SubAccountType', 'MUST', $r$SubAccountType MUST be null when SubAccountId is null$r$, 'row', $r$"SubAccountId" IS NULL$r$, $r$"SubAccountType" IS NULL$r$, ARRAY['SubAccountType', 'SubAccountId'], 'columns/subaccounttype.md'),
    ('SubAccountType.3', 'SubAccountType', 'MUST', $r$SubAccountType MUST NOT be null when SubAccountId is not null$r$, 'row', $r$"SubAccountId" IS NOT NULL$r$, $r$"SubAccountType" IS NOT NULL$r$, ARRAY['SubAccountType', 'SubAccountId'], 'columns/subaccounttype.md'),
    ('Tags.1', 'Tags', 'MUST', $r$Tags MUST be a JSON object whose values are numbers, strings, true, false or null (KeyValueFormat)$r$, 'row', $r$"Tags" IS NOT NULL$r$, $r$billops._focus_key_value("Tags")$r$, ARRAY['Tags'], 'columns/tags.md');

-- Evaluate the rules on a relation with FOCUS column names, optionally on the
-- rows a condition picks ("x_BillopsSource" = 'cur').  One scan for all row
-- rules; a rule whose columns the relation lacks is reported as not evaluated
-- (rows_applicable NULL).  delivered_columns, when given, are the columns the
-- data came with (an export's header: billops.cur_delivery.columns): the
-- others, which a table such as focus_line_item has but the export did not
-- deliver, count as absent.  The condition is SQL the caller could run
-- anyway: it runs with the caller's privileges (the function is SECURITY
-- INVOKER), like any query they type.
CREATE FUNCTION billops.focus_conformance(dataset regclass DEFAULT 'billops.focus_cost', row_filter text DEFAULT NULL,
                                          delivered_columns text[] DEFAULT NULL)
RETURNS TABLE (rule_id text, focus_column text, keyword text, requirement text, rows_applicable bigint, rows_violating bigint,
               violations_query text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols jsonb;                 -- column name -> SQL type of the relation
    r record;
    exprs text := '';
    src text := format('(SELECT * FROM %s WHERE %s) d', dataset, coalesce(nullif(btrim(row_filter), ''), 'true'));
    counts jsonb;
    n integer := 0;
    a bigint;
    v bigint;
BEGIN
    IF dataset IS NULL THEN
        RAISE EXCEPTION 'billops.focus_conformance needs a relation to check' USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Call it without arguments for billops.focus_cost, or name a table or view with FOCUS columns.';
    END IF;
    SELECT jsonb_object_agg(attname, format_type(atttypid, atttypmod)) INTO cols
      FROM pg_attribute WHERE attrelid = dataset AND attnum > 0 AND NOT attisdropped
       AND (delivered_columns IS NULL OR attname = ANY (delivered_columns));
    -- the row rules, all in one scan: two counts each
    FOR r IN SELECT * FROM billops.focus_rule fr WHERE fr.kind = 'row' AND cols ?& fr.columns ORDER BY fr.rule_id LOOP
        n := n + 1;
        exprs := exprs || format(', %L, jsonb_build_array(count(*) FILTER (WHERE %s), count(*) FILTER (WHERE (%s) AND (%s) IS NOT TRUE))',
                                 r.rule_id, coalesce(r.applies_when, 'true'), coalesce(r.applies_when, 'true'), r.must_hold);
        -- jsonb_build_object takes at most 100 arguments: a new object every 45 rules
        IF n % 45 = 0 THEN
            exprs := exprs || ') || jsonb_build_object(''_'', 0';
        END IF;
    END LOOP;
    EXECUTE format('SELECT jsonb_build_object(''_'', 0%s) FROM %s', exprs, src) INTO counts;

    FOR r IN SELECT * FROM billops.focus_rule fr ORDER BY fr.focus_column, (split_part(fr.rule_id, '.', 2))::int LOOP
        a := NULL; v := NULL;
        IF r.kind = 'presence' THEN
            a := 1; v := CASE WHEN cols ? r.focus_column THEN 0 ELSE 1 END;
        ELSIF NOT cols ?& r.columns THEN
            NULL;               -- a column it reads is absent: not evaluated
        ELSIF r.kind = 'type' THEN
            a := 1;
            v := CASE WHEN cols->>r.focus_column = r.must_hold
                        OR (r.must_hold = 'timestamptz' AND cols->>r.focus_column = 'timestamp with time zone')
                        OR (r.must_hold = 'numeric' AND cols->>r.focus_column IN ('double precision', 'real', 'integer', 'bigint', 'smallint'))
                        OR (r.must_hold = 'text' AND cols->>r.focus_column ~ '^(character varying|character)')
                      THEN 0 ELSE 1 END;
        ELSIF r.kind = 'row' THEN
            a := (counts->r.rule_id->>0)::bigint; v := (counts->r.rule_id->>1)::bigint;
        ELSIF r.kind = 'one_per' THEN
            EXECUTE format('SELECT count(*), count(*) FILTER (WHERE k > 1) FROM (SELECT count(DISTINCT %2$I) AS k FROM %1$s WHERE %3$I IS NOT NULL GROUP BY %3$I) g',
                           src, r.columns[2], r.columns[1])
               INTO a, v;
        END IF;
        rule_id := r.rule_id; focus_column := r.focus_column; keyword := r.keyword; requirement := r.requirement;
        rows_applicable := a; rows_violating := v;
        violations_query := CASE r.kind
            WHEN 'row' THEN format('SELECT * FROM %s WHERE (%s) AND (%s) AND (%s) IS NOT TRUE', dataset, coalesce(nullif(btrim(row_filter), ''), 'true'),
                                   coalesce(r.applies_when, 'true'), r.must_hold)
            WHEN 'one_per' THEN format('SELECT %2$I, array_agg(DISTINCT %3$I) FROM %1$s GROUP BY %2$I HAVING count(DISTINCT %3$I) > 1', src, r.columns[1], r.columns[2])
            END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION billops.focus_conformance(regclass, text, text[]) IS
  'Evaluates the FOCUS 1.2 rules of billops.focus_rule on a relation with FOCUS columns (default billops.focus_cost), optionally on the rows a condition picks: per rule the rows it applies to, the rows that violate it, and a query that lists them.';
