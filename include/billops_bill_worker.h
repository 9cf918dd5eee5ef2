/*
 * billops_bill_worker.h — the BILL background worker.
 *
 * Three files, one concern each:
 *   bill_worker.c  settings, registration, the main loop (recovery, delivery,
 *                  the poll, sleeping) and the transaction helpers;
 *   bill_lanes.c   delivering the outbox: lanes, claims, BILL's answers;
 *   bill_shared.c  shared memory: wake-on-commit, the worker's pid and
 *                  database, DROP DATABASE, and the pause it sits out.
 */
#ifndef BILLOPS_BILL_WORKER_H
#define BILLOPS_BILL_WORKER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/palloc.h"

/* how to get a worker, for every message that says there is none */
#define BILL_PRELOAD_HINT "Add pg_billops to shared_preload_libraries in postgresql.conf and restart PostgreSQL."

/*
 * From _PG_init: the settings always; the worker, its shared memory, hooks
 * and billops.bill_worker_restart_interval (a postmaster setting) only from
 * shared_preload_libraries.
 */
extern void billops_bill_worker_init(void);
extern void billops_bill_worker_register(void);

/* bill_worker.c: one short transaction with SPI, reported in pg_stat_activity */
extern void bill_begin_tx(const char *activity);
extern void bill_end_tx(void);
/* column col of the first SPI result row, copied into cxt (NULL stays NULL) */
extern char *bill_spi_text(int col, MemoryContext cxt);

/* bill_lanes.c */
extern void bill_deliver_outbox(MemoryContext cxt, int max_lanes, TimestampTz stop_at);
extern void bill_lanes_forget_login_backoff(void);

/* bill_shared.c */
#define BILL_PAUSE_REASON_LEN 200
extern void bill_shared_install_hooks(void);
extern void bill_shared_attach(void);
/* no request to BILL before until (0: none), for this reason (never a secret) */
extern void bill_pause(TimestampTz until, const char *reason);
extern void bill_unpause(void);
extern bool bill_paused(void);
extern TimestampTz bill_pause_end(void);
extern void bill_pause_reason(char *buf, size_t len);

#endif							/* BILLOPS_BILL_WORKER_H */
