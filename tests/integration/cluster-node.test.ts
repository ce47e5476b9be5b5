// One refresh node in this process against real PostgreSQL and NATS: it takes every stream
// table, keeps them equal to their queries (I5) as the sources change, publishes one `refreshed`
// event per committed refresh, and hands everything back when it stops.
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  bucketName,
  decodeEvent,
  type Lease,
  leaseKey,
  NatsLeaseStore,
  type RefreshedEvent,
} from '../../cluster/nats/index.js';
import { RefreshNode } from '../../cluster/node/index.js';
import { createLogger } from '../../shared/logger.js';
import { divergence, migratedDatabase, type TestDb } from '../support/db.js';

const natsUrl = inject('natsUrl');
const NAMES = ['by_customer', 'big_orders', 'customer_counts', 'top_totals'];

describe.skipIf(!natsUrl)('a refresh node', () => {
  let db: TestDb;
  let nc: NatsConnection;
  let node: RefreshNode | undefined;
  const refreshed: RefreshedEvent[] = [];

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`
      CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric);
      INSERT INTO orders SELECT g, 'c' || (g % 5), g FROM generate_series(1, 50) g;
      SELECT pgtrickle.create_stream_table('by_customer',
        'SELECT customer, sum(amount) AS total FROM orders GROUP BY customer', 'calculated');
      SELECT pgtrickle.create_stream_table('big_orders', 'SELECT id, amount FROM orders WHERE amount > 25', '200ms');
      SELECT pgtrickle.create_stream_table('customer_counts',
        'SELECT customer, count(*) AS n FROM orders GROUP BY customer', '300ms');
      SELECT pgtrickle.create_stream_table('top_totals', 'SELECT customer, total FROM by_customer WHERE total > 100', '300ms');`);
    nc = await connect({ servers: natsUrl });
    const db_name = new URL(db.url).pathname.slice(1);
    nc.subscribe(`pgtrickle.${db_name}.st.*.*.refreshed`, {
      callback: (_e, msg) => {
        refreshed.push(decodeEvent(msg.data) as RefreshedEvent);
      },
    });
    await nc.flush();
    node = new RefreshNode({
      databaseUrl: db.url,
      natsUrls: [natsUrl],
      logger: createLogger({ level: process.env.PGT_TEST_LOG ?? 'warn' }),
      nodeId: 'solo',
      leaseTtlMs: 1_500,
      tickMs: 50,
    });
    await node.start();
  });

  afterAll(async () => {
    await node?.stop();
    await nc?.close();
    await db?.drop();
  });

  it('takes every stream table and compiles them', async () => {
    await expect.poll(() => node?.heldIds().length, { timeout: 10_000 }).toBe(NAMES.length);
    expect(node?.isCoordinator()).toBe(true);
    await expect
      .poll(
        async () =>
          (
            await db.admin.query(
              'SELECT count(*)::int AS n FROM pgtrickle.pgt_stream_tables WHERE effective_mode IS NOT NULL',
            )
          ).rows[0]?.n,
        { timeout: 10_000 },
      )
      .toBe(NAMES.length);
  });

  it('keeps every stream table equal to its query while the sources change', async () => {
    for (let round = 0; round < 5; round++) {
      await db.admin.query(`
        INSERT INTO orders SELECT g, 'c' || (g % 7), g % 40 FROM generate_series(${100 + round * 10}, ${109 + round * 10}) g;
        UPDATE orders SET amount = amount + 3 WHERE id % 4 = ${round % 4};
        DELETE FROM orders WHERE id % 9 = ${round};`);
      await new Promise((r) => setTimeout(r, 150));
    }
    for (const name of NAMES) {
      await expect.poll(() => divergence(db.admin, name), { timeout: 10_000, interval: 100 }).toBe(0);
    }
    const { rows } = await db.admin.query(
      "SELECT DISTINCT node_id FROM pgtrickle.pgt_refresh_history WHERE initiated_by = 'SCHEDULER'",
    );
    expect(rows).toEqual([{ node_id: 'solo' }]);
  });

  it('publishes one refreshed event per committed scheduled refresh', async () => {
    // Quiet sources: every refresh under way finishes and its event arrives.
    await new Promise((r) => setTimeout(r, 600));
    await nc.flush();
    const { rows } = await db.admin.query<{ id: string }>(
      `SELECT refresh_id::text AS id FROM pgtrickle.pgt_refresh_history
        WHERE initiated_by = 'SCHEDULER' AND status = 'COMPLETED' ORDER BY refresh_id`,
    );
    const ids = refreshed.map((e) => e.refresh_id).sort((a, b) => Number(a) - Number(b));
    expect(ids).toEqual(rows.map((r) => r.id));
    const sample = refreshed.find((e) => e.action === 'DIFFERENTIAL');
    expect(sample).toMatchObject({ v: 1, type: 'refreshed', node: 'solo', schema: 'public' });
    expect(sample?.frontier).toMatch(/^\d+:\d+:/);
  });

  it('gives a lease of a superseded epoch back at once, and takes the regrant', async () => {
    // Two coordinators granted the table at once on a replicated bucket, whose compare-and-set
    // both passed, and the write of the older epoch landed last (cluster/nats/leases.ts): the
    // lease names this node, the catalog an epoch that nobody's lease names.
    const dbName = decodeURIComponent(new URL(db.url).pathname.slice(1));
    const store = new NatsLeaseStore(await new Kvm(nc).open(bucketName(dbName)));
    const { rows } = await db.admin.query<{ id: string }>(
      "SELECT pgt_id::text AS id FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'big_orders'",
    );
    const id = rows[0]?.id as string;
    let superseded: Lease | undefined;
    while (superseded === undefined) {
      const current = await store.read(leaseKey(id));
      const granted = await db.admin.query<{ epoch: string }>(
        'SELECT pgtrickle._grant_epoch($1)::text AS epoch',
        [id],
      );
      await db.admin.query('SELECT pgtrickle._grant_epoch($1)', [id]);
      // Far from expiring: the table would wait for it a minute if the node kept it.
      superseded = await store.write(
        leaseKey(id),
        { holder: 'solo', epoch: Number(granted.rows[0]?.epoch), expiresAt: Date.now() + 60_000 },
        current?.revision ?? 0,
      );
    }
    const epoch = superseded.epoch;
    await expect
      .poll(
        async () =>
          ((await store.read(leaseKey(id)))?.epoch ?? 0) > epoch + 1 && node?.heldIds().includes(id),
        {
          timeout: 10_000,
          interval: 50,
        },
      )
      .toBe(true);
    await db.admin.query("INSERT INTO orders VALUES (1000, 'c1', 99)");
    await expect.poll(() => divergence(db.admin, 'big_orders'), { timeout: 10_000, interval: 100 }).toBe(0);
  });

  it('hands every lease back when it stops', async () => {
    await node?.stop();
    expect(node?.heldIds()).toEqual([]);
    node = undefined;
  });
});
