#!/usr/bin/env node
// duckdb-load.mjs LARGE.parquet SMALL.parquet — the peer in `make bench`: DuckDB (npm @duckdb/node-api,
// all cores) loads LARGE into a table twice, the faster run counting. Prints one line:
// "<seconds> <rows> <largest row group of LARGE, uncompressed bytes> <same for SMALL>", the row group
// sizes from the files' own metadata.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
const { DuckDBInstance } = require('@duckdb/node-api');
const [large, small] = process.argv.slice(2);
const lit = (s) => `'${s.replace(/'/g, "''")}'`;
const con = await (await DuckDBInstance.create(':memory:')).connect();
const one = async (sql) => (await (await con.runAndReadAll(sql)).getRowObjectsJS())[0];
const rowGroupBytes = async (f) => (await one(`SELECT max(s) AS m FROM (SELECT row_group_id, sum(total_uncompressed_size) AS s
  FROM parquet_metadata(${lit(f)}) GROUP BY row_group_id)`)).m;
let best = Infinity;
for (let i = 0; i < 2; i++) {
  await con.run('DROP TABLE IF EXISTS t');
  const t0 = process.hrtime.bigint();
  await con.run(`CREATE TABLE t AS SELECT * FROM read_parquet(${lit(large)})`);
  best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
}
const { n } = await one('SELECT count(*) AS n FROM t');
console.log(best.toFixed(3), Number(n), Number(await rowGroupBytes(large)), Number(await rowGroupBytes(small)));
