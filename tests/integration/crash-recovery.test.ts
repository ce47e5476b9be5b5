// Crash recovery with real processes: a node SIGKILLed while its backend is inside a refresh,
// and a refreshing backend ended with pg_terminate_backend(). A refresh is caught reliably by
// holding a lock on the stream table's storage: the node's backend then waits inside
// `_node_refresh`, holding the stream table's catalog row lock (I1), to apply its delta.
// Checked afterwards: no stream table is left in a refreshing or failed state, no backend, row
// lock or advisory lock of the dead node lingers,
// no NATS KV entry names it once the lease TTL has passed, the next refresh comes within the
// lease TTL plus a coordinator round and a tick, and the oracle (I5) holds. A dead node's backend
// that keeps a catalog row lock delays only that stream table's regrant, not the coordinator's
// heartbeat and renewals; client_connection_check_interval ends such a backend early.
import { spawn } from 'node:child_process';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode } from '../../cluster/nats/codec.js';
import {
  bucketName,
  COORDINATOR_KEY,
  leaseKey,
  memberKey,
  NatsLeaseStore,
} from '../../cluster/nats/index.js';
import { type NatsServer, startNats } from '../harness/index.js';
import { divergence, migratedDatabase, type TestDb } from '../support/db.js';
import { logged, type NodeProcess, spawnNode } from '../support/nodes.js';

const LEASE_TTL_MS = 2_000;
// The node's default: heartbeats (renewals, coordinator rounds) every third of the TTL.
const HEARTBEAT_MS = Math.floor(LEASE_TTL_MS / 3);
const TICK_MS = 50;
const SCHEDULE_MS = 200;
// What a loaded 2-core machine adds: process scheduling, a refresh's own duration.
const SLACK_MS = 1_500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Caught {
  node: string;
  pid: number;
}

/**
 * Makes changes for "slow", then holds EXCLUSIVE on its storage (readers pass, writers wait)
 * until release(), and waits for a node's backend to block on it inside a scheduled refresh.
 * The source is not locked: an aggregate's delta reads only the change buffer, and the
 * scheduler's tick reads the buffers to find due work.
 */
async function catchRefresh(
  db: TestDb,
  locker: pg.Client,
): Promise<{ caught: Caught; release(): Promise<void> }> {
  // Locked first: changes made before could be consumed by a refresh before the lock is taken.
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE slow IN EXCLUSIVE MODE');
  await db.admin.query(
    'INSERT INTO orders (customer, amount) SELECT 1 + g % 10, g FROM generate_series(1, 25) g',
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { rows } = await db.admin.query<{ node: string; pid: number }>(`
      SELECT substring(application_name FROM '^pgtrickle node (\\S+)$') AS node, pid
        FROM pg_stat_activity
       WHERE datname = current_database() AND application_name LIKE 'pgtrickle node %'
         AND state = 'active' AND wait_event_type = 'Lock' AND query LIKE '%_node_refresh%'`);
    if (rows[0]) return { caught: rows[0], release: () => locker.query('COMMIT').then(() => undefined) };
    if (Date.now() > deadline) {
      const { rows: sessions } = await db.admin.query(
        `SELECT application_name, state, wait_event_type, left(query, 100) AS query FROM pg_stat_activity
          WHERE datname = current_database() AND application_name LIKE 'pgtrickle node %'`,
      );
      await locker.query('ROLLBACK');
      throw new Error(`no node blocked inside a refresh of "slow" within 10 s: ${JSON.stringify(sessions)}`);
    }
    await sleep(20);
  }
}

/** Ms from `since` to the first COMPLETED refresh of `st` that ended after it (by `by`, if given). */
async function nextCompleted(db: TestDb, st: string, since: number, by?: string): Promise<number> {
  let found: number | undefined;
  await expect
    .poll(
      async () => {
        const { rows } = await db.admin.query<{ ms: string | null }>(
          `SELECT (extract(epoch FROM min(h.end_time)) * 1000)::bigint::text AS ms
             FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
            WHERE s.pgt_name = $1 AND h.status = 'COMPLETED' AND h.initiated_by = 'SCHEDULER'
              AND h.end_time > to_timestamp($2 / 1000.0) AND ($3::text IS NULL OR h.node_id = $3)`,
          [st, since, by ?? null],
        );
        found = rows[0]?.ms === null || rows[0]?.ms === undefined ? undefined : Number(rows[0].ms) - since;
        return found !== undefined;
      },
      { timeout: 20_000, interval: 50 },
    )
    .toBe(true);
  return found as number;
}

