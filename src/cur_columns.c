/*
 * cur_columns.c — from a CUR header row to the columns of billops.cur_line_item.
 *
 * The table's own definition is the list of typed columns: a header whose
 * CUR 2.0 name matches a column goes there, so adding a typed column later is
 * an ALTER TABLE, not a code change.  Legacy category columns that CUR 2.0
 * turned into map columns (resourceTags/, costCategory/, product/, discount/)
 * become keys of the matching jsonb column; everything else is kept in
 * "extras" under its original header.  Schema drift therefore never loses
 * data, and never fails a load.
 *
 * Product attributes that are not CUR 2.0 static columns land in the product
 * map under the key CUR 2.0 uses (product/ProductName -> product_name,
 * product/region -> region), so a month reads the same whichever layout
 * delivered it; so do Athena's flattened names of legacy CUR
 * (product_product_name, resource_tags_user_owner) when the file has no map
 * column of that category.  Tag keys are kept exactly as AWS wrote them ("user:Owner" in
 * legacy CUR, "user_owner" in CUR 2.0, which normalizes them: "Migrating from
 * CUR to Data Exports CUR 2.0"): the rewrite is lossy, so it happens where
 * keys are read (billops.tag_key_canonical), never in the stored data.
 */
#include "postgres.h"

#include "billops_cur.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

static const char *const required_columns[] = {
	"bill_payer_account_id",
	"bill_billing_period_start_date",
	"line_item_usage_account_id",
	"line_item_line_item_type",
	"line_item_unblended_cost",
};

/* Map columns: CUR 2.0 name, and the legacy category that feeds it. */
static const struct
{
	const char *column;
	const char *legacy_category;
	bool		snake_keys;		/* product/discount attributes are attribute names */
}			map_columns[] = {
	{"resource_tags", "resourceTags", false},
	{"cost_category", "costCategory", false},
	{"product", "product", true},
	{"discount", "discount", true},
};

static void
append_snake(StringInfo out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 'A' && c <= 'Z')
		{
			if (out->len > 0 && out->data[out->len - 1] != '_')
				appendStringInfoChar(out, '_');
			appendStringInfoChar(out, (char) (c - 'A' + 'a'));
		}
		else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			appendStringInfoChar(out, (char) c);
		else if (out->len > 0 && out->data[out->len - 1] != '_')
			appendStringInfoChar(out, '_');
	}
}

char *
cur_snake_name(const char *header)
{
	StringInfoData out;
	const char *slash = strchr(header, '/');

	initStringInfo(&out);
	if (slash == NULL)
	{
		/* already CUR 2.0 / Athena style: keep it, just lower-case */
		for (const char *p = header; *p; p++)
			appendStringInfoChar(&out, pg_ascii_tolower((unsigned char) *p));
		return out.data;
	}
	append_snake(&out, header, slash - header);
	appendStringInfoChar(&out, '_');
	append_snake(&out, slash + 1, strlen(slash + 1));
	while (out.len > 0 && out.data[out.len - 1] == '_')
		out.data[--out.len] = '\0';
	return out.data;
}

/*
 * The column a CUR 2.0 name lives in.  PostgreSQL names are at most
 * NAMEDATALEN - 1 bytes and it truncates longer identifiers, in CREATE TABLE
 * as in every query; AWS has names longer than that
 * (savings_plan_net_amortized_upfront_commitment_for_billing_period), so a
 * header is truncated the same way, and a query that writes AWS's full name
 * still reads the column.
 */
static const char *
column_name_of(const char *name)
{
	if (strlen(name) < NAMEDATALEN)
		return name;
	return pnstrdup(name, NAMEDATALEN - 1);
}

static AttrNumber
find_attnum(TupleDesc tupdesc, const char *name)
{
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(tupdesc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a->attnum;
	}
	return InvalidAttrNumber;
}

/*
 * Two headers for the same tag, product attribute or extra column: one value
 * would silently overwrite the other (resourceTags/user:Owner twice).
 */
