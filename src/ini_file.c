/*
 * ini_file.c — read one section of an INI file holding secrets (AWS shared
 * credentials, BILL credentials).  The file is opened with AllocateFile so an
 * error cannot leak the descriptor; every line is wiped once parsed.
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

bool
billops_ini_read_section(const char *path, const char *section, const char *what,
						 IniValueCallback cb, void *arg)
{
	FILE	   *f;
	char		line[4096];
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
		char	   *s = trim(line);

		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[')
		{
			char	   *end = strchr(s, ']');
			char	   *name;

			if (end == NULL)
				continue;
			*end = '\0';
			name = trim(s + 1);
			/* the AWS config-file spelling "[profile x]" is accepted too */
			if (strncmp(name, "profile ", 8) == 0)
				name = trim(name + 8);
			in_section = (strcmp(name, section) == 0);
			found |= in_section;
			continue;
		}
		if (in_section)
		{
			char	   *eq = strchr(s, '=');

			if (eq != NULL)
			{
				*eq = '\0';
				cb(trim(s), trim(eq + 1), arg);
			}
		}
		billops_wipe(line, sizeof(line));
	}
	billops_wipe(line, sizeof(line));
	FreeFile(f);
	return found;
}
