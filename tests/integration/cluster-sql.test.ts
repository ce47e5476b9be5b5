// What migration 0004 gives refresh nodes: epochs granted with leases, the one-query change
// check of source watchers, node-stamped refreshes and recorded failures.

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StaleFencingEpoch } from '../../actors/stream-table/index.js';
import { pendingChanges } from '../../cluster/node/catalog.js';
import { refreshOnce } from '../../cluster/node/refresh.js';
import { divergence, makeDifferential, migratedDatabase, pgError, type TestDb } from '../support/db.js';

let db: TestDb;
let pool: pg.Pool;

async function idOf(name: string): Promise<string> {
  const { rows } = await db.admin.query<{ id: string }>('SELECT pgtrickle._resolve($1)::text AS id', [name]);
  return rows[0]?.id as string;
}

async function epochOf(id: string): Promise<number> {
  const { rows } = await db.admin.query<{ e: string }>(
    'SELECT fencing_epoch::text AS e FROM pgtrickle.pgt_stream_tables WHERE pgt_id = $1',
    [id],
  );
  return Number(rows[0]?.e);
}

beforeAll(async () => {
  db = await migratedDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  await db.admin.query(`
    CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric);
    CREATE TABLE "odd.Name" ("we ird" int);
    INSERT INTO orders VALUES (1, 'a', 10), (2, 'b', 20);
    INSERT INTO "odd.Name" VALUES (1);
    SELECT pgtrickle.create_stream_table('by_customer',
      'SELECT customer, sum(amount) AS total FROM orders GROUP BY customer', '1s');
    SELECT pgtrickle.create_stream_table('big_orders', 'SELECT id, amount FROM orders WHERE amount > 15', '1s');
    SELECT pgtrickle.create_stream_table('"we.ird"', 'SELECT "we ird" FROM "odd.Name"', '1s');
    SELECT pgtrickle.create_stream_table('chained', 'SELECT total FROM by_customer', '1s');`);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('pgtrickle._grant_epoch', () => {
  it('increments the fencing epoch and returns it', async () => {
    const id = await idOf('big_orders');
    const before = await epochOf(id);
    const { rows } = await db.admin.query<{ e: string }>('SELECT pgtrickle._grant_epoch($1)::text AS e', [
      id,
    ]);
    expect(Number(rows[0]?.e)).toBe(before + 1);
    expect(await epochOf(id)).toBe(before + 1);
  });

  it('returns NULL for a stream table that does not exist', async () => {
    const { rows } = await db.admin.query('SELECT pgtrickle._grant_epoch(-1) AS e');
    expect(rows[0]?.e).toBeNull();
  });
});

describe('pgtrickle._pending', () => {
  it('lists exactly the stream tables whose sources changed past their frontier', async () => {
    const ids = await Promise.all(['by_customer', 'big_orders', '"we.ird"', 'chained'].map(idOf));
    for (const name of ['by_customer', 'big_orders', '"we.ird"', 'chained']) {
      await db.admin.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
    }
    expect(await pendingChanges(pool, ids)).toEqual(new Set());

    await db.admin.query(`INSERT INTO "odd.Name" VALUES (2)`);
    expect(await pendingChanges(pool, ids)).toEqual(new Set([ids[2]]));

    await db.admin.query(`UPDATE orders SET amount = amount + 1 WHERE id = 1`);
    expect(await pendingChanges(pool, ids)).toEqual(new Set([ids[0], ids[1], ids[2]]));

    // A stream table's own storage is a captured source: its readers see its refresh.
    await db.admin.query('SELECT pgtrickle.refresh_stream_table($1)', ['by_customer']);
    expect(await pendingChanges(pool, ids)).toEqual(new Set([ids[1], ids[2], ids[3]]));
  });

  it('answers for a subset of the ids it is given, and for none', async () => {
    const big = await idOf('big_orders');
    await db.admin.query(`UPDATE orders SET amount = amount + 1 WHERE id = 2`);
    expect(await pendingChanges(pool, [big])).toEqual(new Set([big]));
    expect(await pendingChanges(pool, [])).toEqual(new Set());
    const { rows } = await db.admin.query('SELECT * FROM pgtrickle._pending(ARRAY[]::bigint[])');
    expect(rows).toEqual([]);
  });

  it('does not count changes of a transaction that the frontier already saw', async () => {
    const id = await idOf('"we.ird"');
    await db.admin.query(
      `SELECT pgtrickle.write_and_refresh('INSERT INTO "odd.Name" VALUES (3)', '"we.ird"')`,
    );
    expect(await pendingChanges(pool, [id])).toEqual(new Set());
  });

  it('reads change marks: one per transaction and source, none for a statement that changed nothing, trimmed by refreshes', async () => {
    const marks = async () =>
      Number(
        (await db.admin.query<{ n: string }>('SELECT count(*) AS n FROM pgtrickle.pgt_change_marks')).rows[0]
          ?.n,
      );
    for (const name of ['by_customer', 'big_orders', '"we.ird"', 'chained']) {
      await db.admin.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
    }
    // A transaction that refreshed its own write leaves a settled mark until the next refresh.
    const settled = await marks();
    await db.admin.query(`UPDATE orders SET amount = amount WHERE false; DELETE FROM "odd.Name" WHERE false`);
    expect(await marks()).toBe(settled);
    await db.admin.query(`BEGIN; UPDATE orders SET amount = amount + 1 WHERE id = 1;
      UPDATE orders SET amount = amount + 1 WHERE id = 2; INSERT INTO "odd.Name" VALUES (9); COMMIT`);
    expect(await marks()).toBe(settled + 2);
    const [byCustomer, big] = await Promise.all(['by_customer', 'big_orders'].map(idOf));
    expect(await pendingChanges(pool, [byCustomer as string, big as string])).toEqual(
      new Set([byCustomer, big]),
    );
    await db.admin.query(`TRUNCATE "odd.Name"`);
    expect(await marks()).toBe(settled + 3);
    for (const name of ['by_customer', 'big_orders', '"we.ird"', 'chained']) {
      await db.admin.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
    }
    expect(await marks()).toBe(0);
  });

  it('removes the mark triggers with the last stream table that reads a source', async () => {
    await db.admin.query(`CREATE TABLE lonely (id int PRIMARY KEY);
      SELECT pgtrickle.create_stream_table('lonely_st', 'SELECT id FROM lonely', '1s')`);
    const triggers = async () =>
      (
        await db.admin.query<{ tgname: string }>(
          `SELECT tgname FROM pg_trigger WHERE tgrelid = 'lonely'::regclass AND tgname LIKE 'pgtrickle_mark%' ORDER BY 1`,
        )
      ).rows.map((r) => r.tgname);
    expect(await triggers()).toEqual([
      'pgtrickle_mark_del',
      'pgtrickle_mark_ins',
      'pgtrickle_mark_trunc',
      'pgtrickle_mark_upd',
    ]);
    await db.admin.query(`INSERT INTO lonely VALUES (1); SELECT pgtrickle.drop_stream_table('lonely_st')`);
    expect(await triggers()).toEqual([]);
    const { rows } = await db.admin.query(
      `SELECT 1 FROM pgtrickle.pgt_change_marks WHERE source_relid = 'lonely'::regclass`,
    );
    expect(rows).toEqual([]);
  });

  it('is not for PUBLIC', async () => {
    await db.admin.query('CREATE ROLE pgt_nobody');
    const client = await db.connect();
    await client.query('SET ROLE pgt_nobody');
    const err = await pgError(client.query('SELECT * FROM pgtrickle._pending(ARRAY[1]::bigint[])'));
    expect(err.code).toBe('42501');
    await client.query('RESET ROLE');
  });
});

describe('a scheduled refresh (pgtrickle._node_refresh)', () => {
  it('refreshes as the owner under the current epoch and stamps history with the node', async () => {
    const id = await idOf('big_orders');
    await makeDifferential(db.admin, 'big_orders');
    await db.admin.query('INSERT INTO orders VALUES (3, $1, 99)', ['c']);
    const epoch = await epochOf(id);
    const result = await refreshOnce(pool, 'node-a', { id, name: 'big_orders', epoch });
    expect(result).toMatchObject({ action: 'DIFFERENTIAL', rowsInserted: 1, rowsDeleted: 0 });
    expect(await divergence(db.admin, 'big_orders')).toBe(0);
    const { rows } = await db.admin.query(
      'SELECT node_id, fencing_epoch::int AS epoch, initiated_by FROM pgtrickle.pgt_refresh_history WHERE refresh_id = $1',
      [result.action === 'SKIPPED' ? -1 : result.refreshId],
    );
    expect(rows[0]).toEqual({ node_id: 'node-a', epoch, initiated_by: 'SCHEDULER' });
  });

  it('is skipped when nothing changed', async () => {
    const id = await idOf('big_orders');
    const result = await refreshOnce(pool, 'node-a', { id, name: 'big_orders', epoch: await epochOf(id) });
    expect(result).toEqual({ action: 'SKIPPED' });
  });

  it('is refused with StaleFencingEpoch once a newer epoch was granted, and changes nothing', async () => {
    const id = await idOf('big_orders');
    const old = await epochOf(id);
    await db.admin.query('SELECT pgtrickle._grant_epoch($1)', [id]);
    await db.admin.query('INSERT INTO orders VALUES (4, $1, 50)', ['d']);
    const err = await refreshOnce(pool, 'node-a', { id, name: 'big_orders', epoch: old }).catch((e) => e);
    expect(err).toBeInstanceOf(StaleFencingEpoch);
    expect(await divergence(db.admin, 'big_orders')).toBeGreaterThan(0);
    await refreshOnce(pool, 'node-b', { id, name: 'big_orders', epoch: old + 1 });
    expect(await divergence(db.admin, 'big_orders')).toBe(0);
  });
});

describe('pgtrickle._record_failure', () => {
  it('counts the failure, writes a FAILED row and alerts, under the current epoch only', async () => {
    const id = await idOf('chained');
    const epoch = await epochOf(id);
    const listener = await db.connect();
    const alerts: string[] = [];
    listener.on('notification', (m) => alerts.push(m.payload ?? ''));
    await listener.query('LISTEN pg_trickle_alert');
    const { rows } = await db.admin.query<{ n: number | null }>(
      "SELECT pgtrickle._record_failure($1, $2, 'node-a', 'FULL', 'boom', now()) AS n",
      [id, epoch],
    );
    expect(rows[0]?.n).toBe(1);
    const stale = await db.admin.query<{ n: number | null }>(
      "SELECT pgtrickle._record_failure($1, $2, 'node-z', 'FULL', 'late', now()) AS n",
      [id, epoch - 1],
    );
    expect(stale.rows[0]?.n).toBeNull();
    const history = await db.admin.query(
      "SELECT status, node_id, error_message FROM pgtrickle.pgt_refresh_history WHERE pgt_id = $1 AND status = 'FAILED'",
      [id],
    );
    expect(history.rows).toEqual([{ status: 'FAILED', node_id: 'node-a', error_message: 'boom' }]);
    await expect.poll(() => alerts.length).toBe(1);
    expect(JSON.parse(alerts[0] as string)).toMatchObject({
      event: 'refresh_failed',
      name: 'chained',
      consecutive_errors: 1,
      error: 'boom',
      node: 'node-a',
    });
  });
});
