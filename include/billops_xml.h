/*
 * billops_xml.h — reading AWS's small XML answers (S3, STS).
 */
#ifndef BILLOPS_XML_H
#define BILLOPS_XML_H

#include "postgres.h"

/*
 * The unescaped text of the first <tag>…</tag> within [from, limit) (limit
 * NULL: to the end), palloc'd; NULL when there is none.  *next (may be NULL)
 * is set just past the closing tag.
 */
extern char *xml_child(const char *from, const char *limit, const char *tag, const char **next);

#endif							/* BILLOPS_XML_H */
