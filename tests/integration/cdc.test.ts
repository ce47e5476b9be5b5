import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { divergence, migratedDatabase, notices, type TestDb } from '../support/db.js';

interface BufferRow {
  change_id: string;
  xid: string;
  op_seq: string;
  action: 'I' | 'D' | 'U' | 'T';
  [column: string]: unknown;
}

// Applies buffer rows in (op_seq, change_id) order to a multiset of values of column 1.
function replay(start: number[], rows: BufferRow[]): number[] {
  const bag = [...start];
  const remove = (v: unknown) => {
    const i = bag.indexOf(v as number);
    if (i < 0) throw new Error(`replay deletes ${String(v)}, which is not there`);
    bag.splice(i, 1);
  };
  for (const row of rows) {
    switch (row.action) {
      case 'T':
        bag.length = 0;
        break;
      case 'I':
        bag.push(row.new_1 as number);
        break;
      case 'D':
        remove(row.old_1);
        break;
      case 'U':
        remove(row.old_1);
        bag.push(row.new_1 as number);
        break;
    }
  }
  return bag.sort((a, b) => a - b);
}

describe('change capture', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  const buffer = async (table: string) => {
    const { rows } = await db.admin.query<BufferRow>(
      `SELECT * FROM pgtrickle_changes.${'changes_'}${await relid(table)} ORDER BY op_seq, change_id`,
    );
    return rows;
  };
  const relid = async (table: string) =>
    (await db.admin.query<{ oid: number }>('SELECT $1::regclass::oid AS oid', [table])).rows[0]?.oid;
  const consumed = async (st: string) =>
    (
      await db.admin.query<{ n: string }>(
        `SELECT changes_consumed AS n FROM pgtrickle.pgt_refresh_history
          WHERE pgt_id = pgtrickle._resolve($1) ORDER BY refresh_id`,
        [st],
      )
    ).rows.map((r) => Number(r.n));

  it('replays TRUNCATE then INSERT of one transaction in statement order to exactly one row', async () => {
    await db.admin.query(`CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2), (3)`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('t_st', 'SELECT v FROM t')`);
    await db.admin.query('BEGIN; TRUNCATE t; INSERT INTO t VALUES (1); COMMIT');
    const rows = await buffer('t');
    expect(rows.map((r) => r.action)).toEqual(['T', 'I']);
    expect(new Set(rows.map((r) => r.xid)).size).toBe(1);
    expect(replay([1, 2, 3], rows)).toEqual([1]);
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('t_st')`);
    expect(await divergence(db.admin, 't_st')).toBe(0);
  });

  it('consumes a transaction that started first but committed last exactly once', async () => {
    await db.admin.query(`CREATE TABLE lc (v int)`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('lc_st', 'SELECT v FROM lc')`);
    const early = await db.connect();
    const late = await db.connect();
    await early.query('BEGIN');
    await early.query('INSERT INTO lc VALUES (1)');
    await late.query('BEGIN');
    await late.query('INSERT INTO lc VALUES (2)');
    await late.query('COMMIT');
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('lc_st')`);
    await early.query('COMMIT');

    // The early transaction wrote the lower change id, yet the frontier has already passed the
    // higher one: a max-id frontier would never consume it.
    const ids = Object.fromEntries((await buffer('lc')).map((r) => [r.new_1 as number, Number(r.change_id)]));
    expect(ids[1]).toBeLessThan(ids[2] ?? 0);

    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('lc_st')`);
    const { notices: seen } = await notices(db.admin, () =>
      db.admin.query(`SELECT pgtrickle.refresh_stream_table('lc_st')`),
    );
    expect(seen).toEqual(['refresh skipped for "lc_st": no changes detected']);
    expect(await consumed('lc_st')).toEqual([0, 1, 1]);
    expect(await divergence(db.admin, 'lc_st')).toBe(0);
    expect(await buffer('lc')).toEqual([]);
  });

  it('counts its own transaction’s writes as consumed when it refreshes in the same transaction', async () => {
    await db.admin.query(`CREATE TABLE own (v int)`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('own_st', 'SELECT v FROM own')`);
    await db.admin.query(
      `BEGIN; INSERT INTO own VALUES (1), (2); SELECT pgtrickle.refresh_stream_table('own_st'); COMMIT`,
    );
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('own_st')`);
    expect(await consumed('own_st')).toEqual([0, 2]);
    expect(await divergence(db.admin, 'own_st')).toBe(0);
  });

  it('pairs UPDATEs by primary key with old and new values, and splits a key change', async () => {
    await db.admin.query(
      `CREATE TABLE k (id int PRIMARY KEY, v text); INSERT INTO k VALUES (1, 'a'), (2, 'b')`,
    );
    await db.admin.query(`SELECT pgtrickle.create_stream_table('k_st', 'SELECT id, v FROM k')`);
    await db.admin.query(`UPDATE k SET v = 'z' WHERE id = 1`);
    await db.admin.query(`UPDATE k SET id = 3 WHERE id = 2`);
    // Rows of one statement share an op_seq; their order within it carries no meaning.
    const rows = (await buffer('k')).sort(
      (a, b) => Number(a.op_seq) - Number(b.op_seq) || a.action.localeCompare(b.action),
    );
    expect(
      rows.map(({ action, new_1, old_1, new_2, old_2 }) => ({ action, new_1, old_1, new_2, old_2 })),
    ).toEqual([
      { action: 'U', new_1: 1, old_1: 1, new_2: 'z', old_2: 'a' },
      { action: 'D', new_1: null, old_1: 2, new_2: null, old_2: 'b' },
      { action: 'I', new_1: 3, old_1: null, new_2: 'b', old_2: null },
    ]);
    expect(new Set(rows.slice(1).map((r) => r.op_seq)).size).toBe(1);
  });

  it('captures identical rows of a keyless table one by one', async () => {
    await db.admin.query(`CREATE TABLE dup (v int)`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('dup_st', 'SELECT v FROM dup')`);
    await db.admin.query(`INSERT INTO dup VALUES (7), (7)`);
    await db.admin.query(`DELETE FROM dup WHERE ctid = (SELECT min(ctid) FROM dup)`);
    const rows = await buffer('dup');
    expect(rows.map((r) => r.action)).toEqual(['I', 'I', 'D']);
    expect(replay([], rows)).toEqual([7]);
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('dup_st')`);
    expect(await divergence(db.admin, 'dup_st')).toBe(0);
    expect((await db.admin.query('SELECT count(*)::int AS n FROM dup_st')).rows).toEqual([{ n: 1 }]);
  });

  it('keeps buffer rows until every stream table reading the source has passed them', async () => {
    await db.admin.query(`CREATE TABLE shared (v int)`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('s1', 'SELECT v FROM shared')`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('s2', 'SELECT count(*) AS n FROM shared')`);
    await db.admin.query(`INSERT INTO shared VALUES (1), (2)`);
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('s1')`);
    expect(await buffer('shared')).toHaveLength(2);
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('s2')`);
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('s1')`);
    expect(await buffer('shared')).toHaveLength(0);
    expect(await consumed('s2')).toEqual([0, 2]);
  });

  it('trims each buffer from where its last trim stopped, so a trim costs what it deletes', async () => {
    await db.admin.query(`CREATE TABLE queue (v int)`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('q1', 'SELECT v FROM queue')`);
    await db.admin.query(`SELECT pgtrickle.create_stream_table('q2', 'SELECT sum(v) AS s FROM queue')`);
    const trimmedBelow = async () =>
      (
        await db.admin.query<{ t: string | null }>(
          `SELECT trimmed_below::text AS t FROM pgtrickle.pgt_change_tracking WHERE source_relid = 'queue'::regclass`,
        )
      ).rows[0]?.t;
    const horizon = async () =>
      (
        await db.admin.query<{ h: string }>(
          `SELECT min(pg_snapshot_xmin(frontier))::text AS h FROM pgtrickle.pgt_stream_tables
            WHERE pgt_name IN ('q1', 'q2')`,
        )
      ).rows[0]?.h;
    const refreshBoth = () =>
      db.admin.query(
        `SELECT pgtrickle.refresh_stream_table('q1'); SELECT pgtrickle.refresh_stream_table('q2')`,
      );

    await db.admin.query(`INSERT INTO queue VALUES (1), (2)`);
    await refreshBoth();
    expect(await buffer('queue')).toHaveLength(0);
    expect(await trimmedBelow()).toBe(await horizon());

    // A row below the last trim's horizon cannot be written by any transaction; one planted
    // there shows that the next trim does not read that range again.
    await db.admin.query(
      `INSERT INTO pgtrickle_changes.changes_${await relid('queue')} (xid, op_seq, action, new_1)
       VALUES ('3', 0, 'I', 99)`,
    );
    await db.admin.query(`INSERT INTO queue VALUES (3)`);
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('q1')`);
    expect((await buffer('queue')).map((r) => r.new_1)).toEqual([99, 3]);
    await db.admin.query(`SELECT pgtrickle.refresh_stream_table('q2')`);
    expect((await buffer('queue')).map((r) => r.new_1)).toEqual([99]);
    expect(await trimmedBelow()).toBe(await horizon());
    for (const st of ['q1', 'q2']) expect(await divergence(db.admin, st)).toBe(0);
  });

  it('captures the changes a refresh writes to a stream table for the stream tables that read it', async () => {
    await db.admin.query(`CREATE TABLE base (g int, v int); INSERT INTO base VALUES (1, 1), (2, 2)`);
    await db.admin.query(
      `SELECT pgtrickle.create_stream_table('lvl1', 'SELECT g, sum(v) AS s FROM base GROUP BY g')`,
    );
    await db.admin.query(`SELECT pgtrickle.create_stream_table('lvl2', 'SELECT sum(s) AS total FROM lvl1')`);
    await db.admin.query(
      `SELECT pgtrickle.create_stream_table('lvl3', 'SELECT total * 2 AS doubled FROM lvl2')`,
    );
    await db.admin.query(`INSERT INTO base VALUES (1, 10)`);
    for (const st of ['lvl1', 'lvl2', 'lvl3']) {
      await db.admin.query('SELECT pgtrickle.refresh_stream_table($1)', [st]);
    }
    for (const st of ['lvl1', 'lvl2', 'lvl3']) expect(await divergence(db.admin, st)).toBe(0);
    expect((await db.admin.query('SELECT doubled FROM lvl3')).rows).toEqual([{ doubled: '26' }]);
    expect((await consumed('lvl2')).at(-1)).toBeGreaterThan(0);
  });
});
