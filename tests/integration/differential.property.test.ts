// Property tests of differential refresh: for every query shape, random batches of INSERT,
// UPDATE (key changes included), DELETE and TRUNCATE, a refresh after each batch, and the oracle
// (I5) after every refresh. Failing seeds are kept in REGRESSIONS and replayed first.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDifferential, migratedDatabase, type TestDb } from '../support/db.js';
import { assertStaysEqual } from '../support/property.js';

const SHAPES: Record<string, string> = {
  scan_filter_project: 'SELECT a.id, a.v * 2 AS v2, upper(a.note) AS note FROM a WHERE a.v > 5',
  inner_join: 'SELECT a.id, b.id AS bid, a.v + b.w AS s FROM a JOIN b ON a.g = b.g',
  three_way_join: 'SELECT a.id, b.id AS bid, k.y FROM a JOIN b ON a.g = b.g JOIN k ON k.x = b.w',
  self_join: 'SELECT a1.id, a2.id AS id2 FROM a a1 JOIN a a2 ON a1.g = a2.v',
  comma_join: 'SELECT a.id, k.y FROM a, k WHERE a.g = k.x AND k.y IS NOT NULL',
  group_count_sum_avg:
    'SELECT a.g, count(*) AS n, sum(a.v) AS s, avg(a.v) AS av, count(a.v) AS cv, sum(a.id) * 2 AS s2 FROM a GROUP BY a.g',
  group_min_max: 'SELECT a.g, min(a.v) AS mn, max(a.v) AS mx, max(a.note) AS mnote FROM a GROUP BY a.g',
  having: 'SELECT a.g, sum(a.v) AS s FROM a GROUP BY a.g HAVING count(*) > 1',
  join_aggregate:
    'SELECT b.g, sum(a.v) AS s, count(*) AS n, min(b.w) AS mw FROM a JOIN b ON a.g = b.g GROUP BY b.g',
  global_aggregate: 'SELECT count(*) AS n, sum(a.v) AS s, min(a.v) AS mn, max(a.v) AS mx FROM a',
  distinct: 'SELECT DISTINCT a.g, a.note FROM a',
  union_all: 'SELECT a.g AS x FROM a UNION ALL SELECT b.g FROM b WHERE b.w > 2',
  union: 'SELECT a.g AS x FROM a UNION SELECT k.x FROM k',
  keyless: 'SELECT k.x, k.y FROM k WHERE k.x IS NOT NULL',
  keyless_count: 'SELECT k.x, count(*) AS n, sum(k.y) AS s FROM k GROUP BY k.x',
  subquery_in_from:
    'SELECT s.g, s.v, b.w FROM (SELECT a.g, a.v FROM a WHERE a.v IS NOT NULL) s JOIN b ON s.g = b.g',
  cte: 'WITH big AS (SELECT a.id, a.g FROM a WHERE a.v > 3) SELECT big.g, count(*) AS n FROM big GROUP BY big.g',
  view: 'SELECT va.g, count(*) AS n FROM va GROUP BY va.g',
  left_join: 'SELECT a.id, b.id AS bid, b.w FROM a LEFT JOIN b ON a.g = b.g',
  full_join_keyless: 'SELECT a.id, a.note, k.y FROM a FULL JOIN k ON a.v = k.x',
  left_join_count: 'SELECT a.id, count(b.id) AS n FROM a LEFT JOIN b ON b.g = a.g GROUP BY a.id',
  inner_then_right_join: 'SELECT a.id, b.id AS bid, k.y FROM a JOIN b ON a.g = b.g RIGHT JOIN k ON k.x = b.w',
  // Subqueries, rewritten into joins with grouped subqueries: k has NULLs and duplicate rows.
  exists: 'SELECT a.id, a.v FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.g = a.g AND b.w > 1)',
  not_exists: 'SELECT a.id, a.g FROM a WHERE NOT EXISTS (SELECT 1 FROM k WHERE k.x = a.v)',
  exists_inequality: 'SELECT a.id FROM a WHERE EXISTS (SELECT 1 FROM a a2 WHERE a2.g = a.g AND a2.v <> a.v)',
  not_exists_inequality:
    'SELECT a.id, a.v FROM a WHERE NOT EXISTS (SELECT 1 FROM a a2 WHERE a2.g = a.g AND a2.v > a.v)',
  in_subquery: 'SELECT a.id, a.note FROM a WHERE a.g IN (SELECT k.x FROM k WHERE k.y IS DISTINCT FROM 0)',
  in_grouped_subquery: 'SELECT a.id FROM a WHERE a.g IN (SELECT b.g FROM b GROUP BY b.g HAVING count(*) > 1)',
  not_in: 'SELECT b.id, b.w FROM b WHERE b.id NOT IN (SELECT a.id FROM a WHERE a.v > 3)',
  correlated_scalar: 'SELECT a.id, a.v FROM a WHERE a.v > (SELECT avg(b.w) FROM b WHERE b.g = a.g)',
  uncorrelated_scalar: 'SELECT a.id, a.g FROM a WHERE a.v >= (SELECT avg(k.y) FROM k)',
  uncorrelated_scalar_equal: 'SELECT a.id, a.note FROM a WHERE a.v = (SELECT max(b.w) FROM b)',
  scalar_in_having:
    'SELECT a.g, sum(a.v) AS s FROM a GROUP BY a.g HAVING sum(a.v) > (SELECT min(b.w) FROM b)',
  exists_under_aggregate:
    'SELECT a.g, count(*) AS n, sum(a.v) AS s FROM a WHERE EXISTS (SELECT 1 FROM k WHERE k.x = a.v) GROUP BY a.g',
  aggregate_of_aggregate:
    'SELECT s.n, count(*) AS c FROM (SELECT a.g, count(*) AS n, max(a.note) AS m FROM a GROUP BY a.g) s GROUP BY s.n',
  // Grouped subqueries whose previous state comes from aggregate states (before-state.ts).
  grouped_sums_joined:
    'SELECT s.g, s.n, s.s, s.c, s.av, b.w FROM (SELECT a.g, count(*) AS n, sum(a.v) AS s, count(a.v) AS c, avg(a.v) AS av FROM a GROUP BY a.g) s JOIN b ON b.g = s.g',
  count_of_left_join_counts:
    'SELECT s.c, count(*) AS n FROM (SELECT a.id, count(b.id) AS c FROM a LEFT JOIN b ON b.g = a.g GROUP BY a.id) s GROUP BY s.c',
  // …and whose delta is computed only for keys of rows the block's own filters keep (relevant.ts).
  filtered_correlated_scalar:
    "SELECT a.id, a.v FROM a WHERE a.note = 'x' AND a.v > (SELECT avg(b.w) FROM b WHERE b.g = a.g)",
  filtered_exists: 'SELECT a.id, a.g FROM a WHERE a.v > 2 AND EXISTS (SELECT 1 FROM k WHERE k.x = a.g)',
  // …and, grouped over a grouped subquery on the same key, narrow that subquery to the touched keys.
  in_grouped_nullable_keys:
    'SELECT b.id, b.w FROM b WHERE b.g IN (SELECT s.g FROM (SELECT k.x AS g, sum(k.y) AS t FROM k GROUP BY k.x) s WHERE s.t > 1)',
  in_subquery_having_sum:
    'SELECT a.id FROM a WHERE a.g IN (SELECT b.g FROM b GROUP BY b.g HAVING sum(b.w) > 3)',
  // A grouped subquery on the right of a join, probed by the ON equalities on its key; its
  // delta netted where a group's row stays the same.
  join_grouped_on_right:
    'SELECT a.id, a.v, s.t FROM a JOIN (SELECT b.g, sum(b.w) AS t, max(b.w) AS m FROM b GROUP BY b.g) s ON s.g = a.g AND s.m >= a.v',
  // A scalar aggregate over a grouped subquery, which its value now, before and its delta share.
  scalar_over_grouped:
    'SELECT a.id, a.g FROM a WHERE a.v = (SELECT max(s.t) FROM (SELECT b.g, sum(b.w) AS t FROM b GROUP BY b.g) s)',
  // A bare name that is a subquery's column and a table's name: the column, so an update of a
  // column nobody reads is left out.
  column_named_as_table:
    'SELECT k, count(*) AS n FROM (SELECT b.g AS k FROM b JOIN k ON k.x = b.w) s GROUP BY k',
  // Window functions: the partitions a change touches are recomputed (the first five as the
  // stream table's own partitions, but window_over_join, whose partition key is no column of
  // it). Each ORDER BY ends in a key, so that the rows are numbered the same way every time.
  window_functions:
    'SELECT a.id, a.g, row_number() OVER (PARTITION BY a.g ORDER BY a.v DESC NULLS LAST, a.id) AS rn, sum(a.v) OVER (PARTITION BY a.g ORDER BY a.id) AS running FROM a',
  top_n_per_group:
    'SELECT t.g, t.id, t.v FROM (SELECT a.g, a.id, a.v, row_number() OVER (PARTITION BY a.g ORDER BY a.v, a.id) AS rn FROM a) t WHERE t.rn <= 2',
  window_over_join:
    'SELECT a.id, b.id AS bid, count(*) OVER (PARTITION BY b.g) AS n FROM a JOIN b ON a.g = b.g',
  window_over_aggregate:
    'SELECT s.g, s.note, s.n, rank() OVER (PARTITION BY s.g ORDER BY s.n) AS r FROM (SELECT a.g, a.note, count(*) AS n FROM a GROUP BY a.g, a.note) s',
  keyless_window:
    'SELECT k.x, k.y, count(*) OVER (PARTITION BY k.x) AS n, max(k.y) OVER (PARTITION BY k.x) AS top FROM k',
  // Below the top, or without its partition key among the columns: the generic rule.
  window_subquery_joined:
    'SELECT t.id, t.rn, b.w FROM (SELECT a.id, a.g, row_number() OVER (PARTITION BY a.g ORDER BY a.id) AS rn FROM a) t JOIN b ON b.g = t.g',
};

