// pgtrickle.version() (catalog, node and PostgreSQL versions), node registration, and
// pgtrickle.migrate(): what it repairs, what it reports, and that a second run changes nothing.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate as migrateCatalog } from '../../sql/migrate.js';
import { freshDatabase } from '../harness/index.js';
import {
  divergence,
  footprint,
  lastAction,
  makeDifferential,
  migratedDatabase,
  pgError,
  type TestDb,
} from '../support/db.js';

// Roles are cluster-wide, so the name is unique per run.
const owner = `pgt_mig_owner_${randomBytes(4).toString('hex')}`;

describe('version()', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  const version = async () => (await db.admin.query('SELECT * FROM pgtrickle.version()')).rows;

  it('returns the catalog version, no library version without a running node, and the PostgreSQL major', async () => {
    const { rows } = await db.admin.query(
      `SELECT current_setting('server_version_num')::int / 10000 AS major`,
    );
    expect(await version()).toEqual([
      {
        extension_version: String(loadMigrations().length),
        library_version: null,
        pg_major: (rows[0] as { major: number }).major,
      },
    ]);
  });

  it('reports the newest version among the nodes seen in the last minute', async () => {
    const register = async (id: string, v: string, starting = false) =>
      (await db.admin.query('SELECT pgtrickle._register_node($1, $2, $3) AS catalog', [id, v, starting]))
        .rows[0];
    expect(await register('node-a', '0.9.2', true)).toEqual({ catalog: String(loadMigrations().length) });
    await register('node-b', '0.10.0', true);
    expect((await version())[0]?.library_version).toBe('0.10.0');

    await db.admin.query(
      `UPDATE pgtrickle.pgt_nodes SET last_seen = now() - interval '2 minutes' WHERE node_id = 'node-b'`,
    );
    expect((await version())[0]?.library_version).toBe('0.9.2');

    // A heartbeat keeps started_at; a start (or a new version) resets it.
    await db.admin.query(`UPDATE pgtrickle.pgt_nodes SET started_at = '2000-01-01' WHERE node_id = 'node-a'`);
    await register('node-a', '0.9.2');
    const kept = await db.admin.query(
      `SELECT started_at < '2001-01-01' AS old FROM pgtrickle.pgt_nodes WHERE node_id = 'node-a'`,
    );
    expect(kept.rows).toEqual([{ old: true }]);
    await register('node-a', '0.9.2', true);
    const reset = await db.admin.query(
      `SELECT started_at < '2001-01-01' AS old FROM pgtrickle.pgt_nodes WHERE node_id = 'node-a'`,
    );
    expect(reset.rows).toEqual([{ old: false }]);
  });

  it('refuses a registration without a node id or a version, with a hint', async () => {
    const err = await pgError(db.admin.query(`SELECT pgtrickle._register_node('', '0.1.0')`));
    expect(err.code).toBe('22023');
    expect(err.hint).toBe('Call pgtrickle._register_node(node_id, version).');
  });
});

