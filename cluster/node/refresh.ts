// The refresh and reinit actors a node provides to the stream-table machine: each one
// transaction in PostgreSQL (I1) under the node's fencing epoch; SQLSTATE PT001 (a newer
// epoch was granted) becomes StaleFencingEpoch, on which the machine gives the table up (I3).
import type pg from 'pg';
import { fromPromise } from 'xstate';
import { type RefreshInput, type RefreshResult, StaleFencingEpoch } from '../../actors/stream-table/index.js';
import { planStreamTable } from '../planner/install.js';

interface Row {
  refresh_id: string;
  action: 'FULL' | 'DIFFERENTIAL' | 'REINITIALIZE' | 'NO_DATA';
  rows_inserted: string | null;
  rows_deleted: string | null;
  changes_consumed: string | null;
  frontier: string;
  duration_ms: number;
}

const REFRESH_SQL = 'SELECT * FROM pgtrickle._node_refresh($1, $2, $3)';

function toResult(row: Row | undefined): RefreshResult {
  if (row === undefined) return { action: 'SKIPPED' };
  return {
    action: row.action,
    rowsInserted: Number(row.rows_inserted ?? 0),
    rowsDeleted: Number(row.rows_deleted ?? 0),
    durationMs: row.duration_ms,
    refreshId: row.refresh_id,
    frontier: row.frontier,
    changesConsumed: row.changes_consumed === null ? null : Number(row.changes_consumed),
  };
}

function fenced(err: unknown, id: string): unknown {
  return (err as { code?: unknown } | null)?.code === 'PT001'
    ? new StaleFencingEpoch(id, { cause: err })
    : err;
}

/** One scheduled refresh: `_node_refresh` sets the owner's role and calls `_refresh` in one round trip. */
export async function refreshOnce(pool: pg.Pool, node: string, input: RefreshInput): Promise<RefreshResult> {
  try {
    const { rows } = await pool.query<Row>(REFRESH_SQL, [input.id, input.epoch, node]);
    return toResult(rows[0]);
  } catch (err) {
    throw fenced(err, input.id);
  }
}

/**
 * Recompiles the plan as the owner (planStreamTable runs with the connection's rights), then
 * refreshes, in one transaction: a plan is never installed without the refresh that uses it.
 */
export async function reinitOnce(pool: pg.Pool, node: string, input: RefreshInput): Promise<RefreshResult> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ owner: string; epoch: string }>(
      `SELECT r.rolname AS owner, st.fencing_epoch::text AS epoch
         FROM pgtrickle.pgt_stream_tables st JOIN pg_roles r ON r.oid = st.pgt_owner WHERE st.pgt_id = $1`,
      [input.id],
    );
    const row = rows[0];
    // Fail fast before compiling; _refresh checks the epoch again under the row lock.
    if (row !== undefined && Number(row.epoch) !== input.epoch) throw new StaleFencingEpoch(input.id);
    // Installing plans of two stream tables over one source at once fails in PostgreSQL with
    // "tuple concurrently updated"; compiles are rare, so they take turns across the cluster.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('pgtrickle.install_plan'))");
    if (row !== undefined) await client.query("SELECT set_config('role', $1, true)", [row.owner]);
    await planStreamTable(client, input.id);
    const result = await client.query<Row>(REFRESH_SQL, [input.id, input.epoch, node]);
    await client.query('COMMIT');
    return toResult(result.rows[0]);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw fenced(err, input.id);
  } finally {
    client.release();
  }
}

/**
 * The machine's `refresh` and `reinit` actors, bound to a pool and a node id. `track` sees each
 * transaction's promise, so a stopping node can wait for the ones under way.
 */
export function refreshActors(
  pool: pg.Pool,
  node: string,
  track: (work: Promise<RefreshResult>) => Promise<RefreshResult> = (work) => work,
) {
  return {
    refresh: fromPromise<RefreshResult, RefreshInput>(({ input }) => track(refreshOnce(pool, node, input))),
    reinit: fromPromise<RefreshResult, RefreshInput>(({ input }) => track(reinitOnce(pool, node, input))),
  };
}