// Seeds (and paths) of past failures, replayed before the random runs.
const REGRESSIONS: Partial<Record<keyof typeof SHAPES, { seed: number; path: string }[]>> = {
  // A group whose changes held no value of a count's argument counted NULL before, not 0.
  count_of_left_join_counts: [
    {
      seed: -1748444415,
      path: '2:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:1:1:1:1:1:1:1',
    },
    {
      seed: -1683420753,
      path: '2:3:2:3:3:3:3:1:2:2:2:2:2:2:2:2:2:2:2:2:2:2:2:2:2:2:2:2:2:0:1:0:0:1:0:2:2:3:3:2:2:2:2',
    },
  ],
  grouped_sums_joined: [
    {
      seed: 774776310,
      path: '5:2:3:3:3:3:3:3:3:6:6:6:6:6:6:6:6:6:6:6:7:6:6:6:7:7:7:7:7:7:7:8:7:11:10:10:10:10',
    },
  ],
};

const small = fc.integer({ min: 1, max: 10 });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: null, freq: 4 });
const note = maybe(fc.constantFrom('x', 'y', 'z'));

type Op =
  | { op: 'insert_a'; id: number; g: number | null; v: number | null; note: string | null }
  | { op: 'update_a'; id: number; g: number | null; v: number | null }
  | { op: 'bump_a'; id: number }
  | { op: 'rekey_a'; id: number; to: number }
  | { op: 'delete_a'; id: number }
  | { op: 'insert_b'; id: number; g: number | null; w: number }
  | { op: 'update_b'; id: number; g: number | null }
  | { op: 'delete_b'; id: number }
  | { op: 'insert_k'; x: number | null; y: number | null; copies: number }
  | { op: 'delete_k'; x: number | null }
  | { op: 'truncate'; table: 'a' | 'b' | 'k' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('insert_a' as const),
      id: small,
      g: maybe(fc.integer({ min: 1, max: 3 })),
      v: maybe(fc.integer({ min: 0, max: 9 })),
      note,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('update_a' as const),
      id: small,
      g: maybe(fc.integer({ min: 1, max: 3 })),
      v: maybe(fc.integer({ min: 0, max: 9 })),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('bump_a' as const), id: small }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('rekey_a' as const), id: small, to: small }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete_a' as const), id: small }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('insert_b' as const),
      id: small,
      g: maybe(fc.integer({ min: 1, max: 3 })),
      w: fc.integer({ min: 0, max: 5 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('update_b' as const),
      id: small,
      g: maybe(fc.integer({ min: 1, max: 3 })),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete_b' as const), id: small }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('insert_k' as const),
      x: maybe(fc.integer({ min: 0, max: 4 })),
      y: maybe(fc.integer({ min: 0, max: 3 })),
      copies: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('delete_k' as const), x: maybe(fc.integer({ min: 0, max: 4 })) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('truncate' as const),
      table: fc.constantFrom('a' as const, 'b' as const, 'k' as const),
    }),
  },
);

