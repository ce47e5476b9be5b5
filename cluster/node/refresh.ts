// The refresh and reinit runs a node gives the stream-table machine: each one
// transaction in PostgreSQL (I1) under the node's fencing epoch; SQLSTATE PT001 (a newer
// epoch was granted) becomes StaleFencingEpoch, on which the machine gives the table up (I3).
// A diamond join refreshes with its group in one REPEATABLE READ snapshot (cluster/dag/diamond.ts).
import type pg from 'pg';
import {
  type RefreshInput,
  type RefreshResult,
  StaleFencingEpoch,
  type WorkRunners,
} from '../../actors/stream-table/index.js';
import { literal } from '../../shared/pg/quote.js';
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

interface GroupRow extends Row {
  pgt_id: string;
}

const REFRESH_SQL = 'SELECT * FROM pgtrickle._node_refresh($1, $2, $3)';
const BUSY_NOTICE = /^refresh skipped for ".*": another refresh is in progress$/s;

// A member busy with another refresh (PT003), or refreshed by another session after this
// transaction's snapshot (40001): the group is tried again a few times at short intervals, since
// the member's refresh is one short transaction; after that it is skipped, and D waits for the
// next news of changes.
const GROUP_RETRY_CODES = new Set(['PT003', '40001']);
const GROUP_RETRY_DELAYS_MS = [5, 10, 20, 40];

/** How a node tells a diamond join's group, and hears of the group's other refreshes. */
export interface GroupHooks {
  /** the group of a diamond join, the diamond join last; undefined for any other stream table */
  readonly groupOf: (id: string) => readonly string[] | undefined;
  /** an upstream member's refresh, committed with the diamond join's */
  readonly memberRefreshed: (id: string, result: RefreshResult) => void;
  /** the group rolled back for one of GROUP_RETRY_CODES */
  readonly groupSkipped: (id: string, error: unknown) => void;
}

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

// PostgreSQL ending a session while no query runs on it (a reinit's idle-in-transaction timeout
// through a node paused between two statements, a terminated backend) reaches the client as an
// 'error' event. pg-pool listens for it only while the client is idle in the pool, and an 'error'
// event nobody hears ends the process; a checked-out client keeps it to be discarded on release.
async function checkout(pool: pg.Pool): Promise<{ client: pg.PoolClient; release(err?: Error): void }> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (err: Error) => {
    lost = err;
  };
  client.on('error', onError);
  return {
    client,
    release: (err) => {
      client.off('error', onError);
      client.release(err ?? lost);
    },
  };
}

function fenced(err: unknown, id: string): unknown {
  return (err as { code?: unknown } | null)?.code === 'PT001'
    ? new StaleFencingEpoch(id, { cause: err })
    : err;
}

/** One scheduled refresh: `_node_refresh` sets the owner's role and calls `_refresh` in one round trip. */
export async function refreshOnce(
  pool: pg.Pool,
  node: string,
  input: RefreshInput,
  hooks?: GroupHooks,
): Promise<RefreshResult> {
  const group = hooks?.groupOf(input.id);
  if (hooks !== undefined && group !== undefined && group.length > 1) {
    return refreshGroup(pool, node, input, group, hooks);
  }
  // _refresh returns no row both when nothing is new and when another session holds the lock,
  // and tells them apart only by its NOTICE (migration 0003, which cannot change): the busy
  // case counts as a served slot, the other leaves the table due (afterSuccess).
  const { client, release } = await checkout(pool);
  let busy = false;
  const onNotice = (notice: { message?: string }) => {
    if (BUSY_NOTICE.test(notice.message ?? '')) busy = true;
  };
  client.on('notice', onNotice);
  let failure: Error | undefined;
  try {
    const { rows } = await client.query<Row>(REFRESH_SQL, [input.id, input.epoch, node]);
    const result = toResult(rows[0]);
    return result.action === 'SKIPPED' && busy ? { action: 'SKIPPED', busy: true } : result;
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    throw fenced(err, input.id);
  } finally {
    client.off('notice', onNotice);
    // Like pool.query, a client whose query failed is discarded: after pg_terminate_backend()
    // it would otherwise go back to the pool before it knows its connection is gone.
    release(failure);
  }
}

