// A node whose code expects another catalog version than the database has: it says so with
// both versions, refreshes nothing while they differ, and carries on once they agree — after
// `pgtrickle migrate` for an old catalog, or when a newer catalog's release is gone again.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RefreshNode } from '../../cluster/node/index.js';
import { LIBRARY_VERSION } from '../../shared/version.js';
import { loadMigrations, migrate } from '../../sql/migrate.js';
import { freshDatabase } from '../harness/index.js';
import { divergence } from '../support/db.js';

const natsUrl = inject('natsUrl');
const run = promisify(execFile);
const latest = loadMigrations().length;

describe.skipIf(!natsUrl)('a node and a catalog of another version', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let admin: pg.Client;
  let node: RefreshNode | undefined;
  let started: Promise<void> | undefined;
  const logs: { level: number; msg: string }[] = [];

  const history = async () =>
    Number(
      (await admin.query<{ n: string }>('SELECT count(*) AS n FROM pgtrickle.pgt_refresh_history')).rows[0]
        ?.n,
    );
  const warnings = () => logs.filter((l) => l.level === 40).map((l) => l.msg);

  beforeAll(async () => {
    db = await freshDatabase();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await migrate(admin, { migrations: loadMigrations().slice(0, latest - 1) });
    await admin.query(`
      CREATE TABLE orders (id int PRIMARY KEY, amount int);
      INSERT INTO orders SELECT g, g FROM generate_series(1, 20) g;
      SELECT pgtrickle.create_stream_table('big', 'SELECT id, amount FROM orders WHERE amount > 10', '200ms');`);
    node = new RefreshNode({
      databaseUrl: db.url,
      natsUrls: [natsUrl],
      logger: pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line)) }),
      nodeId: 'mismatch',
      leaseTtlMs: 1_500,
      tickMs: 50,
      migrate: false,
      recoveryPollMs: 100,
      upkeepMs: 200,
    });
    started = node.start();
  });

  afterAll(async () => {
    await node?.stop();
    await admin?.end();
    await db?.drop();
  });

  it('warns with both versions and refreshes nothing until `pgtrickle migrate` ran', async () => {
    const behind = `pgtrickle node ${LIBRARY_VERSION} expects catalog version ${latest}, the database has catalog version ${latest - 1}: not refreshing until it is migrated (run pgtrickle migrate)`;
    await expect.poll(warnings, { timeout: 10_000 }).toContain(behind);
    const before = await history();
    await admin.query('UPDATE orders SET amount = amount + 100 WHERE id < 5');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await history()).toBe(before);
    expect(warnings().filter((m) => m === behind)).toHaveLength(1);

    const migrated = await run(process.execPath, ['--import', 'tsx', 'cluster/cli.ts', 'migrate', '--json'], {
      env: { ...process.env, PGTRICKLE_DATABASE_URL: db.url },
    });
    expect(JSON.parse(migrated.stdout)).toMatchObject({ version: latest });
    await started;
    await expect.poll(() => divergence(admin, 'big'), { timeout: 10_000 }).toBe(0);
    expect(await history()).toBeGreaterThan(before);
  });

  it('stops refreshing while the catalog is newer than the node, and resumes when it agrees again', async () => {
    await admin.query(
      `INSERT INTO pgtrickle.pgt_schema_version (version, description) VALUES ($1, 'from a newer release')`,
      [latest + 1],
    );
    const ahead = `pgtrickle node ${LIBRARY_VERSION} expects catalog version ${latest}, the database has catalog version ${latest + 1}, written by a newer release: not refreshing until this node is upgraded`;
    await expect.poll(warnings, { timeout: 10_000 }).toContain(ahead);
    // A refresh already under way may still finish: count from when it is quiet.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = await history();
    await admin.query('UPDATE orders SET amount = amount + 100 WHERE id BETWEEN 5 AND 8');
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(await history()).toBe(before);

    await admin.query('DELETE FROM pgtrickle.pgt_schema_version WHERE version = $1', [latest + 1]);
    await expect.poll(() => divergence(admin, 'big'), { timeout: 10_000 }).toBe(0);
    expect(await history()).toBeGreaterThan(before);
  });
});
