// DDL on what a stream table reads marks it for reinitialization, through both mechanisms:
// event triggers (installed by a superuser) and the fingerprint check the nodes poll
// (pgtrickle._check_ddl(), the only one on managed PostgreSQL, here a non-superuser install).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../sql/migrate.js';
import { freshDatabase, type TestDatabase } from '../harness/index.js';
import { divergence, lastAction, makeDifferential, migratedDatabase, pgError } from '../support/db.js';

interface Mark {
  stream_table: string;
  source: string;
  reason: string;
}

interface Path {
  name: string;
  open(): Promise<{ client: pg.Client; close(): Promise<void>; installNotices: string[] }>;
  /** The marks the DDL just made: read back from the event log, or made now by the check. */
  marks(client: pg.Client): Promise<Mark[]>;
}

const byEventTrigger: Path = {
  name: 'event triggers',
  async open() {
    const db = await migratedDatabase();
    return { client: db.admin, close: () => db.drop(), installNotices: [] };
  },
  async marks(client) {
    const { rows } = await client.query<Mark & { event_id: string }>(
      `SELECT format('%I.%I', st.pgt_schema, st.pgt_name) AS stream_table, e.source_name AS source, e.reason
         FROM pgtrickle.pgt_ddl_events e JOIN pgtrickle.pgt_stream_tables st USING (pgt_id)
        WHERE e.detected_by = 'EVENT_TRIGGER' AND NOT e.event_id = ANY ($1::bigint[])
        ORDER BY e.event_id`,
      [seen],
    );
    const all = await client.query<{ id: string }>('SELECT event_id AS id FROM pgtrickle.pgt_ddl_events');
    seen = all.rows.map((r) => r.id);
    return rows;
  },
};
let seen: string[] = [];

// Roles are cluster-wide, so the installer's name is unique per run.
const installer = `pgt_installer_${randomBytes(4).toString('hex')}`;

const byFingerprint: Path = {
  name: 'the fingerprint check (installed by a non-superuser, no event triggers)',
  async open() {
    const db: TestDatabase = await freshDatabase();
    // On the maintenance database: dropping the test database ends the sessions connected to it.
    const maintenance = new URL(db.url);
    maintenance.pathname = '/postgres';
    const admin = new pg.Client({ connectionString: maintenance.toString() });
    await admin.connect();
    await admin.query(`CREATE ROLE ${installer} LOGIN`);
    await admin.query(`ALTER DATABASE "${db.name}" OWNER TO ${installer}`);
    const url = new URL(db.url);
    url.username = installer;
    url.password = '';
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    const installNotices: string[] = [];
    client.on('notice', (msg) => {
      if (msg.message) installNotices.push(msg.message);
    });
    await migrate(client);
    return {
      client,
      installNotices,
      close: async () => {
        await client.end();
        await db.drop();
        await admin.query(`DROP ROLE ${installer}`);
        await admin.end();
      },
    };
  },
  async marks(client) {
    const { rows } = await client.query<Mark>(
      'SELECT stream_table, source, reason FROM pgtrickle._check_ddl()',
    );
    return rows;
  },
};