function statement(o: Op): [string, unknown[]] {
  switch (o.op) {
    case 'insert_a':
      return ['INSERT INTO a VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING', [o.id, o.g, o.v, o.note]];
    case 'update_a':
      return ['UPDATE a SET g = $2, v = $3 WHERE id = $1', [o.id, o.g, o.v]];
    case 'bump_a':
      return ["UPDATE a SET v = v + 1, note = coalesce(note, 'n') WHERE id = $1", [o.id]];
    case 'rekey_a':
      return [
        'UPDATE a SET id = $2 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM a WHERE id = $2)',
        [o.id, o.to],
      ];
    case 'delete_a':
      return ['DELETE FROM a WHERE id = $1', [o.id]];
    case 'insert_b':
      return ['INSERT INTO b VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [o.id, o.g, o.w]];
    case 'update_b':
      return ['UPDATE b SET g = $2 WHERE id = $1', [o.id, o.g]];
    case 'delete_b':
      return ['DELETE FROM b WHERE id = $1', [o.id]];
    case 'insert_k':
      return ['INSERT INTO k SELECT $1::int, $2::int FROM generate_series(1, $3::int)', [o.x, o.y, o.copies]];
    case 'delete_k':
      return [
        'DELETE FROM k WHERE ctid = (SELECT min(ctid) FROM k WHERE x IS NOT DISTINCT FROM $1::int)',
        [o.x],
      ];
    case 'truncate':
      return [`TRUNCATE ${o.table}`, []];
  }
}

// Twice: as created, and with statistics that call the tables large, which makes the compiler
// join their previous states as the relation now plus its undone changes (variants.ts); there
// every batch runs the delta statement for large batches, where the query has one (migration
// 0012: the buffers read through pgtrickle._pending_many).
describe.each([
  ['as created', false],
  ['with the statistics of large tables, every batch planned as a large one', true],
])('differential refresh keeps every shape equal to its query, %s', (_title, large) => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`
      CREATE TABLE a (id int PRIMARY KEY, g int, v int, note text);
      CREATE TABLE b (id int PRIMARY KEY, g int, w int NOT NULL);
      CREATE TABLE k (x int, y int);
      CREATE VIEW va AS SELECT a.g, a.v FROM a WHERE a.v IS DISTINCT FROM 0;`);
    if (large) {
      await db.admin.query(
        `UPDATE pg_class SET reltuples = CASE relname WHEN 'a' THEN 200000 WHEN 'b' THEN 50000 ELSE 20000 END
          WHERE relname IN ('a', 'b', 'k') AND relnamespace = 'public'::regnamespace`,
      );
      await db.admin.query('SET pgtrickle.large_delta_rows = 0');
    }
  });
  afterAll(async () => {
    await db?.drop();
  });

  it.each(Object.entries(SHAPES))('%s', async (name, query) => {
    const sql = db.admin;
    await sql.query('SELECT pgtrickle.create_stream_table($1, $2)', [name, query]);
    const outcome = await makeDifferential(sql, name);
    expect(outcome.mode, outcome.mode === 'FULL' ? outcome.reason : '').toBe('DIFFERENTIAL');

    await assertStaysEqual(sql, name, { ops: opArb, statement, tables: ['a', 'b', 'k'] }, REGRESSIONS[name]);
    await sql.query('SELECT pgtrickle.drop_stream_table($1)', [name]);
  });
});
