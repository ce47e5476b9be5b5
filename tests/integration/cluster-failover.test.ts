// Three `pgtrickle node` processes keep 30 stream tables (a 3-level chain, a diamond and 24
// others) fresh under continuous random DML while one node is SIGKILLed in the middle of a
// refresh and another is paused with SIGSTOP past its lease TTL. Checked: the dead node's tables
// start refreshing elsewhere within the lease TTL plus one tick (the bound, with the
// node's default tick), no table is refreshed by two nodes at
// once (per table, history frontiers strictly increase and fencing epochs never go back), the
// paused node gives its tables up, and the oracle (I5) holds at quiescence. Run against one
// NATS server and against a 3-node NATS cluster.
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bucketName,
  COORDINATOR_KEY,
  decode,
  type Lease,
  leaseKey,
  type Member,
  memberKey,
  NatsLeaseStore,
} from '../../cluster/nats/index.js';
import { type NatsServer, startNats } from '../harness/index.js';
import { divergence, migratedDatabase, type TestDb } from '../support/db.js';
import { logged, type NodeProcess, spawnNode } from '../support/nodes.js';

const LEASE_TTL_MS = 2_000;
// The node's defaults: heartbeats (renewals, coordinator rounds) every third of the TTL.
const HEARTBEAT_MS = Math.floor(LEASE_TTL_MS / 3);
// The node's default tick.
const TICK_MS = 100;
const SCHEDULE_MS = 300;
// The bound, asserted: the lease TTL plus one tick, from the kill to the start of each
// table's first refresh elsewhere. A dead node's lease, heartbeat entry and coordinator term
// expire at most one TTL after the kill (all are written before it), and the tick is the budget
// for what follows: the coordinator's alarm, one statement for the epochs, the lease writes, the
// watch reaching the new holder, its one catalog read and the refresh's first statement, five
// round trips between three node processes, PostgreSQL and NATS (three servers in the cluster
// variant) sharing 2 cores with the churn and the other nodes' refreshes. Measured over 20 runs
// (10 per variant) on 2 cores: 10–60 ms after the expiry for most tables; up to 104 ms for the
// diamond's join and for a table whose upstream moved too, which wait for that upstream's first
// refresh on its new node (the diamond's group retries while a member's refresh holds its lock);
// the worst run took 1.016 × TTL (2,033 ms). A member taken over with its plan still to compile
// took 200–300 ms more (its compile turn, then its join's), hence the compiled plans before the
// kill. A kill just after a renewal that also catches the diamond's wait could exceed the bound.
const TAKEOVER_BOUND_MS = LEASE_TTL_MS + TICK_MS;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function streamTables(): [string, string, string][] {
  const s = `${SCHEDULE_MS}ms`;
  const defs: [string, string, string][] = [
    ['chain_1', 'SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer', s],
    ['chain_2', 'SELECT customer, total FROM chain_1 WHERE total > 50', 'calculated'],
    ['chain_3', 'SELECT customer, total FROM chain_2 WHERE customer % 2 = 0', s],
    ['dia_a', 'SELECT id, customer, amount FROM orders WHERE amount > 10', 'calculated'],
    ['dia_b', 'SELECT customer, sum(amount) AS s FROM dia_a GROUP BY customer', 'calculated'],
    ['dia_c', 'SELECT customer, count(*) AS n FROM dia_a GROUP BY customer', 'calculated'],
    ['dia_d', 'SELECT b.customer, b.s, c.n FROM dia_b b JOIN dia_c c ON c.customer = b.customer', s],
  ];
  for (let i = 0; i < 8; i++) {
    defs.push([`filter_${i}`, `SELECT id, amount FROM orders WHERE amount % 8 = ${i}`, s]);
  }
  for (let i = 0; i < 8; i++) {
    defs.push([
      `region_${i}`,
      `SELECT c.region, count(*) AS n, sum(o.amount) AS total
         FROM orders o JOIN customers c ON c.id = o.customer
        WHERE o.id % 8 = ${i} GROUP BY c.region`,
      s,
    ]);
  }
  for (let i = 0; i < 7; i++) {
    defs.push([`notes_${i}`, `SELECT body, count(*) AS n FROM notes WHERE tag = ${i} GROUP BY body`, s]);
  }
  return defs;
}

