/*
 * billops_ini.h — read one section of an INI file holding secrets.
 *
 * Used for the AWS shared config and credentials files and the BILL
 * credentials file.
 * Each line is wiped after parsing, so secrets do not linger in freed memory.
 */
#ifndef BILLOPS_INI_H
#define BILLOPS_INI_H

#include "postgres.h"

typedef void (*IniValueCallback) (const char *key, const char *value, void *arg);

/*
 * Calls cb for every key = value of [section] (also spelled [profile
 * section]).  Returns false if the file or the section does not exist;
 * raises an error naming `what` if the file exists but cannot be read.
 */
extern bool billops_ini_read_section(const char *path, const char *section, const char *what,
									 IniValueCallback cb, void *arg);

/* A sub-setting: "parent =" then an indented "key = value" below it. */
typedef void (*IniNestedCallback) (const char *parent, const char *key, const char *value, void *arg);

/*
 * Calls cb for every sub-setting of the section whose header is exactly
 * `header` (e.g. "services my-endpoints" of the AWS config file).
 */
extern bool billops_ini_read_nested_section(const char *path, const char *header, const char *what,
											IniNestedCallback cb, void *arg);

#endif							/* BILLOPS_INI_H */
