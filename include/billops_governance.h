/*
 * billops_governance.h — billops.internal_context, read by the governance triggers.
 */
#ifndef BILLOPS_GOVERNANCE_H
#define BILLOPS_GOVERNANCE_H

/* defines billops.internal_context (from _PG_init) */
extern void billops_governance_init(void);

#endif							/* BILLOPS_GOVERNANCE_H */
