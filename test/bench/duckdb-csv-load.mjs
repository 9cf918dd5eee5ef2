#!/usr/bin/env node
// duckdb-csv-load.mjs THREADS FILE... — the peer in `make bench`: DuckDB (npm @duckdb/node-api) loads
// the gzip CSV files of a delivery into a table, once, with THREADS threads (the machine's cores:
// DuckDB's default).  Types are DuckDB's own detection, as a user loading the files would get.
// Prints "<seconds> <rows>".
import { createRequire } from 'node:module';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
const { DuckDBInstance } = require('@duckdb/node-api');
const [threads, ...files] = process.argv.slice(2);
const lit = (s) => `'${s.replace(/'/g, "''")}'`;
const con = await (await DuckDBInstance.create(':memory:', { threads: String(threads) })).connect();
const t0 = process.hrtime.bigint();
await con.run(`CREATE TABLE t AS SELECT * FROM read_csv([${files.map(lit).join(', ')}], header = true)`);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const [{ n }] = await (await con.runAndReadAll('SELECT count(*) AS n FROM t')).getRowObjectsJS();
console.log(seconds.toFixed(3), Number(n));
