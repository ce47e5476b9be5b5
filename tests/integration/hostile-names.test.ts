// Security audit: schemas, tables, columns and stream tables named with quotes, semicolons,
// dollar quotes (the delimiters pgtrickle's own functions use), backslashes, unicode and
// reserved words go through create, refresh (FULL and DIFFERENTIAL), alter, DDL tracking,
// migrate() and drop, and nothing is injected: the canary survives and no relation appears.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  divergence,
  lastAction,
  makeDifferential,
  migratedDatabase,
  notices,
  type TestDb,
} from '../support/db.js';

/** An identifier quoted as PostgreSQL reads it. */
const q = (name: string) => `"${name.replaceAll('"', '""')}"`;

const schema = `s"; DROP TABLE canary; --`;
const table = `t $$ ;\\ 'q' ü $fn$`;
const source = `${q(schema)}.${q(table)}`;
const col = {
  key: 'select',
  quote: 'a"b',
  dollar: '$$',
  backslash: 'back\\slash',
  unicode: 'ünï 統計',
  injection: `'; DROP TABLE canary; --`,
  delim: '$s$ $f$',
};
const st = {
  agg: `${q(schema)}.${q('st; DROP TABLE canary; --')}`,
  full: `${q(schema)}.${q('order')}`,
  chained: q(`st "q" $$ \\ ü $fn$`),
};