// A skipped group is not a failure: the member's own refresh will finish, and the next try
// usually finds every member free; backing off would only leave the diamond join further behind.
async function refreshGroup(
  pool: pg.Pool,
  node: string,
  input: RefreshInput,
  group: readonly string[],
  hooks: GroupHooks,
): Promise<RefreshResult> {
  for (let attempt = 0; ; attempt++) {
    const rows = await tryGroup(pool, node, input, group);
    if (rows instanceof Error) {
      const delay = GROUP_RETRY_DELAYS_MS[attempt];
      if (delay === undefined) {
        hooks.groupSkipped(input.id, rows);
        return { action: 'SKIPPED' };
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      continue;
    }
    let own: GroupRow | undefined;
    for (const row of rows) {
      if (row.pgt_id === input.id) own = row;
      else hooks.memberRefreshed(row.pgt_id, toResult(row));
    }
    return toResult(own);
  }
}

// The group's transaction in one round trip: a multi-statement simple query is one implicit
// transaction, so a node that stops between statements (SIGSTOP, a GC pause) cannot leave its
// members locked, idle in transaction, and an error rolls all of it back without a ROLLBACK.
// Simple queries take no parameters: the values are inlined, ids and epoch as checked integers.
function groupSql(group: readonly string[], epoch: number, node: string): string {
  if (!group.every((id) => /^[0-9]+$/.test(id)) || !Number.isSafeInteger(epoch)) {
    throw new RangeError(`not a refresh group: ${JSON.stringify({ group, epoch })}`);
  }
  return `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;
    SELECT * FROM pgtrickle._node_refresh_group('{${group.join(',')}}'::bigint[], ${epoch}, ${literal(node)})`;
}

/** One try of the group's transaction: its rows, or the error to retry on (GROUP_RETRY_CODES). */
async function tryGroup(
  pool: pg.Pool,
  node: string,
  input: RefreshInput,
  group: readonly string[],
): Promise<GroupRow[] | Error> {
  try {
    const results = (await pool.query(
      groupSql(group, input.epoch, node),
    )) as unknown as pg.QueryResult<GroupRow>[];
    return results.at(-1)?.rows ?? [];
  } catch (err) {
    if (err instanceof Error && GROUP_RETRY_CODES.has(String((err as { code?: unknown }).code))) return err;
    throw fenced(err, input.id);
  }
}

/**
 * Recompiles the plan as the owner (planStreamTable runs with the connection's rights), then
 * refreshes, in one transaction: a plan is never installed without the refresh that uses it.
 * Unlike a refresh, that transaction spans many round trips, so a node paused between two of
 * them (SIGSTOP, a stalled VM) would keep its locks, the table's row and the compile turn, for
 * as long as the pause: no other node could be granted the table, nor compile anything.
 * PostgreSQL ends the session instead once it has waited `idleInTransactionMs` for the node.
 */
export async function reinitOnce(
  pool: pg.Pool,
  node: string,
  input: RefreshInput,
  idleInTransactionMs?: number,
): Promise<RefreshResult> {
  const { client, release } = await checkout(pool);
  let failure: Error | undefined;
  try {
    await client.query(
      idleInTransactionMs === undefined
        ? 'BEGIN'
        : `BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${Math.max(1, Math.round(idleInTransactionMs))}`,
    );
    // Installing plans of two stream tables over one source at once fails in PostgreSQL with
    // "tuple concurrently updated"; compiles are rare, so they take turns across the cluster.
    // The turn comes first, holding nothing: a reinit that waited for it holding its row would
    // deadlock with the one installing its plan, which takes other stream tables' rows (seen
    // when the reinits of a chain's tables started together).
    await client.query("SELECT pg_advisory_xact_lock(hashtext('pgtrickle.install_plan'))");
    // Then the refresh lock, as every refresh takes it (I1), and only then the storage table's
    // lock that installing the plan takes (ALTER TABLE): in the other order a diamond's group,
    // which holds its members' rows and then writes their storage, deadlocks with the reinit of
    // a member, and PostgreSQL breaks the cycle only after deadlock_timeout. The refresh in the
    // way is one transaction.
    const { rows } = await client.query<{ owner: string; epoch: string }>(
      `SELECT r.rolname AS owner, st.fencing_epoch::text AS epoch
         FROM pgtrickle.pgt_stream_tables st JOIN pg_roles r ON r.oid = st.pgt_owner WHERE st.pgt_id = $1
          FOR UPDATE OF st`,
      [input.id],
    );
    const row = rows[0];
    // Fail fast before compiling; _refresh checks the epoch again under the row lock.
    if (row !== undefined && Number(row.epoch) !== input.epoch) throw new StaleFencingEpoch(input.id);
    if (row !== undefined) await client.query("SELECT set_config('role', $1, true)", [row.owner]);
    await planStreamTable(client, input.id);
    const result = await client.query<Row>(REFRESH_SQL, [input.id, input.epoch, node]);
    await client.query('COMMIT');
    return toResult(result.rows[0]);
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    await client.query('ROLLBACK').catch(() => undefined);
    throw fenced(err, input.id);
  } finally {
    // A session PostgreSQL ended (the idle timeout) must not go back to the pool.
    release(failure);
  }
}

/**
 * The machine's `refresh` and `reinit` work, bound to a pool and a node id. `track` sees each
 * transaction's promise, so a stopping node can wait for the ones under way.
 */
export function refreshRunners(
  pool: pg.Pool,
  node: string,
  track: (work: Promise<RefreshResult>) => Promise<RefreshResult> = (work) => work,
  hooks?: GroupHooks,
  reinitIdleMs?: number,
): WorkRunners {
  return {
    refresh: (input) => track(refreshOnce(pool, node, input, hooks)),
    reinit: (input) => track(reinitOnce(pool, node, input, reinitIdleMs)),
  };
}
