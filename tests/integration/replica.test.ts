// A refresh node pointed at a hot standby: a real streaming replica made by pg_basebackup -R
// of a throwaway primary. Checked: the node logs that it skips the server, writes nothing (no
// migration, no epoch grant, no history, no NATS membership) while the server is in recovery,
// and starts refreshing on its own once the standby is promoted, with the oracle (I5) holding.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketName } from '../../cluster/nats/index.js';
import { migrate } from '../../sql/migrate.js';
import {
  createDatabase,
  freePort,
  type NatsServer,
  type PgServer,
  startNats,
  startPostgres,
  type TestDatabase,
} from '../harness/index.js';
import { asPostgresUser, isRoot, removeNow, stopPostgresNow, track } from '../harness/processes.js';
import { divergence } from '../support/db.js';
import { logged, type NodeProcess, spawnNode } from '../support/nodes.js';

const execFileAsync = promisify(execFile);
const SKIPPED = 'pgtrickle node skipped: server is in recovery mode';
// The node's wait between checks of pg_is_in_recovery() (not a flag of `pgtrickle node`).
const RECOVERY_POLL_MS = 5_000;

async function asPostgres(file: string, args: string[], cwd: string): Promise<void> {
  const [f, a] = asPostgresUser(file, args);
  await execFileAsync(f, a, { cwd, timeout: 60_000 });
}

interface Standby {
  port: number;
  url(db: string): string;
  stop(): Promise<void>;
}

