import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedDatabase, pgError, type TestDb } from '../support/db.js';

// Roles are cluster-wide, so their names are unique per run.
const suffix = randomBytes(4).toString('hex');
const roleA = `pgt_alice_${suffix}`;
const roleB = `pgt_bob_${suffix}`;

describe('ownership', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`
      CREATE ROLE ${roleA}; CREATE ROLE ${roleB};
      GRANT USAGE, CREATE ON SCHEMA public TO ${roleA}, ${roleB};
      CREATE TABLE shared_src (id int PRIMARY KEY, v int);
      INSERT INTO shared_src SELECT g, g FROM generate_series(1, 10) g;
      GRANT SELECT ON shared_src TO ${roleA}, ${roleB};
      CREATE TABLE secret (id int);`);
  });
  afterAll(async () => {
    await db?.admin.query(`RESET ROLE; DROP OWNED BY ${roleA}, ${roleB}; DROP ROLE ${roleA}, ${roleB}`);
    await db?.drop();
  });

  const as = async (role: string, sql: string) => {
    const client = await db.connect();
    await client.query(`SET ROLE ${role}`);
    try {
      return await client.query(sql);
    } finally {
      await client.end();
    }
  };

  it('makes the calling role the owner of the stream table and its storage', async () => {
    await as(
      roleA,
      `SELECT pgtrickle.create_stream_table('st_a', 'SELECT id, v FROM shared_src WHERE v > 2')`,
    );
    const { rows } = await db.admin.query(`
      SELECT pgt_owner::regrole::text AS owner, (SELECT relowner::regrole::text FROM pg_class WHERE oid = pgt_relid) AS rel_owner
        FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_a'`);
    expect(rows).toEqual([{ owner: roleA, rel_owner: roleA }]);
  });

  it('does not let another role drop, alter or refresh it', async () => {
    for (const sql of [
      `SELECT pgtrickle.drop_stream_table('st_a')`,
      `SELECT pgtrickle.alter_stream_table('st_a', schedule => '5m')`,
      `SELECT pgtrickle.alter_stream_table('st_a', query => 'SELECT id, v FROM shared_src')`,
      `SELECT pgtrickle.refresh_stream_table('st_a')`,
    ]) {
      const err = await pgError(as(roleB, sql));
      expect(err.message).toBe('must be owner of stream table "st_a"');
      expect(err.code).toBe('42501');
    }
    const { rows } = await db.admin.query(
      `SELECT schedule FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'st_a'`,
    );
    expect(rows).toEqual([{ schedule: '1m' }]);
  });

  it('does not let a role build a stream table over a table it cannot read', async () => {
    const err = await pgError(
      as(roleB, `SELECT pgtrickle.create_stream_table('peek', 'SELECT * FROM secret')`),
    );
    expect(err.code).toBe('42501');
    expect(err.message).toBe('permission denied for table secret');
    const { rows } = await db.admin.query(
      `SELECT count(*)::int AS n FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'peek'`,
    );
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('lets the owner alter and a superuser drop it', async () => {
    await as(roleA, `SELECT pgtrickle.alter_stream_table('st_a', schedule => '10s')`);
    await db.admin.query(`SELECT pgtrickle.alter_stream_table('st_a', schedule => '20s')`);
    await db.admin.query(`SELECT pgtrickle.drop_stream_table('st_a')`);
    const { rows } = await db.admin.query(`SELECT to_regclass('st_a') AS r,
      (SELECT count(*)::int FROM pgtrickle.pgt_stream_tables) AS n`);
    expect(rows).toEqual([{ r: null, n: 0 }]);
  });
});
