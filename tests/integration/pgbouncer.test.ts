// A refresh node behind a real PgBouncer in transaction mode (`--connection-pooler-mode
// transaction`): migrations, stream-table creation, reinit (plan install) and scheduled refreshes
// all go through the pooler, where a server session lasts one transaction. Checked: refresh
// cycles complete and write history, a stream table created while the node runs is picked up
// without LISTEN, the node holds no listener session, and the oracle (I5) holds at quiescence.
// Beside it: statement mode refuses the transactions a node needs (unsupported), and session mode
// keeps LISTEN working (where a node runs in its default session mode).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planStreamTable } from '../../cluster/planner/install.js';
import { migrate } from '../../sql/migrate.js';
import {
  createDatabase,
  type NatsServer,
  type PgServer,
  startNats,
  startPostgres,
  type TestDatabase,
} from '../harness/index.js';
import { type PgBouncer, pgbouncerShow, startPgBouncer } from '../harness/pgbouncer.js';
import { divergence } from '../support/db.js';
import { logged, type NodeProcess, spawnNode } from '../support/nodes.js';

const LEASE_TTL_MS = 2_000;
const TICK_MS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a refresh node behind PgBouncer in transaction mode', () => {
  let server: PgServer;
  let database: TestDatabase;
  let bouncer: PgBouncer;
  let nats: NatsServer;
  let node: NodeProcess | undefined;
  /** through PgBouncer, like an application would */
  let app: pg.Client;
  /** straight to PostgreSQL, for what PgBouncer hides (pg_stat_activity, pg_locks) */
  let direct: pg.Client;

  beforeAll(async () => {
    [server, nats] = await Promise.all([startPostgres({ throwaway: true }), startNats()]);
    database = await createDatabase(server);
    bouncer = await startPgBouncer({ server, poolMode: 'transaction', poolSize: 6 });
    direct = new pg.Client({ connectionString: database.url });
    await direct.connect();
    app = new pg.Client({ connectionString: bouncer.url(database.name) });
    await app.connect();
  }, 60_000);

  afterAll(async () => {
    await node?.stop();
    await app?.end().catch(() => undefined);
    await direct?.end().catch(() => undefined);
    await bouncer?.stop();
    await nats?.stop();
    await server?.stop();
  });

  it('runs in transaction pool mode', async () => {
    const config = await pgbouncerShow(bouncer, 'CONFIG');
    expect(config.find((r) => r.key === 'pool_mode')?.value).toBe('transaction');
  });

  it('migrates and creates stream tables through the pooler', async () => {
    const result = await migrate(app);
    expect(result.applied.length).toBe(result.version);
    await app.query(`
      CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
      INSERT INTO orders (customer, amount) SELECT 1 + g % 10, g % 50 FROM generate_series(1, 300) g;
      CREATE TABLE notes (body text, tag int);
      INSERT INTO notes SELECT 'b' || (g % 5), g % 3 FROM generate_series(1, 60) g;`);
    await app.query("SELECT pgtrickle.create_stream_table('totals', $1, '200ms')", [
      'SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer',
    ]);
    await app.query("SELECT pgtrickle.create_stream_table('big', $1, 'calculated')", [
      'SELECT id, customer, amount FROM orders WHERE amount > 25',
    ]);
    await app.query("SELECT pgtrickle.create_stream_table('big_totals', $1, '200ms')", [
      'SELECT customer, count(*) AS n FROM big GROUP BY customer',
    ]);
    expect(await divergence(app, 'totals')).toBe(0);
  });

  it('compiles and installs a plan inside the caller’s transaction, as a node’s reinit does', async () => {
    // A COMMIT of its own in the middle would end the reinit's transaction: the rest would run
    // in autocommit on whichever server connection PgBouncer hands out next.
    const { rows: ids } = await app.query<{ id: string }>("SELECT pgtrickle._resolve('totals')::text AS id");
    await app.query('BEGIN');
    try {
      await app.query("SELECT set_config('search_path', 'public, pg_catalog', true)");
      const before = await app.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
      const outcome = await planStreamTable(app, String(ids[0]?.id));
      expect(outcome.mode).toBe('DIFFERENTIAL');
      const after = await app.query<{ xid: string; path: string }>(
        "SELECT pg_current_xact_id()::text AS xid, current_setting('search_path') AS path",
      );
      expect(after.rows[0]).toEqual({ xid: before.rows[0]?.xid, path: 'public, pg_catalog' });
      expect(app.getTransactionStatus()).toBe('T');
    } finally {
      await app.query('ROLLBACK');
    }
  });

  it('completes refresh cycles with --connection-pooler-mode transaction', async () => {
    node = spawnNode({
      id: 'bouncer1',
      databaseUrl: bouncer.url(database.name),
      natsUrls: nats.urls,
      leaseTtlMs: LEASE_TTL_MS,
      tickMs: TICK_MS,
      connectionPoolerMode: 'transaction',
    });
    await logged(node, 'pgtrickle node started', 30_000);
    const started = node.logs.find((l) => l.msg === 'pgtrickle node started');
    expect(started?.connectionPoolerMode).toBe('transaction');

    // Three rounds of DML, each one transaction through the pooler, and each consumed by a
    // scheduled refresh of every stream table: its xid is visible in their frontiers.
    const rounds: number[] = [];
    for (let round = 1; round <= 3; round++) {
      await app.query('BEGIN');
      await app.query(`
        INSERT INTO orders (customer, amount) SELECT 1 + g % 10, (g * ${round * 7}) % 50 FROM generate_series(1, 20) g;
        UPDATE orders SET amount = (amount + ${round}) % 50 WHERE id % 7 = ${round};
        DELETE FROM orders WHERE id % 11 = ${round};`);
      const { rows } = await app.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
      await app.query('COMMIT');
      const committed = Date.now();
      await expect
        .poll(
          async () =>
            (
              await direct.query<{ n: number }>(
                `SELECT count(DISTINCT pgt_id)::int AS n FROM pgtrickle.pgt_refresh_history
                  WHERE initiated_by = 'SCHEDULER' AND status = 'COMPLETED' AND node_id = 'bouncer1'
                    AND pg_visible_in_snapshot($1::xid8, frontier)`,
                [rows[0]?.xid],
              )
            ).rows[0]?.n,
          { timeout: 15_000, interval: 50 },
        )
        .toBe(3);
      rounds.push(Date.now() - committed);
    }
    console.log(`each DML round consumed by all 3 stream tables after ${rounds.join(', ')} ms`);
    const { rows: history } = await direct.query<{ name: string; action: string; n: number }>(`
      SELECT st.pgt_name AS name, h.action, count(*)::int AS n
        FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables st USING (pgt_id)
       WHERE h.node_id = 'bouncer1' AND h.status = 'COMPLETED'
       GROUP BY 1, 2 ORDER BY 1, 2`);
    console.log(`history written through PgBouncer: ${JSON.stringify(history)}`);
    // The node compiled and installed plans (reinit) through the pooler, then refreshed differentially.
    expect(history.some((h) => h.action === 'DIFFERENTIAL')).toBe(true);
    const { rows: failed } = await direct.query(
      "SELECT * FROM pgtrickle.pgt_refresh_history WHERE status <> 'COMPLETED'",
    );
    expect(failed).toEqual([]);
    expect(node.logs.filter((l) => l.msg === 'refresh failed')).toEqual([]);
  }, 60_000);

  it('sees a stream table created while it runs without LISTEN', async () => {
    await app.query("SELECT pgtrickle.create_stream_table('notes_by_body', $1, '200ms')", [
      'SELECT body, count(*) AS n FROM notes GROUP BY body',
    ]);
    const createdAt = Date.now();
    await app.query("INSERT INTO notes VALUES ('late', 1), ('late', 2)");
    await expect
      .poll(
        async () =>
          (
            await direct.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history h
                 JOIN pgtrickle.pgt_stream_tables st USING (pgt_id)
                WHERE st.pgt_name = 'notes_by_body' AND h.node_id = 'bouncer1' AND h.status = 'COMPLETED'`,
            )
          ).rows[0]?.n,
        // The catalog is reread every 2 s in transaction mode; a lease round and a tick follow.
        { timeout: 15_000, interval: 100 },
      )
      .toBeGreaterThan(0);
    console.log(
      `a stream table created through PgBouncer was first refreshed ${Date.now() - createdAt} ms later`,
    );
    // No session of the node's stays connected for notifications.
    const { rows } = await direct.query(
      "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE '%listener%'",
    );
    expect(rows).toEqual([]);
  }, 30_000);

  it('holds the oracle at quiescence, and PgBouncer carried the node’s transactions', async () => {
    await sleep(500);
    for (const st of ['totals', 'big', 'big_totals', 'notes_by_body']) {
      await expect.poll(() => divergence(direct, st), { timeout: 10_000, interval: 200 }).toBe(0);
    }
    const stats = await pgbouncerShow(bouncer, 'STATS');
    const ours = stats.find((r) => r.database === database.name);
    console.log(`PgBouncer transactions for the test database: ${ours?.total_xact_count}`);
    expect(Number(ours?.total_xact_count)).toBeGreaterThan(50);
    const { rows } = await direct.query(
      "SELECT pgt_name, status FROM pgtrickle.pgt_stream_tables WHERE status <> 'ACTIVE'",
    );
    expect(rows).toEqual([]);
  }, 30_000);

  it('is not supported behind PgBouncer in statement mode: the transactions a node needs are refused', async () => {
    const statement = await startPgBouncer({ server, poolMode: 'statement', poolSize: 2 });
    const fresh = await createDatabase(server);
    const client = new pg.Client({ connectionString: statement.url(fresh.name) });
    client.on('error', () => undefined);
    try {
      await client.connect();
      expect((await client.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n).toBe(1);
      // Migrations, reinitializations and lease grants are transactions of several statements.
      const err = await migrate(client).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(err)).toMatch(/transaction blocks not allowed in statement pooling mode/);
    } finally {
      await client.end().catch(() => undefined);
      await statement.stop();
      await fresh.drop();
    }
  });

  it('keeps LISTEN working behind PgBouncer in session mode, where a node runs in session mode', async () => {
    const session = await startPgBouncer({ server, poolMode: 'session', poolSize: 4 });
    const listener = new pg.Client({ connectionString: session.url(database.name) });
    const notifier = new pg.Client({ connectionString: session.url(database.name) });
    try {
      await Promise.all([listener.connect(), notifier.connect()]);
      const received = new Promise<string | undefined>((resolve) =>
        listener.on('notification', (msg) => resolve(msg.payload)),
      );
      await listener.query('LISTEN pg_trickle_catalog');
      await notifier.query("SELECT pg_notify('pg_trickle_catalog', 'through session mode')");
      expect(await received).toBe('through session mode');
    } finally {
      await Promise.all([listener.end(), notifier.end()]).catch(() => undefined);
      await session.stop();
    }
  });
});