static void
check_duplicate_keys(CurColumn *cols, int nfields, const char *file_name, const char *what)
{
	for (int i = 0; i < nfields; i++)
		for (int j = 0; j < i; j++)
			if ((cols[i].kind == CUR_COL_MAP_ENTRY || cols[i].kind == CUR_COL_EXTRA) &&
				cols[j].kind == cols[i].kind && cols[j].attnum == cols[i].attnum &&
				strcmp(cols[j].key, cols[i].key) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
						 errmsg("%s file \"%s\" has two columns for %s \"%s\": \"%s\" and \"%s\"",
								what, file_name, cols[i].kind == CUR_COL_EXTRA ? "the column" : "the key",
								cols[i].key, cols[j].header, cols[i].header),
						 errdetail("Columns %d and %d; one value would overwrite the other.", j + 1, i + 1),
						 errhint("Remove the duplicate column; AWS writes each column once.")));
}

/* Every required column has a header (owner: attnum -> header index + 1). */
static void
check_required_columns(CurColumn *cols, int nfields, const int *owner, TupleDesc tupdesc,
					   const char *file_name, const char *what,
					   const char *const *required, int nrequired, const char *hint)
{
	for (int r = 0; r < nrequired; r++)
	{
		AttrNumber	att = find_attnum(tupdesc, required[r]);

		if (att == InvalidAttrNumber || owner[att] == 0)
		{
			StringInfoData seen;

			initStringInfo(&seen);
			for (int i = 0; i < nfields && i < 12; i++)
				appendStringInfo(&seen, "%s\"%s\"", i ? ", " : "", cols[i].header);
			if (nfields > 12)
				appendStringInfo(&seen, ", … (%d columns)", nfields);
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("%s file \"%s\" lacks the required column %s", what, file_name, required[r]),
					 errdetail("The header has: %s.", seen.data),
					 errhint("%s", hint)));
		}
	}
}

/* A header as written, without the UTF-8 byte order mark a first header may carry. */
static char *
header_text(char **fields, int i)
{
	char	   *h = fields[i] ? fields[i] : "";

	if (i == 0 && (unsigned char) h[0] == 0xEF && (unsigned char) h[1] == 0xBB && (unsigned char) h[2] == 0xBF)
		h += 3;
	return pstrdup(h);
}

CurColumn *
cur_map_header(char **fields, int nfields, TupleDesc tupdesc, const char *file_name,
			   AttrNumber *extras_attnum)
{
	CurColumn  *cols = palloc0(sizeof(CurColumn) * Max(nfields, 1));
	int		   *owner = palloc0(sizeof(int) * (tupdesc->natts + 1));	/* attnum → header index + 1 */
	bool		has_json_map[lengthof(map_columns)] = {0};

	*extras_attnum = find_attnum(tupdesc, "extras");

	/* pass 1: CUR 2.0 map columns given whole as JSON */
	for (int i = 0; i < nfields; i++)
	{
		char	   *h = header_text(fields, i);

		cols[i].header = h;
		cols[i].name = cur_snake_name(h);
		for (int m = 0; m < lengthof(map_columns); m++)
			if (strchr(h, '/') == NULL && strcmp(cols[i].name, map_columns[m].column) == 0)
				has_json_map[m] = true;
	}

	for (int i = 0; i < nfields; i++)
	{
		CurColumn  *c = &cols[i];
		AttrNumber	att = InvalidAttrNumber;
		const char *slash = strchr(c->header, '/');
		bool		done = false;

		if (strcmp(c->name, "extras") != 0)
			att = find_attnum(tupdesc, column_name_of(c->name));
		if (att != InvalidAttrNumber)
		{
			Oid			typ = TupleDescAttr(tupdesc, att - 1)->atttypid;

			c->kind = (typ == JSONBOID) ? CUR_COL_MAP_JSON : CUR_COL_TYPED;
			if (c->kind == CUR_COL_MAP_JSON && slash != NULL)
				att = InvalidAttrNumber;	/* "product/product" is an attribute, not the map */
			else
			{
				if (owner[att] != 0)
					ereport(ERROR,
							(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
							 errmsg("CUR file \"%s\" has two columns for %s: \"%s\" and \"%s\"",
									file_name, c->name, cols[owner[att] - 1].header, c->header),
							 errhint("A report should use one header style; remove the duplicate column.")));
				owner[att] = i + 1;
				c->attnum = att;
				done = true;
			}
		}
		if (!done && slash != NULL)
		{
			for (int m = 0; m < lengthof(map_columns); m++)
			{
				size_t		catlen = strlen(map_columns[m].legacy_category);

				if ((size_t) (slash - c->header) == catlen &&
					strncmp(c->header, map_columns[m].legacy_category, catlen) == 0 &&
					!has_json_map[m])
				{
					att = find_attnum(tupdesc, map_columns[m].column);
					if (att == InvalidAttrNumber)
						break;
					c->kind = CUR_COL_MAP_ENTRY;
					c->attnum = att;
					if (map_columns[m].snake_keys)
					{
						StringInfoData k;

						initStringInfo(&k);
						append_snake(&k, slash + 1, strlen(slash + 1));
						c->key = k.data;
					}
					else
						c->key = pstrdup(slash + 1);
					done = true;
					break;
				}
			}
		}
		if (!done && slash == NULL)
		{
			/*
			 * Athena's names for legacy CUR (the Parquet AWS writes for its
			 * Athena integration, and the tables built on it) flatten each
			 * category attribute into a column: product/ProductName is
			 * product_product_name, resourceTags/user:Owner is
			 * resource_tags_user_owner.  Such a column, when the file has no
			 * map column of that category, becomes a key of the map: the
			 * rest of its name, which is the key CUR 2.0 uses.
			 */
			for (int m = 0; m < lengthof(map_columns) && !done; m++)
			{
				size_t		plen = strlen(map_columns[m].column);

				if (!has_json_map[m] && strncmp(c->name, map_columns[m].column, plen) == 0 &&
					c->name[plen] == '_' && c->name[plen + 1] != '\0' &&
					(att = find_attnum(tupdesc, map_columns[m].column)) != InvalidAttrNumber)
				{
					c->kind = CUR_COL_MAP_ENTRY;
					c->attnum = att;
					c->key = pstrdup(c->name + plen + 1);
					done = true;
				}
			}
		}
		if (!done)
		{
			c->kind = CUR_COL_EXTRA;
			c->attnum = *extras_attnum;
			c->key = c->header;
		}
	}

	check_duplicate_keys(cols, nfields, file_name, "CUR");

	check_required_columns(cols, nfields, owner, tupdesc, file_name, "CUR",
						   required_columns, lengthof(required_columns),
						   "Legacy reports name it with a category prefix (e.g. \"lineItem/UnblendedCost\"); CUR 2.0 uses snake case. Check that the file is a Cost and Usage Report.");
	pfree(owner);
	return cols;
}

