// Refresh matrix modelled on pg_trickle's published one: scenarios × table sizes × change rates,
// DML mix 70% UPDATE / 15% DELETE / 15% INSERT. For each cell, two stream tables over the same
// query and the same changes: one FULL, one DIFFERENTIAL, timed side by side in one process.
//   npm run bench -- --sizes 10000,100000,1000000 --rates 1,10,50 [--scenarios aggregate,join]
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { planStreamTable } from '../cluster/planner/install.js';
import { withLabDatabase } from './lab.js';
import { median } from './report/markdown.js';

const SCENARIOS: Record<string, string> = {
  scan: 'SELECT o.id, o.cid, o.amount FROM orders o',
  filter: 'SELECT o.id, o.amount FROM orders o WHERE o.amount > 900',
  aggregate: 'SELECT o.cid, count(*) AS n, sum(o.amount) AS total FROM orders o GROUP BY o.cid',
  join: 'SELECT o.id, c.region, o.amount FROM orders o JOIN customers c ON o.cid = c.id',
  join_agg:
    'SELECT c.region, sum(o.amount) AS total, count(*) AS n FROM orders o JOIN customers c ON o.cid = c.id GROUP BY c.region',
};

export interface Cell {
  scenario: string;
  rows: number;
  ratePct: number;
  fullMs: number;
  diffMs: number;
  diffAction: string;
  divergence: number | null;
}

// Odd, so that the median is one of the runs.
const TRIALS = 3;

