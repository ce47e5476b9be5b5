// FULL and DIFFERENTIAL side by side: each query becomes two stream tables over the same
// sources, one FULL and one AUTO, so after a change cycle both consume exactly the same changes
// from the same data; each cycle refreshes the pair back to back and times both.
import pg from 'pg';
import { planStreamTable } from '../../cluster/planner/install.js';
import { ident } from '../../shared/pg/quote.js';

export interface PairQuery {
  id: string;
  sql: string;
}

/** One change cycle of one pair. */
export interface Sample {
  fullMs: number;
  diffMs: number;
  /** What the AUTO stream table's refresh did: DIFFERENTIAL, or FULL when it fell back. */
  diffAction: string;
  /** Change-buffer rows the AUTO refresh consumed (source rows inserted, deleted, or each side of an update). */
  changesConsumed: number;
  /** Rows the AUTO refresh inserted plus deleted in the stream table. */
  rowsChanged: number;
}

export interface PairResult {
  id: string;
  /** The mode the compiler gave the AUTO stream table, and why when FULL. */
  compiled: 'DIFFERENTIAL' | 'FULL';
  strategy?: string;
  fallbackReason?: string;
  samples: Sample[];
  /** Rows by which the AUTO stream table differs from its query after the last cycle (I5). */
  divergence?: number;
  /** Why the pair stopped early (a refresh over the time limit, an engine error). */
  error?: string;
  /** The cycle whose DIFFERENTIAL refresh was cancelled at the limit, with its FULL time. */
  overLimit?: { fullMs: number; limitMs: number };
}

export interface PairOptions {
  cycles: number;
  /** Per-statement limit in ms; a pair whose refresh exceeds it is dropped from later cycles. */
  timeoutMs: number;
  check: boolean;
  /** Called with each finished sample, for progress output. */
  onSample?: (id: string, sample: Sample) => void;
}

interface History {
  action: string;
  rows_inserted: string | null;
  rows_deleted: string | null;
  changes_consumed: string | null;
}

// SQLSTATE of a statement cancelled by statement_timeout.
const QUERY_CANCELED = '57014';

const fullName = (id: string) => `${id}_full`;
const diffName = (id: string) => `${id}_diff`;