/*
 * FOCUS names its columns in PascalCase (BilledCost, x_ServiceCode for a
 * provider's own): a header is the column of billops.focus_line_item of
 * exactly its name, and any other header is kept in extras under its name.
 * The three columns a row is partitioned and summed by must be there.
 */
static const char *const focus_required_columns[] = {
	"BilledCost",
	"BillingAccountId",
	"BillingPeriodStart",
};

CurColumn *
focus_map_header(char **fields, int nfields, TupleDesc tupdesc, const char *file_name,
				 AttrNumber *extras_attnum)
{
	CurColumn  *cols = palloc0(sizeof(CurColumn) * Max(nfields, 1));
	int		   *owner = palloc0(sizeof(int) * (tupdesc->natts + 1));

	*extras_attnum = find_attnum(tupdesc, "extras");
	for (int i = 0; i < nfields; i++)
	{
		CurColumn  *c = &cols[i];
		AttrNumber	att = InvalidAttrNumber;

		c->header = header_text(fields, i);
		c->name = c->header;
		if (strcmp(c->header, "extras") != 0 && strlen(c->header) < NAMEDATALEN)
			att = find_attnum(tupdesc, c->header);
		if (att != InvalidAttrNumber)
		{
			if (owner[att] != 0)
				ereport(ERROR,
						(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
						 errmsg("FOCUS file \"%s\" has the column %s twice", file_name, c->header),
						 errdetail("Columns %d and %d; one value would overwrite the other.", owner[att], i + 1),
						 errhint("Remove the duplicate column; a FOCUS export names each column once.")));
			owner[att] = i + 1;
			c->attnum = att;
			c->kind = TupleDescAttr(tupdesc, att - 1)->atttypid == JSONBOID ? CUR_COL_MAP_JSON : CUR_COL_TYPED;
		}
		else
		{
			c->kind = CUR_COL_EXTRA;
			c->attnum = *extras_attnum;
			c->key = c->header;
		}
	}
	check_duplicate_keys(cols, nfields, file_name, "FOCUS");
	check_required_columns(cols, nfields, owner, tupdesc, file_name, "FOCUS",
						   focus_required_columns, lengthof(focus_required_columns),
						   "FOCUS names its columns in PascalCase (BilledCost, BillingAccountId, ...). Check that the file is a FOCUS export.");
	pfree(owner);
	return cols;
}