describe('migrate()', () => {
  let db: TestDb;
  let mine: pg.Client;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`CREATE ROLE ${owner}; GRANT USAGE, CREATE ON SCHEMA public TO ${owner}`);
    mine = await db.connect();
    await mine.query(`SET ROLE ${owner}`);
    await mine.query(`
      CREATE TABLE src1 (id int PRIMARY KEY, v int);
      CREATE TABLE src2 (id int PRIMARY KEY, grp int, v int);
      INSERT INTO src1 SELECT g, g FROM generate_series(1, 20) g;
      INSERT INTO src2 SELECT g, g % 4, g FROM generate_series(1, 40) g;
      SELECT pgtrickle.create_stream_table('st1', 'SELECT id, v FROM src1');
      SELECT pgtrickle.create_stream_table('st2', 'SELECT grp, sum(v) AS total FROM src2 GROUP BY grp');
      SELECT pgtrickle.create_stream_table('st3', 'SELECT id, v FROM src2 WHERE v > 5');`);
    for (const st of ['st1', 'st2', 'st3']) await makeDifferential(mine, st);
  });
  afterAll(async () => {
    await db?.admin.query(`DROP OWNED BY ${owner}; DROP ROLE ${owner}`);
    await db?.drop();
  });

  const migrate = async (client: pg.Client = mine, replan = false) =>
    (await client.query<{ object: string; action: string }>('SELECT * FROM pgtrickle.migrate($1)', [replan]))
      .rows;

  const untouched = [
    { object: 'event trigger pgtrickle_ddl_end', action: 'unchanged' },
    { object: 'event trigger pgtrickle_sql_drop', action: 'unchanged' },
    { object: 'change capture of public.src1', action: 'unchanged' },
    { object: 'change capture of public.src2', action: 'unchanged' },
    { object: 'plan of public.st1', action: 'unchanged' },
    { object: 'plan of public.st2', action: 'unchanged' },
    { object: 'plan of public.st3', action: 'unchanged' },
  ];

  it('reports every object of the caller’s stream tables as unchanged when nothing is broken', async () => {
    expect(await migrate()).toEqual(untouched);
  });

  it('rebuilds a damaged capture, restores buffer grants and hands a broken plan back to the nodes', async () => {
    const before = await footprint(db.admin);
    const { rows } = await db.admin.query<{ buffer: string }>(
      `SELECT buffer_name AS buffer FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'src2'::regclass`,
    );
    const hidden = await db.admin.query<{ name: string }>(
      `SELECT hidden_columns->0->>'name' AS name FROM pgtrickle.pgt_plans WHERE pgt_id = pgtrickle._resolve('st3')`,
    );
    // With event triggers the DROP TRIGGER would be repaired at once; as on managed PostgreSQL:
    await db.admin.query(
      'ALTER EVENT TRIGGER pgtrickle_ddl_end DISABLE; ALTER EVENT TRIGGER pgtrickle_sql_drop DISABLE',
    );
    await db.admin.query(`DROP TRIGGER pgtrickle_cdc_ins ON src1;
      REVOKE SELECT ON pgtrickle_changes.${rows[0]?.buffer} FROM ${owner};
      ALTER TABLE st3 DROP COLUMN ${hidden.rows[0]?.name}`);
    // Written while capture was broken: lost to the buffer, so the stream table must be rebuilt.
    await db.admin.query('INSERT INTO src1 VALUES (21, 21)');

    expect(await migrate()).toEqual([
      { object: 'event trigger pgtrickle_ddl_end', action: 'unchanged' },
      { object: 'event trigger pgtrickle_sql_drop', action: 'unchanged' },
      { object: 'change capture of public.src1', action: 'recreated' },
      { object: 'change capture of public.src2', action: 'unchanged' },
      { object: 'plan of public.st2', action: 'granted' },
      { object: 'plan of public.st3', action: 'replan_requested' },
    ]);
    await db.admin.query(
      'ALTER EVENT TRIGGER pgtrickle_ddl_end ENABLE; ALTER EVENT TRIGGER pgtrickle_sql_drop ENABLE',
    );
    expect(await footprint(db.admin)).toEqual(before);

    await db.admin.query('INSERT INTO src1 VALUES (22, 22); UPDATE src2 SET v = v + 1 WHERE id < 10');
    for (const st of ['st1', 'st2', 'st3']) {
      await mine.query('SELECT pgtrickle.refresh_stream_table($1)', [st]);
      expect(await divergence(mine, st)).toBe(0);
    }
    expect(await lastAction(mine, 'st1')).toBe('REINITIALIZE');
    expect(await lastAction(mine, 'st2')).toBe('DIFFERENTIAL');
    expect(await lastAction(mine, 'st3')).toBe('REINITIALIZE');
  });

  it('changes nothing when run again', async () => {
    for (const st of ['st1', 'st3']) await makeDifferential(mine, st);
    const before = await footprint(db.admin);
    expect(await migrate()).toEqual(untouched);
    expect(await migrate(db.admin)).toEqual(untouched);
    expect(await footprint(db.admin)).toEqual(before);
  });

  it('with replan => true hands every plan back to the nodes, which keep refreshing meanwhile', async () => {
    expect(await migrate(mine, true)).toEqual(
      untouched.map((r) => (r.object.startsWith('plan') ? { ...r, action: 'replan_requested' } : r)),
    );
    const { rows } = await db.admin.query(
      `SELECT count(*)::int AS n FROM pgtrickle.pgt_stream_tables WHERE effective_mode IS NULL`,
    );
    expect(rows).toEqual([{ n: 3 }]);
    await db.admin.query('DELETE FROM src2 WHERE id = 7');
    await mine.query(`SELECT pgtrickle.refresh_stream_table('st2')`);
    expect(await divergence(mine, 'st2')).toBe(0);
  });

  it('leaves stream tables of other roles alone', async () => {
    const stranger = `${owner}_x`;
    await db.admin.query(`CREATE ROLE ${stranger}`);
    try {
      const other = await db.connect();
      await other.query(`SET ROLE ${stranger}`);
      expect(await migrate(other)).toEqual(untouched.slice(0, 2));
      await other.end();
    } finally {
      await db.admin.query(`DROP ROLE ${stranger}`);
    }
  });
});

describe('upgrading to migration 0005', () => {
  it('fingerprints the sources of existing stream tables, so DDL after the upgrade is found', async () => {
    const db = await freshDatabase();
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const all = loadMigrations();
      await migrateCatalog(client, { migrations: all.slice(0, 4) });
      await client.query(`CREATE TABLE old_src (id int PRIMARY KEY, v int);
        INSERT INTO old_src VALUES (1, 1), (2, 2);
        SELECT pgtrickle.create_stream_table('old_st', 'SELECT id, v FROM old_src')`);
      await migrateCatalog(client, { migrations: all });
      const { rows } = await client.query(
        'SELECT source_name, ddl_fingerprint IS NOT NULL AS fingerprinted FROM pgtrickle.pgt_dependencies',
      );
      expect(rows).toEqual([{ source_name: 'public.old_src', fingerprinted: true }]);
      await client.query('ALTER TABLE old_src ADD COLUMN w int');
      const marked = await client.query(
        `SELECT needs_reinit FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'old_st'`,
      );
      expect(marked.rows).toEqual([{ needs_reinit: true }]);
      await client.query(
        `INSERT INTO old_src VALUES (3, 3, 3); SELECT pgtrickle.refresh_stream_table('old_st')`,
      );
      expect(await divergence(client, 'old_st')).toBe(0);
    } finally {
      await client.end();
      await db.drop();
    }
  });
});
