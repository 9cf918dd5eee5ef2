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

#include "utils/jsonb.h"

/* The text as jsonb, or NULL when it is not valid JSON (or holds a NUL byte). */
extern Jsonb *billops_json_parse(const char *text, size_t len);

/* A top-level string member of a JSON object, palloc'd; NULL when jb is NULL, not an object, or has no such string. */
extern char *billops_json_string(Jsonb *jb, const char *key);

#endif							/* BILLOPS_JSON_H */