/** What could outlive a node or a backend in PostgreSQL: its sessions, their locks, advisory locks. */
async function leftovers(db: TestDb, node: string): Promise<Record<string, unknown[]>> {
  const backends = await db.admin.query(
    `SELECT pid, state, query FROM pg_stat_activity WHERE application_name = $1`,
    [`pgtrickle node ${node}`],
  );
  const locks = await db.admin.query(
    `SELECT l.locktype, l.relation::regclass::text AS relation, l.mode, l.granted, a.application_name
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE a.application_name = $1 OR l.locktype = 'advisory'`,
    [`pgtrickle node ${node}`],
  );
  const states = await db.admin.query(
    `SELECT pgt_name, status, consecutive_errors FROM pgtrickle.pgt_stream_tables
      WHERE status <> 'ACTIVE' OR consecutive_errors > 0`,
  );
  return { backends: backends.rows, locks: locks.rows, states: states.rows };
}

/** KV entries that still name `node` as alive or as a holder. */
async function kvHeldBy(kv: KV, node: string): Promise<string[]> {
  const store = new NatsLeaseStore(kv);
  const out: string[] = [];
  const now = Date.now();
  for await (const key of await kv.keys()) {
    if (key === memberKey(node)) {
      // A member entry stays until the bucket's max age; what counts is that it has expired.
      const entry = await kv.get(key);
      if (
        entry?.operation === 'PUT' &&
        decode<{ v: 1; expiresAt: number }>(entry.value, 'a member', 1).expiresAt > now
      ) {
        out.push(key);
      }
      continue;
    }
    if (key !== COORDINATOR_KEY && !key.startsWith(leaseKey(''))) continue;
    const lease = await store.read(key);
    if (lease && lease.holder === node && lease.expiresAt > now) out.push(key);
  }
  return out;
}

