// A refresh node's HTTP endpoint against real PostgreSQL and NATS: /healthz answers at once,
// /readyz stays 503 until migrations ran and the node joined, and /metrics carries the named
// series, labelled by stream table, once refreshes (and failures) happened.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type MetricsServer, NodeMetrics, startMetricsServer } from '../../cluster/metrics/index.js';
import { RefreshNode } from '../../cluster/node/index.js';
import { createLogger } from '../../shared/logger.js';
import { freshDatabase, type TestDatabase } from '../harness/index.js';
import { migratedDatabase, type TestDb } from '../support/db.js';
import { logged, spawnNode } from '../support/nodes.js';

const natsUrl = inject('natsUrl');

async function get(
  server: Pick<MetricsServer, 'port'>,
  path: string,
): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
  return { status: res.status, body: await res.text() };
}

/** The value of one sample line, e.g. `pgtrickle_lease_held{st="public.totals"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe.skipIf(!natsUrl)('the metrics endpoint of a refresh node', () => {
  let db: TestDatabase;
  let admin: pg.Client;
  let server: MetricsServer;
  let node: RefreshNode;
  let started: Promise<void>;

  beforeAll(async () => {
    db = await freshDatabase();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    const metrics = new NodeMetrics();
    node = new RefreshNode({
      databaseUrl: db.url,
      natsUrls: [natsUrl],
      // The failures this test causes are logged as warnings.
      logger: createLogger({ level: process.env.PGT_TEST_LOG ?? 'error' }),
      nodeId: 'metrics',
      leaseTtlMs: 1_500,
      tickMs: 50,
      metrics,
    });
    server = await startMetricsServer({ metrics, port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await node?.stop();
    await server?.close();
    await admin?.end();
    await db?.drop();
  });

  it('is alive but not ready while the migrations wait, and ready once the node joined', async () => {
    // The lock every migration takes: the node's first migration waits behind this transaction.
    await admin.query("BEGIN; SELECT pg_advisory_xact_lock(hashtext('pgtrickle.migrate'))");
    started = node.start();
    // Another session: pg_stat_activity stays frozen for the length of the lock holder's transaction.
    const observer = new pg.Client({ connectionString: db.url });
    await observer.connect();
    await expect
      .poll(
        async () =>
          (
            await observer.query(
              "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory' AND application_name LIKE 'pgtrickle node%'",
            )
          ).rowCount,
        { timeout: 10_000 },
      )
      .toBe(1);
    await observer.end();
    expect(await get(server, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(server, '/readyz')).toEqual({ status: 503, body: 'not ready\n' });
    expect(sample((await get(server, '/metrics')).body, 'pgtrickle_node_ready')).toBe(0);

    await admin.query('COMMIT');
    await started;
    expect(await get(server, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
    expect(sample((await get(server, '/metrics')).body, 'pgtrickle_node_ready')).toBe(1);
  });

  it('exposes refresh, lease, buffer and tick series labelled by stream table after refreshes', async () => {
    await admin.query(`
      CREATE TABLE readings (id int PRIMARY KEY, sensor text, v int);
      INSERT INTO readings SELECT g, 's' || (g % 3), g FROM generate_series(1, 30) g;
      SELECT pgtrickle.create_stream_table('totals',
        'SELECT sensor, sum(v) AS total FROM readings GROUP BY sensor', '100ms');
      SELECT pgtrickle.create_stream_table('ratios', 'SELECT id, 100 / v AS r FROM readings', '100ms');`);
    await expect
      .poll(async () => sample((await get(server, '/metrics')).body, 'pgtrickle_leases_held'), {
        timeout: 15_000,
      })
      .toBe(2);
    await admin.query('UPDATE readings SET v = v + 1 WHERE id <= 5');
    const refreshes = 'pgtrickle_refresh_duration_seconds_count';
    await expect
      .poll(
        async () => {
          const text = (await get(server, '/metrics')).body;
          return text.split('\n').some((l) => l.startsWith(`${refreshes}{st="public.totals"`));
        },
        { timeout: 15_000 },
      )
      .toBe(true);

    // A division by zero fails every refresh of `ratios`: failures count, and it backs off.
    await admin.query('UPDATE readings SET v = 0 WHERE id = 1');
    await expect
      .poll(
        async () =>
          sample((await get(server, '/metrics')).body, 'pgtrickle_backoffs_total{st="public.ratios"}'),
        { timeout: 20_000 },
      )
      .toBeGreaterThanOrEqual(1);

    const { status, body } = await get(server, '/metrics');
    expect(status).toBe(200);
    expect(body).toMatch(/^# TYPE pgtrickle_refresh_duration_seconds histogram$/m);
    expect(body).toMatch(
      /^pgtrickle_refresh_duration_seconds_bucket\{le="\+Inf",st="public\.totals",action="\w+"\} [1-9]\d*$/m,
    );
    expect(sample(body, 'pgtrickle_rows_applied_total{st="public.totals",op="insert"}')).toBeGreaterThan(0);
    // The first failure may be a reinitialization (work="reinit"), later ones refreshes.
    expect(body).toMatch(
      /^pgtrickle_refresh_failures_total\{st="public\.ratios",work="(refresh|reinit)"\} [1-9]\d*$/m,
    );
    expect(sample(body, 'pgtrickle_lease_held{st="public.totals"}')).toBe(1);
    expect(sample(body, 'pgtrickle_lease_held{st="public.ratios"}')).toBe(1);
    expect(sample(body, 'pgtrickle_change_buffer_rows{source="public.readings"}')).toBeGreaterThanOrEqual(0);
    expect(sample(body, 'pgtrickle_scheduler_tick_seconds_count')).toBeGreaterThan(0);
    expect(body).toMatch(/^pgtrickle_process_resident_memory_bytes \d+/m);
  });

  it('answers 404 elsewhere and is not ready after the node stopped', async () => {
    expect((await get(server, '/nope')).status).toBe(404);
    await node.stop();
    expect(await get(server, '/readyz')).toEqual({ status: 503, body: 'not ready\n' });
    expect(await get(server, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
  });
});

describe.skipIf(!natsUrl)('the metrics endpoint of pgtrickle node', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('listens before the node starts, becomes ready, and closes when SIGTERM ends the node', async () => {
    const node = spawnNode({
      id: 'metrics-cli',
      databaseUrl: db.url,
      natsUrls: [natsUrl],
      leaseTtlMs: 1_500,
      tickMs: 50,
    });
    try {
      await logged(node, 'metrics endpoint listening', 30_000);
      const port = Number(node.logs.find((l) => l.msg === 'metrics endpoint listening')?.port);
      expect(port).toBeGreaterThan(0);
      await logged(node, 'pgtrickle node started', 30_000);
      expect(await get({ port }, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
      expect((await get({ port }, '/metrics')).body).toMatch(/^pgtrickle_node_ready 1$/m);
      node.signal('SIGTERM');
      expect(await node.exited).toBe(0);
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    } finally {
      await node.stop();
    }
  });

  it('fails with one line and exit 1 when the metrics port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const args = [
        '--import',
        'tsx',
        'cluster/cli.ts',
        'node',
        '--database-url',
        db.url,
        '--nats-url',
        natsUrl,
      ];
      const failed = await promisify(execFile)(process.execPath, [
        ...args,
        '--metrics-host',
        '127.0.0.1',
        '--metrics-port',
        String(port),
      ]).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(failed.code).toBe(1);
      expect(failed.stderr.trimEnd().split('\n')).toEqual([
        `pgtrickle: error: cannot serve metrics on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}. Hint: Pass --metrics-port with a free port (0 picks one), or set PGTRICKLE_METRICS_PORT.`,
      ]);
    } finally {
      taken.close();
    }
  });
});