/** Random DML in short transactions until stopped: key changes, deletes, keyless duplicates. */
function churn(db: pg.Client): { stop(): Promise<number> } {
  let running = true;
  let statements = 0;
  const loop = (async () => {
    let n = 0;
    while (running) {
      n++;
      const r = Math.floor(Math.random() * 1_000_000);
      await db.query(`
        INSERT INTO orders (customer, amount) SELECT 1 + (${r} + g) % 20, (${r} * g) % 97 FROM generate_series(1, 3) g;
        UPDATE orders SET amount = (amount + ${r}) % 97 WHERE id % 13 = ${n % 13};
        UPDATE orders SET customer = 1 + (customer + 1) % 20 WHERE id % 29 = ${n % 29};
        DELETE FROM orders WHERE id % 31 = ${n % 31} AND random() < 0.3;
        INSERT INTO notes VALUES ('b' || ${r % 5}, ${r % 7}), ('b' || ${r % 5}, ${r % 7});
        DELETE FROM notes WHERE ctid = (SELECT ctid FROM notes WHERE tag = ${n % 7} LIMIT 1);`);
      statements++;
      await sleep(40);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return statements;
    },
  };
}

async function leasesNow(kv: KV): Promise<Map<string, Lease>> {
  const store = new NatsLeaseStore(kv);
  const out = new Map<string, Lease>();
  for await (const key of await kv.keys(leaseKey('>'))) {
    const lease = await store.read(key);
    if (lease) out.set(key.slice(leaseKey('').length), lease);
  }
  return out;
}

/**
 * Per stream table, in commit order: the frontier advances and the fencing epoch never goes
 * back. Two nodes refreshing at once, or a fenced-out node committing, would break one. A
 * refresh takes its xid (the row lock) before the snapshot of its query, which leaves it out, so
 * when no other transaction took an xid in between, the next refresh's snapshot has the same
 * xmax: sequential, and no overlap. One that overlapped took its snapshot before the previous
 * refresh committed: a smaller xmax, or the same xmax in a transaction begun before that end.
 */
async function overlaps(db: pg.Client): Promise<unknown[]> {
  const { rows } = await db.query(`
    WITH h AS (
      SELECT pgt_id, refresh_id, node_id, fencing_epoch, action, initiated_by, start_time, end_time,
             pg_snapshot_xmax(frontier)::text::numeric AS xmax,
             lag(pg_snapshot_xmax(frontier)::text::numeric) OVER w AS prev_xmax,
             lag(fencing_epoch) OVER w AS prev_epoch,
             lag(refresh_id) OVER w AS prev_refresh_id, lag(node_id) OVER w AS prev_node_id,
             lag(action) OVER w AS prev_action, lag(initiated_by) OVER w AS prev_initiated_by,
             lag(start_time) OVER w AS prev_start_time, lag(end_time) OVER w AS prev_end_time
        FROM pgtrickle.pgt_refresh_history
       WHERE status = 'COMPLETED'
      WINDOW w AS (PARTITION BY pgt_id ORDER BY refresh_id))
    SELECT * FROM h
     WHERE xmax < prev_xmax OR (xmax = prev_xmax AND start_time < prev_end_time)
        OR fencing_epoch < prev_epoch`);
  return rows;
}

async function idsByName(db: pg.Client): Promise<Map<string, string>> {
  const { rows } = await db.query<{ id: string; name: string }>(
    'SELECT pgt_id::text AS id, pgt_name AS name FROM pgtrickle.pgt_stream_tables',
  );
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** The pid of a node's backend that is running a scheduled refresh right now, if any. */
async function refreshingNode(db: pg.Client): Promise<string | undefined> {
  const { rows } = await db.query<{ node: string }>(`
    SELECT substring(application_name FROM '^pgtrickle node (\\S+)$') AS node
      FROM pg_stat_activity
     WHERE application_name LIKE 'pgtrickle node %' AND state = 'active'
       AND query LIKE '%_node_refresh%'`);
  return rows[0]?.node;
}

function suite(name: string, natsNodes: number) {
  describe(name, () => {
    let db: TestDb;
    let nats: NatsServer;
    let nc: NatsConnection;
    let kv: KV;
    const nodes = new Map<string, NodeProcess>();
    let dml: { stop(): Promise<number> } | undefined;
    const definitions = streamTables();

    beforeAll(async () => {
      db = await migratedDatabase();
      nats = await startNats({ cluster: natsNodes > 1 ? natsNodes : undefined, throwaway: natsNodes > 1 });
      await db.admin.query(`
        CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
        INSERT INTO customers SELECT g, 'r' || (g % 4) FROM generate_series(1, 20) g;
        CREATE TABLE orders (id serial PRIMARY KEY, customer int, amount int);
        INSERT INTO orders (customer, amount) SELECT 1 + g % 20, g % 97 FROM generate_series(1, 400) g;
        CREATE TABLE notes (body text, tag int);
        INSERT INTO notes SELECT 'b' || (g % 5), g % 7 FROM generate_series(1, 100) g;`);
      for (const [st, query, schedule] of definitions) {
        await db.admin.query('SELECT pgtrickle.create_stream_table($1, $2, $3)', [st, query, schedule]);
      }
      expect(definitions.length).toBe(30);
      for (const id of ['n1', 'n2', 'n3']) {
        nodes.set(
          id,
          spawnNode({
            id,
            databaseUrl: db.url,
            natsUrls: nats.urls,
            leaseTtlMs: LEASE_TTL_MS,
            tickMs: TICK_MS,
            kvReplicas: natsNodes,
          }),
        );
      }
      nc = await connect({ servers: nats.urls });
      const dbName = decodeURIComponent(new URL(db.url).pathname.slice(1));
      kv = await new Kvm(nc).open(bucketName(dbName));
    }, 120_000);

    afterAll(async () => {
      await dml?.stop().catch(() => undefined);
      await Promise.all([...nodes.values()].map((n) => n.stop()));
      await nc?.close();
      await nats?.stop();
      await db?.drop();
    });

    it('spreads the 30 stream tables over the 3 nodes and refreshes each of them', async () => {
      await Promise.all([...nodes.values()].map((n) => logged(n, 'pgtrickle node started', 60_000)));
      dml = churn(await db.connect());
      await expect
        .poll(
          async () =>
            (
              await db.admin.query(
                `SELECT count(DISTINCT pgt_id)::int AS n FROM pgtrickle.pgt_refresh_history
                  WHERE initiated_by = 'SCHEDULER' AND status = 'COMPLETED'`,
              )
            ).rows[0]?.n,
          { timeout: 90_000, interval: 250 },
        )
        .toBe(30);
      await expect
        .poll(
          async () => {
            const held = new Map<string, number>();
            for (const lease of (await leasesNow(kv)).values()) {
              held.set(lease.holder, (held.get(lease.holder) ?? 0) + 1);
            }
            return [...held.values()].sort();
          },
          { timeout: 20_000, interval: 250 },
        )
        .toEqual([10, 10, 10]);
      // Every plan compiled before anything is killed: the tables start without one, and a plan
      // that adds hidden columns to a storage table marks the tables reading it for another
      // compile, one compile at a time across the cluster. A table still waiting for its turn
      // compiles wherever it goes, which no takeover bound covers; one a node lost track of
      // would never settle.
      await expect
        .poll(
          async () =>
            (
              await db.admin.query<{ n: number }>(
                `SELECT count(*)::int AS n FROM pgtrickle.pgt_stream_tables
                  WHERE needs_reinit OR effective_mode IS NULL`,
              )
            ).rows[0]?.n,
          { timeout: 30_000, interval: 100 },
        )
        .toBe(0);
    }, 120_000);

    it('moves the tables of a node SIGKILLed mid-refresh to the others within the lease TTL plus one tick', async () => {
      let victim: string | undefined;
      const deadline = Date.now() + 30_000;
      while (victim === undefined && Date.now() < deadline) {
        victim = await refreshingNode(db.admin);
        if (victim === undefined) await sleep(5);
      }
      expect(victim, 'a node caught in the middle of a refresh').toBeDefined();
      const killed = nodes.get(victim as string) as NodeProcess;
      killed.signal('SIGKILL');
      const killedAt = Date.now();
      await killed.exited;
      const lastBeat = await kv.get(memberKey(killed.id));
      const memberExpiry = lastBeat
        ? decode<Member & { v: 1 }>(lastBeat.value, 'a member', 1).expiresAt - killedAt
        : NaN;
      const orphans = [...(await leasesNow(kv))].filter(([, l]) => l.holder === killed.id);
      const orphaned = orphans.map(([id]) => id);
      expect(orphaned.length).toBeGreaterThan(0);
      // When each table became free to take: its lease's expiry or its holder's, the earlier, and
      // not before the coordinator's term ran out if the dead node was the coordinator.
      const term = await new NatsLeaseStore(kv).read(COORDINATOR_KEY);
      const termExpiry = term?.holder === killed.id ? term.expiresAt - killedAt : 0;
      const expired = new Map(
        orphans.map(([id, l]) => [id, Math.max(termExpiry, Math.min(l.expiresAt - killedAt, memberExpiry))]),
      );

      const names = await idsByName(db.admin);
      const takeover = new Map<string, number>();
      const started = new Map<string, number>();
      await expect
        .poll(
          async () => {
            const { rows } = await db.admin.query<{ id: string; ms: string; start: string }>(
              `SELECT pgt_id::text AS id,
                      (extract(epoch FROM min(end_time)) * 1000)::bigint::text AS ms,
                      (extract(epoch FROM min(start_time)) * 1000)::bigint::text AS start
                 FROM pgtrickle.pgt_refresh_history
                WHERE pgt_id = ANY ($1::bigint[]) AND status = 'COMPLETED' AND node_id <> $2
                  AND end_time > to_timestamp($3 / 1000.0)
                GROUP BY pgt_id`,
              [orphaned, killed.id, killedAt],
            );
            for (const r of rows) {
              takeover.set(r.id, Number(r.ms) - killedAt);
              started.set(r.id, Number(r.start) - killedAt);
            }
            return takeover.size;
          },
          { timeout: 30_000, interval: 100 },
        )
        .toBe(orphaned.length);
      const worst = Math.max(...started.values());
      // Where the time went, per table: the grant (coordinator), the new holder taking the lease.
      const afterKill = [...nodes.values()].flatMap((n) =>
        n.logs
          .filter((l) => Number(l.time) >= killedAt)
          .map((l): Record<string, unknown> => ({ ...l, by: n.id })),
      );
      const firstLog = (msg: string, id: string) => {
        const first = afterKill
          .filter((l) => l.msg === msg && (l.st === id || l.id === id))
          .sort((a, b) => Number(a.time) - Number(b.time))[0];
        return first === undefined
          ? '?'
          : `${Number(first.time) - killedAt} (${String(first.to ?? first.by)})`;
      };
      const timeline = orphaned
        .map(
          (id) =>
            `${names.get(id)}: free ${expired.get(id)}, granted ${firstLog('lease granted', id)}, ` +
            `taken ${firstLog('stream table taken', id)}, started ${started.get(id)}, committed ${takeover.get(id)}`,
        )
        .join('; ');
      const afterFree = orphaned.map((id) => (started.get(id) ?? 0) - (expired.get(id) ?? 0));
      const ratio = (ms: number) => (ms / LEASE_TTL_MS).toFixed(3);
      console.log(
        `${name}: ${orphaned.length} tables of ${killed.id} started refreshing elsewhere after ` +
          `${Math.min(...started.values())}–${worst} ms = ${ratio(Math.min(...started.values()))}–${ratio(worst)} × TTL ` +
          `(bound ${TAKEOVER_BOUND_MS} ms: TTL ${LEASE_TTL_MS} + tick ${TICK_MS}), ` +
          `${Math.min(...afterFree)}–${Math.max(...afterFree)} ms after their lease or heartbeat expired; ` +
          `committed after ${Math.min(...takeover.values())}–${Math.max(...takeover.values())} ms; ` +
          `its heartbeat expired ${memberExpiry} ms after the kill` +
          (termExpiry > 0 ? `, its term as coordinator ${termExpiry} ms after` : '') +
          `\n(ms after the kill) ${timeline}`,
      );
      // On failure, what the survivors logged above info meanwhile says where the time went.
      const troubles = afterKill
        .filter((l) => Number(l.level) > 30)
        .map((l) => `${l.by} +${Number(l.time) - killedAt} ${String(l.msg)} ${String(l.st ?? '')}`);
      expect(worst, `${timeline}\n${troubles.join('\n')}`).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
      nodes.delete(killed.id);
      expect(await overlaps(db.admin)).toEqual([]);
    }, 90_000);

    it('fences out a node paused past its lease TTL: it commits nothing stale and gives its tables up', async () => {
      const leases = await leasesNow(kv);
      const paused = [...nodes.values()].find((n) => [...leases.values()].some((l) => l.holder === n.id));
      expect(paused).toBeDefined();
      const node = paused as NodeProcess;
      const taken = [...leases].filter(([, l]) => l.holder === node.id);
      node.signal('SIGSTOP');
      const pausedAt = Date.now();
      // Past the TTL, every table it held has a newer lease on another node.
      await expect
        .poll(
          async () => {
            const now = await leasesNow(kv);
            return taken.filter(([id, old]) => {
              const l = now.get(id);
              return l !== undefined && l.holder !== node.id && l.epoch > old.epoch;
            }).length;
          },
          { timeout: LEASE_TTL_MS + HEARTBEAT_MS + 10_000, interval: 100 },
        )
        .toBe(taken.length);
      node.signal('SIGCONT');
      const resumedAt = Date.now();
      await logged(node, 'lease lost', 10_000);
      await sleep(LEASE_TTL_MS);
      // A refresh its backend was running when the node stopped may commit under the old epoch
      // (the grant waits for its row lock); nothing under the old epoch commits after SIGCONT.
      const { rows: stale } = await db.admin.query(
        `SELECT h.pgt_id, h.fencing_epoch, t.old_epoch
           FROM pgtrickle.pgt_refresh_history h
           JOIN unnest($2::bigint[], $3::bigint[]) AS t (id, old_epoch) ON t.id = h.pgt_id
          WHERE h.node_id = $1 AND h.status = 'COMPLETED' AND h.end_time > to_timestamp($4 / 1000.0)
            AND h.fencing_epoch <= t.old_epoch`,
        [node.id, taken.map(([id]) => id), taken.map(([, l]) => l.epoch), resumedAt],
      );
      expect(stale).toEqual([]);
      const refused = node.logs.filter(
        (l) => l.msg === 'refresh failed' && Number(l.time) >= resumedAt,
      ).length;
      console.log(
        `${name}: ${node.id} paused ${resumedAt - pausedAt} ms holding ${taken.length} tables; ` +
          `after SIGCONT it logged ${node.logs.filter((l) => l.msg === 'lease lost' && Number(l.time) >= resumedAt).length} lost leases and ${refused} refused refreshes`,
      );
      expect(await overlaps(db.admin)).toEqual([]);
    }, 60_000);

    it('refuses a refresh under a superseded epoch (PT001), and the node gives the table up', async () => {
      const leases = await leasesNow(kv);
      const [id, lease] = [...leases].find(([, l]) => nodes.has(l.holder)) as [string, Lease];
      const holder = nodes.get(lease.holder) as NodeProcess;
      const names = await idsByName(db.admin);
      // A grant whose lease write has not reached the holder yet: the catalog alone moved on.
      const { rows } = await db.admin.query<{ epoch: string }>(
        'SELECT pgtrickle._grant_epoch($1)::text AS epoch',
        [id],
      );
      const superseded = Number(rows[0]?.epoch);
      const { rows: clock } = await db.admin.query<{ at: Date }>('SELECT clock_timestamp() AS at');
      const givenUp = () =>
        holder.logs.some(
          (l) => l.msg === 'stream table given up' && String(l.st).includes(names.get(id) ?? '?'),
        );
      await expect.poll(givenUp, { timeout: 15_000, interval: 100 }).toBe(true);
      // Whatever locked the row after the grant saw the new epoch: nothing older commits.
      const { rows: stale } = await db.admin.query(
        `SELECT refresh_id, fencing_epoch, node_id FROM pgtrickle.pgt_refresh_history
          WHERE pgt_id = $1 AND status = 'COMPLETED' AND fencing_epoch < $2 AND end_time > $3`,
        [id, superseded, clock[0]?.at],
      );
      expect(stale).toEqual([]);
      // The coordinator regrants it, and it refreshes again under a newer epoch.
      await expect
        .poll(
          async () =>
            (
              await db.admin.query<{ n: number }>(
                `SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history
                  WHERE pgt_id = $1 AND status = 'COMPLETED' AND fencing_epoch > $2`,
                [id, superseded],
              )
            ).rows[0]?.n,
          { timeout: 15_000, interval: 100 },
        )
        .toBeGreaterThan(0);
      expect(await overlaps(db.admin)).toEqual([]);
    }, 60_000);

    // What a stream table that would not converge last did, for the failure message.
    const lastOf = async (st: string) => {
      const { rows } = await db.admin.query(
        `SELECT s.status, s.fencing_epoch, s.needs_reinit, h.action, h.status AS outcome, h.node_id, h.error_message
           FROM pgtrickle.pgt_stream_tables s
           LEFT JOIN LATERAL (SELECT * FROM pgtrickle.pgt_refresh_history r WHERE r.pgt_id = s.pgt_id
                               ORDER BY r.refresh_id DESC LIMIT 3) h ON true
          WHERE s.pgt_name = $1`,
        [st],
      );
      return `${st}: ${JSON.stringify(rows)}`;
    };

    it('holds the oracle for every stream table at quiescence', async () => {
      const statements = await dml?.stop();
      dml = undefined;
      expect(statements).toBeGreaterThan(20);
      for (const [st] of definitions) {
        try {
          await expect.poll(() => divergence(db.admin, st), { timeout: 30_000, interval: 200 }).toBe(0);
        } catch (err) {
          console.log(`did not converge: ${await lastOf(st)}`);
          throw err;
        }
      }
      const { rows } = await db.admin.query(
        "SELECT pgt_name, status FROM pgtrickle.pgt_stream_tables WHERE status <> 'ACTIVE'",
      );
      expect(rows).toEqual([]);
      expect(await overlaps(db.admin)).toEqual([]);
    }, 120_000);
  });
}

suite('a cluster of 3 refresh nodes on one NATS server', 1);
suite('a cluster of 3 refresh nodes on a 3-node NATS cluster', 3);