describe('hostile names', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`CREATE TABLE canary (alive boolean); INSERT INTO canary VALUES (true);
      CREATE SCHEMA ${q(schema)};
      CREATE TABLE ${source} (
        id int PRIMARY KEY, ${q(col.key)} int NOT NULL, ${q(col.quote)} text, ${q(col.dollar)} int,
        ${q(col.backslash)} text, ${q(col.unicode)} text, ${q(col.injection)} text, ${q(col.delim)} int);
      INSERT INTO ${source} SELECT g, g % 3, 'it''s "q" ' || g, g, E'a\\\\b' || g, 'ü' || g, '''; DROP TABLE canary; --',
        g * 2 FROM generate_series(1, 30) g`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  const sql = (text: string, values?: unknown[]) => db.admin.query(text, values);
  const refresh = (name: string) => sql('SELECT pgtrickle.refresh_stream_table($1)', [name]);

  /** Nothing was injected: the canary is there and the only relations are the ones made here. */
  const expectNoInjection = async () => {
    expect((await sql('SELECT alive FROM canary')).rows).toEqual([{ alive: true }]);
    const { rows } = await sql(
      `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgtrickle', 'pgtrickle_changes')
          AND n.nspname NOT LIKE 'pg_toast%'
          AND NOT (n.nspname = 'public' AND c.relname = 'canary')
          AND NOT (n.nspname = $1 AND c.relname IN ($2, 'st; DROP TABLE canary; --', 'order'))
          AND NOT (n.nspname = 'public' AND c.relname = $3)`,
      [schema, table, `st "q" $$ \\ ü $fn$`],
    );
    expect(rows).toEqual([{ n: 0 }]);
  };

  it('creates stream tables over them and refreshes them FULL and DIFFERENTIAL, exactly', async () => {
    await sql('SELECT pgtrickle.create_stream_table($1, $2)', [
      st.agg,
      `SELECT t.${q(col.key)}, count(*) AS "n;", sum(t.${q(col.dollar)}) AS ${q(col.delim)},
              max(t.${q(col.injection)}) AS ${q(col.injection)}
         FROM ${source} t GROUP BY t.${q(col.key)}`,
    ]);
    await sql('SELECT pgtrickle.create_stream_table($1, $2, refresh_mode => $3)', [
      st.full,
      `SELECT t.id, t.${q(col.quote)}, t.${q(col.backslash)}, t.${q(col.unicode)} FROM ${source} t`,
      'FULL',
    ]);
    await sql('SELECT pgtrickle.create_stream_table($1, $2)', [
      st.chained,
      `SELECT a.${q(col.key)} AS ${q(col.unicode)}, a."n;" FROM ${st.agg} a WHERE a."n;" > 1`,
    ]);
    expect(await makeDifferential(db.admin, st.agg)).toMatchObject({ mode: 'DIFFERENTIAL' });
    // Planning st.agg re-captured its storage with the hidden columns and marked st.chained.
    expect(await makeDifferential(db.admin, st.chained)).toMatchObject({ mode: 'DIFFERENTIAL' });

    await sql(`INSERT INTO ${source} VALUES (31, 1, '$$', 5, E'\\\\', 'ü', '$fn$', 1);
      UPDATE ${source} SET ${q(col.dollar)} = ${q(col.dollar)} + 1, ${q(col.quote)} = 'x''y' WHERE id <= 5;
      DELETE FROM ${source} WHERE id IN (7, 8)`);
    for (const [name, action] of [
      [st.agg, 'DIFFERENTIAL'],
      [st.full, 'FULL'],
      [st.chained, 'DIFFERENTIAL'],
    ] as const) {
      await refresh(name);
      expect(await lastAction(db.admin, name)).toBe(action);
      expect(await divergence(db.admin, name)).toBe(0);
    }
    const { rows } = await sql('SELECT name FROM pgtrickle.pgt_status() ORDER BY name');
    expect(rows.map((r) => r.name).sort()).toEqual([st.agg, st.full, st.chained].map(pgStatusName).sort());
    await expectNoInjection();
  });

  it('alters their schedule and query', async () => {
    await sql('SELECT pgtrickle.alter_stream_table($1, schedule => $2)', [st.full, '5m']);
    await sql('SELECT pgtrickle.alter_stream_table($1, query => $2)', [
      st.full,
      `SELECT t.id, t.${q(col.quote)}, t.${q(col.backslash)}, t.${q(col.unicode)} FROM ${source} t WHERE t.id > 3`,
    ]);
    expect(await divergence(db.admin, st.full)).toBe(0);
    expect(await sql('SELECT pgtrickle.explain_st($1)', [st.agg])).toBeDefined();
    await expectNoInjection();
  });

  it('tracks DDL on them and names them quoted in reasons', async () => {
    const { notices: seen } = await notices(db.admin, () =>
      sql(`ALTER TABLE ${source} ADD COLUMN ${q('new "col" $s$;')} int DEFAULT 1`),
    );
    expect(seen).toContain(
      `stream table ${st.agg} will be reinitialized: upstream table altered: ${source} (columns changed)`,
    );
    await sql(`INSERT INTO ${source} (id, ${q(col.key)}) VALUES (40, 2)`);
    for (const name of [st.agg, st.full, st.chained]) {
      await refresh(name);
      expect(await divergence(db.admin, name)).toBe(0);
    }
    expect(await lastAction(db.admin, st.agg)).toBe('REINITIALIZE');
    const report = await sql('SELECT * FROM pgtrickle.migrate()');
    expect(report.rows).toContainEqual({ object: `change capture of ${source}`, action: 'unchanged' });
    await expectNoInjection();
  });

  it('drops them, and a dropped source is named quoted', async () => {
    await sql('SELECT pgtrickle.drop_stream_table($1, cascade => true)', [st.agg]);
    await sql(`DROP TABLE ${source}`);
    const { rows } = await sql(
      'SELECT status, last_error FROM pgtrickle.pgt_stream_tables WHERE pgt_id = pgtrickle._resolve($1)',
      [st.full],
    );
    expect(rows).toEqual([{ status: 'ERROR', last_error: `upstream table dropped: ${source}` }]);
    await sql('SELECT pgtrickle.drop_stream_table($1)', [st.full]);
    const left = await sql('SELECT count(*)::int AS n FROM pgtrickle.pgt_stream_tables');
    expect(left.rows).toEqual([{ n: 0 }]);
    await sql(`DROP SCHEMA ${q(schema)}`);
    expect((await sql('SELECT alive FROM canary')).rows).toEqual([{ alive: true }]);
  });
});

/** pgt_status() names: quote_ident of schema and name, so plain names stay unquoted. */
function pgStatusName(name: string): string {
  return name.includes('.') ? name : `public.${name}`;
}
