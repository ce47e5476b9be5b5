import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { footprint, migratedDatabase, notices, pgError, type TestDb } from '../support/db.js';

describe('drop_stream_table', () => {
  let db: TestDb;
  let baseline: Record<string, number>;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`CREATE TABLE src (id int PRIMARY KEY, grp int, v int);
      INSERT INTO src SELECT g, g % 4, g FROM generate_series(1, 40) g`);
    baseline = await footprint(db.admin);
  });
  afterAll(async () => {
    await db?.drop();
  });

  const create = (name: string, query: string) =>
    db.admin.query('SELECT pgtrickle.create_stream_table($1, $2)', [name, query]);

  it('refuses by default when another stream table reads it, naming the dependent', async () => {
    await create('parent', 'SELECT grp, sum(v) AS total FROM src GROUP BY grp');
    await create('child', 'SELECT grp FROM parent WHERE total > 100');
    const err = await pgError(db.admin.query(`SELECT pgtrickle.drop_stream_table('parent')`));
    expect(err.code).toBe('2BP01');
    expect(err.message).toBe('cannot drop stream table "parent" because other objects depend on it');
    expect(err.detail).toBe('stream table public.child depends on stream table public.parent');
    expect(err.hint).toMatch(/cascade => true/);
    const { rows } = await db.admin.query(`SELECT count(*)::int AS n FROM pgtrickle.pgt_stream_tables`);
    expect(rows).toEqual([{ n: 2 }]);
  });

  it('drops the dependents too with cascade => true, leaving no orphan rows anywhere', async () => {
    await db.admin.query(`INSERT INTO src VALUES (100, 1, 1); SELECT pgtrickle.refresh_stream_table('parent');
                          SELECT pgtrickle.refresh_stream_table('child')`);
    const { notices: seen } = await notices(db.admin, () =>
      db.admin.query(`SELECT pgtrickle.drop_stream_table('parent', cascade => true)`),
    );
    expect(seen).toEqual(['drop cascades to stream table public.child']);
    expect(await footprint(db.admin)).toEqual(baseline);
  });

  it('drops a diamond and a three-level chain in dependency order', async () => {
    await create('a', 'SELECT grp, v FROM src');
    await create('b', 'SELECT grp, v FROM a WHERE v > 10');
    await create('c', 'SELECT grp, v FROM a WHERE v <= 10');
    await create('d', 'SELECT b.grp, count(*) AS n FROM b JOIN c USING (grp) GROUP BY b.grp');
    await create('e', 'SELECT grp FROM d');
    await db.admin.query(`SELECT pgtrickle.drop_stream_table('a', cascade => true)`);
    expect(await footprint(db.admin)).toEqual(baseline);
  });

  it('keeps capture on a source that another stream table still reads', async () => {
    await create('one', 'SELECT id FROM src');
    await create('two', 'SELECT v FROM src');
    await db.admin.query(`SELECT pgtrickle.drop_stream_table('one')`);
    const { rows } = await db.admin.query(`SELECT count(*)::int AS n FROM pg_trigger
      WHERE tgrelid = 'src'::regclass AND tgname LIKE 'pgtrickle_cdc_%'`);
    expect(rows).toEqual([{ n: 4 }]);
    await db.admin.query(`SELECT pgtrickle.drop_stream_table('two')`);
    expect(await footprint(db.admin)).toEqual(baseline);
  });
});