describe.each([byEventTrigger, byFingerprint])('DDL tracking through $name', (path) => {
  let client: pg.Client;
  let close: () => Promise<void>;
  let installNotices: string[];

  beforeAll(async () => {
    ({ client, close, installNotices } = await path.open());
  });
  afterAll(async () => {
    await close?.();
  });

  const sql = (text: string, values?: unknown[]) => client.query(text, values);
  const create = (name: string, query: string) =>
    sql('SELECT pgtrickle.create_stream_table($1, $2)', [name, query]);
  const refresh = (name: string) => sql('SELECT pgtrickle.refresh_stream_table($1)', [name]);
  const needsReinit = async (name: string) =>
    (
      await sql(
        'SELECT needs_reinit, effective_mode FROM pgtrickle.pgt_stream_tables WHERE pgt_id = pgtrickle._resolve($1)',
        [name],
      )
    ).rows[0] as { needs_reinit: boolean; effective_mode: string | null };

  /** Runs `ddl`, checks the stream table was marked with `reason`, and that a second look finds nothing. */
  const expectMarked = async (st: string, source: string, ddl: string, reason: string) => {
    await sql(ddl);
    if (path === byFingerprint) expect((await needsReinit(st)).needs_reinit).toBe(false);
    expect(await path.marks(client)).toEqual([{ stream_table: `public.${st}`, source, reason }]);
    expect(await needsReinit(st)).toEqual({ needs_reinit: true, effective_mode: null });
    expect((await sql('SELECT * FROM pgtrickle._check_ddl()')).rows).toEqual([]);
  };

  /** The next refresh rebuilds the table (I5 holds), and a recompiled plan keeps it exact. */
  const expectRecovers = async (st: string, write: string, writeAgain: string) => {
    await sql(write);
    await refresh(st);
    expect(await lastAction(client, st)).toBe('REINITIALIZE');
    expect(await divergence(client, st)).toBe(0);
    await makeDifferential(client, st);
    await sql(writeAgain);
    await refresh(st);
    expect(await lastAction(client, st)).toBe('DIFFERENTIAL');
    expect(await divergence(client, st)).toBe(0);
  };

  it('installs event triggers only when the installing role is a superuser', async () => {
    const { rows } = await sql(
      `SELECT evtname FROM pg_event_trigger WHERE evtname LIKE 'pgtrickle%' ORDER BY 1`,
    );
    if (path === byEventTrigger) {
      expect(rows).toEqual([{ evtname: 'pgtrickle_ddl_end' }, { evtname: 'pgtrickle_sql_drop' }]);
    } else {
      expect(rows).toEqual([]);
      expect(installNotices).toContain(
        `pgtrickle: DDL event triggers not installed: role ${installer} is not a superuser`,
      );
    }
  });

  it('ALTER TABLE ADD COLUMN on a source reinitializes the stream table, and capture records the new column', async () => {
    await sql(`CREATE TABLE add_src (id int PRIMARY KEY, v int);
               INSERT INTO add_src SELECT g, g FROM generate_series(1, 20) g`);
    await create('add_st', 'SELECT id, v FROM add_src');
    await makeDifferential(client, 'add_st');
    await expectMarked(
      'add_st',
      'public.add_src',
      'ALTER TABLE add_src ADD COLUMN w int DEFAULT 7',
      'upstream table altered: public.add_src (columns changed)',
    );
    const { rows } = await sql(
      `SELECT captured_attnums FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'add_src'::regclass`,
    );
    expect(rows).toEqual([{ captured_attnums: [1, 2, 3] }]);
    await expectRecovers(
      'add_st',
      'INSERT INTO add_src VALUES (21, 21, 1)',
      'UPDATE add_src SET v = v + 1 WHERE id <= 5',
    );
  });

  it('ALTER TABLE DROP COLUMN of a column the query does not read keeps writes to the source working', async () => {
    await sql(`CREATE TABLE dropx_src (id int PRIMARY KEY, v int, junk text);
               INSERT INTO dropx_src SELECT g, g, 'x' FROM generate_series(1, 20) g`);
    await create('dropx_st', 'SELECT id, v FROM dropx_src WHERE v > 3');
    await makeDifferential(client, 'dropx_st');
    await expectMarked(
      'dropx_st',
      'public.dropx_src',
      'ALTER TABLE dropx_src DROP COLUMN junk',
      'upstream table altered: public.dropx_src (columns changed)',
    );
    await expectRecovers(
      'dropx_st',
      'INSERT INTO dropx_src VALUES (21, 21)',
      'DELETE FROM dropx_src WHERE id <= 5',
    );
  });

  it('ALTER TABLE DROP COLUMN of a column the query reads fails the refresh, naming schema.table', async () => {
    await sql(`CREATE TABLE dropv_src (id int PRIMARY KEY, v int);
               INSERT INTO dropv_src SELECT g, g FROM generate_series(1, 5) g`);
    await create('dropv_st', 'SELECT id, v FROM dropv_src');
    await expectMarked(
      'dropv_st',
      'public.dropv_src',
      'ALTER TABLE dropv_src DROP COLUMN v',
      'upstream table altered: public.dropv_src (columns changed)',
    );
    await sql('INSERT INTO dropv_src VALUES (6)');
    const err = await pgError(refresh('dropv_st'));
    expect(err.code).toBe('42703');
    expect(err.message).toBe(
      'stream table "dropv_st" cannot be refreshed: column "v" of upstream table public.dropv_src no longer exists',
    );
    expect(err.hint).toMatch(/alter_stream_table/);
  });

  it('ALTER TABLE ALTER COLUMN TYPE of a column the query reads reinitializes the stream table', async () => {
    await sql(`CREATE TABLE type_src (id int PRIMARY KEY, grp int, v int);
               INSERT INTO type_src SELECT g, g % 3, g FROM generate_series(1, 30) g`);
    await create('type_st', 'SELECT grp, sum(v) AS total, count(*) AS n FROM type_src GROUP BY grp');
    await makeDifferential(client, 'type_st');
    await expectMarked(
      'type_st',
      'public.type_src',
      'ALTER TABLE type_src ALTER COLUMN v TYPE bigint',
      'upstream table altered: public.type_src (columns changed)',
    );
    await expectRecovers(
      'type_st',
      'INSERT INTO type_src VALUES (31, 1, 3000000000)',
      'UPDATE type_src SET v = v * 2 WHERE grp = 2',
    );
  });

  it('ALTER TABLE DROP CONSTRAINT of the primary key of a source reinitializes the stream table', async () => {
    await sql(`CREATE TABLE pk_src (id int PRIMARY KEY, v int);
               INSERT INTO pk_src SELECT g, g FROM generate_series(1, 20) g`);
    await create('pk_st', 'SELECT id, v FROM pk_src');
    // Stored by the key: an UPDATE of a source row becomes an UPDATE of the row with its key.
    expect(await makeDifferential(client, 'pk_st')).toMatchObject({
      mode: 'DIFFERENTIAL',
      plan: { strategy: 'keyed' },
    });
    await expectMarked(
      'pk_st',
      'public.pk_src',
      'ALTER TABLE pk_src DROP CONSTRAINT pk_src_pkey',
      'upstream table altered: public.pk_src (primary key changed)',
    );
    // Without the key, a second row with the same id is a row of the stream table of its own.
    await expectRecovers(
      'pk_st',
      'INSERT INTO pk_src VALUES (1, 100), (2, 200)',
      'INSERT INTO pk_src VALUES (3, 300); UPDATE pk_src SET v = v + 1 WHERE id = 1',
    );
  });

  it('DROP TABLE of a source puts the stream table in ERROR and its refresh names the table', async () => {
    await sql(`CREATE TABLE gone_src (id int PRIMARY KEY); INSERT INTO gone_src VALUES (1)`);
    await create('gone_st', 'SELECT id FROM gone_src');
    await makeDifferential(client, 'gone_st');
    await expectMarked(
      'gone_st',
      'public.gone_src',
      'DROP TABLE gone_src',
      'upstream table dropped: public.gone_src',
    );
    const { rows } = await sql(
      `SELECT status, last_error FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'gone_st'`,
    );
    expect(rows).toEqual([{ status: 'ERROR', last_error: 'upstream table dropped: public.gone_src' }]);
    const err = await pgError(refresh('gone_st'));
    expect(err.code).toBe('42P01');
    expect(err.message).toBe(
      'stream table "gone_st" cannot be refreshed: upstream table dropped: public.gone_src',
    );
    // Its change capture went with it; dropping the stream table leaves nothing behind.
    const tracked = await sql(
      `SELECT count(*)::int AS n FROM pgtrickle.pgt_change_tracking ct
        WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = ct.source_relid)`,
    );
    expect(tracked.rows).toEqual([{ n: 0 }]);
    // A new query over a table that exists brings it back.
    await sql(`CREATE TABLE back_src (id int PRIMARY KEY); INSERT INTO back_src VALUES (1), (2)`);
    await sql(`SELECT pgtrickle.alter_stream_table('gone_st', query => 'SELECT id FROM back_src')`);
    const back = await sql(
      `SELECT status, last_error FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'gone_st'`,
    );
    expect(back.rows).toEqual([{ status: 'ACTIVE', last_error: null }]);
    expect(await divergence(client, 'gone_st')).toBe(0);
    await sql(`SELECT pgtrickle.drop_stream_table('gone_st')`);
  });

  it('DROP TABLE of a stream table’s storage unregisters it at the next check and stops its readers', async () => {
    await sql(`CREATE TABLE store_src (id int PRIMARY KEY); INSERT INTO store_src VALUES (1), (2)`);
    await create('store_st', 'SELECT id FROM store_src');
    await create('store_reader', 'SELECT count(*) AS n FROM store_st');
    await sql('DROP TABLE store_st');
    const rows = (await sql('SELECT stream_table, source, reason FROM pgtrickle._check_ddl() ORDER BY 1'))
      .rows;
    const unregistered = {
      stream_table: 'public.store_st',
      source: 'public.store_st',
      reason: 'storage table dropped: public.store_st; the stream table was removed from the catalog',
    };
    const reader = {
      stream_table: 'public.store_reader',
      source: 'public.store_st',
      reason: 'upstream table dropped: public.store_st',
    };
    // With event triggers the reader was marked by the DROP itself.
    expect(rows).toEqual(path === byEventTrigger ? [unregistered] : [reader, unregistered]);
    const { rows: left } = await sql(
      `SELECT pgt_name, status, last_error FROM pgtrickle.pgt_stream_tables WHERE pgt_name LIKE 'store%'`,
    );
    expect(left).toEqual([
      { pgt_name: 'store_reader', status: 'ERROR', last_error: 'upstream table dropped: public.store_st' },
    ]);
    const capture = await sql(
      `SELECT count(*)::int AS n FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'store_src'::regclass`,
    );
    expect(capture.rows).toEqual([{ n: 0 }]);
    await sql(`SELECT pgtrickle.drop_stream_table('store_reader')`);
  });

  it('ALTER TABLE DISABLE TRIGGER on a source restores its capture and rebuilds what missed changes', async () => {
    await sql(`CREATE TABLE trig_src (id int PRIMARY KEY, v int);
               INSERT INTO trig_src SELECT g, g FROM generate_series(1, 10) g`);
    await create('trig_st', 'SELECT id, v FROM trig_src');
    await makeDifferential(client, 'trig_st');
    await sql('ALTER TABLE trig_src DISABLE TRIGGER USER');
    if (path === byFingerprint) {
      // Unseen until the check: these changes are not captured.
      await sql('INSERT INTO trig_src VALUES (11, 11); DELETE FROM trig_src WHERE id = 1');
    }
    expect(await path.marks(client)).toEqual([
      {
        stream_table: 'public.trig_st',
        source: 'public.trig_src',
        reason: 'change capture of public.trig_src rebuilt: a capture trigger was disabled or dropped',
      },
    ]);
    const { rows } = await sql(`SELECT count(*)::int AS n FROM pg_trigger
      WHERE tgrelid = 'trig_src'::regclass AND tgname LIKE 'pgtrickle_cdc_%' AND tgenabled <> 'D'`);
    expect(rows).toEqual([{ n: 4 }]);
    await expectRecovers(
      'trig_st',
      'INSERT INTO trig_src VALUES (12, 12)',
      'UPDATE trig_src SET v = 0 WHERE id = 2',
    );
  });

  it('names a dropped source by OID when its name was never recorded', async () => {
    await sql(`CREATE TABLE anon_src (id int); INSERT INTO anon_src VALUES (1)`);
    await create('anon_st', 'SELECT id FROM anon_src');
    const { rows } = await sql(`SELECT 'anon_src'::regclass::oid::text AS oid`);
    const oid = (rows[0] as { oid: string }).oid;
    // As stream tables recorded before this release would have it.
    await sql(
      `UPDATE pgtrickle.pgt_dependencies SET source_name = NULL WHERE source_relid = 'anon_src'::regclass`,
    );
    await sql('DROP TABLE anon_src');
    const marks = await path.marks(client);
    expect(marks).toEqual([
      {
        stream_table: 'public.anon_st',
        source: `OID ${oid} (table no longer exists)`,
        reason: `upstream table dropped: OID ${oid} (table no longer exists)`,
      },
    ]);
    await sql(`SELECT pgtrickle.drop_stream_table('anon_st')`);
  });

  it('ALTER TYPE ... ADD VALUE on an enum column the query reads reinitializes the stream table', async () => {
    await sql(`CREATE TYPE mood AS ENUM ('sad', 'ok');
               CREATE TABLE enum_src (id int PRIMARY KEY, m mood);
               INSERT INTO enum_src SELECT g, CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'sad' END::mood
                 FROM generate_series(1, 10) g`);
    await create('enum_st', 'SELECT m, count(*) AS n FROM enum_src GROUP BY m');
    await makeDifferential(client, 'enum_st');
    await expectMarked(
      'enum_st',
      'public.enum_src',
      `ALTER TYPE mood ADD VALUE 'happy' BEFORE 'ok'`,
      'upstream table altered: public.enum_src (types changed)',
    );
    await expectRecovers(
      'enum_st',
      `INSERT INTO enum_src VALUES (11, 'happy')`,
      `UPDATE enum_src SET m = 'happy' WHERE id <= 4`,
    );
  });

  it('ALTER DOMAIN ADD CONSTRAINT and DROP CONSTRAINT on a domain column reinitialize the stream table', async () => {
    await sql(`CREATE DOMAIN posint AS int CHECK (VALUE > 0);
               CREATE TABLE dom_src (id int PRIMARY KEY, p posint);
               INSERT INTO dom_src SELECT g, g FROM generate_series(1, 10) g`);
    await create('dom_st', 'SELECT id, p FROM dom_src WHERE p > 2');
    await makeDifferential(client, 'dom_st');
    await expectMarked(
      'dom_st',
      'public.dom_src',
      'ALTER DOMAIN posint ADD CONSTRAINT below_1000 CHECK (VALUE < 1000)',
      'upstream table altered: public.dom_src (types changed)',
    );
    await expectRecovers('dom_st', 'INSERT INTO dom_src VALUES (11, 11)', 'DELETE FROM dom_src WHERE id = 3');
    await expectMarked(
      'dom_st',
      'public.dom_src',
      'ALTER DOMAIN posint DROP CONSTRAINT below_1000',
      'upstream table altered: public.dom_src (types changed)',
    );
    await expectRecovers('dom_st', 'INSERT INTO dom_src VALUES (12, 5000)', 'UPDATE dom_src SET p = p + 1');
  });

  it('ALTER POLICY on a source reinitializes the stream table', async () => {
    await sql(`CREATE TABLE pol_src (id int PRIMARY KEY, tenant text);
               INSERT INTO pol_src SELECT g, 't' || (g % 2) FROM generate_series(1, 10) g;
               ALTER TABLE pol_src ENABLE ROW LEVEL SECURITY;
               CREATE POLICY pol_tenant ON pol_src USING (tenant = 't0')`);
    await create('pol_st', 'SELECT tenant, count(*) AS n FROM pol_src GROUP BY tenant');
    await makeDifferential(client, 'pol_st');
    await expectMarked(
      'pol_st',
      'public.pol_src',
      `ALTER POLICY pol_tenant ON pol_src USING (tenant = 't1')`,
      'upstream table altered: public.pol_src (row-level security changed)',
    );
    await expectRecovers(
      'pol_st',
      `INSERT INTO pol_src VALUES (11, 't1')`,
      `DELETE FROM pol_src WHERE id = 1`,
    );
  });

  it('rebuilds the capture of a stream table that gets a new plan, so what reads it can be differential', async () => {
    await sql(`CREATE TABLE chain_src (id int PRIMARY KEY, v int);
               INSERT INTO chain_src SELECT g, g FROM generate_series(1, 10) g`);
    await create('chain_up', 'SELECT id, v FROM chain_src');
    await create('chain_down', 'SELECT sum(v) AS total, count(*) AS n FROM chain_up');
    // Installing a plan adds the hidden __pgt_ columns to chain_up, which its capture lacks.
    await makeDifferential(client, 'chain_up');
    expect(await path.marks(client)).toEqual([
      {
        stream_table: 'public.chain_down',
        source: 'public.chain_up',
        reason: 'change capture of public.chain_up rebuilt: its columns changed',
      },
    ]);
    expect((await sql('SELECT * FROM pgtrickle._check_ddl()')).rows).toEqual([]);
    expect(await makeDifferential(client, 'chain_down')).toMatchObject({ mode: 'DIFFERENTIAL' });
    await sql('INSERT INTO chain_src VALUES (11, 11); UPDATE chain_src SET v = v * 2 WHERE id < 4');
    for (const st of ['chain_up', 'chain_down']) {
      await refresh(st);
      expect(await lastAction(client, st)).toBe('DIFFERENTIAL');
      expect(await divergence(client, st)).toBe(0);
    }
  });
});

