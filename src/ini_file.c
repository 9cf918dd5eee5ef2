/*
 * ini_file.c — read one section of an INI file holding secrets (AWS shared
 * config and credentials, BILL credentials).  The file is opened with
 * AllocateFile so an error cannot leak the descriptor; every line is wiped
 * once parsed.
 *
 * Nesting follows the AWS shared config file ("Configuration and credential
 * file settings", AWS SDKs and Tools Reference Guide; botocore parses it
 * with Python's configparser): a line indented deeper than the key above it
 * continues that key.  When that key's own value is empty, the indented
 * lines are its sub-settings ("s3 =" then "  endpoint_url = ..."), handed
 * to the nested callback; otherwise they continue a multi-line value, which
 * no setting pg_billops reads has, so they are ignored.  Either way an
 * indented line never passes for a setting of the section itself.
 */
#include "postgres.h"

#include "billops.h"
#include "billops_ini.h"
#include "storage/fd.h"

static char *
trim(char *s)
{
	char	   *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

/* Does a section header name the section asked for? */
static bool
header_matches(const char *name, const char *section, bool exact)
{
	/* the AWS config-file spelling "[profile x]" is accepted too, unless the header must match as written */
	if (!exact && strncmp(name, "profile ", 8) == 0)
	{
		name += 8;
		while (*name == ' ' || *name == '\t')
			name++;
	}
	return strcmp(name, section) == 0;
}

static bool
read_section(const char *path, const char *section, bool exact, const char *what,
			 IniValueCallback cb, IniNestedCallback nested_cb, void *arg)
{
	FILE	   *f;
	char		line[4096];
	char		parent[256] = "";	/* the last key of the section whose value was empty */
	int			key_indent = -1;	/* indentation of the last key line; -1: none yet */
	bool		in_section = false;
	bool		found = false;

	f = AllocateFile(path, "r");
	if (f == NULL)
	{
		if (errno == ENOENT)
			return false;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read %s \"%s\": %m", what, path),
				 errhint("The file must be readable by the operating-system account that runs PostgreSQL.")));
	}
	while (fgets(line, sizeof(line), f) != NULL)
	{
		int			indent = strspn(line, " \t");
		char	   *s = trim(line);

		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[' && indent == 0)
		{
			char	   *end = strchr(s, ']');

			if (end == NULL)
				continue;
			*end = '\0';
			in_section = header_matches(trim(s + 1), section, exact);
			found |= in_section;
			key_indent = -1;
			parent[0] = '\0';
			continue;
		}
		if (in_section)
		{
			char	   *eq = strchr(s, '=');

			if (key_indent >= 0 && indent > key_indent)
			{
				/* a continuation of the key above: its sub-setting, or a line of a multi-line value */
				if (eq != NULL && parent[0] != '\0' && nested_cb != NULL)
				{
					*eq = '\0';
					nested_cb(parent, trim(s), trim(eq + 1), arg);
				}
			}
			else if (eq != NULL)
			{
				char	   *key;
				char	   *value;

				*eq = '\0';
				key = trim(s);
				value = trim(eq + 1);
				key_indent = indent;
				if (value[0] == '\0' && strlen(key) < sizeof(parent))
					strcpy(parent, key);
				else
					parent[0] = '\0';
				if (cb != NULL)
					cb(key, value, arg);
			}
		}
		billops_wipe(line, sizeof(line));
	}
	billops_wipe(line, sizeof(line));
	FreeFile(f);
	return found;
}

bool
billops_ini_read_section(const char *path, const char *section, const char *what,
						 IniValueCallback cb, void *arg)
{
	return read_section(path, section, false, what, cb, NULL, arg);
}

bool
billops_ini_read_nested_section(const char *path, const char *header, const char *what,
								IniNestedCallback cb, void *arg)
{
	return read_section(path, header, true, what, NULL, cb, arg);
}
