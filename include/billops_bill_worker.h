/*
 * billops_bill_worker.h — the BILL background worker, as _PG_init sees it.
 */
#ifndef BILLOPS_BILL_WORKER_H
#define BILLOPS_BILL_WORKER_H

/* defines billops.bill_database, bill_poll_interval, bill_max_concurrent_requests, bill_worker_restart_interval */
extern void billops_bill_worker_init(void);
/* registers the worker, its shared memory and hooks: from shared_preload_libraries only */
extern void billops_bill_worker_register(void);

#endif							/* BILLOPS_BILL_WORKER_H */