async function timed(client: pg.ClientBase, sql: string, params: unknown[]): Promise<number> {
  const start = process.hrtime.bigint();
  await client.query(sql, params);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const refresh = (client: pg.ClientBase, name: string) =>
  timed(client, 'SELECT pgtrickle.refresh_stream_table($1)', [name]);

async function lastRefresh(client: pg.ClientBase, name: string): Promise<History> {
  const { rows } = await client.query<History>(
    `SELECT action, rows_inserted, rows_deleted, changes_consumed FROM pgtrickle.pgt_refresh_history
      WHERE pgt_id = pgtrickle._resolve($1) ORDER BY refresh_id DESC LIMIT 1`,
    [name],
  );
  if (!rows[0]) throw new Error(`no refresh recorded for ${name}`);
  return rows[0];
}

async function divergence(client: pg.ClientBase, name: string, sql: string): Promise<number> {
  const { rows } = await client.query<{ cols: string }>(
    `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS cols FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgt\\_%'`,
    [ident(name)],
  );
  const cols = rows[0]?.cols;
  const { rows: diff } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM (
    (SELECT ${cols} FROM ${ident(name)} EXCEPT ALL SELECT * FROM (${sql}) q) UNION ALL
    (SELECT * FROM (${sql}) q EXCEPT ALL SELECT ${cols} FROM ${ident(name)})) d`);
  return Number(diff[0]?.n);
}

/** Creates the FULL and the AUTO stream table of each query and compiles the AUTO one. */
async function createPairs(client: pg.ClientBase, queries: readonly PairQuery[]): Promise<PairResult[]> {
  const results: PairResult[] = [];
  for (const q of queries) {
    await client.query(`SELECT pgtrickle.create_stream_table($1, $2, refresh_mode => 'FULL')`, [
      fullName(q.id),
      q.sql,
    ]);
    await client.query(`SELECT pgtrickle.create_stream_table($1, $2, refresh_mode => 'AUTO')`, [
      diffName(q.id),
      q.sql,
    ]);
    const { rows } = await client.query<{ id: string }>('SELECT pgtrickle._resolve($1) AS id', [
      diffName(q.id),
    ]);
    const outcome = await planStreamTable(client, String(rows[0]?.id));
    // The first refresh after a plan is installed reinitializes; it belongs to setup, not to a cycle.
    await client.query('SELECT pgtrickle.refresh_stream_table($1)', [diffName(q.id)]);
    await client.query(`ANALYZE ${ident(fullName(q.id))}, ${ident(diffName(q.id))}`);
    results.push(
      outcome.mode === 'DIFFERENTIAL'
        ? { id: q.id, compiled: 'DIFFERENTIAL', strategy: outcome.plan.strategy, samples: [] }
        : { id: q.id, compiled: 'FULL', fallbackReason: outcome.reason, samples: [] },
    );
  }
  return results;
}

async function dropPair(client: pg.ClientBase, id: string): Promise<void> {
  await client.query('SELECT pgtrickle.drop_stream_table($1)', [fullName(id)]);
  await client.query('SELECT pgtrickle.drop_stream_table($1)', [diffName(id)]);
}

/**
 * Runs `cycles` change cycles over the pairs of `queries`. Within a cycle the pair's order
 * alternates (AUTO first on even cycles), so neither side always finds the other's warm cache.
 */
export async function sideBySide(
  client: pg.ClientBase,
  queries: readonly PairQuery[],
  change: (cycle: number) => Promise<void>,
  options: PairOptions,
): Promise<PairResult[]> {
  const results = await createPairs(client, queries);
  const live = new Set(results);
  await client.query(`SET statement_timeout = ${Math.round(options.timeoutMs)}`);
  try {
    for (let cycle = 0; cycle < options.cycles; cycle++) {
      await change(cycle);
      for (const result of live) {
        // Both sides run even when one fails, so a DIFFERENTIAL refresh over the limit still
        // has its FULL time beside it.
        const names =
          cycle % 2 === 0
            ? [diffName(result.id), fullName(result.id)]
            : [fullName(result.id), diffName(result.id)];
        const times = new Map<string, number>();
        let failure: unknown;
        for (const name of names) {
          try {
            times.set(name, await refresh(client, name));
          } catch (err) {
            failure ??= err;
          }
        }
        const fullMs = times.get(fullName(result.id));
        const diffMs = times.get(diffName(result.id));
        if (failure === undefined && fullMs !== undefined && diffMs !== undefined) {
          const h = await lastRefresh(client, diffName(result.id));
          const sample: Sample = {
            fullMs,
            diffMs,
            diffAction: h.action,
            changesConsumed: Number(h.changes_consumed ?? 0),
            rowsChanged: Number(h.rows_inserted ?? 0) + Number(h.rows_deleted ?? 0),
          };
          result.samples.push(sample);
          options.onSample?.(result.id, sample);
          continue;
        }
        if (failure instanceof pg.DatabaseError && failure.code === QUERY_CANCELED && fullMs !== undefined) {
          result.overLimit = { fullMs, limitMs: options.timeoutMs };
          result.error = `DIFF refresh over the ${options.timeoutMs / 1000} s limit in cycle ${cycle + 1}`;
        } else {
          result.error = failure instanceof Error ? failure.message : String(failure);
        }
        // Unrefreshed stream tables would hold their sources' change buffers for everyone else.
        live.delete(result);
        await dropPair(client, result.id);
      }
    }
    const sql = new Map(queries.map((q) => [q.id, q.sql]));
    for (const result of live) {
      if (options.check) {
        result.divergence = await divergence(client, diffName(result.id), sql.get(result.id) ?? '').catch(
          (err: Error) => {
            result.error = `oracle: ${err.message}`;
            return undefined;
          },
        );
      }
      await dropPair(client, result.id);
    }
  } finally {
    await client.query('RESET statement_timeout');
  }
  return results;
}