async function timed(client: pg.Client, sql: string, params: unknown[] = []): Promise<number> {
  const start = process.hrtime.bigint();
  await client.query(sql, params);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function load(client: pg.Client, rows: number): Promise<void> {
  const customers = Math.max(100, Math.floor(rows / 100));
  await client.query(`
    DROP TABLE IF EXISTS orders, customers CASCADE;
    CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
    CREATE TABLE orders (id bigint PRIMARY KEY, cid int NOT NULL, amount numeric(12,2) NOT NULL);
    INSERT INTO customers SELECT g, 'region_' || (g % 20) FROM generate_series(1, ${customers}) g;
    INSERT INTO orders SELECT g, 1 + (g::bigint * 7919) % ${customers}, (g::bigint * 104729) % 1000 FROM generate_series(1, ${rows}) g;
    CREATE INDEX ON orders (cid);`);
  await client.query('VACUUM ANALYZE customers, orders');
}

// Deterministic 70/15/15 mix over `changes` rows, spread across the table.
async function change(client: pg.Client, rows: number, changes: number, round: number): Promise<void> {
  const updates = Math.round(changes * 0.7);
  const deletes = Math.round(changes * 0.15);
  const inserts = changes - updates - deletes;
  const step = Math.max(1, Math.floor(rows / changes));
  await client.query(`
    UPDATE orders SET amount = (amount + 37) % 1000 WHERE id IN (
      SELECT id FROM orders WHERE id % ${step} = ${round % step} LIMIT ${updates});
    DELETE FROM orders WHERE id IN (
      SELECT id FROM orders WHERE id % ${step} = ${(round + 1) % step} LIMIT ${deletes});
    INSERT INTO orders SELECT ${rows * 10} + ${round} * ${changes} + g, 1 + (g * 31) % (SELECT count(*) FROM customers), g % 1000
      FROM generate_series(1, ${inserts}) g;`);
}

async function divergence(client: pg.Client, st: string, query: string): Promise<number> {
  const cols = (
    await client.query(
      `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS c FROM pg_attribute
    WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgt\\_%'`,
      [st],
    )
  ).rows[0].c;
  const { rows } = await client.query(`SELECT count(*)::int AS n FROM (
    (SELECT ${cols} FROM ${st} EXCEPT ALL SELECT * FROM (${query}) q) UNION ALL
    (SELECT * FROM (${query}) q EXCEPT ALL SELECT ${cols} FROM ${st})) d`);
  return rows[0].n;
}

export async function refreshMatrix(options: {
  sizes: number[];
  rates: number[];
  check: boolean;
  scenarios?: string[];
}): Promise<Cell[]> {
  const unknown = options.scenarios?.filter((s) => !(s in SCENARIOS)) ?? [];
  if (unknown.length > 0) {
    throw new Error(
      `unknown scenario ${unknown.join(', ')}: the scenarios are ${Object.keys(SCENARIOS).join(', ')}`,
    );
  }
  const cells: Cell[] = [];
  await withLabDatabase(async (client) => {
    const { migrate } = await import('../sql/migrate.js');
    await migrate(client);
    await client.query('SET pgtrickle.auto_cost_fallback = off');
    for (const rows of options.sizes) {
      for (const [scenario, query] of Object.entries(SCENARIOS)) {
        if (options.scenarios && !options.scenarios.includes(scenario)) continue;
        await load(client, rows);
        await client.query(`SELECT pgtrickle.create_stream_table('st_full', $1, refresh_mode => 'FULL')`, [
          query,
        ]);
        await client.query(`SELECT pgtrickle.create_stream_table('st_diff', $1)`, [query]);
        const id = (await client.query(`SELECT pgtrickle._resolve('st_diff') AS id`)).rows[0].id;
        const outcome = await planStreamTable(client, String(id));
        if (outcome.mode !== 'DIFFERENTIAL') throw new Error(`${scenario}: ${outcome.reason}`);
        await client.query(`SELECT pgtrickle.refresh_stream_table('st_diff')`);
        // Filled once each (the differential one twice: created, then reinitialized with its plan's
        // hidden columns); the garbage of that is vacuumed as autovacuum would, before timing.
        await client.query('VACUUM ANALYZE st_full, st_diff');
        for (const [round, ratePct] of options.rates.entries()) {
          const diffRuns: number[] = [];
          const fullRuns: number[] = [];
          // TRIALS rounds of fresh changes, each refreshed by both stream tables, the two
          // alternating which goes first; the cell shows the medians. Every change row is read
          // once before timing, so that neither refresh pays for setting the hint bits of rows
          // the other then finds set.
          for (let trial = 0; trial < TRIALS; trial++) {
            const changes = Math.max(1, Math.round((rows * ratePct) / 100));
            await change(client, rows, changes, round * TRIALS + trial);
            await client.query('SELECT count(*) FROM orders; SELECT count(*) FROM customers');
            const order: [string, number[]][] = [
              ['st_diff', diffRuns],
              ['st_full', fullRuns],
            ];
            if (trial % 2 === 1) order.reverse();
            for (const [st, runs] of order) {
              runs.push(await timed(client, `SELECT pgtrickle.refresh_stream_table('${st}')`));
            }
          }
          const diffMs = median(diffRuns);
          const fullMs = median(fullRuns);
          const diffAction = (
            await client.query(
              `SELECT action FROM pgtrickle.pgt_refresh_history WHERE pgt_id = $1 ORDER BY refresh_id DESC LIMIT 1`,
              [id],
            )
          ).rows[0].action;
          const check = options.check ? await divergence(client, 'st_diff', query) : null;
          cells.push({ scenario, rows, ratePct, fullMs, diffMs, diffAction, divergence: check });
          print(cells.at(-1) as Cell);
        }
        await client.query(
          `SELECT pgtrickle.drop_stream_table('st_full'); SELECT pgtrickle.drop_stream_table('st_diff')`,
        );
      }
    }
  });
  return cells;
}

function print(c: Cell): void {
  const ratio = c.fullMs / c.diffMs;
  console.log(
    [
      c.scenario.padEnd(10),
      String(c.rows).padStart(8),
      `${c.ratePct}%`.padStart(4),
      c.fullMs.toFixed(1).padStart(9),
      c.diffMs.toFixed(1).padStart(9),
      `${ratio.toFixed(1)}x`.padStart(7),
      c.diffAction.padEnd(12),
      c.divergence === null ? '' : `divergence ${c.divergence}`,
    ].join(' | '),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '10000,100000' },
      rates: { type: 'string', default: '1,10,50' },
      check: { type: 'boolean', default: false },
      scenarios: { type: 'string' },
    },
  });
  const list = (s: string) => s.split(',').map(Number);
  console.log('scenario   |     rows | chg |   FULL ms |   DIFF ms | FULL/DIFF | DIFF action');
  await refreshMatrix({
    sizes: list(values.sizes),
    rates: list(values.rates),
    check: values.check,
    scenarios: values.scenarios?.split(','),
  });
}
