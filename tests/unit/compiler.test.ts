import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../../sql/compiler/ast.js';
import type { CompileFacts, RelationFacts } from '../../sql/compiler/facts.js';
import { compile, refusal, table } from '../support/compiler.js';

const orders = table(100, 'orders', [
  ['id', 'integer'],
  ['cid', 'integer'],
  ['amount', 'numeric(10,2)'],
  ['price', 'double precision'],
]);
const customers = table(200, 'customers', [
  ['id', 'integer'],
  ['region', 'text'],
]);

function facts(definingQuery: string, outputs: string[], extra: Partial<CompileFacts> = {}): CompileFacts {
  return {
    definingQuery,
    outputColumns: outputs.map((name) => ({ name, type: 'text' })),
    relations: [orders, customers],
    aggregateNames: new Set(['count', 'sum', 'avg', 'min', 'max', 'string_agg']),
    volatileNames: new Set(['random']),
    ...extra,
  };
}

describe('compiler', () => {
  beforeAll(loadParser);

  it('gives the same plan text for the same query and facts', () => {
    const q = facts(
      'SELECT c.region, sum(o.amount) AS total FROM public.orders o JOIN public.customers c ON o.cid = c.id GROUP BY c.region',
      ['region', 'total'],
    );
    expect(compile(q)).toEqual(compile(q));
  });

  it('writes a second delta statement for large batches where it joins, reading the buffers through _pending_many and _pending_few', () => {
    const join = compile({
      ...facts('SELECT o.id, c.region FROM public.orders o JOIN public.customers c ON o.cid = c.id', [
        'id',
        'region',
      ]),
      relations: [
        { ...orders, rows: 100_000 },
        { ...customers, rows: 9_999 },
      ],
    });
    expect(join.deltaSql).toContain(
      'FROM pgtrickle_changes."changes_100" b CROSS JOIN __pgt_snap WHERE b.xid >= pg_catalog.pg_snapshot_xmin($1::pg_snapshot)',
    );
    expect(join.deltaSqlMany).toContain(
      'FROM pgtrickle._pending_many(NULL::pgtrickle_changes."changes_100", pg_catalog.pg_snapshot_xmin($1::pg_snapshot)) b CROSS JOIN __pgt_snap WHERE (CASE WHEN',
    );
    // A table under 10,000 rows has few changes even in a large batch.
    expect(join.deltaSqlMany).toContain('pgtrickle._pending_few(NULL::pgtrickle_changes."changes_200"');
    // The truncation test reads the buffer by its own index either way.
    expect(join.deltaSqlMany).toContain(
      `FROM pgtrickle_changes."changes_100" b CROSS JOIN __pgt_snap WHERE b.action = 'T'`,
    );
    // The rest of the statement is the same.
    const unify = (sql: string) =>
      sql.replace(
        /FROM pgtrickle\._pending_(?:many|few)\(NULL::(pgtrickle_changes\."changes_\d+"), pg_catalog\.pg_snapshot_xmin\(\$1::pg_snapshot\)\) b CROSS JOIN __pgt_snap WHERE/g,
        'FROM $1 b CROSS JOIN __pgt_snap WHERE b.xid >= pg_catalog.pg_snapshot_xmin($$1::pg_snapshot)\n      AND',
      );
    expect(unify(join.deltaSqlMany ?? '')).toBe(join.deltaSql);
    const single = compile(facts('SELECT o.id FROM public.orders o WHERE o.amount > 1', ['id']));
    expect(single.deltaSqlMany).toBeUndefined();
  });

  it('maintains a projection and filter as a multiset with one row id', () => {
    const plan = compile(
      facts('SELECT o.id, o.amount * 2 AS twice FROM public.orders o WHERE o.amount > 1', ['id', 'twice']),
    );
    expect(plan.strategy).toBe('multiset');
    expect(plan.hiddenColumns).toEqual([{ name: '__pgt_row_id', type: 'bigint' }]);
    expect(plan.sources.map((s) => s.buffer)).toEqual(['changes_100']);
    expect(plan.deltaSql).toContain('FROM __pgt_d0 AS o WHERE o.amount > 1');
  });

  it('keys the rows of an inner join of relations with primary keys by those keys, updating in place', () => {
    const keyed = {
      ...facts('', []),
      relations: [
        { ...orders, key: ['id'] },
        { ...customers, key: ['id'] },
      ],
    };
    const plan = compile({
      ...keyed,
      definingQuery: 'SELECT o.amount, c.region FROM public.orders o JOIN public.customers c ON o.cid = c.id',
      outputColumns: [
        { name: 'amount', type: 'numeric' },
        { name: 'region', type: 'text' },
      ],
    });
    expect(plan.strategy).toBe('keyed');
    expect(plan.hiddenColumns).toEqual([
      { name: '__pgt_k0', type: 'integer' },
      { name: '__pgt_k1', type: 'integer' },
    ]);
    expect(plan.indexColumns).toEqual(['__pgt_k0', '__pgt_k1']);
    expect(plan.deltaSql).toContain(
      'UPDATE "public"."st" t SET "amount" = n."amount", "region" = n."region"',
    );
  });

  it('keeps the hashed row id when a relation has no primary key', () => {
    const plan = compile({
      ...facts('SELECT o.amount, c.region FROM public.orders o JOIN public.customers c ON o.cid = c.id', [
        'amount',
        'region',
      ]),
      relations: [{ ...orders, key: ['id'] }, customers],
    });
    expect(plan.strategy).toBe('multiset');
  });

  it('telescopes a join of two relations into two arms: the first change against the second as before', () => {
    const plan = compile(
      facts('SELECT o.id, c.region FROM public.orders o JOIN public.customers c ON o.cid = c.id', [
        'id',
        'region',
      ]),
    );
    const delta = plan.deltaSql.slice(
      plan.deltaSql.indexOf('__pgt_delta AS ('),
      plan.deltaSql.indexOf('__pgt_net AS ('),
    );
    const arms = delta.split(' UNION ALL ');
    expect(arms).toHaveLength(2);
    expect(arms[0]).toContain('(1 * o.__pgt_w) * c.__pgt_w AS __pgt_w FROM __pgt_d0 AS o JOIN __pgt_o1 AS c');
    expect(arms[1]).toContain('1 * c.__pgt_w AS __pgt_w FROM public.orders AS o JOIN __pgt_d1 AS c');
  });

  it('rebuilds a relation as it was from its rows now plus the consumed changes undone, materialized once', () => {
    const plan = compile(
      facts('SELECT o.id, c.region FROM public.orders o JOIN public.customers c ON o.cid = c.id', [
        'id',
        'region',
      ]),
    );
    expect(plan.deltaSql).toContain(
      '__pgt_u1 AS MATERIALIZED (SELECT d."id", d."region", -d.__pgt_w AS __pgt_w FROM __pgt_d1 d)',
    );
    expect(plan.deltaSql).toContain(
      `__pgt_o1 AS NOT MATERIALIZED (SELECT t."id", t."region", 1 AS __pgt_w FROM "public"."customers" t
    UNION ALL SELECT * FROM __pgt_u1 d)`,
    );
    expect(plan.deltaSql).not.toContain('__pgt_o0');
  });

  it('gives a join of n relations n arms', () => {
    const lines = table(300, 'lines', [
      ['oid', 'integer'],
      ['item', 'text'],
    ]);
    const notes = table(400, 'notes', [
      ['cid', 'integer'],
      ['body', 'text'],
    ]);
    const plan = compile(
      facts(
        'SELECT o.id, c.region, l.item, n.body FROM public.orders o, public.customers c, public.lines l, public.notes n WHERE o.cid = c.id AND l.oid = o.id AND n.cid = c.id',
        ['id', 'region', 'item', 'body'],
        { relations: [orders, customers, lines, notes] },
      ),
    );
    const delta = plan.deltaSql.slice(
      plan.deltaSql.indexOf('__pgt_delta AS ('),
      plan.deltaSql.indexOf('__pgt_net AS ('),
    );
    const froms = delta
      .split(' UNION ALL ')
      .map((arm) => arm.slice(arm.indexOf(' FROM ') + 6, arm.indexOf(' WHERE ')));
    expect(froms).toEqual([
      '__pgt_d0 AS o, __pgt_o1 AS c, __pgt_o2 AS l, __pgt_o3 AS n',
      'public.orders AS o, __pgt_d1 AS c, __pgt_o2 AS l, __pgt_o3 AS n',
      'public.orders AS o, public.customers AS c, __pgt_d2 AS l, __pgt_o3 AS n',
      'public.orders AS o, public.customers AS c, public.lines AS l, __pgt_d3 AS n',
    ]);
  });

  it('guards every arm so that it runs only when the source whose changes it reads has changes', () => {
    const plan = compile(
      facts('SELECT o.id, c.region FROM public.orders o JOIN public.customers c ON o.cid = c.id', [
        'id',
        'region',
      ]),
    );
    expect(plan.deltaSql).toContain(
      'JOIN __pgt_o1 AS c ON o.cid = c.id WHERE (SELECT __pgt_f.changed_0 FROM __pgt_flags AS __pgt_f)',
    );
    expect(plan.deltaSql).toContain(
      'JOIN __pgt_d1 AS c ON o.cid = c.id WHERE (SELECT __pgt_f.changed_1 FROM __pgt_flags AS __pgt_f)',
    );
  });

  it('keeps COUNT, SUM and AVG of exact numbers and MIN/MAX algebraically in hidden columns', () => {
    const plan = compile(
      facts(
        'SELECT o.cid, count(*) AS n, sum(o.amount) AS s, avg(o.id) AS a, min(o.amount) AS lo FROM public.orders o GROUP BY o.cid',
        ['cid', 'n', 's', 'a', 'lo'],
      ),
    );
    expect(plan.strategy).toBe('aggregate');
    expect(plan.hiddenColumns.map((c) => `${c.name} ${c.type}`)).toEqual([
      '__pgt_row_id bigint',
      '__pgt_count bigint',
      '__pgt_s1 numeric',
      '__pgt_n1 bigint',
      '__pgt_s2 numeric',
      '__pgt_n2 bigint',
      '__pgt_m3 numeric(10,2)',
    ]);
  });

  it('recomputes the touched groups for HAVING and for sums of floating point numbers', () => {
    expect(
      compile(
        facts('SELECT o.cid, sum(o.amount) AS s FROM public.orders o GROUP BY o.cid HAVING count(*) > 1', [
          'cid',
          's',
        ]),
      ).strategy,
    ).toBe('aggregate_recompute');
    expect(
      compile(facts('SELECT o.cid, sum(o.price) AS s FROM public.orders o GROUP BY o.cid', ['cid', 's']))
        .strategy,
    ).toBe('aggregate_recompute');
  });

  it('counts rows behind DISTINCT and UNION', () => {
    expect(compile(facts('SELECT DISTINCT o.cid FROM public.orders o', ['cid'])).strategy).toBe('distinct');
    expect(
      compile(
        facts('SELECT o.cid AS x FROM public.orders o UNION SELECT c.id FROM public.customers c', ['x']),
      ).strategy,
    ).toBe('distinct');
  });

  it('inlines non-recursive CTEs and subqueries in FROM', () => {
    const plan = compile(
      facts(
        'WITH big AS (SELECT o.id, o.cid FROM public.orders o WHERE o.amount > 10) SELECT big.cid FROM big',
        ['cid'],
      ),
    );
    expect(plan.deltaSql).toContain(
      'FROM ( SELECT o.id AS id, o.cid AS cid, 1 * o.__pgt_w AS __pgt_w FROM __pgt_d0 AS o WHERE o.amount > 10',
    );
  });

  it.each([
    ['SELECT o.id FROM public.orders o ORDER BY o.id LIMIT 10', 'LIMIT or OFFSET'],
    [
      'SELECT o.id, rank() OVER (ORDER BY o.amount) AS r FROM public.orders o',
      'window functions without PARTITION BY',
    ],
    [
      'SELECT o.id, rank() OVER (PARTITION BY o.cid ORDER BY o.amount) AS r, count(*) OVER (PARTITION BY o.amount) AS n FROM public.orders o',
      'window functions with different PARTITION BY lists',
    ],
    [
      'SELECT o.cid, rank() OVER (PARTITION BY o.cid ORDER BY sum(o.amount)) AS r FROM public.orders o GROUP BY o.cid',
      'window functions over a grouped query',
    ],
    [
      'SELECT o.id, rank() OVER w AS r FROM public.orders o WINDOW w AS (PARTITION BY o.cid)',
      'a WINDOW clause',
    ],
    // Renamed by position, a table's columns would escape the columns the delta reads by name.
    ['SELECT a.z FROM public.orders a(z)', 'column aliases on table public.orders'],
    [
      'SELECT o.id FROM public.orders o WHERE o.id > 1 OR o.cid IN (SELECT c.id FROM public.customers c)',
      'IN or ANY with a subquery inside another expression, or with an operator other than =',
    ],
    ['SELECT o.id, random() AS r FROM public.orders o', 'volatile function random()'],
    ['SELECT o.id, now() AS t FROM public.orders o', 'time-dependent function now()'],
    ['WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT r.n + 1 FROM r) SELECT r.n FROM r', 'WITH RECURSIVE'],
    ['SELECT o.id FROM public.orders o INTERSECT SELECT c.id FROM public.customers c', 'INTERSECT'],
    ['SELECT DISTINCT ON (o.cid) o.cid, o.id FROM public.orders o', 'DISTINCT ON'],
    [
      'SELECT s.cid FROM (SELECT DISTINCT o.cid FROM public.orders o) s',
      'DISTINCT or UNION below the top of the query',
    ],
  ])('refuses %s, naming %s', (query, construct) => {
    expect(refusal(facts(query, ['x']))).toBe(construct);
  });

  it('refuses a materialized view by name', () => {
    const mv: RelationFacts = { ...customers, relid: 300, name: 'mv', kind: 'matview' };
    expect(refusal(facts('SELECT mv.id FROM public.mv', ['id'], { relations: [orders, mv] }))).toBe(
      'materialized view public.mv',
    );
  });
});