// Fingerprints recorded before migration 0013 had no primary key part.
describe('a catalog upgraded to the fingerprint with primary keys', () => {
  let db: Awaited<ReturnType<typeof migratedDatabase>>;

  beforeAll(async () => {
    db = await migratedDatabase({ upTo: 12 });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('reinitializes nothing that did not change, and then notices a dropped primary key', async () => {
    const sql = (text: string) => db.admin.query(text);
    await sql(`CREATE TABLE up_src (id int PRIMARY KEY, v int);
               INSERT INTO up_src SELECT g, g FROM generate_series(1, 10) g;
               SELECT pgtrickle.create_stream_table('up_st', 'SELECT id, v FROM up_src')`);
    await makeDifferential(db.admin, 'up_st');
    await migrate(db.admin);
    expect((await sql('SELECT * FROM pgtrickle._check_ddl()')).rows).toEqual([]);
    expect(
      (await sql(`SELECT needs_reinit FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'up_st'`)).rows,
    ).toEqual([{ needs_reinit: false }]);
    await sql('ALTER TABLE up_src DROP CONSTRAINT up_src_pkey');
    const { rows } = await sql(
      `SELECT reason FROM pgtrickle.pgt_ddl_events WHERE pgt_id = pgtrickle._resolve('up_st') ORDER BY event_id`,
    );
    expect(rows).toEqual([{ reason: 'upstream table altered: public.up_src (primary key changed)' }]);
    await sql('INSERT INTO up_src VALUES (1, 100)');
    await sql(`SELECT pgtrickle.refresh_stream_table('up_st')`);
    expect(await divergence(db.admin, 'up_st')).toBe(0);
  });
});
