/*
 * billops_json.h — reading the JSON that AWS and BILL answer with.
 *
 * An answer from the network may be anything, so it is checked with the
 * JSON lexer first (which reports, never raises) and only valid text becomes
 * jsonb: no error is ever caught and flushed outside a subtransaction.
 */
#ifndef BILLOPS_JSON_H
#define BILLOPS_JSON_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* The text as jsonb, or NULL when it is not valid JSON (or holds a NUL byte). */
extern Jsonb *billops_json_parse(const char *text, size_t len);

/* A top-level string member of a JSON object, palloc'd; NULL when jb is NULL, not an object, or has no such string. */
extern char *billops_json_string(Jsonb *jb, const char *key);

/*
 * A flat JSON object of plain strings (no escapes) as jsonb, the same as
 * jsonb_in makes of it, its keys appended to `keys` (when not NULL) in
 * jsonb's order as (int length, bytes); NULL for any other JSON, which is
 * jsonb_in's to read (json_map.c).
 */
extern Jsonb *billops_json_flat_string_map(const char *text, StringInfo keys);

#endif							/* BILLOPS_JSON_H */