describe('crash recovery of refresh nodes', () => {
  let db: TestDb;
  let nats: NatsServer;
  let nc: NatsConnection;
  let kv: KV;
  let locker: pg.Client;
  const nodes = new Map<string, NodeProcess>();

  beforeAll(async () => {
    [db, nats] = await Promise.all([migratedDatabase(), startNats()]);
    await db.admin.query(`
      CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
      INSERT INTO orders (customer, amount) SELECT 1 + g % 10, g % 50 FROM generate_series(1, 300) g;
      CREATE TABLE notes (body text, tag int);
      INSERT INTO notes SELECT 'b' || (g % 5), g % 3 FROM generate_series(1, 60) g;`);
    await db.admin.query("SELECT pgtrickle.create_stream_table('slow', $1, $2)", [
      'SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer',
      `${SCHEDULE_MS}ms`,
    ]);
    await db.admin.query("SELECT pgtrickle.create_stream_table('bystander', $1, $2)", [
      'SELECT body, count(*) AS n FROM notes GROUP BY body',
      `${SCHEDULE_MS}ms`,
    ]);
    locker = await db.connect();
    for (const id of ['crash1', 'crash2']) {
      nodes.set(
        id,
        spawnNode({
          id,
          databaseUrl: db.url,
          natsUrls: nats.urls,
          leaseTtlMs: LEASE_TTL_MS,
          tickMs: TICK_MS,
        }),
      );
    }
    nc = await connect({ servers: nats.urls });
    await Promise.all([...nodes.values()].map((n) => logged(n, 'pgtrickle node started', 30_000)));
    kv = await new Kvm(nc).open(bucketName(decodeURIComponent(new URL(db.url).pathname.slice(1))));
    // Both stream tables refreshed by the scheduler once: plans installed, leases settled.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { rows } = await db.admin.query<{ n: number }>(
        `SELECT count(DISTINCT pgt_id)::int AS n FROM pgtrickle.pgt_refresh_history
          WHERE initiated_by = 'SCHEDULER' AND status = 'COMPLETED'`,
      );
      if (rows[0]?.n === 2) break;
      if (Date.now() > deadline) throw new Error('the nodes did not refresh both stream tables within 20 s');
      await sleep(100);
    }
  }, 60_000);

  afterAll(async () => {
    await locker?.query('ROLLBACK').catch(() => undefined);
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    await nc?.close();
    await nats?.stop();
    await db?.drop();
  });

  it('recovers from a node SIGKILLed in the middle of a refresh within the lease TTL', async () => {
    const { caught, release } = await catchRefresh(db, locker);
    const victim = nodes.get(caught.node) as NodeProcess;
    const survivor = [...nodes.values()].find((n) => n !== victim) as NodeProcess;
    victim.signal('SIGKILL');
    const killedAt = Date.now();
    await victim.exited;
    nodes.delete(victim.id);
    // The lock goes at once: the orphaned backend finishes (or fails) its refresh on its own.
    await release();
    // Its delta statement takes its snapshot once it has the lock, so changes made before it
    // ends may be its; the survivor gets its own once the orphan is gone.
    await expect
      .poll(async () => (await leftovers(db, victim.id)).backends, { timeout: 10_000, interval: 20 })
      .toEqual([]);
    await db.admin.query('INSERT INTO orders (customer, amount) VALUES (3, 7), (4, 8)');

    const takeover = await nextCompleted(db, 'slow', killedAt, survivor.id).catch(async (err) => {
      const activity = await db.admin.query(
        'SELECT pid, application_name, state, wait_event_type, left(query, 80) AS q FROM pg_stat_activity WHERE datname = current_database()',
      );
      const history = await db.admin.query(
        'SELECT pgt_id, node_id, status, action, fencing_epoch, end_time FROM pgtrickle.pgt_refresh_history ORDER BY refresh_id DESC LIMIT 8',
      );
      const fs = await import('node:fs');
      fs.writeFileSync(
        '/tmp/pgt-stage/dbg-kill.json',
        JSON.stringify(
          { killedAt, activity: activity.rows, history: history.rows, logs: survivor.logs.slice(-40) },
          null,
          1,
        ),
      );
      throw err;
    });
    const { rows: orphan } = await db.admin.query<{ status: string }>(
      `SELECT h.status FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
        WHERE s.pgt_name = 'slow' AND h.node_id = $1 AND h.end_time > to_timestamp($2 / 1000.0)`,
      [victim.id, killedAt],
    );
    console.log(
      `SIGKILL: "slow" refreshed by ${survivor.id} ${takeover} ms after ${victim.id} died ` +
        `(${(takeover / LEASE_TTL_MS).toFixed(2)} × lease TTL ${LEASE_TTL_MS} ms; round ${HEARTBEAT_MS} ms, ` +
        `tick ${TICK_MS} ms, schedule ${SCHEDULE_MS} ms); the orphaned backend's refresh ` +
        `${orphan.length > 0 ? `committed (${orphan.map((r) => r.status).join(', ')})` : 'rolled back'}`,
    );
    expect(takeover).toBeLessThanOrEqual(LEASE_TTL_MS + HEARTBEAT_MS + TICK_MS + SCHEDULE_MS + SLACK_MS);

    // PostgreSQL ends the dead node's sessions once it sees their sockets closed.
    await expect
      .poll(async () => leftovers(db, victim.id), { timeout: 10_000, interval: 100 })
      .toEqual({ backends: [], locks: [], states: [] });
    // Past the TTL, nothing in the KV bucket names the dead node as a holder or a member.
    const sinceKill = Date.now() - killedAt;
    if (sinceKill < LEASE_TTL_MS) await sleep(LEASE_TTL_MS - sinceKill);
    await expect.poll(() => kvHeldBy(kv, victim.id), { timeout: 5_000, interval: 100 }).toEqual([]);
    await expect.poll(() => divergence(db.admin, 'slow'), { timeout: 10_000, interval: 100 }).toBe(0);
    await expect.poll(() => divergence(db.admin, 'bystander'), { timeout: 10_000, interval: 100 }).toBe(0);
  }, 40_000);

  it('recovers from pg_terminate_backend() of a refreshing backend within the lease TTL', async () => {
    const { caught, release } = await catchRefresh(db, locker);
    const holder = nodes.get(caught.node) as NodeProcess;
    const terminatedAt = Date.now();
    const { rows } = await db.admin.query<{ ok: boolean }>('SELECT pg_terminate_backend($1, 5000) AS ok', [
      caught.pid,
    ]);
    expect(rows[0]?.ok).toBe(true);
    await release();

    const next = await nextCompleted(db, 'slow', terminatedAt);
    const failures = holder.logs.filter((l) => l.msg === 'refresh failed' && Number(l.time) >= terminatedAt);
    const { rows: failed } = await db.admin.query<{ error_message: string }>(
      `SELECT h.error_message FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables s USING (pgt_id)
        WHERE s.pgt_name = 'slow' AND h.status = 'FAILED' AND h.end_time > to_timestamp($1 / 1000.0)`,
      [terminatedAt],
    );
    console.log(
      `pg_terminate_backend: "slow" refreshed again ${next} ms later ` +
        `(${(next / LEASE_TTL_MS).toFixed(2)} × lease TTL; failure backoff 500–1000 ms); ` +
        `${failures.length} failure logged, history: ${JSON.stringify(failed.map((f) => f.error_message))}`,
    );
    // The node saw the failure, recorded it, backed off once and refreshed again.
    expect(failures.length).toBeGreaterThan(0);
    expect(failed.length).toBe(1);
    expect(next).toBeLessThanOrEqual(LEASE_TTL_MS + TICK_MS);
    expect(holder.proc.exitCode).toBeNull();
    // The success cleared the error count; the terminated backend left nothing behind.
    await expect
      .poll(async () => leftovers(db, '(none)'), { timeout: 5_000, interval: 100 })
      .toEqual({ backends: [], locks: [], states: [] });
    const { rows: gone } = await db.admin.query('SELECT pid FROM pg_stat_activity WHERE pid = $1', [
      caught.pid,
    ]);
    expect(gone).toEqual([]);
    await expect.poll(() => divergence(db.admin, 'slow'), { timeout: 10_000, interval: 100 }).toBe(0);
  }, 30_000);

  it('keeps the coordinator and the survivor alive while a dead node’s backend holds a catalog row lock', async () => {
    // A backend of a dead node that keeps its refresh's row lock (a long refresh, or a host that
    // vanished mid-transaction, which PostgreSQL notices only by TCP keepalive) is played by
    // this test's own transaction. The regrant must wait for it without stalling anything else.
    const survivor = [...nodes.values()][0] as NodeProcess;
    const doomed = spawnNode({
      id: 'crash3',
      databaseUrl: db.url,
      natsUrls: nats.urls,
      leaseTtlMs: LEASE_TTL_MS,
      tickMs: TICK_MS,
    });
    nodes.set(doomed.id, doomed);
    await logged(doomed, 'pgtrickle node started', 30_000);
    const store = new NatsLeaseStore(kv);
    const names = new Map(
      (
        await db.admin.query<{ id: string; name: string }>(
          'SELECT pgt_id::text AS id, pgt_name AS name FROM pgtrickle.pgt_stream_tables',
        )
      ).rows.map((r) => [r.id, r.name]),
    );
    // The coordinator evens the two stream tables out: one moves to the new node.
    let moved: string | undefined;
    const deadline = Date.now() + 15_000;
    while (moved === undefined && Date.now() < deadline) {
      for (const id of names.keys()) {
        const lease = await store.read(leaseKey(id));
        if (lease?.holder === doomed.id) moved = id;
      }
      if (moved === undefined) await sleep(100);
    }
    expect(moved, 'a stream table placed on crash3').toBeDefined();
    const lockedName = names.get(moved as string) as string;
    const otherName = [...names.values()].find((n) => n !== lockedName) as string;
    await locker.query('BEGIN');
    await locker.query('SELECT 1 FROM pgtrickle.pgt_stream_tables WHERE pgt_id = $1 FOR UPDATE', [moved]);
    doomed.signal('SIGKILL');
    const killedAt = Date.now();
    await doomed.exited;
    nodes.delete(doomed.id);

    // Three TTLs with the row locked (a stalled heartbeat shows after two): the survivor still
    // heartbeats, renews its own lease and refreshes the other stream table.
    const member = async () => {
      const entry = await kv.get(memberKey(survivor.id));
      return entry?.operation === 'PUT'
        ? decode<{ v: 1; expiresAt: number }>(entry.value, 'a member', 1).expiresAt
        : 0;
    };
    let stale = 0;
    while (Date.now() - killedAt < 3 * LEASE_TTL_MS) {
      const now = Date.now();
      const [alive, lease] = await Promise.all([
        member(),
        store.read(leaseKey([...names].find(([, n]) => n === otherName)?.[0] ?? '')),
      ]);
      if (alive <= now || (lease?.expiresAt ?? 0) <= now) stale++;
      await sleep(100);
    }
    await db.admin.query("INSERT INTO notes VALUES ('late', 1)");
    await db.admin.query('INSERT INTO orders (customer, amount) VALUES (5, 5)');
    const other = await nextCompleted(db, otherName, Date.now(), survivor.id);
    await locker.query('ROLLBACK');
    const releasedAt = Date.now();
    const locked = await nextCompleted(db, lockedName, releasedAt, survivor.id);
    console.log(
      `row lock held ${releasedAt - killedAt} ms after crash3 died: the survivor's membership or lease was ` +
        `expired at ${stale} of its checks; "${otherName}" refreshed ${other} ms after a change; ` +
        `"${lockedName}" refreshed by ${survivor.id} ${locked} ms after the lock went`,
    );
    expect(stale).toBe(0);
    expect(locked).toBeLessThanOrEqual(LEASE_TTL_MS + TICK_MS + SCHEDULE_MS + SLACK_MS);
    await expect.poll(() => divergence(db.admin, lockedName), { timeout: 10_000, interval: 100 }).toBe(0);
    await expect.poll(() => divergence(db.admin, otherName), { timeout: 10_000, interval: 100 }).toBe(0);
  }, 60_000);

  it('ends a dead client’s backend blocked on a lock only with client_connection_check_interval', async () => {
    // The setting PRE_DEPLOYMENT.md recommends for the nodes' role, checked on a plain client
    // killed while its statement waits for a lock that stays held.
    await db.admin.query('CREATE TABLE orphan_probe (x int)');
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE orphan_probe IN ACCESS EXCLUSIVE MODE');
    const lifetimes: Record<string, number | 'alive'> = {};
    try {
      for (const interval of ['0', '300ms']) {
        const name = `orphan ${interval}`;
        const child = spawn(
          process.execPath,
          [
            '-e',
            `const pg = require('pg');
             const c = new pg.Client({ connectionString: process.argv[1], application_name: process.argv[2] });
             c.connect()
               .then(() => c.query("SELECT set_config('client_connection_check_interval', $1, false)", [process.argv[3]]))
               .then(() => c.query('INSERT INTO orphan_probe VALUES (1)'));`,
            db.url,
            name,
            interval,
          ],
          { stdio: 'ignore' },
        );
        const exited = new Promise((resolve) => child.once('exit', resolve));
        const waiting = async () =>
          (
            await db.admin.query<{ w: string | null }>(
              'SELECT wait_event_type AS w FROM pg_stat_activity WHERE application_name = $1',
              [name],
            )
          ).rows[0]?.w;
        await expect.poll(waiting, { timeout: 10_000, interval: 20 }).toBe('Lock');
        child.kill('SIGKILL');
        await exited;
        const killedAt = Date.now();
        lifetimes[interval] = 'alive';
        while (Date.now() - killedAt < 1_500) {
          if ((await waiting()) === undefined) {
            lifetimes[interval] = Date.now() - killedAt;
            break;
          }
          await sleep(20);
        }
      }
    } finally {
      await locker.query('ROLLBACK');
    }
    console.log(
      `a killed client's backend waiting on a lock: ${JSON.stringify(lifetimes)} (ms after the kill)`,
    );
    expect(lifetimes['0']).toBe('alive');
    expect(lifetimes['300ms']).toBeLessThan(1_500);
    // The one without the setting goes when the lock does: its INSERT fails to answer.
    await expect
      .poll(
        async () =>
          (await db.admin.query("SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'orphan %'")).rows
            .length,
        { timeout: 5_000, interval: 50 },
      )
      .toBe(0);
  }, 30_000);
});