/** pg_basebackup -R of the primary into a temporary directory, started as a hot standby. */
async function startStandby(primary: PgServer): Promise<Standby> {
  const bin = primary.binDir as string;
  const root = await mkdtemp(join(tmpdir(), 'pgt-standby-'));
  const dataDir = join(root, 'data');
  const sockDir = join(root, 'sock');
  const log = join(root, 'standby.log');
  const stop = track({
    name: `standby ${dataDir}`,
    stop: async () => {
      await asPostgres(join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w'], root).catch(
        () => undefined,
      );
      await rm(root, { recursive: true, force: true });
    },
    abort: () => {
      stopPostgresNow(bin, dataDir);
      removeNow(root);
    },
  });
  try {
    await mkdir(sockDir);
    if (isRoot()) await execFileAsync('chown', ['-R', 'postgres:', root]);
    await asPostgres(
      join(bin, 'pg_basebackup'),
      [
        '-h',
        primary.host,
        '-p',
        String(primary.port),
        '-U',
        primary.user,
        '-D',
        dataDir,
        '-R',
        '-X',
        'stream',
        '-N',
        // An immediate checkpoint: the default waits for the next scheduled one (minutes).
        '-c',
        'fast',
      ],
      root,
    );
    const port = await freePort();
    const options = `-p ${port} -k '${sockDir}' -c listen_addresses=127.0.0.1 -c hot_standby=on -c fsync=off -c max_connections=200`;
    try {
      await asPostgres(
        join(bin, 'pg_ctl'),
        ['start', '-D', dataDir, '-w', '-t', '60', '-l', log, '-o', options],
        root,
      );
    } catch (err) {
      throw new Error(
        `standby did not start: ${String(err)}\n${await readFile(log, 'utf8').catch(() => '')}`,
      );
    }
    return {
      port,
      url: (db) => `postgres://${primary.user}@127.0.0.1:${port}/${encodeURIComponent(db)}`,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

describe('a refresh node pointed at a hot standby', () => {
  let primary: PgServer;
  let database: TestDatabase;
  let standby: Standby | undefined;
  let nats: NatsServer;
  let nc: NatsConnection | undefined;
  let node: NodeProcess | undefined;
  let startedAt = 0;

  beforeAll(async () => {
    [primary, nats] = await Promise.all([
      startPostgres({ throwaway: true, settings: { wal_level: 'replica', max_wal_senders: '4' } }),
      startNats(),
    ]);
    database = await createDatabase(primary);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await migrate(admin);
      await admin.query(`
        CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
        INSERT INTO orders (customer, amount) SELECT 1 + g % 10, g % 50 FROM generate_series(1, 200) g;`);
      await admin.query("SELECT pgtrickle.create_stream_table('totals', $1, '200ms')", [
        'SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer',
      ]);
    } finally {
      await admin.end();
    }
    standby = await startStandby(primary);
    nc = await connect({ servers: nats.urls });
  }, 90_000);

  afterAll(async () => {
    await node?.stop();
    await nc?.close();
    await standby?.stop();
    await nats?.stop();
    await primary?.stop();
  });

  it('is a streaming replica in recovery', async () => {
    const url = (standby as Standby).url(database.name);
    expect((await query<{ r: boolean }>(url, 'SELECT pg_is_in_recovery() AS r'))[0]?.r).toBe(true);
    const senders = await query(
      primary.url,
      "SELECT state FROM pg_stat_replication WHERE state = 'streaming'",
    );
    expect(senders.length).toBe(1);
  });

  it('logs the skip and writes nothing while the server is in recovery', async () => {
    const before = await query<{ epochs: string; history: string }>(
      database.url,
      `SELECT (SELECT string_agg(fencing_epoch::text, ',') FROM pgtrickle.pgt_stream_tables) AS epochs,
              (SELECT count(*)::text FROM pgtrickle.pgt_refresh_history) AS history`,
    );
    // Changes on the primary reach the standby; a node there must not consume them.
    await query(
      database.url,
      'INSERT INTO orders (customer, amount) SELECT 1, g FROM generate_series(1, 30) g',
    );
    startedAt = Date.now();
    node = spawnNode({
      id: 'replica1',
      databaseUrl: (standby as Standby).url(database.name),
      natsUrls: nats.urls,
      leaseTtlMs: 2_000,
      tickMs: 50,
    });
    await logged(node, SKIPPED, 20_000);
    // On a primary it would migrate and log 'catalog ready' within milliseconds of the check;
    // here it keeps waiting instead of starting, migrating or failing.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(node.proc.exitCode).toBeNull();
    const messages = node.logs.map((l) => l.msg);
    expect(messages).not.toContain('pgtrickle node started');
    expect(messages).not.toContain('catalog ready');
    expect(messages).not.toContain('applied migration');
    expect(node.logs.filter((l) => Number(l.level) >= 50)).toEqual([]);
    const after = await query<{ epochs: string; history: string; nodes: string }>(
      database.url,
      `SELECT (SELECT string_agg(fencing_epoch::text, ',') FROM pgtrickle.pgt_stream_tables) AS epochs,
              (SELECT count(*)::text FROM pgtrickle.pgt_refresh_history) AS history,
              (SELECT count(*)::text FROM pgtrickle.pgt_refresh_history WHERE node_id = 'replica1') AS nodes`,
    );
    expect(after[0]).toEqual({ ...before[0], nodes: '0' });
    // It has not joined the cluster either: no bucket, so no membership and no leases.
    const buckets: string[] = [];
    for await (const status of new Kvm(nc as NatsConnection).list()) buckets.push(status.bucket);
    expect(buckets).not.toContain(bucketName(database.name));
    // Its one connection to the standby only asks whether the server is in recovery.
    const sessions = await query<{ query: string }>(
      (standby as Standby).url(database.name),
      "SELECT query FROM pg_stat_activity WHERE application_name LIKE 'pgtrickle node replica1%'",
    );
    expect(sessions.map((s) => s.query)).toEqual(['SELECT pg_is_in_recovery() AS r']);
  }, 30_000);

  it('starts refreshing on its own once the standby is promoted', async () => {
    const url = (standby as Standby).url(database.name);
    // The standby has replayed all the primary wrote before it is promoted.
    const [{ lsn }] = (await query<{ lsn: string }>(
      primary.url,
      'SELECT pg_current_wal_lsn()::text AS lsn',
    )) as [{ lsn: string }];
    await expect
      .poll(
        async () =>
          (await query<{ ok: boolean }>(url, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]))[0]
            ?.ok,
        { timeout: 10_000, interval: 100 },
      )
      .toBe(true);
    await query(url, 'SELECT pg_promote(true, 30)');
    const promotedAt = Date.now();
    await logged(node as NodeProcess, 'pgtrickle node started', RECOVERY_POLL_MS + 15_000);
    await expect
      .poll(
        async () =>
          (
            await query<{ n: number }>(
              url,
              "SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history WHERE node_id = 'replica1' AND status = 'COMPLETED'",
            )
          )[0]?.n,
        { timeout: 15_000, interval: 100 },
      )
      .toBeGreaterThan(0);
    console.log(
      `promoted ${promotedAt - startedAt} ms after the node was launched on the standby; its first ` +
        `refresh committed ${Date.now() - promotedAt} ms after promotion (recovery poll ${RECOVERY_POLL_MS} ms)`,
    );
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await expect.poll(() => divergence(client, 'totals'), { timeout: 10_000, interval: 200 }).toBe(0);
    } finally {
      await client.end();
    }
    // The primary, which the node never touched, has no history from it.
    const onPrimary = await query<{ n: number }>(
      database.url,
      "SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history WHERE node_id = 'replica1'",
    );
    expect(onPrimary[0]?.n).toBe(0);
  }, 45_000);
});
